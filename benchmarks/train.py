"""Training throughput (tokens/s) of our SAE trainer vs SAELens and sparsify, same activations, same run.

    python benchmarks/train.py                                   # relu@1152 and topk k=32@3072, fp32 + bf16
    python benchmarks/train.py --store STORE --hook encoder.out  # real activations instead of random ones
    python benchmarks/train.py --threads 2 --repeats 3 --steps 8
    python benchmarks/train.py --allocator default                # glibc's malloc as it comes, for every method

Each method runs ``--steps`` optimizer steps on the same in-memory rows (batch ``--batch-size``) after a
warm-up; repeats are interleaved across methods and the median is printed. The dense bound is this
machine's B x d_in @ d_in x d_sae matmul rate (fp32 / bf16) divided by 6 d_in d_sae FLOP per token, the
convention of PEERS.md. Not a test: numbers drift with load on a shared machine.

``--allocator keep`` (the default) sets what whisper-sae's trainer sets on CPU (``TrainConfig.cpu_heap``,
``runtime/allocator.py``: freed memory stays in the heap) once, for every method alike; ``default`` leaves
glibc as it comes, for every method. The ``faults/step`` column is the minor page faults per step.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch import nn

from whisper_sae.runtime.allocator import keep_freed_memory, minor_page_faults
from whisper_sae.sae import SAEConfig, SAESpec, TrainConfig
from whisper_sae.sae.loop import Trainer


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def dense_bound(d, n, batch, bf16, clock=time.perf_counter):
    a, b = torch.randn(batch, d), torch.randn(d, n)
    if bf16:
        a, b = a.bfloat16(), b.bfloat16()
    for _ in range(3):
        a @ b
    reps, start = 10, clock()
    for _ in range(reps):
        a @ b
    flops = 2 * batch * d * n * reps / (clock() - start)
    return flops / (6 * d * n), flops


def make_plain(arch, d, n, k, bf16):
    enc, dec = nn.Linear(d, n), nn.Linear(n, d)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)

    def step(x):
        with _autocast(bf16):
            pre = enc(x)
            if arch == "relu":
                codes = torch.relu(pre)
            else:
                top = pre.topk(k, dim=-1)
                codes = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
            x_hat = dec(codes)
            loss = (x_hat.float() - x).pow(2).mean() + (0.1 * codes.float().abs().mean() if arch == "relu" else 0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def make_ours(arch, d, n, k, bf16, sample, heap="keep"):
    spec = SAESpec(SAEConfig(d, n, arch, k=k if arch == "topk" else None), name="")
    trainer = Trainer(
        [spec],
        TrainConfig(steps=10**9, lr=1e-3, autocast="bf16" if bf16 else "none", device="cpu", cpu_heap=heap),
        "/tmp/unused-bench-out",
    )
    trainer.members[0].init_from_data(sample, "mean", True)

    def step(x):
        trainer._train_step(x)
        trainer.step += 1

    return step


def make_saelens(arch, d, n, k, bf16, batch):
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    if arch == "relu":
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d, d_sae=n, l1_coefficient=5.0))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=n, k=k))
    cfg = SAETrainerConfig(
        total_training_samples=10**12, train_batch_size_samples=batch, lr=1e-3, lr_end=1e-4, device="cpu", autocast=bf16
    )
    trainer = SAETrainer(cfg, sae, data_provider=iter(()))

    def step(x):  # what fit() does per iteration, without logging
        trainer.maybe_reset_sparsity()
        trainer.step(x)
        trainer.n_training_steps += 1

    return step


def make_sparsify(arch, d, n, k, bf16):
    if arch != "topk":
        return None
    from schedulefree import ScheduleFreeWrapper
    from sparsify import SparseCoder, SparseCoderConfig
    from sparsify.sign_sgd import SignSGD

    sae = SparseCoder(d, SparseCoderConfig(expansion_factor=n // d, k=k), device="cpu")
    opt = ScheduleFreeWrapper(SignSGD([dict(params=sae.parameters(), lr=5e-3 / (n / 2**14) ** 0.5)]), momentum=0.95)
    opt.train()
    since_fired = torch.zeros(sae.num_latents, dtype=torch.long)

    def step(x):  # Trainer.fit's fvu path, one SAE, no logging
        sae.set_decoder_norm_to_unit_norm()
        dead = since_fired > 10_000_000
        with _autocast(bf16):
            out = sae(x, dead_mask=dead)
        (out.fvu + (1 / 32) * out.auxk_loss).backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        since_fired.add_(x.shape[0])
        since_fired[out.latent_indices.flatten()] = 0

    return step


def measure(step, rows, batch, steps, warmup=2, clock=time.perf_counter, faults=None):
    """Tokens/s over ``steps`` steps after ``warmup``; ``faults`` (a list) gets the minor page faults per step."""
    n_batches = rows.shape[0] // batch
    for i in range(warmup):
        step(rows[(i % n_batches) * batch : (i % n_batches + 1) * batch])
    start, faults_before = clock(), minor_page_faults()
    for i in range(steps):
        j = (i + warmup) % n_batches
        step(rows[j * batch : (j + 1) * batch])
    seconds = clock() - start
    if faults is not None:
        faults.append((minor_page_faults() - faults_before) / steps)
    return steps * batch / seconds


def load_rows(args, d):
    if args.store:
        from whisper_sae.activations import ActivationStore

        store = ActivationStore(args.store)
        acts = store.read(args.hook)[0][: args.rows]
        return acts[torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(0))].float()
    return torch.randn(args.rows, d, generator=torch.Generator().manual_seed(0)) * 3 + 1


def run_case(arch, width, k, bf16, rows, args):
    d = rows.shape[1]
    makers = {
        "plain PyTorch": lambda: make_plain(arch, d, width, k, bf16),
        "whisper-sae": lambda: make_ours(arch, d, width, k, bf16, rows[:8192], heap=args.allocator),
        "SAELens": lambda: make_saelens(arch, d, width, k, bf16, args.batch_size),
        "sparsify": lambda: make_sparsify(arch, d, width, k, bf16),
    }
    if args.methods:
        makers = {name: make for name, make in makers.items() if name in args.methods.split(",")}
    steps = {}
    for name, make in makers.items():
        try:
            step = make()
        except Exception as err:  # a peer that does not install or run here is reported, not fatal
            print(f"  {name}: unavailable ({type(err).__name__}: {err})")
            step = None
        if step is not None:
            steps[name] = step
    results = {name: [] for name in steps}
    faults = {name: [] for name in steps}
    bounds = []
    for _ in range(args.repeats):  # interleaved, so load drifts hit every method alike
        bounds.append(dense_bound(d, width, args.batch_size, bf16, clock=CLOCKS[args.clock])[0])
        for name, step in steps.items():
            results[name].append(
                measure(step, rows, args.batch_size, args.steps, clock=CLOCKS[args.clock], faults=faults[name])
            )
    medians = {name: (statistics.median(v), statistics.median(faults[name])) for name, v in results.items()}
    return statistics.median(bounds), medians


def profile_ours(arch, width, k, bf16, rows, args) -> str:
    """torch.profiler's table of our training step (after the warm-up), ops by self CPU time and input shape."""
    from torch.profiler import ProfilerActivity, profile

    step = make_ours(arch, rows.shape[1], width, k, bf16, rows[:8192], heap=args.allocator)
    measure(step, rows, args.batch_size, 1)  # warm-up
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        measure(step, rows, args.batch_size, args.steps, warmup=0)
    averages = prof.key_averages(group_by_input_shape=True)
    return averages.table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None)
    parser.add_argument("--hook", default="encoder.out")
    parser.add_argument("--rows", type=int, default=131_072)
    parser.add_argument("--d-in", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cases", default="relu:1152:0,topk:3072:32", help="arch:width:k,...")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument(
        "--methods", default=None, help="comma-separated subset of: plain PyTorch,whisper-sae,SAELens,sparsify"
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (with --threads 1, steadier on a loaded machine)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the comparison: torch.profiler over --steps of our step for each --cases and --dtypes, "
        "ops by self CPU time, grouped by input shape",
    )
    parser.add_argument(
        "--allocator",
        choices=["keep", "default"],
        default="keep",
        help="keep: freed memory stays in the heap, for every method (what our trainer sets on CPU); "
        "default: glibc's malloc as it comes, for every method, our trainer included",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.allocator == "keep":
        keep_freed_memory()
    rows = load_rows(args, args.d_in)
    if args.profile:
        for case in args.cases.split(","):
            arch, width, k = case.split(":")
            for dtype in args.dtypes.split(","):
                print(f"{arch} width {width} {dtype}, batch {args.batch_size}, {args.steps} steps")
                print(profile_ours(arch, int(width), int(k) or None, dtype == "bf16", rows, args))
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, rows {tuple(rows.shape)}, "
        f"batch {args.batch_size}, {args.steps} steps x {args.repeats} interleaved repeats (median), "
        f"{args.clock} clock, allocator {args.allocator}"
    )
    table = []
    for case in args.cases.split(","):
        arch, width, k = case.split(":")
        for dtype in args.dtypes.split(","):
            print(f"running {arch} width {width} {dtype} ...", flush=True)
            bound, results = run_case(arch, int(width), int(k) or None, dtype == "bf16", rows, args)
            table.append((arch, int(width), dtype, bound, results))
    print()
    print(
        f"{'arch':6} {'width':>6} {'dtype':5} {'method':14} {'tokens/s':>10} {'x bound':>8} {'ours / this':>11} "
        f"{'faults/step':>11}"
    )
    for arch, width, dtype, bound, results in table:
        ours = results["whisper-sae"][0] if "whisper-sae" in results else None
        print(
            f"{arch:6} {width:>6} {dtype:5} {'dense bound':14} {bound:>10.0f} {1.0:>8.2f} "
            f"{(ours / bound if ours else float('nan')):>11.2f}"
        )
        for name, (value, faults) in results.items():
            print(
                f"{'':6} {'':>6} {'':5} {name:14} {value:>10.0f} {value / bound:>8.2f} "
                f"{(ours / value if ours else float('nan')):>11.2f} {faults:>11.0f}"
            )


if __name__ == "__main__":
    main()
