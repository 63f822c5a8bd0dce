"""Tiny random Whisper models for fast unit tests (real vocabulary size so that bundled tokenizers fit)."""

from __future__ import annotations

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration


def tiny_config(
    multilingual: bool = False, encoder_layers: int = 3, decoder_layers: int = 2, ffn: int = 64
) -> WhisperConfig:
    """A Whisper shape small enough for CPU tests; the 1500 source positions are kept (30-s windows)."""
    vocab = 51865 if multilingual else 51864
    sot = 50258 if multilingual else 50257
    eot = 50257 if multilingual else 50256
    return WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=80,
        d_model=32,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        max_source_positions=1500,
        max_target_positions=64,
        decoder_start_token_id=sot,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        suppress_tokens=[],
        begin_suppress_tokens=[220, eot],
    )


def tiny_model(multilingual: bool = False, seed: int = 0, **sizes) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(tiny_config(multilingual, **sizes)).eval()
    # Larger random weights than the default init, so that hooks and patches move outputs visibly.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0, 0.2)
    return model


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory):
    """A folder written by ``save_pretrained`` from a tiny random English-only Whisper (no tokenizer)."""
    folder = tmp_path_factory.mktemp("tiny_hf")
    tiny_model().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_lw(tiny_hf_dir):
    from whisper_sae.whisper import load_whisper

    return load_whisper(tiny_hf_dir)


@pytest.fixture()
def features():
    torch.manual_seed(1)
    return torch.randn(2, 80, 3000)
