"""One process against two (torchrun, gloo) on this machine's CPU cores: extraction and SAE training.

Each side gets the whole machine: one process with OMP_NUM_THREADS = cores, or two processes with
cores / 2 threads each. Reported: wall time of the whole command (process start, model load and the
merge included) and the steady rate inside it (the store's audio-s/s per rank; training tokens/s from
metrics.jsonl), plus the largest weight difference between the 1- and 2-process SAEs.

    python benchmarks/distributed.py [--corpus DIR] [--model tiny.en] [--steps 60] [--json PATH]

Default corpus: ../shared/data/librispeech/test-clean when present, else a synthesized one. The
machine's load average is printed before each run: figures taken on a busy machine understate
what two processes gain.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech" / "test-clean"
SCRIPT = Path(sys.executable).parent / "whisper-sae"


def run(args: list[str], nproc: int, threads: int) -> float:
    """Wall seconds of ``whisper-sae ARGS`` on ``nproc`` processes (torchrun when more than one)."""
    if nproc == 1:
        cmd = [str(SCRIPT), *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "--no-python",
            str(SCRIPT),
            *args,
        ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="")
    print(f"load {os.getloadavg()[0]:.1f}: {' '.join(cmd[-len(args) - 1 :])[:120]} on {nproc} process(es)", flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"command failed:\n{done.stderr[-4000:]}")
    return time.perf_counter() - start


def extraction_rate(store: Path) -> float:
    """Audio-s/s inside the run: per rank from its own sub-store, summed over ranks."""
    manifest = json.loads((store / "manifest.json").read_text())
    ranks = manifest["info"].get("ranks")
    infos = [r["last_run"] for r in ranks] if ranks else [manifest["info"]["last_run"]]
    return sum(i["audio_seconds"] for i in infos) / max(i["wall_seconds"] for i in infos)


def training_rate(folder: Path, skip: int = 1) -> float:
    """Mean tokens/s over the training log's records (the first ``skip`` windows are warm-up)."""
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rates = [r["tokens_per_s"] for r in records if r.get("split") == "train"][skip:]
    return sum(rates) / len(rates)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", default=None)
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--hook", default="encoder.out")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--width", type=int, default=1536)
    p.add_argument("--max-utterances", type=int, default=None, help="extract only the first N utterances")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    # (processes, threads each): the whole machine to one process, one thread to one process (no OpenMP
    # barriers to stall when the cores are shared with other work), and one thread to each of two.
    setups = {"1p": (1, os.cpu_count() or 2), "1p1t": (1, 1), "2p": (2, max(1, (os.cpu_count() or 2) // 2))}
    cores = os.cpu_count() or 2
    results = {"cores": cores, "load_before": os.getloadavg()[0], "model": args.model}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = args.corpus or (str(SHARED) if SHARED.is_dir() else None)
        if corpus is None:
            from whisper_sae.audio.synth import synthesize_corpus

            corpus = str(synthesize_corpus(tmp / "corpus", minutes=3, seed=0, progress=False))
        results["corpus"] = corpus
        extract = [
            "extract",
            "--model",
            args.model,
            "--corpus",
            corpus,
            "--hooks",
            args.hook,
            "--device",
            "cpu",
            "--no-progress",
        ] + (["--max-utterances", str(args.max_utterances)] if args.max_utterances else [])
        for key, (n, threads) in setups.items():
            out = tmp / f"store{key}"
            wall = run(extract + ["--out", str(out)], n, threads)
            results[f"extract_{key}"] = {"wall_s": wall, "audio_s_per_s_in_run": extraction_rate(out)}
            print(key, results[f"extract_{key}"], flush=True)
        train = [
            "train",
            "--store",
            str(tmp / "store1p"),
            "--hook",
            args.hook,
            "--arch",
            "topk",
            "--k",
            "32",
            "--width",
            str(args.width),
            "--batch-size",
            str(args.batch_size),
            "--steps",
            str(args.steps),
            "--device",
            "cpu",
            "--autocast",
            "none",
            "--log-every",
            "10",
            "--eval-every",
            str(args.steps),
            "--checkpoint-every",
            str(args.steps),
        ]
        for key, (n, threads) in setups.items():
            out = tmp / f"sae{key}"
            wall = run(train + ["--out", str(out)], n, threads)
            results[f"train_{key}"] = {"wall_s": wall, "tokens_per_s_in_run": training_rate(out)}
            print(key, results[f"train_{key}"], flush=True)
        w = {key: load_file(str(tmp / f"sae{key}" / "sae_weights.safetensors")) for key in setups}
        for a, b in (("1p", "2p"), ("1p1t", "2p"), ("1p", "1p1t")):
            results[f"max_weight_diff_{a}_{b}"] = max(float((w[a][k] - w[b][k]).abs().max()) for k in w[a])
    results["load_after"] = os.getloadavg()[0]
    print(
        f"\n| {cores}-core CPU, load {results['load_before']:.1f} -> {results['load_after']:.1f} "
        "| 1 process, all cores | 1 process, 1 thread | 2 processes | speed-up vs all cores | vs 1 thread |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for stage, metric, unit, higher in (
        ("extract", "wall_s", "extraction wall (s)", False),
        ("extract", "audio_s_per_s_in_run", "extraction audio-s/s in run", True),
        ("train", "wall_s", "training wall (s)", False),
        ("train", "tokens_per_s_in_run", "training tokens/s in run", True),
    ):
        v = {key: results[f"{stage}_{key}"][metric] for key in setups}
        gain = (lambda a, b: b / a) if higher else (lambda a, b: a / b)
        print(
            f"| {unit} | {v['1p']:.1f} | {v['1p1t']:.1f} | {v['2p']:.1f} | {gain(v['1p'], v['2p']):.2f} "
            f"| {gain(v['1p1t'], v['2p']):.2f} |"
        )
    for key in ("1p_2p", "1p1t_2p", "1p_1p1t"):
        print(f"largest |weight difference| {key.replace('_', ' vs ')}: {results['max_weight_diff_' + key]:.2e}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
