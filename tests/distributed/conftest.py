"""Fixtures for the multi-process tests: a tiny random Whisper folder, a folder of wav clips, a random
store, and a helper that runs a ``whisper-sae`` command under ``torchrun`` on 2 CPU processes (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def dist_whisper_dir(tiny_random_whisper_dir) -> Path:
    """A save_pretrained folder of a 2+2-block Whisper of width 32 with random weights."""
    return tiny_random_whisper_dir


@pytest.fixture(scope="session")
def dist_wav_corpus(tmp_path_factory) -> Path:
    """Seven tone-plus-noise wav clips of 0.5 to 2 s (an odd count, so the ranks' shares differ)."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("dist_wavs")
    rng = np.random.default_rng(0)
    for i, seconds in enumerate([1.0, 0.5, 2.0, 1.5, 0.7, 1.2, 0.9]):
        t = np.arange(int(seconds * 16000)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(folder / f"clip{i:02d}.wav", audio.astype(np.float32), 16000)
    return folder


@pytest.fixture(scope="session")
def random_store(tmp_path_factory) -> Path:
    """A store with two frame hooks (d=16) of 40 utterances x 48 rows of structured random data."""
    from whisper_sae.activations import StoreWriter

    path = tmp_path_factory.mktemp("dist_store") / "store"
    gen = torch.Generator().manual_seed(0)
    basis = torch.randn(24, 16, generator=gen)
    hooks = {"encoder.blocks.0": {"d_model": 16, "kind": "frame"}, "encoder.out": {"d_model": 16, "kind": "frame"}}
    with StoreWriter(path, hooks=hooks, model={"name": "random"}, shard_rows=256) as w:
        for u in range(40):
            idx = w.begin_utterance({"id": f"u{u:02d}", "duration": 0.96})
            for h in hooks:
                codes = torch.relu(torch.randn(48, 24, generator=gen) - 1.0)
                w.add(h, idx, codes @ basis + 0.05 * torch.randn(48, 16, generator=gen), torch.arange(48))
            w.end_utterance(idx)
    return path


def torchrun(args: list[str], nproc: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``whisper-sae ARGS`` under torchrun with ``nproc`` CPU processes; fail with its output."""
    script = Path(sys.executable).parent / "whisper-sae"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--no-python",
        str(script),
        *args,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise AssertionError(f"torchrun failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


@pytest.fixture
def run_torchrun():
    return torchrun
