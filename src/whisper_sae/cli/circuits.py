"""``whisper-sae lens``: layer lenses on Whisper (see ``whisper_sae.circuits.lens``)."""

from __future__ import annotations

import argparse

LENS_EPILOG = """\
The encoder lens decodes each encoder block's residual stream, after the encoder's final layer norm,
as if it were the encoder's output: the WER per block says at which depth the transcript becomes
readable. The logit lens reads each decoder block's residual through the final layer norm and the
output projection, teacher-forced on the reference: top-1 accuracy and cross-entropy per block.
Writes OUT/lens.json (every transcript), OUT/lens.md and OUT/lens.png.

example:
  whisper-sae lens --model tiny.en --corpus data/librispeech/test-clean --out runs/lens-tiny
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lens",
        help="layer lenses: WER of each encoder block's residual, logit lens on decoder blocks",
        description="Decode every encoder layer as if it were the encoder's output, and read every decoder "
        "block through the output projection: at which depth Whisper's transcript is there.",
        epilog=LENS_EPILOG,
    )
    parser.add_argument(
        "--model",
        default=None,
        help="Whisper model spec (default: tiny.en, or openai/whisper-tiny when it is in the Hugging Face cache)",
    )
    parser.add_argument("--corpus", required=True, help="speech with reference transcripts (corpus spec)")
    parser.add_argument("--out", required=True, help="folder for lens.json, lens.md and lens.png")
    parser.add_argument("--max-utterances", type=int, default=None, metavar="N", help="use at most N utterances")
    parser.add_argument("--batch-size", type=int, default=8, help="utterances per forward pass (default 8)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        metavar="N",
        help="stop each transcript after N tokens (default: twice the longest reference in the batch + 8)",
    )
    parser.add_argument("--no-logit-lens", action="store_true", help="run the encoder lens only")
    parser.add_argument("--device", default="auto", help="auto (the GPU when CUDA is present, else cpu), cpu, cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run_lens)


def run_lens(args: argparse.Namespace) -> int:
    from whisper_sae.circuits.lens import encoder_lens
    from whisper_sae.runtime import resolve_device

    if args.max_utterances is not None and args.max_utterances < 1:
        raise ValueError(f"--max-utterances must be at least 1, got {args.max_utterances}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    result = encoder_lens(
        args.model,
        args.corpus,
        max_utterances=args.max_utterances,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        logit_lens=not args.no_logit_lens,
        device=resolve_device(args.device),
        out=args.out,
        progress=not args.no_progress,
    )
    print(f"{result.meta['model']}: layer lenses on {result.n_utterances} utterances of {result.meta['corpus']}")
    print(result.table(examples=0))
    print(f"written: {result.files['markdown']}, {result.files['json']}, {result.files['plot']}")
    return 0
