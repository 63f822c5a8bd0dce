"""Throughput on one device (meant for a GPU): extraction and SAE training at real Whisper widths.

Whisper ``tiny`` and ``small`` are built from their real configs with random weights (the real
weights cannot travel to the lent GPU machine: its working tree is capped at 64 MiB, and it has no
network); speed does not depend on the weights' values. The audio is synthetic (tones and noise,
4-16 s clips), kept in memory.

Measured per model:
- extraction through ``whisper_sae.activations.extract`` (log-mel, encoder, fp16 store written to
  disk) for hook ``encoder.out``: padded fp32 (the faithful default), padded bf16, packed bf16;
  audio-seconds per second, activations (rows) per second, peak GPU memory;
- the encoder alone on ready log-mel batches (the ceiling extraction could reach);
- SAE training through ``whisper_sae.sae.fit`` (topk k=32 and relu, width 16 x d_model, batch 4096,
  autocast auto = bf16), fed from the extracted store through the prefetcher: tokens per second
  after warm-up, peak memory.

    python benchmarks/gpu.py [--quick] [--models tiny,small] [--device auto] [--json PATH]

``--quick`` shrinks everything for a CPU check (minutes of audio -> seconds, batch 4096 -> 512).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from whisper_sae.activations import ActivationStore, extract
from whisper_sae.audio import Utterance
from whisper_sae.runtime import prefetch, resolve_device
from whisper_sae.runtime.models import whisper_config
from whisper_sae.sae import SAEConfig, SAESpec, TrainConfig, fit
from whisper_sae.whisper import run_encoder
from whisper_sae.whisper.loading import LoadedWhisper

HOOK = "encoder.out"


def random_whisper(name: str, device: torch.device) -> LoadedWhisper:
    """A LoadedWhisper with ``name``'s real shape and random weights (no tokenizer: encoder hooks only)."""
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    config = whisper_config(name)
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: seconds instead of a minute for small
        model = WhisperForConditionalGeneration(config).eval()
    fe = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    return LoadedWhisper(
        model=model,
        feature_extractor=fe,
        tokenizer=None,
        name=f"random-{name}",
        spec=name,
        prompt_ids=[config.decoder_start_token_id],
        eot_id=config.eos_token_id,
        device=device,
    )


