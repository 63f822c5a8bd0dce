"""``whisper-sae evaluate SAE_DIR --corpus SPEC``: reconstruction and spliced WER / CE of a trained SAE."""

from __future__ import annotations

import argparse

from whisper_sae.cli import common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure an SAE's faithfulness: held-out reconstruction, Whisper's WER and CE with it spliced in",
        description=(
            "Splice the SAE's reconstruction into Whisper at its hook point (real audio frames only) and "
            "compare word error rate and teacher-forced cross-entropy with clean Whisper, the SAE plus its "
            "error term (a correctness check), and zero / mean ablation. Writes eval.json, eval.md, "
            "eval_utterances.jsonl and feature_density.png into the SAE folder (or --out)."
        ),
    )
    parser.add_argument(
        "sae_dir",
        metavar="SAE_DIR",
        help="SAE folder (cfg.json + sae_weights.safetensors), shipped SAE name (whisper-sae pretrained list) or hf://ORG/REPO[/SUBDIR]",
    )
    parser.add_argument(
        "--corpus",
        required=True,
        help="held-out speech with transcripts: a LibriSpeech-layout folder, a saved dataset, "
        "or hf:NAME[:CONFIG]:SPLIT",
    )
    common.add_model(parser, default_help="the model named in the SAE's cfg.json")
    common.add_max_utterances(parser, help="evaluate at most N utterances")
    common.add_batch_size(parser, unit="utterances", default=8)
    parser.add_argument(
        "--max-new-tokens",
        type=common.positive_int,
        default=None,
        metavar="N",
        help="stop each transcript after N tokens (default: twice the longest reference in the batch)",
    )
    common.add_device(parser)
    parser.add_argument(
        "--out",
        default=None,
        help="folder for the results (default: SAE_DIR; ./whisper-sae-out/NAME for a shipped or hf:// SAE)",
    )
    common.add_no_progress(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from whisper_sae.artifacts import open_sae
    from whisper_sae.evaluate import evaluate
    from whisper_sae.runtime import resolve_device

    if open_sae(args.sae_dir)[0].cfg.kind != "sae":
        return _run_replacement(args)
    result = evaluate(
        args.sae_dir,
        args.corpus,
        model=args.model,
        max_utterances=args.max_utterances,
        batch_size=args.batch_size,
        out=args.out,
        device=resolve_device(args.device),
        max_new_tokens=args.max_new_tokens,
        progress=not args.no_progress,
    )
    m = result.meta
    print(
        f"{m['architecture']} SAE ({m['d_sae']} features) at {m['hook']} of {m['model']}, "
        f"{result.n_utterances} utterances"
    )
    print(result.table())
    if result.files:
        print(f"written: {result.files['markdown']}, {result.files['json']}, {result.files['utterances']}")
    return 0 if result.error_term_check["passed"] else 1


def _run_replacement(args: argparse.Namespace) -> int:
    """A transcoder or crosscoder: spliced by ``circuits.replacement`` (clean, spliced, + error term)."""
    from pathlib import Path

    from whisper_sae.artifacts import locate_sae
    from whisper_sae.circuits.replacement import evaluate_replacement
    from whisper_sae.runtime import resolve_device

    out = args.out if args.out is not None else locate_sae(args.sae_dir)
    s = evaluate_replacement(
        args.sae_dir,
        args.corpus,
        model=args.model,
        max_utterances=args.max_utterances,
        batch_size=args.batch_size,
        out=out,
        device=resolve_device(args.device),
        progress=not args.no_progress,
    )
    print(
        f"{s['kind']} ({s['architecture']}, {s['d_sae']} features) {', '.join(s['hooks_in'])} -> "
        f"{', '.join(s['hooks_out'])} of {s['model']}, {s['n_utterances']} utterances: EV {s['ev']:.3f}, L0 {s['l0']:.1f}"
    )
    for c in ("clean", "spliced", "spliced_error"):
        print(f"  {c:<14} WER {s[c]['wer']:.2%}  CE {s[c]['ce']:.4f}")
    print(f"  error-term splice: max |dlogit| {s['max_abs_logit_diff_error_term']:.2e}")
    print(f"written: {Path(out) / 'eval.json'}")
    same = s["spliced_error"]["errors"] == s["clean"]["errors"]
    return 0 if same and abs(s["spliced_error"]["ce"] - s["clean"]["ce"]) < 1e-3 else 1
