"""The per-frame loudness and autocorrelation pitch tracker on signals whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_sae.audio.prosody import frame_loudness, frame_pitch, n_frames, utterance_prosody

SR = 16000


def tone(f0, seconds=0.5, amp=0.3, harmonics=4):
    t = np.arange(int(seconds * SR)) / SR
    return amp * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, harmonics + 1))


@pytest.mark.parametrize("f0", [90.0, 147.0, 220.0, 390.0])
def test_pitch_of_a_harmonic_tone(f0):
    est = frame_pitch(tone(f0))
    inner = est[3:-3]  # edge windows are half zero-padded
    assert np.isfinite(inner).all()
    np.testing.assert_allclose(np.median(inner), f0, rtol=0.01)


def test_silence_and_noise_are_unvoiced():
    rng = np.random.default_rng(0)
    assert np.isnan(frame_pitch(np.zeros(SR // 2))).all()
    noisy = frame_pitch(0.3 * rng.standard_normal(SR // 2))
    assert np.isnan(noisy).mean() > 0.9


def test_pitch_follows_a_step_and_frames_line_up():
    audio = np.concatenate([tone(120.0, 0.4), tone(240.0, 0.4)])
    est = frame_pitch(audio)
    assert len(est) == n_frames(audio) == 40
    assert np.nanmedian(est[2:17]) == pytest.approx(120, rel=0.02)
    assert np.nanmedian(est[23:38]) == pytest.approx(240, rel=0.02)


def test_loudness_db_of_a_sine_and_its_halving():
    t = np.arange(SR // 2) / SR
    sine = 0.5 * np.sin(2 * np.pi * 200 * t)
    loud = frame_loudness(sine)[2:-2]
    np.testing.assert_allclose(loud, 20 * np.log10(0.5 / np.sqrt(2)), atol=0.3)
    np.testing.assert_allclose(frame_loudness(sine / 2)[2:-2], loud - 6.02, atol=0.05)
    assert frame_loudness(np.zeros(640)).max() == pytest.approx(-100)


def test_utterance_summary_and_bad_range():
    s = utterance_prosody(np.concatenate([np.zeros(4000), tone(200.0, 0.5), np.zeros(4000)]))
    assert s["f0_hz"] == pytest.approx(200, rel=0.01) and s["f0_spread_oct"] < 0.02
    assert 0.5 < s["voiced_fraction"] < 0.8
    with pytest.raises(ValueError, match="fmin=500"):
        frame_pitch(tone(200.0), fmin=500, fmax=400)
