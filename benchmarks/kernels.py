"""The TopK step's two CPU kernels beside what they replace, timed in one run.

    python benchmarks/kernels.py [--threads 2] [--batch 4096] [--k 32] [--widths 1152,3072,6144,16384]

- top-k: ``sae.kernels.topk_rows`` (the k strided chunks with the largest maxima) vs ``torch.topk``, fp32 and
  bf16 rows, for each width;
- weight gradients: ``ByFeature`` (one sort of the picks by feature, timed, then two CSR products: W_enc's
  gradient from x and W_dec's from the output gradient, as a step does) vs the two unsorted COO
  ``torch.sparse.mm`` products the step used before, d_in 384, fp32.

Each figure is the best of 3 rounds of ``--reps`` calls after a warm-up. Not a test: numbers drift with load.
"""

from __future__ import annotations

import argparse
import time

import torch

from whisper_sae.runtime.allocator import keep_freed_memory
from whisper_sae.sae.kernels import ByFeature, topk_rows


def best_ms(f, reps: int) -> float:
    f()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            f()
        best = min(best, (time.perf_counter() - start) / reps)
    return best * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--d-in", type=int, default=384)
    p.add_argument("--widths", default="1152,3072,6144,16384")
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    keep_freed_memory()  # as the trainer runs
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {a.threads} threads, batch {a.batch}, k {a.k}")
    print(f"{'what':12} {'width':>6} {'dtype':5} {'ours ms':>8} {'before ms':>9} {'before / ours':>13}")
    for width in map(int, a.widths.split(",")):
        pre32 = torch.randn(a.batch, width, generator=g) * 2 + torch.randn(width, generator=g)
        for dtype in (torch.float32, torch.bfloat16):
            name = "fp32" if dtype == torch.float32 else "bf16"
            ours, before = time_topk(pre32.to(dtype), a.k, a.reps)
            print(f"{'top-k':12} {width:>6} {name:5} {ours:>8.2f} {before:>9.2f} {before / ours:>13.2f}")
        ours, before = time_weight_grad(pre32, a.k, a.d_in, a.reps, g)
        print(f"{'weight grads':12} {width:>6} {'fp32':5} {ours:>8.2f} {before:>9.2f} {before / ours:>13.2f}")


def time_topk(pre: torch.Tensor, k: int, reps: int) -> tuple[float, float]:
    return best_ms(lambda: topk_rows(pre, k), reps), best_ms(lambda: pre.topk(k, dim=-1, sorted=False), reps)


def time_weight_grad(pre: torch.Tensor, k: int, d_in: int, reps: int, g) -> tuple[float, float]:
    """A step's two weight-gradient products over the picks: one ByFeature sort and two CSR products vs two
    unsorted COO products."""
    batch, width = pre.shape
    indices = pre.topk(k, dim=-1, sorted=False).indices
    weights, x = torch.randn(batch, k, generator=g), torch.randn(batch, d_in, generator=g)
    g_out = torch.randn(batch, d_in, generator=g)
    rows = torch.arange(batch).repeat_interleave(k)

    def ours():
        groups = ByFeature(indices, width)
        return groups.sum_rows(weights, x), groups.sum_rows(weights, g_out)

    def coo():
        at = torch.stack([indices.reshape(-1), rows])
        pattern = torch.sparse_coo_tensor(at, weights.reshape(-1), (width, batch), check_invariants=False)
        return torch.sparse.mm(pattern, x), torch.sparse.mm(pattern, g_out)

    return best_ms(ours, reps), best_ms(coo, reps)


if __name__ == "__main__":
    main()
