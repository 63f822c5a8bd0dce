"""Loudness and pitch per encoder frame (20 ms), to ask whether a feature tracks an emotion or just how
loud and how high the voice is.

``frame_loudness`` is the RMS level in dB of a 25-ms window centred on each 20-ms frame;
``frame_pitch`` is a plain autocorrelation F0 tracker: per 40-ms window, the lag in [1/fmax, 1/fmin]
with the highest normalised autocorrelation, kept as voiced when that peak exceeds ``voicing`` and the
window is within ``quiet_db`` of the clip's loudest, NaN otherwise. Whisper's encoder frame i covers [20·i, 20·i + 20) ms of the
clip, so frame i here is centred at 20·i + 10 ms and the rows line up with a store's frames.
"""

from __future__ import annotations

import numpy as np

from whisper_sae.audio.constants import SAMPLE_RATE

FRAME_SAMPLES = SAMPLE_RATE // 50
"""Samples per Whisper encoder frame (20 ms at 16 kHz)."""


def _windows(audio: np.ndarray, n_frames: int, width: int) -> np.ndarray:
    """[n_frames, width] windows centred on each 20-ms frame (zero-padded at the edges)."""
    audio = np.asarray(audio, dtype=np.float64).ravel()
    half = width // 2
    padded = np.pad(audio, (half, half + FRAME_SAMPLES * n_frames))
    centres = np.arange(n_frames) * FRAME_SAMPLES + FRAME_SAMPLES // 2
    return np.lib.stride_tricks.sliding_window_view(padded, width)[centres]


def n_frames(audio: np.ndarray) -> int:
    """Encoder frames of real audio in a clip (a partial last frame counts)."""
    return int(np.ceil(len(audio) / FRAME_SAMPLES))


def frame_loudness(audio: np.ndarray, frames: int | None = None, *, window_ms: float = 25.0) -> np.ndarray:
    """RMS level in dB (re full scale 1.0; floor -100 dB) of each frame's window."""
    frames = n_frames(audio) if frames is None else frames
    w = _windows(audio, frames, int(SAMPLE_RATE * window_ms / 1000))
    rms = np.sqrt(np.mean(w**2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-5))


def frame_pitch(
    audio: np.ndarray,
    frames: int | None = None,
    *,
    fmin: float = 70.0,
    fmax: float = 450.0,
    window_ms: float = 40.0,
    voicing: float = 0.5,
    quiet_db: float = 35.0,
) -> np.ndarray:
    """F0 in Hz of each frame's window, NaN where unvoiced or silent (see module doc)."""
    if not 0 < fmin < fmax < SAMPLE_RATE / 2:
        raise ValueError(f"pitch range fmin={fmin}, fmax={fmax} Hz must satisfy 0 < fmin < fmax < {SAMPLE_RATE // 2}")
    frames = n_frames(audio) if frames is None else frames
    width = int(SAMPLE_RATE * window_ms / 1000)
    lo, hi = int(SAMPLE_RATE / fmax), int(SAMPLE_RATE / fmin)
    if hi >= width:
        raise ValueError(f"a {window_ms} ms window is too short for fmin={fmin} Hz; widen it or raise fmin")
    w = _windows(audio, frames, width)
    w = w - w.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(w, n=2 * width, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, : hi + 2]
    # Normalise by the energy of the overlapping parts so long lags are not penalised.
    energy = np.maximum(ac[:, :1], 1e-12)
    lags = np.arange(ac.shape[1])
    r = ac / energy * (width / np.maximum(width - lags, 1))
    search = r[:, lo - 1 : hi + 2]
    # The shortest-lag local maximum within 15 % of the highest one: multiples of the period score
    # about as high as the period itself, and taking the global maximum would halve F0 (octave errors).
    top = search[:, 1:-1].max(axis=1, keepdims=True)
    mid = search[:, 1:-1]
    local = (mid >= search[:, :-2]) & (mid >= search[:, 2:]) & (mid >= 0.85 * top)
    best = np.where(local.any(axis=1), np.argmax(local, axis=1), np.argmax(mid, axis=1))
    peak = mid[np.arange(frames), best]
    lag = (best + lo).astype(np.float64)
    # Parabolic interpolation around the peak for sub-sample lags.
    i = best + lo
    ok = (i > 0) & (i < r.shape[1] - 1)
    a, b, c = r[np.arange(frames), i - ok], peak, r[np.arange(frames), i + ok]
    denom = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(ok & (denom < 0), 0.5 * (a - c) / denom, 0.0)
    f0 = SAMPLE_RATE / (lag + np.clip(shift, -0.5, 0.5))
    loud = frame_loudness(audio, frames, window_ms=window_ms)
    return np.where((peak >= voicing) & (loud > loud.max() - quiet_db), f0, np.nan)


def utterance_prosody(audio: np.ndarray) -> dict[str, float]:
    """Clip-level summary: mean and std of the loudness (dB) of non-silent frames, and median and
    spread (std of log2 F0, in octaves) of the voiced F0, and the voiced fraction."""
    loud = frame_loudness(audio)
    f0 = frame_pitch(audio)
    speech = loud > loud.max() - 40
    voiced = f0[np.isfinite(f0)]
    return {
        "loudness_db": float(loud[speech].mean()),
        "loudness_std_db": float(loud[speech].std()),
        "f0_hz": float(np.median(voiced)) if len(voiced) else float("nan"),
        "f0_spread_oct": float(np.std(np.log2(voiced))) if len(voiced) > 1 else float("nan"),
        "voiced_fraction": float(np.isfinite(f0).mean()) if len(f0) else 0.0,
    }
