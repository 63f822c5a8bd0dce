"""``whisper-sae train`` (fit SAEs on a store's hook) and ``whisper-sae convert`` (original .pth -> SAE folder).

The training flags are built from ``StoreConfig``, ``TrainConfig`` and each architecture's ``Options``
(``cli/dataclass_flags.py``): their defaults and help live in those dataclasses only, and the
architecture choices come from the registry (``sae/architectures/``). None of this imports torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# TrainConfig fields that are not flags: steps has its own flag beside --epochs, the rest are filled in by `train`.
NOT_FLAGS = ("steps", "steps_per_epoch", "architectures", "extra")
# KLConfig fields that `train` offers (objective has its own flag there: MSE is train's default; epochs is --epochs).
KL_FLAGS = ("mse_weight", "utterances_per_step", "decoder_text", "max_utterances")


def register(subparsers) -> None:
    from whisper_sae.cli.dataclass_flags import add_flags
    from whisper_sae.sae.architectures import ARCHITECTURES, options_path
    from whisper_sae.sae.train_config import OBJECTIVES, KLConfig, StoreConfig, TrainConfig

    p = subparsers.add_parser(
        "train",
        help="train sparse autoencoders on a hook of an activation store",
        description="Train one SAE, a sweep (--sweep k=16,32,64) or one per hook (--hook a,b) in one pass over "
        "a store. Writes cfg.json + sae_weights.safetensors (SAELens layout), metrics.jsonl, loss.png, "
        "metrics.png and checkpoint/ (for --resume) into --out, which is locked while training.",
    )
    p.add_argument("--store", required=True, type=Path, help="activation store folder (from whisper-sae extract)")
    p.add_argument(
        "--hooks",
        "--hook",
        dest="hook",
        default="encoder.out",
        metavar="HOOK[,HOOK...]",
        help="hook point, or several separated by commas: one SAE per hook in one pass (default: encoder.out)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    store = add_flags(
        p,
        StoreConfig,
        only=("arch", "width", "k", "coef"),
        choices={"arch": ARCHITECTURES},
        flag_names={"coef": ["--coef", "--l1"]},
    )
    p.add_argument(
        "--sweep", default=None, help="train several SAEs at once, e.g. k=16,32,64 or l1=1,3,10;width=1152,4608"
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps", type=int, default=None, help="optimizer steps in the whole run (instead of --epochs)"
    )
    store.update(add_flags(budget, StoreConfig, only=("epochs",)))
    store.update(add_flags(p, StoreConfig, only=("batch_size", "holdout", "split_seed", "buffer_rows")))
    loop = add_flags(p.add_argument_group("training loop"), TrainConfig, skip=NOT_FLAGS)
    p.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")
    p.add_argument(
        "--distribute",
        choices=["data", "saes"],
        default="data",
        help="under torchrun: data = split each --batch-size batch over the ranks, gradients averaged "
        "(matches one process); saes = each rank trains its own SAEs (e.g. one hook each) (default: data)",
    )
    circuit = p.add_argument_group("transcoders and crosscoders (MSE objective, one dictionary)")
    circuit.add_argument(
        "--hook-out",
        default=None,
        metavar="HOOK",
        help="train a transcoder: read --hook, write this hook of the same frames "
        "(e.g. --hook encoder.blocks.2.mlp_in --hook-out encoder.blocks.2.mlp_out)",
    )
    circuit.add_argument("--skip", action="store_true", help="give the transcoder a linear skip path (W_skip)")
    circuit.add_argument(
        "--crosscoder",
        action="store_true",
        help="train one crosscoder that reads and reconstructs all of --hooks side by side (e.g. "
        "--hooks encoder.blocks.2,encoder.blocks.3)",
    )
    p.add_argument(
        "--original-layout",
        action="store_true",
        help="do not subtract b_dec from the input (the original whisper-sae convention)",
    )
    kl_group = p.add_argument_group("training on Whisper's logits (--objective kl, kl+mse)")
    kl_group.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="mse",
        help="mse: reconstruct the store's rows; kl: KL(clean || spliced logits) of Whisper with the "
        "SAE spliced in, on the utterances of --corpus; kl+mse: KL + --mse-weight x normalised "
        "MSE (default: mse)",
    )
    kl_group.add_argument(
        "--corpus",
        action="append",
        default=None,
        help="speech for --objective kl / kl+mse; repeat for several corpora (default: the corpus the store "
        "was extracted from)",
    )
    kl = add_flags(kl_group, KLConfig, only=KL_FLAGS)
    architectures = {}
    for arch in ARCHITECTURES:
        group = p.add_argument_group(f"{arch} options")
        architectures[arch] = add_flags(group, options_path(arch), prefix=f"{arch}-", dest_prefix=f"{arch}_")
    p.set_defaults(func=_train, _flags={"store": store, "loop": loop, "architectures": architectures, "kl": kl})

    c = subparsers.add_parser(
        "convert", help="convert an original whisper-sae .pth state dict into an SAE folder (SAELens layout)"
    )
    c.add_argument("pth", type=Path, help="e.g. encoder_sae_tiny_100k_1152_space.pth")
    c.add_argument("--out", required=True, type=Path, help="output SAE folder")
    c.add_argument(
        "--hooks",
        "--hook",
        dest="hook",
        default=None,
        metavar="HOOK",
        help="hook the SAE was trained on, checked against --model (default: encoder.out; decoder.out "
        "for the decoder SAE)",
    )
    c.add_argument(
        "--model",
        default=None,
        help="Whisper model it was trained on: a name (tiny, tiny.en, openai/whisper-tiny...) or a "
        "model folder (default: openai/whisper-tiny, the original checkpoints' model)",
    )
    c.set_defaults(func=_convert)


def options_from_args(args: argparse.Namespace) -> dict:
    """The keyword options of ``whisper_sae.sae.train`` that the parsed flags give."""
    from whisper_sae.cli.dataclass_flags import picked

    flags = args._flags
    options = {**picked(args, flags["store"]), **picked(args, flags["loop"])}
    if args.steps is not None:
        options.pop("epochs")
    options["architectures"] = {arch: picked(args, dests) for arch, dests in flags["architectures"].items()}
    return options


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from whisper_sae.cli.dataclass_flags import picked
    from whisper_sae.sae import train
    from whisper_sae.sae.train_config import KLConfig

    kl = picked(args, args._flags["kl"])
    defaults = {f.name: f.default for f in dataclasses.fields(KLConfig)}
    if args.objective == "mse":
        changed = sorted(name for name, value in kl.items() if value != defaults.get(name, value))
        if changed or args.corpus is not None:
            flags = [f"--{n.replace('_', '-')}" for n in changed] + (["--corpus"] if args.corpus is not None else [])
            raise ValueError(
                f"{', '.join(flags)} only apply with --objective kl or kl+mse; drop them or pick a KL objective"
            )
        kl = {}
    out = train(
        args.store,
        args.hook,
        out=args.out,
        sweep=args.sweep,
        steps=args.steps,
        resume=args.resume,
        apply_b_dec_to_input=not args.original_layout,
        distribute=args.distribute,
        objective=args.objective,
        corpus=args.corpus,
        kl_options=kl,
        hook_out=args.hook_out,
        skip=args.skip,
        crosscoder=args.crosscoder,
        **options_from_args(args),
    )
    print(f"SAE(s) written to {out}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from whisper_sae.sae import convert_original

    given = {key: value for key, value in (("hook_name", args.hook), ("model_name", args.model)) if value is not None}
    out = convert_original(args.pth, args.out, **given)
    print(f"converted {args.pth} -> {out}")
    return 0
