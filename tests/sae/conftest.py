"""Fixtures for the SAE tests: sparse synthetic activations with known structure, and a tiny store."""

from __future__ import annotations

import pytest
import torch

D_IN = 24


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny matmuls: one thread avoids contention with the rest of the suite on a 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sparse_rows(n: int, *, d: int = D_IN, n_true: int = 96, p: float = 0.03, seed: int = 0) -> torch.Tensor:
    """Rows that are sparse sums of ``n_true`` fixed unit directions, offset and scaled like real activations."""
    dirs = torch.randn(n_true, d, generator=torch.Generator().manual_seed(1234))
    dirs /= dirs.norm(dim=1, keepdim=True)
    g = torch.Generator().manual_seed(seed)
    codes = (torch.rand(n, n_true, generator=g) < p).float() * (0.5 + torch.rand(n, n_true, generator=g))
    return codes @ dirs * 7.0 + 2.0


def batch_stream(batch: int = 128, *, seed: int = 0, d: int = D_IN):
    """An endless, deterministic stream of batches."""
    step = 0
    while True:
        yield sparse_rows(batch, d=d, seed=seed * 100_003 + step)
        step += 1


@pytest.fixture
def sae_store(tmp_path):
    """A store of 20 utterances x 60 frames at hooks encoder.out (d=24) and encoder.blocks.0 (d=24)."""
    from whisper_sae.activations import ActivationStore, StoreWriter

    path = tmp_path / "store"
    hooks = {"encoder.out": {"d_model": D_IN, "kind": "frame"}, "encoder.blocks.0": {"d_model": D_IN, "kind": "frame"}}
    with StoreWriter(
        path,
        hooks=hooks,
        model={"name": "synthetic", "spec": "synthetic", "d_model": D_IN},
        corpus="synthetic",
        settings={"mode": "padded"},
        shard_rows=256,
    ) as writer:
        for u in range(20):
            idx = writer.begin_utterance({"id": f"utt{u}", "duration": 1.2})
            rows = sparse_rows(60, seed=500 + u)
            writer.add("encoder.out", idx, rows, torch.arange(60), torch.arange(60) * 0.02)
            writer.add("encoder.blocks.0", idx, rows * 0.5, torch.arange(60), torch.arange(60) * 0.02)
            writer.end_utterance(idx)
    return ActivationStore(path)


@pytest.fixture
def synth():
    """The synthetic-data helpers (tests import nothing from conftest under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(rows=sparse_rows, stream=batch_stream, d=D_IN)
