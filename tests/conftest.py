"""Fixtures shared across the test suite. Tests make their own data; none needs ../shared."""

from __future__ import annotations

import shutil

import pytest


def write_tiny_random_whisper(folder, *, init_std: float | None = None):
    """Save a random Whisper (2+2 blocks, width 32, the real English vocabulary and tokenizer) into ``folder``.

    ``init_std``: redraw every weight matrix from N(0, init_std), for tests that need splices to move
    the outputs visibly (the default init is very small).
    """
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from whisper_sae.whisper.offline import bundled_tokenizer_dir

    config = WhisperConfig(
        vocab_size=51864,
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=64,
        decoder_start_token_id=50257,
        pad_token_id=50256,
        bos_token_id=50256,
        eos_token_id=50256,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    if init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim >= 2:
                    p.normal_(0, init_std)
    model.save_pretrained(folder)
    shutil.copy(bundled_tokenizer_dir(51864, "test") / "tokenizer.json", folder)
    return folder


@pytest.fixture(scope="session")
def tiny_random_whisper_dir(tmp_path_factory):
    """A save_pretrained folder of the tiny random Whisper above (default init)."""
    return write_tiny_random_whisper(tmp_path_factory.mktemp("tiny_random_whisper"))


@pytest.fixture(scope="session")
def tiny_random_whisper_writer():
    """``write_tiny_random_whisper`` for tests that need their own variant of the folder."""
    return write_tiny_random_whisper


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory):
    """A small synthetic corpus folder (LibriSpeech layout, ~10 utterances, ~30 s, 6 eSpeak voices of
    both genders and several accents; balanced: each text is spoken by 2 voices). Read it with
    ``whisper_sae.audio.load_corpus(synth_corpus)``: transcripts, word/phone alignments and attributes
    (gender, accent, voice, variant, rate, pitch, speaker) come with each utterance. Deterministic."""
    from whisper_sae.audio.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("synth_corpus")
    return synthesize_corpus(
        out, minutes=0.42, balanced=True, voices_per_text=2, n_speakers=6, max_words=12, seed=0, progress=False
    )
