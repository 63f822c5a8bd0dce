"""Add an SAE to the set shipped inside the package (developers, on a source checkout).

    python scripts/ship_pretrained.py SAE_DIR NAME --card-from EVAL_JSON_OR_DIR \\
        --data "LibriSpeech train-clean-100" --hours 100.6 --speakers 251 --data-licence CC-BY-4.0 [--notes NOTES.md]

e.g. ``python scripts/ship_pretrained.py runs/sae-topk-4608 tiny.en/encoder.out-4608 --card-from runs/sae-topk-4608``.

Writes ``src/whisper_sae/pretrained/<MODEL>--<HOOK...>/`` (fp16 ``sae_weights.safetensors``, ``cfg.json``,
``MODEL_CARD.md`` from ``cfg.json`` + ``eval.json``, ``LICENSE`` with --licence-file) and its entry in
``pretrained/index.json``, and refuses anything that would take the shipped set over 20 MB. Numbers that
are not in eval.json (the README's held-out EV, say) are given with --headline KEY=VALUE
(keys: l0, explained_variance, clean_wer, spliced_wer, ce_recovered_zero, ce_recovered_mean; WERs as fractions)
and --measured-on. Commit the new folder and index.json; `whisper-sae pretrained list` shows it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _headline(pairs: list[str]) -> dict:
    from whisper_sae.pretrained.cards import HEADLINE

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in HEADLINE:
            raise ValueError(f"--headline {pair!r}: write KEY=VALUE with KEY one of {', '.join(HEADLINE)}")
        try:
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"--headline {pair!r}: {value!r} is not a number") from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sae_dir", type=Path, metavar="SAE_DIR")
    parser.add_argument("name", metavar="NAME", help="MODEL/HOOK[-VARIANT], e.g. tiny.en/encoder.out-4608")
    parser.add_argument(
        "--card-from",
        type=Path,
        default=None,
        metavar="EVAL",
        help="eval.json of `whisper-sae evaluate`, or the folder holding it (default: SAE_DIR/eval.json if present)",
    )
    parser.add_argument(
        "--headline", action="append", default=[], metavar="KEY=VALUE", help="a card number (repeatable)"
    )
    parser.add_argument("--measured-on", default=None, help="what the --headline numbers were measured on")
    parser.add_argument("--data", default=None, help="training corpus, e.g. 'LibriSpeech train-clean-100'")
    parser.add_argument("--hours", type=float, default=None, help="hours of training speech")
    parser.add_argument("--speakers", type=int, default=None, help="speakers in the training speech")
    parser.add_argument("--data-licence", default=None, help="licence of the training data, e.g. CC-BY-4.0")
    parser.add_argument("--licence", default="MIT", help="licence of the weights (default MIT)")
    parser.add_argument("--licence-file", type=Path, default=None, help="licence text to ship beside the weights")
    parser.add_argument("--source", default=None, help="where the weights come from (shown on the card)")
    parser.add_argument("--notes", type=Path, default=None, help="markdown file appended to the card as its notes")
    parser.add_argument("--not-recommended", action="store_true", help="mark it as shipped for reference only")
    parser.add_argument("--replace", action="store_true", help="replace an SAE already shipped under NAME")
    parser.add_argument("--root", type=Path, default=None, help="shipped-SAE folder (default: the package's)")
    args = parser.parse_args(argv)

    from whisper_sae.pretrained import BUDGET_BYTES, shipped_size
    from whisper_sae.pretrained.ship import add

    try:
        headline = _headline(args.headline)
        if args.measured_on:
            headline["measured_on"] = args.measured_on
        card_from = args.card_from
        if card_from is None and (args.sae_dir / "eval.json").is_file():
            card_from = args.sae_dir / "eval.json"
        data = {
            k: v
            for k, v in (
                ("corpus", args.data),
                ("hours", args.hours),
                ("speakers", args.speakers),
                ("licence", args.data_licence),
            )
            if v is not None
        }
        folder = add(
            args.sae_dir,
            args.name,
            eval_json=card_from,
            headline=headline,
            training_data=data,
            licence=args.licence,
            licence_file=args.licence_file,
            notes=args.notes.read_text(encoding="utf-8") if args.notes else None,
            recommended=not args.not_recommended,
            source=args.source,
            replace=args.replace,
            root=args.root,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"ship_pretrained: error: {err}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(
        f"shipped {args.name} in {folder} ({size / 1e6:.2f} MB); shipped set "
        f"{shipped_size(args.root) / 1e6:.2f} of {BUDGET_BYTES / 1e6:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
