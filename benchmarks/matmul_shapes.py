"""The matmuls of one SAE training step, each timed alone, beside the one ``benchmarks/train.py``'s dense bound uses.

    python benchmarks/matmul_shapes.py [--d-in 384] [--width 1152] [--batch 4096] [--dtype bf16] [--threads 2]

A ReLU/TopK SAE step runs five matmuls (no input gradient is needed): the encoder and decoder forward, the
codes' gradient through the decoder, and the two weight gradients, whose inner dimension is the batch. The dense
bound of ``train.py`` times only the first shape and counts 6 d_in d_sae FLOP per token (PEERS.md's
convention); the five matmuls are 10 d_in d_sae. This prints each shape's time, their sum as a floor in tokens/s,
and the bound for comparison, so a trainer's share of the machine can be read against either.
"""

from __future__ import annotations

import argparse
import time

import torch


def timed(f, reps: int = 10) -> float:
    for _ in range(3):
        f()
    start = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - start) / reps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d-in", type=int, default=384)
    p.add_argument("--width", type=int, default=1152)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    B, d, n = a.batch, a.d_in, a.width
    x, W_enc, W_dec = torch.randn(B, d).to(dt), torch.randn(d, n).to(dt), torch.randn(n, d).to(dt)
    codes, g_x = torch.randn(B, n).to(dt), torch.randn(B, d).to(dt)
    shapes = {
        "encoder forward  x @ W_enc      [B,d]x[d,n]": lambda: x @ W_enc,
        "decoder forward  codes @ W_dec  [B,n]x[n,d]": lambda: codes @ W_dec,
        "codes gradient   g_x @ W_dec.T  [B,d]x[d,n]": lambda: g_x @ W_dec.T,
        "W_enc gradient   x.T @ g_codes  [d,B]x[B,n]": lambda: x.T @ codes,
        "W_dec gradient   codes.T @ g_x  [n,B]x[B,d]": lambda: codes.T @ g_x,
    }
    total = 0.0
    print(f"torch {torch.__version__}, {a.threads} threads, {a.dtype}, B {B}, d_in {d}, width {n}")
    for name, f in shapes.items():
        t = timed(f)
        total += t
        print(f"  {name}  {t * 1e3:7.2f} ms  {2 * B * d * n / t / 1e9:7.1f} GFLOP/s")
    first = timed(shapes["encoder forward  x @ W_enc      [B,d]x[d,n]"])
    print(f"five-matmul floor: {total * 1e3:.1f} ms per step = {B / total:,.0f} tokens/s")
    print(f"train.py's dense bound (first shape, 6 d n FLOP per token): {B / (3 * first):,.0f} tokens/s")


if __name__ == "__main__":
    main()
