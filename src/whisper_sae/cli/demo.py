"""``whisper-sae demo``: the whole pipeline offline on CPU, in about 8 minutes on 2 cores."""

from __future__ import annotations


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
    p.add_argument("--out", default="demo-out", help="folder for every output (default: demo-out)")
    p.add_argument("--model", default="tiny.en", help="Whisper model spec (default: offline tiny.en)")
    p.add_argument("--hook", default="encoder.out", help="hook point (default: encoder.out)")
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of training speech to synthesize (default 10)")
    p.add_argument("--speakers", type=int, default=24, help="eSpeak voices in the training corpus (default 24: 3 per accent)")
    p.add_argument("--arch", default="topk", choices=ARCHITECTURES, help="SAE architecture (default: topk)")
    p.add_argument("--width", type=int, default=1536, help="SAE features (default 1536 = 4 x 384)")
    p.add_argument("--k", type=int, default=32, help="active features per frame for topk/batchtopk (default 32)")
    p.add_argument("--epochs", type=float, default=25.0, help="passes over the training activations (default 25)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from whisper_sae.demo import run_demo

    run_demo(args.out, model=args.model, hook=args.hook, minutes=args.minutes, speakers=args.speakers, arch=args.arch, width=args.width,
             k=args.k, epochs=args.epochs, seed=args.seed)
    return 0
