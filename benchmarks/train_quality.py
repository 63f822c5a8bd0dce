"""Train one SAE for a few hundred steps on a real store and print its held-out EV, L0 and seconds.

    python benchmarks/train_quality.py --store STORE --arch topk --dtype bf16 --steps 300
    PYTHONPATH=/path/to/other/checkout/src python benchmarks/train_quality.py --store STORE ...

For comparing two versions of the trainer (a speed change must keep what it learns): run it once per
checkout, same store and flags. Rows are shuffled with a fixed seed; the first ``--held-out`` rows are held
out and scored with the folded SAE in fp32; the rest are cycled through in batches of ``--batch-size``.
Not a test: the seconds depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time

import torch

import whisper_sae
from whisper_sae.activations import ActivationStore
from whisper_sae.sae import SAEConfig, SAESpec, TrainConfig
from whisper_sae.sae.loop import Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--hook", default="encoder.out")
    p.add_argument("--arch", choices=["relu", "topk"], default="topk")
    p.add_argument("--width", type=int, default=None, help="default: 3072 for topk, 1152 for relu")
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--dtype", choices=["bf16", "none"], default="bf16", help="autocast: bf16 or none (fp32)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--held-out", type=int, default=8192)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    acts = ActivationStore(a.store).read(a.hook)[0].float()
    acts = acts[torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(0))]
    held, train = acts[: a.held_out], acts[a.held_out :]
    if train.shape[0] < a.batch_size:
        raise SystemExit(f"{a.store}: {train.shape[0]} rows after the held-out ones, fewer than one batch")
    width = a.width or (3072 if a.arch == "topk" else 1152)
    spec = SAESpec(SAEConfig(acts.shape[1], width, a.arch, k=a.k if a.arch == "topk" else None), name="")
    lr = 4e-4 if a.arch == "topk" else 1e-4
    config = TrainConfig(steps=a.steps, lr=lr, autocast=a.dtype, device="cpu")
    trainer = Trainer([spec], config, "/tmp/whisper-sae-train-quality")
    member = trainer.members[0]
    member.init_from_data(train[: a.held_out], "mean", True)
    batches = train.shape[0] // a.batch_size
    start = time.perf_counter()
    for step in range(a.steps):
        j = step % batches
        trainer._train_step(train[j * a.batch_size : (j + 1) * a.batch_size])
        trainer.step += 1
    seconds = time.perf_counter() - start
    sae = member.folded()
    with torch.no_grad():
        x_hat = sae(held).x_hat.float()
        ev = 1 - (x_hat - held).pow(2).sum() / (held - held.mean(0)).pow(2).sum()
        l0 = (sae.encode(held) > 0).float().sum(-1).mean()
    print(
        f"{whisper_sae.__file__}: {a.arch} {width} {a.dtype}, {a.steps} steps of {a.batch_size} rows "
        f"({train.shape[0]} train rows, {held.shape[0]} held out): held-out EV {float(ev):.4f}, "
        f"L0 {float(l0):.1f}, {seconds:.1f} s ({a.steps * a.batch_size / seconds:,.0f} tokens/s)"
    )


if __name__ == "__main__":
    main()
