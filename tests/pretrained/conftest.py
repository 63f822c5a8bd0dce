"""Fixtures for the pretrained-SAE tests: small SAE folders, and a Hugging Face cache laid out as the Hub writes it.

Nothing here reaches the network: Hub loads read a cache made in tmp_path (``HF_HUB_CACHE``) with
``HF_HUB_OFFLINE=1``; the shipped SAEs are read from the package, as an installed copy would be.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from whisper_sae.sae import SAEConfig, SparseAutoencoder


def small_sae(
    d_in: int = 16, d_sae: int = 48, *, arch: str = "topk", k: int | None = 4, seed: int = 0
) -> SparseAutoencoder:
    torch.manual_seed(seed)
    sae = SparseAutoencoder(
        SAEConfig(
            d_in=d_in,
            d_sae=d_sae,
            architecture=arch,
            k=k if arch == "topk" else None,
            hook_name="encoder.out",
            model_name="tiny.en",
        )
    )
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
    return sae


@pytest.fixture
def sae_folder(tmp_path) -> Path:
    """A TopK SAE folder as `train` writes it (with a training record naming its store), plus files a
    trained folder has that are not the SAE (metrics, checkpoint)."""
    folder = small_sae().save_pretrained(
        tmp_path / "my-sae",
        training={
            "steps": 10,
            "data": {"store": "../stores/synth", "train_utterances": 18},
            "held_out": {"explained_variance": 0.8123},
        },
    )
    (folder / "metrics.jsonl").write_text('{"step": 1}\n')
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "state.safetensors").write_bytes(b"not for upload")
    return folder


SHA = "0123456789abcdef0123456789abcdef01234567"


def lay_out_hub_cache(cache: Path, repo_id: str, files: dict[str, Path | bytes], sha: str = SHA) -> Path:
    """Write ``files`` (path in repo → source file or bytes) as the Hub's cache holds a downloaded repo:
    ``models--ORG--REPO/refs/main`` holding the commit, ``snapshots/<commit>/...`` the files."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(sha)
    snapshot = repo / "snapshots" / sha
    for rel, source in files.items():
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
    return snapshot


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache in tmp_path, used offline."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def outputs_equal(a: SparseAutoencoder, b: SparseAutoencoder, d_in: int, **tol) -> None:
    x = torch.randn(32, d_in, generator=torch.Generator().manual_seed(7)) * 2
    with torch.no_grad():
        torch.testing.assert_close(a(x).x_hat, b(x).x_hat, **tol)
