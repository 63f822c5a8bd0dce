"""Fixtures for the activations tests: a tiny random Whisper (fast) and in-memory utterances."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_sae.audio import Utterance


@pytest.fixture(scope="session")
def tiny_random_whisper(tiny_random_whisper_dir):
    """A LoadedWhisper with 2+2 blocks of width 32 and the real English tokenizer, loaded from a folder."""
    from whisper_sae.whisper import load_whisper

    return load_whisper(tiny_random_whisper_dir)


def make_utterances(durations, *, texts=None, seed=0) -> list[Utterance]:
    """Tone-plus-noise clips of the given durations (s), with optional transcripts."""
    rng = np.random.default_rng(seed)
    out = []
    for i, d in enumerate(durations):
        n = int(round(d * 16000))
        t = np.arange(n) / 16000
        audio = (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
        text = None if texts is None else texts[i]
        out.append(Utterance(id=f"utt{i:03d}", audio=audio, text=text, speaker=f"s{i % 2}"))
    return out


@pytest.fixture
def make_utts():
    return make_utterances
