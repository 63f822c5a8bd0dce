"""Fixtures for the serve tests: a tiny random Whisper (weights drawn large enough that edits move its
transcripts), SAEs on an encoder and a decoder hook saved as folders, and clips written as WAV files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch


@pytest.fixture(scope="session")
def serve_whisper(tiny_random_whisper_writer, tmp_path_factory):
    from whisper_sae.whisper import load_whisper

    return load_whisper(tiny_random_whisper_writer(tmp_path_factory.mktemp("serve_whisper"), init_std=0.2))


def small_sae(hook: str, seed: int = 0, d_sae: int = 48):
    from whisper_sae.sae import SAEConfig, SparseAutoencoder

    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=d_sae, architecture="topk", k=6, hook_name=hook))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.W_dec.mul_(4.0)  # strong decoder directions: removing a feature moves the transcript
    return sae.eval()


@pytest.fixture(scope="session")
def sae_dirs(tmp_path_factory):
    """(encoder.out SAE folder, decoder.blocks.0 SAE folder)."""
    root = tmp_path_factory.mktemp("serve_saes")
    enc = small_sae("encoder.out").save_pretrained(root / "enc-sae")
    dec = small_sae("decoder.blocks.0", seed=1).save_pretrained(root / "dec-sae")
    return str(enc), str(dec)


def tone(seconds: float, f0: float = 180.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    audio = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * 4 * t)) + 0.03 * rng.standard_normal(len(t))
    return audio.astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int = 16000) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
