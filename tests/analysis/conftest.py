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
        audio = (
            0.3 * np.sin(2 * np.pi * (180 + 70 * i) * t) * (1 + np.sin(2 * np.pi * 5 * t))
            + 0.05 * rng.standard_normal(n)
        ).astype(np.float32)
        phones = [{"phone": "sa"[j % 2], "start": j * 0.1, "end": (j + 1) * 0.1} for j in range(int(d / 0.1))]
        words = [{"word": ["Hi", "there"][j % 2], "start": j * 0.3, "end": (j + 1) * 0.3} for j in range(int(d / 0.3))]
        out.append(
            Utterance(
                id=f"clip{i}", audio=audio, text="hi there", speaker="s0", alignment={"words": words, "phones": phones}
            )
        )
    return out


@pytest.fixture
def aligned_utts():
    return aligned_utterances()


def voices(n_speakers=8, per_speaker=2, seconds=0.8, seed=0) -> list[Utterance]:
    """Buzzes whose pitch depends on gender (female ~230 Hz, male ~115 Hz) and whose brightness
    depends on the speaker; even speakers female. Rate is a per-speaker number."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    out = []
    for s in range(n_speakers):
        female = s % 2 == 0
        f0 = (230 if female else 115) * (1 + 0.05 * rng.standard_normal())
        for k in range(per_speaker):
            audio = sum(np.sin(2 * np.pi * f0 * h * t) / h ** (1 + 0.2 * (s % 3)) for h in range(1, 8))
            audio = (0.2 * audio + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
            out.append(
                Utterance(
                    id=f"{s}-{k}",
                    audio=audio,
                    speaker=f"spk{s}",
                    text="hello there",
                    attributes={"gender": "Female " if female else "male", "rate": 120 + 10 * s},
                )
            )
    return out
