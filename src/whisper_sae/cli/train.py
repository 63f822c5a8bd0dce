"""``whisper-sae train`` (fit SAEs on a store's hook) and ``whisper-sae convert`` (original .pth -> SAE folder)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train sparse autoencoders on a hook of an activation store",
        description="Train one SAE, a sweep (--sweep k=16,32,64) or one per hook (--hook a,b) in one pass over "
                    "a store. Writes cfg.json + sae_weights.safetensors (SAELens layout), metrics.jsonl, loss.png, "
                    "metrics.png and checkpoint/ (for --resume) into --out.")
    p.add_argument("--store", required=True, type=Path, help="activation store folder (from whisper-sae extract)")
    p.add_argument("--hook", default="encoder.out", help="hook name, or several separated by commas")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--arch", default="topk", choices=["relu", "topk", "batchtopk", "jumprelu"])
    p.add_argument("--width", type=int, default=1152, help="number of features (d_sae)")
    p.add_argument("--k", type=int, default=32, help="active features per frame (topk, batchtopk)")
    p.add_argument("--l1", "--coef", dest="coef", type=float, default=None,
                   help="sparsity coefficient: L1 for relu (default 5), L0 for jumprelu (default 0.5)")
    p.add_argument("--sweep", default=None, help="train several SAEs at once, e.g. k=16,32,64 or l1=1,3,10;width=1152,4608")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None)
    budget.add_argument("--epochs", type=float, default=None, help="passes over the training utterances (default 10)")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--holdout", type=float, default=0.1, help="fraction of utterances held out for validation")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--autocast", default="auto", choices=["auto", "bf16", "fp16", "none"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")
    p.add_argument("--distribute", choices=["data", "saes"], default="data",
                   help="under torchrun: data = split each --batch-size batch over the ranks, gradients averaged "
                        "(matches one process); saes = each rank trains its own SAEs (e.g. one hook each)")
    jr = p.add_argument_group("jumprelu")
    jr.add_argument("--jumprelu-bandwidth", type=float, default=0.05, help="width of the threshold's pseudo-derivative (0.05)")
    jr.add_argument("--jumprelu-init-threshold", type=float, default=0.5,
                    help="starting threshold in normalised units (0.5); with a slow threshold lr it largely sets L0")
    jr.add_argument("--jumprelu-threshold-lr", type=float, default=1.0,
                    help="thresholds' learning rate as a multiple of --lr (1; 10 lets L0 follow --coef within short runs)")
    p.add_argument("--original-layout", action="store_true",
                   help="do not subtract b_dec from the input (the original whisper-sae convention)")
    p.set_defaults(func=_train)

    c = subparsers.add_parser(
        "convert", help="convert an original whisper-sae .pth state dict into an SAE folder (SAELens layout)")
    c.add_argument("pth", type=Path, help="e.g. encoder_sae_tiny_100k_1152_space.pth")
    c.add_argument("--out", required=True, type=Path)
    c.add_argument("--hook", default="encoder.out", help="hook the SAE was trained on (decoder.out for the decoder SAE)")
    c.add_argument("--model", default="openai/whisper-tiny", help="model it was trained on")
    c.set_defaults(func=_convert)


def _train(args: argparse.Namespace) -> int:
    from whisper_sae.sae import train

    epochs = args.epochs if args.steps is None and args.epochs is not None else (None if args.steps else 10.0)
    out = train(args.store, args.hook, out=args.out, arch=args.arch, width=args.width, k=args.k, coef=args.coef,
                sweep=args.sweep, steps=args.steps, epochs=epochs, batch_size=args.batch_size, holdout=args.holdout,
                resume=args.resume, apply_b_dec_to_input=not args.original_layout, lr=args.lr, device=args.device,
                autocast=args.autocast, seed=args.seed, log_every=args.log_every, eval_every=args.eval_every,
                checkpoint_every=args.checkpoint_every, distribute=args.distribute,
                jumprelu_bandwidth=args.jumprelu_bandwidth, jumprelu_init_threshold=args.jumprelu_init_threshold,
                jumprelu_threshold_lr=args.jumprelu_threshold_lr)
    print(f"SAE(s) written to {out}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from whisper_sae.sae import convert_original

    out = convert_original(args.pth, args.out, hook_name=args.hook, model_name=args.model)
    print(f"converted {args.pth} -> {out}")
    return 0
