"""``whisper-sae demo``: the whole pipeline offline on CPU, in about 8 minutes on 2 cores."""

from __future__ import annotations

from whisper_sae.cli import common
from whisper_sae.defaults import DEFAULT_MODEL


def register(sub) -> None:
    from whisper_sae.sae.architectures import ARCHITECTURES  # the registry, without torch

    p = sub.add_parser(
        "demo",
        help="run the offline pipeline end to end: synthesize, extract, train, evaluate, analyse, probe, dashboard",
        description=(
            "Synthesize a small English corpus with eSpeak NG, extract Whisper's activations at one hook "
            "(the original whisper-sae's encoder.out by default), train an SAE, evaluate it on held-out "
            "synthetic speech (reconstruction, spliced WER and CE), label its features with phonemes and "
            "words, probe them for the voices' gender and accent, and write a static dashboard. Offline, CPU; each stage resumes if interrupted."
        ),
    )
    p.add_argument("--out", default="demo-out", help="folder for every output")
    common.add_model(p, default=DEFAULT_MODEL, default_help=f"{DEFAULT_MODEL}, offline")
    common.add_hooks(
        p,
        default="encoder.out",
        alias=True,
        help="the one hook point whose activations the SAE is trained on, e.g. encoder.out or encoder.blocks.2",
    )
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of training speech to synthesize")
    p.add_argument(
        "--speakers",
        type=common.positive_int,
        default=24,
        help="eSpeak voices in the training corpus (default 24: 3 per accent)",
    )
    p.add_argument("--arch", default="topk", choices=ARCHITECTURES, help="SAE architecture")
    p.add_argument("--width", type=common.positive_int, default=1536, help="SAE features (default 1536 = 4 x 384)")
    p.add_argument("--k", type=common.positive_int, default=32, help="active features per frame for topk/batchtopk")
    p.add_argument("--epochs", type=float, default=25.0, help="passes over the training activations")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same corpora and SAE")
    common.add_no_progress(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from whisper_sae.demo import run_demo

    hooks = common.split_list(args.hooks)
    if len(hooks) != 1:
        raise ValueError(f"--hooks {args.hooks!r}: the demo trains one SAE, so give one hook point (e.g. encoder.out)")
    run_demo(
        args.out,
        model=args.model,
        hook=hooks[0],
        minutes=args.minutes,
        speakers=args.speakers,
        arch=args.arch,
        width=args.width,
        k=args.k,
        epochs=args.epochs,
        seed=args.seed,
        progress=not args.no_progress,
    )
    return 0
