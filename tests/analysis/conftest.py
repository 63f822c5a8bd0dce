"""Fixtures for the analysis tests: a tiny random Whisper, a small SAE on its encoder, aligned clips."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from whisper_sae.audio import Utterance


@pytest.fixture(scope="session")
def analysis_whisper(tiny_random_whisper_dir):
    """A LoadedWhisper with 2+2 blocks of width 32 and the real English tokenizer (random weights)."""
    from whisper_sae.whisper import load_whisper

    return load_whisper(tiny_random_whisper_dir)


def make_sae(hook="encoder.out", d_in=32, d_sae=48, k=4, seed=0, model_name=None):
    from whisper_sae.sae import SAEConfig, SparseAutoencoder

    torch.manual_seed(seed)
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k, hook_name=hook, model_name=model_name)
    sae = SparseAutoencoder(cfg)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
    return sae.eval()


@pytest.fixture
def analysis_sae():
    return make_sae()


def aligned_utterances(durations=(1.0, 2.3, 0.7), seed=0) -> list[Utterance]:
    """Tone clips whose 'phones' alternate every 0.1 s and whose 'words' span 0.3 s each."""
    rng = np.random.default_rng(seed)
    out = []
    for i, d in enumerate(durations):
        n = int(round(d * 16000))
        t = np.arange(n) / 16000
        audio = (0.3 * np.sin(2 * np.pi * (180 + 70 * i) * t) * (1 + np.sin(2 * np.pi * 5 * t))
                 + 0.05 * rng.standard_normal(n)).astype(np.float32)
        phones = [{"phone": "sa"[j % 2], "start": j * 0.1, "end": (j + 1) * 0.1} for j in range(int(d / 0.1))]
        words = [{"word": ["Hi", "there"][j % 2], "start": j * 0.3, "end": (j + 1) * 0.3}
                 for j in range(int(d / 0.3))]
        out.append(Utterance(id=f"clip{i}", audio=audio, text="hi there", speaker="s0",
                             alignment={"words": words, "phones": phones}))
    return out


@pytest.fixture
def aligned_utts():
    return aligned_utterances()
