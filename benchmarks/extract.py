"""Extraction throughput: audio-seconds per wall-second, the store path against the naive way.

The naive way is the original project's: one utterance per 30-s window, batch 1, fp32, the whole
encoder, every one of the 1500 frames kept. The store path is ``whisper_sae.activations.extract``
in several settings, on the same utterances in the same run. For each it prints audio-s/s, the
ratio to the naive way, the encoder GFLOP/s achieved (FLOPs of the blocks actually run, counted
from the config) against this machine's measured fp32/bf16 matmul rate, and the cosine of the
stored activations to the faithful padded-fp32 ones computed with every row of the deepest block
(``pad_rows=True``; the default computes that block for the stored real frames only). GFLOP/s counts
a full window's FLOPs, so it is an effective rate where fewer are computed. The "vs base" column
sets each figure beside its own baseline from the same run (named in the last column): the default
against its padding-rows reference, torch log-mel (the GPU default) against the feature extractor's (numpy, the CPU default), the
writer thread against writes in line. The header names the CPU and its vector/matrix flags.

    python benchmarks/extract.py [--corpus DIR] [--model tiny.en] [--max-utterances N] [--repeats 3]

Default corpus: ../shared/data/librispeech/test-clean when present, else a synthesized one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from whisper_sae.activations import extract
from whisper_sae.audio import load_corpus
from whisper_sae.whisper import HookPoint, frames_for_duration, load_whisper

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech" / "test-clean"
WINDOW = 480_000


def encoder_gflop(config, n_blocks: int) -> float:
    """FLOPs (multiply-add = 2) of one 30-s window through the convolutions and ``n_blocks`` blocks."""
    t, d, f, m = config.max_source_positions, config.d_model, config.encoder_ffn_dim, config.num_mel_bins
    conv = 2 * (2 * t) * m * d * 3 + 2 * t * d * d * 3
    block = 2 * t * d * d * 4 + 2 * 2 * t * t * d + 2 * 2 * t * d * f
    return (conv + n_blocks * block) / 1e9


def matmul_gflops(dtype: torch.dtype, device="cpu", repeats: int = 20, warmup: int = 3) -> float:
    """This machine's dense matmul rate, on the shape PEERS.md used (4096x384 @ 384x3072)."""
    a = torch.randn(4096, 384, dtype=dtype, device=device)
    b = torch.randn(384, 3072, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        a @ b
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t0)
    return 2 * 4096 * 384 * 3072 / statistics.median(times) / 1e9


def naive(lw, utts) -> tuple[float, int]:
    """The original's loop; returns (wall seconds, windows run). Every frame is kept, as it was."""
    kept = []
    windows = 0
    t0 = time.perf_counter()
    for u in utts:
        for start in range(0, len(u.audio), WINDOW):
            features = lw.feature_extractor(
                u.audio[start : start + WINDOW], sampling_rate=16000, return_tensors="pt"
            ).input_features.to(lw.device)
            with torch.no_grad():
                kept.append(lw.model.model.encoder(features).last_hidden_state[0].cpu().numpy())
            windows += 1
    return time.perf_counter() - t0, windows


def run_store(lw, utts, hook, out: Path, **kw) -> tuple[float, int]:
    """The store path; returns (wall seconds, windows run)."""
    t0 = time.perf_counter()
    store = extract(lw, utts, [hook], out, progress=False, **kw)
    return time.perf_counter() - t0, store.manifest["info"]["last_run"]["windows"]


def cosines(out: Path, ref: Path, hook: str) -> str:
    from whisper_sae.activations import ActivationStore

    a = ActivationStore(out).read(hook)[0].double()
    b = ActivationStore(ref).read(hook)[0].double()
    c = torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy()
    diff = float((a - b).abs().max())
    return (
        f"mean {c.mean():.5f}  p1 {np.percentile(c, 1):.4f}  min {c.min():.4f}  <0.999: {np.mean(c < 0.999):.2%}"
        f"  max |diff| {diff:.3g}"
    )


