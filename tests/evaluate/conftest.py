"""Fixtures for the evaluation tests: a tiny random Whisper, SAEs built to known maps, short clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whisper_sae.audio import Utterance


@pytest.fixture(scope="session")
def eval_whisper_dir(tmp_path_factory, tiny_random_whisper_writer):
    """A save_pretrained folder of a random Whisper (2+2 blocks, width 32) with the real English tokenizer,
    with larger weights than the default init so that splices move the outputs visibly."""
    return tiny_random_whisper_writer(tmp_path_factory.mktemp("eval_whisper"), init_std=0.2)


@pytest.fixture(scope="session")
def eval_whisper(eval_whisper_dir):
    from whisper_sae.whisper import load_whisper

    return load_whisper(eval_whisper_dir)


def identity_sae(d_in: int, hook: str, model_name: str | None = None):
    """An SAE whose reconstruction is exactly its input: codes [relu(x), relu(-x)], decoder [I; -I].

    Each output is x_j·1 + 0·(-1) (or 0 + (-x_j)·(-1)) with every other product exactly zero, so the
    float result is x itself, bit for bit.
    """
    from whisper_sae.sae import SAEConfig, SparseAutoencoder

    cfg = SAEConfig(
        d_in=d_in,
        d_sae=2 * d_in,
        architecture="relu",
        apply_b_dec_to_input=False,
        hook_name=hook,
        model_name=model_name,
    )
    sae = SparseAutoencoder(cfg)
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def random_sae(d_in: int, hook: str, d_sae: int = 64, k: int = 4, seed: int = 0, model_name: str | None = None):
    """A TopK SAE with random weights: a poor reconstruction that visibly changes Whisper's outputs."""
    from whisper_sae.sae import SAEConfig, SparseAutoencoder

    torch.manual_seed(seed)
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k, hook_name=hook, model_name=model_name)
    return SparseAutoencoder(cfg).eval()


@pytest.fixture(scope="session")
def tone_utterances() -> list[Utterance]:
    """Three short tone-and-noise clips of different lengths, with transcripts."""
    rng = np.random.default_rng(0)
    texts = ["the cat sat", "HELLO THERE GENERAL", "one small step for a man"]
    out = []
    for i, (duration, text) in enumerate(zip((0.9, 1.7, 1.3), texts)):
        t = np.arange(int(duration * 16000)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (200 + 90 * i) * t) + 0.05 * rng.standard_normal(t.size)
        out.append(Utterance(id=f"tone-{i}", audio=audio.astype(np.float32), text=text))
    return out
