"""Fixtures for the activations tests: a tiny random Whisper (fast) and in-memory utterances."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from whisper_sae.audio import Utterance


@pytest.fixture(scope="session")
def tiny_random_whisper(tmp_path_factory):
    """A LoadedWhisper with 2+2 blocks of width 32 and the real English tokenizer, loaded from a folder."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from whisper_sae.whisper import load_whisper
    from whisper_sae.whisper.offline import bundled_tokenizer_dir

    config = WhisperConfig(
        vocab_size=51864, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=1500, max_target_positions=64, decoder_start_token_id=50257,
        pad_token_id=50256, bos_token_id=50256, eos_token_id=50256,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_random_whisper")
    WhisperForConditionalGeneration(config).save_pretrained(folder)
    shutil.copy(bundled_tokenizer_dir(51864, "test") / "tokenizer.json", folder)
    return load_whisper(folder)


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
