"""Log-mel features in torch (``whisper.features``) against the ``transformers`` feature extractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from whisper_sae.audio import load_corpus
from whisper_sae.whisper import transcribe
from whisper_sae.whisper.features import log_mel_torch

TOLERANCE = 1e-4  # max abs difference allowed to the feature extractor (features span about -1.5 to 1.5)


def reference(fe: WhisperFeatureExtractor, audios) -> torch.Tensor:
    return fe([np.asarray(a, dtype=np.float32) for a in audios], sampling_rate=16000, return_tensors="pt")[
        "input_features"
    ]


def awkward_clips() -> list[np.ndarray]:
    """Clips that stress the edges: 50 ms, exactly 30 s, silence, and a loud clipped chirp with noise."""
    rng = np.random.default_rng(0)
    t = np.arange(480_000) / 16000
    chirp = np.clip(3 * np.sin(2 * np.pi * (100 + 120 * t) * t), -1, 1) + 0.05 * rng.standard_normal(len(t))
    return [
        0.3 * rng.standard_normal(800),
        chirp.astype(np.float32),
        np.zeros(16000, np.float32),
        (0.01 * rng.standard_normal(7 * 16000)).astype(np.float32),
    ]


@pytest.mark.slow
def test_torch_log_mel_matches_the_feature_extractor_on_speech(tiny_lw, synth_corpus):
    speech = [u.audio for u in load_corpus(synth_corpus, max_utterances=6)]
    for clips in (speech, awkward_clips()):
        want = reference(tiny_lw.feature_extractor, clips)
        got = tiny_lw.log_mel(clips, backend="torch")
        assert got.shape == want.shape == (len(clips), 80, 3000) and got.dtype == torch.float32
        assert (got - want).abs().max() <= TOLERANCE
        # batching changes nothing: each clip keeps its own dynamic range
        one = tiny_lw.log_mel(clips[1:2], backend="torch")
        assert (one[0] - got[1]).abs().max() <= TOLERANCE


def test_torch_log_mel_matches_for_a_128_bin_filterbank():
    fe = WhisperFeatureExtractor(feature_size=128)
    clips = awkward_clips()
    got = log_mel_torch(clips, fe, "cpu")
    assert got.shape == (len(clips), 128, 3000)
    assert (got - reference(fe, clips)).abs().max() <= TOLERANCE


def test_log_mel_backends_and_default(tiny_lw):
    clips = awkward_clips()[:2]
    assert transcribe.MEL_BACKEND == "auto"
    assert transcribe.resolve_mel_backend(None, "cpu") == "numpy"
    assert transcribe.resolve_mel_backend(None, "cuda:0") == "torch"
    assert transcribe.resolve_mel_backend("torch", "cpu") == "torch"
    # on the CPU the default is the feature extractor's own numbers, bit for bit
    torch.testing.assert_close(tiny_lw.log_mel(clips), tiny_lw.log_mel(clips, backend="numpy"), rtol=0, atol=0)
    torch.testing.assert_close(
        tiny_lw.log_mel(clips, backend="numpy"), reference(tiny_lw.feature_extractor, clips), rtol=0, atol=0
    )
    with pytest.raises(ValueError, match="backend 'scipy' is not known"):
        tiny_lw.log_mel(clips, backend="scipy")