def cpu_line() -> str:
    """The CPU model and the flags that decide its fp32/bf16 speed (from /proc/cpuinfo, as lscpu shows them)."""
    model, flags = "unknown CPU", []
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = [f for f in value.split() if f.startswith(("avx", "amx", "fma"))]
                break
    except OSError:
        pass
    return f"cpu: {model}; {torch.get_num_threads()} threads; flags: {' '.join(flags) or '-'}"


def corpus_utterances(args):
    spec = args.corpus or (SHARED if SHARED.is_dir() else None)
    if spec is None:
        from whisper_sae.audio.synth import synthesize_corpus

        spec = synthesize_corpus(Path(tempfile.mkdtemp()) / "synth", minutes=3, seed=0, progress=False)
    return str(spec), list(load_corpus(str(spec), max_utterances=args.max_utterances))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=None)
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--max-utterances", type=int, default=None)
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats; the median is reported")
    p.add_argument("--batch-size", type=int, default=None, help="windows per forward (default: extract's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--with-bf16", action="store_true", help="time bf16 autocast even on a CPU without AVX-512")
    args = p.parse_args(argv)
    lw = load_whisper(args.model, device=args.device)
    spec, utts = corpus_utterances(args)
    return benchmark(lw, utts, spec, repeats=args.repeats, batch_size=args.batch_size, with_bf16=args.with_bf16)


