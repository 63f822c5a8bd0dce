"""``whisper-sae lens`` (layer lenses, ``whisper_sae.circuits.lens``) and ``whisper-sae attribute``
(which SAE features make one transcript token, ``whisper_sae.circuits.attribution``)."""

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


ATTRIBUTE_EPILOG = """\
The SAE is spliced in at its encoder hook with its error term kept (Whisper's computation unchanged) and
the token's logit is back-propagated once: each (feature, frame)'s attribution is its activation times
the logit's gradient with respect to it. Writes OUT/attribution.json (top entries and features with
times and labels, per-frame sums, the error term's share) and OUT/attribution.png (the spectrogram with
the top entries marked). --check also ablates the top-k features for real and reports the estimates
beside the effects.

example:
  whisper-sae attribute tiny/encoder.out-original clip.flac --word house --out runs/attr-house
"""


def register(subparsers) -> None:
    _register_attribute(subparsers)
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


def _register_attribute(subparsers) -> None:
    parser = subparsers.add_parser(
        "attribute",
        help="attribute one transcript token's logit to encoder SAE features over time (gradient x activation)",
        description="Which SAE features, at which times, push Whisper toward one token of its transcript: "
        "attribution patching through Whisper with the SAE spliced in and its error term kept.",
        epilog=ATTRIBUTE_EPILOG,
    )
    parser.add_argument("sae", metavar="SAE", help="SAE folder, shipped SAE name or hf://... (an encoder hook)")
    parser.add_argument("clip", metavar="CLIP", help="audio file (at most 30 s; resampled to 16 kHz)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--token",
        type=int,
        default=None,
        metavar="N",
        help="index of the token among the transcript's text tokens (0 = first, negative from the end; default 0)",
    )
    which.add_argument("--word", default=None, metavar="W", help="attribute the first token of this word instead")
    parser.add_argument(
        "--text", default=None, help="teacher-force this reference transcript (default: Whisper's own greedy one)"
    )
    parser.add_argument("--analysis", default=None, help="analysis folder of the SAE (whisper-sae analyze): labels")
    parser.add_argument("--decoder-sae", default=None, help="an SAE at a decoder hook: its features at the token")
    parser.add_argument("--model", default=None, help="Whisper model spec (default: the SAE's model)")
    parser.add_argument("--out", required=True, help="folder for attribution.json and attribution.png")
    parser.add_argument("--top", type=int, default=20, metavar="N", help="entries and features listed (default 20)")
    parser.add_argument(
        "--check", type=int, default=0, metavar="K", help="also ablate the top K features for real (0: off)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(func=run_attribute)


def run_attribute(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from whisper_sae.analysis.checks import check_sae_analysis
    from whisper_sae.analysis.features.result import load_analysis
    from whisper_sae.artifacts import open_model, open_sae
    from whisper_sae.audio.io import load_audio
    from whisper_sae.circuits.attribution import ablation_check, attribute

    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    if args.check < 0:
        raise ValueError(f"--check must be 0 (off) or a number of features, got {args.check}")
    if not Path(args.clip).is_file():
        raise FileNotFoundError(f"clip {args.clip} does not exist")
    sae, sae_dir = open_sae(args.sae, args.device)
    lw = open_model(args.model, sae=sae, device=args.device)
    labels = None
    if args.analysis:
        labels = load_analysis(args.analysis)
        check_sae_analysis(sae, sae_dir, labels)
    decoder_sae = open_sae(args.decoder_sae, args.device)[0] if args.decoder_sae else None
    result = attribute(
        sae,
        lw,
        load_audio(args.clip),
        token=args.token,
        word=args.word,
        text=args.text,
        decoder_sae=decoder_sae,
        labels=labels,
        clip=str(args.clip),
    )
    files = result.write(args.out, n=args.top)
    m = result.meta
    print(f"{m['transcript']!r}: token #{m['token_index']} {m['token']!r}, logit {m['logit']:.3f}")
    print("top (feature, time) entries by |gradient x activation|:")
    for row in result.encoder.top(min(args.top, 10), labels):
        label = f"  /{row['phone']}/" if "phone" in row else ""
        print(f"  f{row['feature']:<6} t={row['time']:6.2f}s  {row['score']:+.4f}{label}")
    if args.check:
        check = ablation_check(sae, lw, result, k=args.check)
        path = Path(args.out) / "ablation_check.json"
        path.write_text(json.dumps(check, indent=1))
        print("feature  estimate  real effect (logit change when ablated on every frame)")
        for f, est, eff in zip(check["features"]["ids"], check["features"]["estimate"], check["features"]["effect"]):
            print(f"  f{f:<6} {est:+.4f}  {eff:+.4f}")
        files["check"] = path
    print("written: " + ", ".join(str(p) for p in files.values()))
    return 0