def synthetic_utterances(total_seconds: float, seed: int = 0) -> list[Utterance]:
    rng = np.random.default_rng(seed)
    out, total = [], 0.0
    while total < total_seconds:
        seconds = float(rng.uniform(4, 16))
        t = np.arange(int(seconds * 16000)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(len(t))
        out.append(Utterance(id=f"syn{len(out):05d}", audio=audio.astype(np.float32)))
        total += seconds
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def bench_extract(lw, utts, workdir: Path, *, mode: str, autocast: str | None, batch_size: int) -> dict:
    device = lw.device
    extract(
        lw,
        utts[:4],
        [HOOK],
        workdir / f"warm-{mode}-{autocast}",
        mode=mode,
        autocast=autocast,
        batch_size=batch_size,
        progress=False,
    )  # kernels chosen, caches warm
    reset_peak(device)
    sync(device)
    start = time.perf_counter()
    store = extract(
        lw,
        utts,
        [HOOK],
        workdir / f"store-{mode}-{autocast}",
        mode=mode,
        autocast=autocast,
        batch_size=batch_size,
        progress=False,
    )
    sync(device)
    wall = time.perf_counter() - start
    seconds = sum(u.duration for u in utts)
    return {
        "what": f"extract {mode} {autocast or 'fp32'}",
        "batch_windows": batch_size,
        "audio_s": round(seconds, 1),
        "wall_s": round(wall, 2),
        "audio_s_per_s": seconds / wall,
        "rows_per_s": store.n_rows(HOOK) / wall,
        "peak_gib": peak_gib(device),
        "store": str(store.path),
    }


def bench_encoder_only(lw, *, batch_size: int, autocast: torch.dtype | None, repeats: int) -> dict:
    device = lw.device
    features = torch.randn(batch_size, lw.config.num_mel_bins, 3000, device=device)
    run_encoder(lw, features, [HOOK], autocast_dtype=autocast)
    reset_peak(device)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        run_encoder(lw, features, [HOOK], autocast_dtype=autocast)
    sync(device)
    wall = time.perf_counter() - start
    windows = batch_size * repeats
    return {
        "what": f"encoder only {str(autocast).replace('torch.', '') if autocast else 'fp32'}",
        "batch_windows": batch_size,
        "audio_s_per_s": windows * 30 / wall,
        "rows_per_s": windows * 1500 / wall,
        "peak_gib": peak_gib(device),
    }


class Clock:
    """Wraps a batch stream and notes the time each batch is asked for (after the device is idle)."""

    def __init__(self, batches, device):
        self.batches, self.device, self.times = iter(batches), device, []

    def __iter__(self):
        return self

    def __next__(self):
        sync(self.device)
        self.times.append(time.perf_counter())
        return next(self.batches)


def bench_train(
    store: ActivationStore,
    d: int,
    device: torch.device,
    workdir: Path,
    *,
    arch: str,
    batch_size: int,
    steps: int,
    warm: int,
) -> dict:
    cfg = SAEConfig(d_in=d, d_sae=16 * d, architecture=arch, k=32 if arch == "topk" else None, hook_name=HOOK)
    config = TrainConfig(
        steps=steps + warm + 20,
        device=str(device),
        autocast="auto",
        log_every=10**6,
        eval_every=10**6,
        checkpoint_every=10**6,
        architectures={"relu": {"resample_every": 0}},
    )
    head = config.init_batches  # drawn for the init, then trained on first (no clock tick for those steps)
    clock = Clock(prefetch(store.batches(HOOK, batch_size, loop=True), device), device)
    reset_peak(device)
    # init_batches (4) are drawn first, then one batch per step; stop before the end-of-run files.
    fit([SAESpec(cfg)], clock, config, workdir / f"sae-{arch}", stop_after=head + warm + steps)
    times = clock.times[head + warm :]
    rate = batch_size * (len(times) - 1) / (times[-1] - times[0])
    return {
        "what": f"train {arch} width {16 * d}",
        "batch": batch_size,
        "autocast": "auto",
        "steps_timed": len(times) - 1,
        "tokens_per_s": rate,
        "ms_per_step": 1000 * batch_size / rate,
        "peak_gib": peak_gib(device),
    }


def markdown(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes for a CPU check of the script")
    p.add_argument("--models", default="tiny,small")
    p.add_argument("--device", default="auto")
    p.add_argument("--minutes", type=float, default=None, help="audio per model (default 30, quick 0.1)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    minutes = args.minutes or (0.1 if args.quick else 30)
    batch_windows = 4 if args.quick else 32
    sae_batch, steps, warm = (256, 3, 1) if args.quick else (4096, 100, 10)
    torch.backends.cuda.matmul.allow_tf32 = True  # fp32 rows use TF32 tensor cores, as a GPU user would
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "minutes_audio": minutes,
    }
    print(json.dumps(info), flush=True)
    results = {"info": info, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            t0 = time.perf_counter()
            lw = random_whisper(name, device)
            utts = synthetic_utterances(minutes * 60)
            rows = []
            for mode, autocast in (("padded", None), ("padded", "bf16"), ("packed", "bf16")):
                rows.append(
                    bench_extract(lw, utts, Path(tmp) / name, mode=mode, autocast=autocast, batch_size=batch_windows)
                )
                print(json.dumps(rows[-1]), flush=True)
            for dtype in (None, torch.bfloat16):
                rows.append(
                    bench_encoder_only(lw, batch_size=batch_windows, autocast=dtype, repeats=2 if args.quick else 10)
                )
                print(json.dumps(rows[-1]), flush=True)
            store = ActivationStore(rows[1]["store"])
            d = lw.d_model
            del lw
            train = [
                bench_train(store, d, device, Path(tmp) / name, arch=arch, batch_size=sae_batch, steps=steps, warm=warm)
                for arch in ("topk", "relu")
            ]
            for r in train:
                print(json.dumps(r), flush=True)
            results["models"][name] = {
                "d_model": d,
                "extract": rows,
                "train": train,
                "wall_s": time.perf_counter() - t0,
            }
    print(f"\n## {info['device']} (torch {info['torch']}), random-weight Whisper, synthetic audio\n")
    for name, r in results["models"].items():
        print(f"### {name} (d_model {r['d_model']})\n")
        print(markdown(r["extract"], ["what", "batch_windows", "audio_s_per_s", "rows_per_s", "peak_gib"]) + "\n")
        print(markdown(r["train"], ["what", "batch", "tokens_per_s", "ms_per_step", "peak_gib"]) + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