def benchmark(lw, utts, spec: str, *, repeats: int = 1, batch_size: int | None = None, with_bf16: bool = False) -> int:
    torch.manual_seed(0)
    device = lw.device
    seconds = sum(u.duration for u in utts)
    print(
        f"model {lw.name}, corpus {spec}: {len(utts)} utterances, {seconds:.1f} s of audio, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}",
        flush=True,
    )
    print(cpu_line(), f"(torch capability {torch.backends.cpu.get_cpu_capability()})", flush=True)
    if hasattr(os, "getloadavg"):
        print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    slow_bf16 = device.type == "cpu" and "AVX512" not in torch.backends.cpu.get_cpu_capability()
    peak = {
        "fp32": matmul_gflops(torch.float32, device),
        "bf16": matmul_gflops(torch.bfloat16, device, *((1, 0) if slow_bf16 else ())),
    }
    print(f"matmul 4096x384 @ 384x3072: fp32 {peak['fp32']:.1f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s", flush=True)
    deep = f"encoder.blocks.{lw.n_encoder_layers // 2 - 1}"
    ref_label = "store padded fp32, padding rows too (reference)"
    configs = [  # (label, hook, extract kwargs); the pad_rows runs are the references for the cosines
        (ref_label, "encoder.out", {"pad_rows": True}),
        ("store padded fp32 (default)", "encoder.out", {}),
        ("store padded fp32, torch log-mel", "encoder.out", {"mel_backend": "torch"}),
        ("store padded fp32, writes in line (no thread)", "encoder.out", {"background_writes": False}),
        ("store padded bf16", "encoder.out", {"autocast": "bf16"}),
        ("store packed fp32", "encoder.out", {"mode": "packed"}),
        ("store packed bf16", "encoder.out", {"mode": "packed", "autocast": "bf16"}),
        (f"store padded fp32, {deep}, padding rows too", deep, {"pad_rows": True}),
        (f"store padded fp32, {deep} (stops early)", deep, {}),
        (f"store packed bf16, {deep} (stops early)", deep, {"mode": "packed", "autocast": "bf16"}),
    ]
    if slow_bf16 and not with_bf16:
        # Without AVX-512 torch's bf16 kernels are slower than fp32 by far (see the matmul line).
        print(
            f"skipping the bf16 settings: this CPU is {torch.backends.cpu.get_cpu_capability()} "
            "(pass --with-bf16 to time them anyway)"
        )
        configs = [c for c in configs if "bf16" not in c[0]]
    tmp = Path(tempfile.mkdtemp())
    walls: dict[str, list[float]] = {"naive": []}
    windows: dict[str, int] = {}
    for r in range(repeats):
        wall, windows["naive"] = naive(lw, utts)
        walls["naive"].append(wall)
        order = list(enumerate(configs))
        for i, (label, hook, kw) in order if r % 2 == 0 else order[::-1]:  # interleaved both ways
            out = tmp / f"r{r}_c{i}"
            wall, windows[label] = run_store(lw, utts, hook, out, batch_size=batch_size, **kw)
            walls.setdefault(label, []).append(wall)
    base = seconds / statistics.median(walls["naive"])
    full = encoder_gflop(lw.config, lw.n_encoder_layers)
    baselines = {
        "store padded fp32 (default)": ref_label,
        "store padded fp32, torch log-mel": ref_label,
        "store padded fp32, writes in line (no thread)": ref_label,
        f"store padded fp32, {deep} (stops early)": f"store padded fp32, {deep}, padding rows too",
    }
    # the same run, read the other way: torch log-mel (the GPU default) and the writer thread against their baselines
    pairs = [
        (
            "torch log-mel vs numpy log-mel (the CPU default)",
            "store padded fp32, torch log-mel",
            "store padded fp32 (default)",
        ),
        (
            "writer thread (default) vs writes in line",
            "store padded fp32 (default)",
            "store padded fp32, writes in line (no thread)",
        ),
        ("real frames only (default) vs padding rows too", "store padded fp32 (default)", ref_label),
    ]
    print(
        f"\n{'method':48s} {'audio-s/s':>9s} {'vs naive':>8s} {'vs base':>7s} {'windows':>7s} {'GFLOP/s':>8s}  "
        "cosine to padded fp32 (per stored row); base"
    )
    gf = windows["naive"] * full / statistics.median(walls["naive"])
    print(
        f"{'naive (1 utt/window, batch 1, fp32, all frames)':48s} {base:9.1f} {1.0:8.2f} {'-':>7s} "
        f"{windows['naive']:7d} {gf:8.1f}  -"
    )
    for i, (label, hook, _kw) in enumerate(configs):
        wall = statistics.median(walls[label])
        blocks = HookPoint.parse(hook, lw.config).blocks_needed(lw.config)
        gf = windows[label] * encoder_gflop(lw.config, blocks) / wall
        ref = tmp / f"r0_c{next(j for j, c in enumerate(configs) if c[1] == hook and c[2] == {'pad_rows': True})}"
        cos = "-" if ref == tmp / f"r0_c{i}" else cosines(tmp / f"r0_c{i}", ref, hook)
        against = baselines.get(label)
        vs = f"{statistics.median(walls[against]) / wall:7.2f}" if against in walls else f"{'-':>7s}"
        print(
            f"{label:48s} {seconds / wall:9.1f} {seconds / wall / base:8.2f} {vs} {windows[label]:7d} {gf:8.1f}  "
            f"{cos}{'; base: ' + against if against in walls else ''}"
        )
    print()
    for what, fast, slow in pairs:
        if fast in walls and slow in walls:
            ratios = [s_ / f_ for f_, s_ in zip(walls[fast], walls[slow])]  # per repeat, runs next to each other
            print(
                f"{what:48s} {statistics.median(walls[slow]) / statistics.median(walls[fast]):5.2f}x "
                f"(per repeat: {', '.join(f'{r:.2f}' for r in ratios)})"
            )
    print(
        f"\nencoder FLOPs per 30-s window: {full:.1f} GFLOP (all {lw.n_encoder_layers} blocks), "
        f"{encoder_gflop(lw.config, lw.n_encoder_layers // 2):.1f} GFLOP up to {deep}; "
        f"peak for comparison: fp32 {peak['fp32']:.0f}, bf16 {peak['bf16']:.0f} GFLOP/s"
    )
    print(
        f"real frames stored: {sum(frames_for_duration(u.duration) for u in utts)} of "
        f"{windows['naive'] * 1500} computed by the naive way"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
