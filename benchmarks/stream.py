"""Training from a store larger than the memory given to it: tokens/s and peak RSS, streamed vs in memory.

    python benchmarks/stream.py                                    # 4 GB store, 1 GB buffer, relu 1152 bf16
    python benchmarks/stream.py --store-gb 0.4 --max-memory-gb 0.1 # a quick look
    python benchmarks/stream.py --arch topk --width 3072 --k 32 --dtype fp32

A synthetic store of random fp16 rows (--d-in wide, --store-gb on disk) is written once into --store-dir
and reused. The shuffle buffer gets --max-memory-gb: ``buffer_rows`` = that / (d_in x 2 bytes), the
``--buffer-rows`` of ``whisper-sae train``. Each measurement runs in a fresh process, so its peak RSS
(``ru_maxrss``) is its own:

- stream: one epoch of the whole store (every row once) through ``ActivationStore.batches``, each batch
  a training step of ``sae.loop.Trainer``, as ``train`` runs it;
- memory: the same number of steps over ``buffer_rows`` rows already in RAM (fp32, cycled): no reading;
- read: the stream's batches alone, no training: the reader's own cost per token, a load-proof figure.

Repeats alternate the two; the median is printed, with the ratio, by the wall clock and by the process's CPU
time (steadier on a loaded machine; it omits time waiting on the disk). Not a test: numbers drift with load.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HOOK = "encoder.out"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux


def make_store(path: Path, gb: float, d: int) -> None:
    """Random fp16 rows of width d, ~gb GB, in utterances of 1,500 rows (30 s of encoder frames)."""
    import torch
    from tqdm.auto import tqdm

    from whisper_sae.activations import StoreWriter

    rows_per_utt = 1500
    n_utts = max(2, round(gb * 1e9 / (rows_per_utt * d * 2)))
    gen = torch.Generator().manual_seed(0)
    # 32 utterances' worth of rows built from 256 directions (something an SAE can learn), reused with a
    # per-utterance offset so that writing gigabytes costs little more than the disk.
    basis = torch.randn(256, d, generator=gen)
    pool = torch.rand(32, rows_per_utt, 256, generator=gen).pow_(8) @ basis
    pool += 0.1 * torch.randn(pool.shape, generator=gen)
    offsets = 0.3 * torch.randn(n_utts, d, generator=gen)
    with StoreWriter(
        path, hooks={HOOK: {"d_model": d, "kind": "frame"}}, model={"name": "synthetic"}, settings={"mode": "padded"}
    ) as writer:
        for u in tqdm(range(n_utts), desc=f"writing a {gb:g} GB synthetic store", unit="utt", mininterval=5):
            idx = writer.begin_utterance({"id": f"u{u}", "duration": 30.0})
            writer.add(
                HOOK, idx, pool[u % 32] + offsets[u], torch.arange(rows_per_utt), torch.arange(rows_per_utt) * 0.02
            )
            writer.end_utterance(idx)


def worker(args) -> dict:
    import torch

    from whisper_sae.activations import ActivationStore
    from whisper_sae.sae import SAEConfig, SAESpec, TrainConfig
    from whisper_sae.sae.loop import Trainer

    torch.set_num_threads(args.threads)
    store = ActivationStore(args.store_dir)
    d, batch = store.d_model(HOOK), args.batch_size
    buffer_rows = int(args.max_memory_gb * 1e9 / (d * 2))
    steps = store.n_rows(HOOK) // batch if not args.steps else args.steps
    spec = SAESpec(SAEConfig(d, args.width, args.arch, k=args.k if args.arch in ("topk", "batchtopk") else None))
    config = TrainConfig(steps=10**9, lr=1e-3, autocast="bf16" if args.dtype == "bf16" else "none", device="cpu")
    trainer = Trainer([spec], config, "/tmp/unused-stream-bench-out")
    before = peak_rss_gb()
    if args.worker in ("stream", "read"):
        batches = store.batches(HOOK, batch, seed=0, buffer_rows=buffer_rows, loop=True)
    else:
        rows = store.read(HOOK, max_rows=buffer_rows)[0]  # fp32, in RAM before the clock starts
        rows = rows[: len(rows) // batch * batch]
        batches = (rows[(i % (len(rows) // batch)) * batch :][:batch] for i in range(10**12))
    start, cpu_start = time.perf_counter(), time.process_time()
    first = next(batches)
    if args.worker == "read":  # the reader alone: what streaming adds to each training step
        for _ in range(1, steps):
            next(batches)
        trainer = None
    else:
        trainer.members[0].init_from_data(first.float(), "mean", True)
        trainer._train_step(first)
        for step in range(1, steps):
            trainer.step = step
            trainer._train_step(next(batches))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    result = {
        "mode": args.worker,
        "steps": steps,
        "tokens_per_s": steps * batch / seconds,
        "tokens_per_cpu_s": steps * batch / cpu_seconds,
        "peak_rss_gb": peak_rss_gb(),
        "rss_before_data_gb": before,
        "buffer_rows": buffer_rows,
    }
    if args.worker != "memory":
        result["buffer_capacity_gb"] = batches.capacity * d * 2 / 1e9
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-dir", type=Path, default=Path("/tmp/whisper-sae-stream-bench/store"))
    parser.add_argument("--store-gb", type=float, default=4.0, help="size of the synthetic store on disk")
    parser.add_argument("--max-memory-gb", type=float, default=1.0, help="memory of the shuffle buffer")
    parser.add_argument("--d-in", type=int, default=384)
    parser.add_argument("--arch", default="relu")
    parser.add_argument("--width", type=int, default=1152)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=0, help="steps per measurement; 0: one epoch of the store")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=["stream", "memory", "read"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    manifest = args.store_dir / "manifest.json"
    want = {"store_gb": args.store_gb, "d_in": args.d_in}
    if not manifest.is_file() or json.loads(manifest.read_text()).get("info", {}).get("bench") != want:
        if args.store_dir.exists():
            import shutil

            shutil.rmtree(args.store_dir)
        make_store(args.store_dir, args.store_gb, args.d_in)
        data = json.loads(manifest.read_text())
        data.setdefault("info", {})["bench"] = want
        manifest.write_text(json.dumps(data))
    on_disk = sum(f.stat().st_size for f in args.store_dir.rglob("*.safetensors")) / 1e9
    passed = sys.argv[1:]
    results: dict[str, list[dict]] = {"memory": [], "stream": [], "read": []}
    for _ in range(args.repeats):
        for mode in results:
            out = subprocess.run(
                [sys.executable, __file__, *passed, "--worker", mode], check=True, capture_output=True, text=True
            ).stdout
            results[mode].append(json.loads(out.strip().splitlines()[-1]))
    med = {
        mode: {
            key: statistics.median(r[key] for r in runs)
            for key in ("tokens_per_s", "tokens_per_cpu_s", "peak_rss_gb", "rss_before_data_gb")
        }
        for mode, runs in results.items()
    }
    stream = results["stream"][0]
    print(
        f"store {on_disk:.2f} GB of fp16 rows (d_in {args.d_in}) = {on_disk / args.max_memory_gb:.1f}x the "
        f"{args.max_memory_gb:g} GB buffer ({stream['buffer_rows']} rows; allocated {stream['buffer_capacity_gb']:.2f}"
        f" GB); {args.arch} width {args.width} {args.dtype}, batch {args.batch_size}, {stream['steps']} steps, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    print(
        f"{'mode':7} {'tokens/s':>10} {'tokens/CPU-s':>13} {'peak RSS GB':>12} {'RSS before data GB':>19} "
        f"{'peak - before':>14}"
    )
    for mode, m in med.items():
        print(
            f"{mode:7} {m['tokens_per_s']:>10.0f} {m['tokens_per_cpu_s']:>13.0f} {m['peak_rss_gb']:>12.2f} "
            f"{m['rss_before_data_gb']:>19.2f} {m['peak_rss_gb'] - m['rss_before_data_gb']:>14.2f}"
        )
    for key, what in (("tokens_per_s", "tokens/s"), ("tokens_per_cpu_s", "tokens/CPU-s")):
        print(f"stream / memory {what}: {med['stream'][key] / med['memory'][key]:.3f}")
    # Reading and training share the cores: per token, streaming costs the reader's CPU time on top.
    bound = 1 / (1 + med["memory"]["tokens_per_cpu_s"] / med["read"]["tokens_per_cpu_s"])
    print(
        f"reader alone: {med['read']['tokens_per_cpu_s']:.0f} tokens/CPU-s, so streaming can reach {bound:.3f} of memory"
    )


if __name__ == "__main__":
    main()
