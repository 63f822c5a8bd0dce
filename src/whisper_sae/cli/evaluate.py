"""``whisper-sae evaluate SAE_DIR --corpus SPEC``: reconstruction and spliced WER / CE of a trained SAE."""

from __future__ import annotations

import argparse


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
    parser.add_argument("sae_dir", metavar="SAE_DIR", help="SAE folder (cfg.json + sae_weights.safetensors), shipped SAE name (whisper-sae pretrained list) or hf://ORG/REPO[/SUBDIR]")
    parser.add_argument("--corpus", required=True,
                        help="held-out speech with transcripts: a LibriSpeech-layout folder, a saved dataset, "
                             "or hf:NAME[:CONFIG]:SPLIT")
    parser.add_argument("--model", default=None,
                        help="Whisper model spec (default: the model named in the SAE's cfg.json)")
    parser.add_argument("--max-utterances", type=int, default=None, metavar="N",
                        help="evaluate at most N utterances")
    parser.add_argument("--batch-size", type=int, default=8, help="utterances per forward pass (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                        help="stop each transcript after N tokens (default: twice the longest reference in the batch)")
    parser.add_argument("--device", default="auto",
                        help="auto (this rank's GPU when CUDA is present, else cpu), cpu, cuda or cuda:N")
    parser.add_argument("--out", default=None, help="folder for the results (default: SAE_DIR; ./whisper-sae-out/NAME for a shipped or hf:// SAE)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from whisper_sae.evaluate import evaluate
    from whisper_sae.runtime import resolve_device

    if args.max_utterances is not None and args.max_utterances < 1:
        raise ValueError(f"--max-utterances must be at least 1, got {args.max_utterances}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
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
    print(f"{m['architecture']} SAE ({m['d_sae']} features) at {m['hook']} of {m['model']}, "
          f"{result.n_utterances} utterances")
    print(result.table())
    if result.files:
        print(f"written: {result.files['markdown']}, {result.files['json']}, {result.files['utterances']}")
    return 0 if result.error_term_check["passed"] else 1
