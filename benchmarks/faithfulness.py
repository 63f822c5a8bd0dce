"""Faithfulness of trained SAEs on real speech: clean vs spliced WER and CE recovered, one row per SAE.

    python benchmarks/faithfulness.py --corpus ../shared/data/librispeech/test-clean \
        --saes 'runs/sae-*' --seed-checkpoint ../shared/data/seed-checkpoints/encoder_sae_tiny_100k_1152_space.pth

Each SAE folder also gets its own eval.json / eval.md / eval_utterances.jsonl (see ``whisper_sae.evaluate``).
Prints a markdown table (and writes it to ``--out`` if given).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from whisper_sae.evaluate import evaluate
from whisper_sae.sae import convert_original
from whisper_sae.whisper import load_whisper

COLUMNS = (
    "SAE",
    "hook",
    "arch",
    "width",
    "k",
    "L0",
    "expl. var.",
    "clean WER",
    "spliced WER",
    "zero-abl. WER",
    "mean-abl. WER",
    "CE clean",
    "CE spliced",
    "CE rec. (zero)",
    "CE rec. (mean)",
    "error-term check",
)


def _pct(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"


def _num(x, digits=3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def row(name: str, result) -> list[str]:
    m, c, r = result.meta, result.conditions, result.reconstruction
    check = result.error_term_check
    return [
        name,
        m["hook"],
        m["architecture"],
        str(m["d_sae"]),
        str(m["k"] or "–"),
        f"{r.l0:.1f}",
        _num(r.explained_variance),
        _pct(c["clean"]["wer"]),
        _pct(c["spliced"]["wer"]),
        _pct(c["zero"]["wer"]),
        _pct(c["mean"]["wer"]),
        _num(c["clean"]["ce"]),
        _num(c["spliced"]["ce"]),
        _num(result.ce_recovered["zero"]),
        _num(result.ce_recovered["mean"]),
        f"{'ok' if check['passed'] else 'FAILED'} (Δlogit {check['max_abs_logit_diff']:.0e})",
    ]


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def sae_folders(patterns: list[str]) -> list[Path]:
    found = list(dict.fromkeys(Path(p) for pattern in patterns for p in sorted(glob.glob(pattern))))
    return [p for p in found if (p / "cfg.json").exists()] + [
        sub
        for p in found
        if not (p / "cfg.json").exists()
        for sub in sorted(p.glob("*/"))
        if (sub / "cfg.json").exists()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="held-out speech with transcripts")
    parser.add_argument("--saes", nargs="*", default=[], help="SAE folders or glob patterns (sweeps: their subfolders)")
    parser.add_argument(
        "--seed-checkpoint", default=None, help="an original whisper-sae encoder .pth to add as a baseline"
    )
    parser.add_argument("--model", default="tiny.en", help="Whisper model (default tiny.en; the SAEs must fit it)")
    parser.add_argument("--max-utterances", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None, help="also write the table (markdown) and all results (json) here")
    args = parser.parse_args(argv)

    folders = sae_folders(args.saes)
    if args.seed_checkpoint:
        seed_dir = Path(tempfile.mkdtemp(prefix="seed-sae-")) / "seed-encoder-1152"
        # The original was trained on multilingual openai/whisper-tiny (same width); its cfg says so, and it
        # is evaluated on --model all the same, as a baseline.
        folders.append(convert_original(args.seed_checkpoint, seed_dir, hook_name="encoder.out"))
    if not folders:
        parser.error("no SAE folders found: give --saes and/or --seed-checkpoint")
    lw = load_whisper(args.model, device=args.device)
    rows, results, baselines = [], {}, {}
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        start = time.perf_counter()
        hook = json.loads((folder / "cfg.json").read_text()).get("hook_name")
        # clean, zero and mean ablation do not depend on the SAE: measured once per hook, then lent
        result = evaluate(
            folder,
            args.corpus,
            model=lw,
            max_utterances=args.max_utterances,
            batch_size=args.batch_size,
            device=args.device,
            baseline=baselines.get(hook),
        )
        baselines.setdefault(hook, result)
        name = folder.name if folder.name not in {r[0] for r in rows} else f"{folder.parent.name}/{folder.name}"
        rows.append(row(name, result))
        results[str(folder)] = result.to_dict()
        print(f"{folder}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        if out:  # after each SAE, so that a long run can be read while it goes
            (out / "faithfulness.md").write_text(markdown(rows) + "\n")
    table = markdown(rows)
    n = next(iter(results.values()))["n_utterances"]
    footer = (
        f"\n\n{n} utterances of {args.corpus}, Whisper {lw.name}, greedy decoding; WER after Whisper's English "
        "normaliser; CE in nats per reference token (teacher forcing)."
    )
    print(table + footer)
    if out:
        (out / "faithfulness.md").write_text(table + footer + "\n")
        (out / "faithfulness.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
