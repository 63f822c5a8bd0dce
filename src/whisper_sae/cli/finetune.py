"""``whisper-sae finetune SAE_DIR --objective kl --corpus CORPUS``: train a saved SAE further on Whisper's logits.

The flags come from ``KLConfig`` and ``TrainConfig`` (``cli/dataclass_flags.py``); the library function is
``whisper_sae.sae.kl_training.finetune``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# TrainConfig fields that are not flags here (steps has its own flag; the rest are filled in by finetune).
NOT_FLAGS = ("steps", "steps_per_epoch", "architectures", "extra", "b_dec_init", "normalize", "init_batches")


def register(subparsers) -> None:
    from whisper_sae.cli.dataclass_flags import add_flags
    from whisper_sae.sae.train_config import KLConfig, StoreConfig, TrainConfig

    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a trained SAE on what Whisper's decoder needs (KL of the logits)",
        description="Splice the SAE into Whisper at its hook (real frames only) and train it to keep Whisper's "
        "next-token distributions: KL(clean || spliced logits) over the transcript tokens, plus the "
        "architecture's sparsity term. Writes a normal SAE folder (cfg.json records the loss and the "
        "parent), metrics.jsonl, loss.png and checkpoint/ (for --resume) into --out.",
    )
    p.add_argument("sae_dir", metavar="SAE_DIR", type=Path, help="the SAE folder to start from (it is not changed)")
    p.add_argument(
        "--corpus",
        action="append",
        default=None,
        help="speech to train on: a LibriSpeech-layout folder, a saved dataset, hf:NAME[:CONFIG]:SPLIT or "
        "FORMAT:PATH, with ?split=/?every= options; repeat for several corpora (default: the corpus of --store)",
    )
    p.add_argument(
        "--store",
        type=Path,
        default=None,
        help="activation store of the SAE's hook: its held-out utterances are not trained on and give "
        "the held-out EV / L0 records",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output SAE folder (default: beside SAE_DIR, named after it and the objective: SAE_DIR-kl, -klmse, -mse)",
    )
    p.add_argument("--model", default=None, help="Whisper model spec (default: the model named in the SAE's cfg.json)")
    p.add_argument(
        "--coef", type=float, default=None, help="sparsity coefficient (relu L1, jumprelu L0; default: the parent's)"
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps (instead of --epochs)")
    kl = add_flags(budget, KLConfig, only=("epochs",))
    kl.update(add_flags(p, KLConfig, skip=("epochs",)))
    split = add_flags(p, StoreConfig, only=("holdout", "split_seed"))
    loop = add_flags(
        p.add_argument_group("training loop"),
        TrainConfig,
        skip=NOT_FLAGS,
        help={
            "sparsity_warmup_steps": "Linear warm-up of the L1 / L0 coefficient in steps; default 0 "
            "here (the parent is already sparse)."
        },
    )
    p.add_argument("--resume", action="store_true", help="continue the fine-tune whose checkpoint is in --out")
    p.set_defaults(func=_finetune, _flags={"kl": kl, "split": split, "loop": loop})


def _finetune(args: argparse.Namespace) -> int:
    from whisper_sae.cli.dataclass_flags import picked
    from whisper_sae.sae.kl_training import finetune

    options = {
        **picked(args, args._flags["kl"]),
        **picked(args, args._flags["split"]),
        **picked(args, args._flags["loop"]),
    }
    if args.steps is not None:
        options.pop("epochs")
    if options.get("sparsity_warmup_steps") is None:
        options.pop("sparsity_warmup_steps")  # finetune's own default (0)
    out = finetune(
        args.sae_dir,
        args.corpus,
        out=args.out,
        store=args.store,
        model=args.model,
        steps=args.steps,
        resume=args.resume,
        coef=args.coef,
        **options,
    )
    print(f"fine-tuned SAE written to {out}")
    return 0
