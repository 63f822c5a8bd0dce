"""JumpReLU against TopK on the same store, split and budget: which knob moves JumpReLU's EV-L0 frontier.

    python benchmarks/jumprelu.py --store STORE [--hook encoder.out] [--width 1152] [--epochs 6]

Trains TopK (k=32, 128) as the baseline and JumpReLU (L0 coefficients 1 and 0.3) with its defaults and
with one knob changed at a time (bandwidth, initial threshold, threshold learning rate), all on the
same 10 % held-out utterances, and prints held-out EV and L0 per SAE (up and left is better).
Each variant is one training pass; on 2 CPU cores at width 1152 and 6 epochs of the 251-utterance
train-clean-100 store, about 4 minutes each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quality import collect

from whisper_sae.sae import train

VARIANTS = {  # name: (architecture, sweep, TrainConfig options)
    "topk": ("topk", "k=32,128", {}),
    "jumprelu": ("jumprelu", "coef=1,0.3", {}),
    "jumprelu bandwidth 0.01": ("jumprelu", "coef=1,0.3", {"jumprelu_bandwidth": 0.01}),
    "jumprelu init threshold 0.1": ("jumprelu", "coef=1,0.3", {"jumprelu_init_threshold": 0.1}),
    "jumprelu threshold lr x10": ("jumprelu", "coef=1,0.3", {"jumprelu_threshold_lr": 10.0}),
    "jumprelu threshold lr x30": ("jumprelu", "coef=1,0.3", {"jumprelu_threshold_lr": 30.0}),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--hook", default="encoder.out")
    p.add_argument("--out", default="runs/jumprelu")
    p.add_argument("--width", type=int, default=1152)
    p.add_argument("--epochs", type=float, default=6)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    print(f"{'variant':30s} {'SAE':10s} {'held-out EV':>11s} {'L0':>7s}")
    for i, (name, (arch, sweep, options)) in enumerate(VARIANTS.items()):
        out = Path(args.out) / f"v{i}"
        train(
            args.store,
            args.hook,
            out=out,
            arch=arch,
            width=args.width,
            sweep=sweep,
            epochs=args.epochs,
            batch_size=args.batch_size,
            device=args.device,
            **options,
        )
        for row in collect(sorted(f for f in out.iterdir() if (f / "cfg.json").exists()), args.width):
            print(f"{name:30s} {row['name']:10s} {row['ev']:11.3f} {row['l0']:7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
