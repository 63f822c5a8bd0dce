"""Cutting audio into Whisper's 30-s windows: the one place that decides where a window starts and ends.

Whisper's encoder always hears exactly one 30-s window (``constants.WINDOW_SAMPLES``); a longer clip is
heard as consecutive windows, the way Whisper walks through long-form audio, and a shorter one (or the
last piece of a longer one) is zero-padded by the feature extractor. Extraction, teacher-forced decoder
text, transcription and the analyses all cut audio this same way, so they agree on which samples a
window holds. ``window_spans`` gives the cuts from a sample count alone (for planning before audio is
decoded); ``split_windows`` applies them to audio; ``first_window`` is the one window a single-window
consumer (a transcript of the first 30 s, word timings) gets.
"""

from __future__ import annotations

import numpy as np

from whisper_sae.audio.constants import WINDOW_SAMPLES


def window_spans(n_samples: int) -> list[tuple[int, int]]:
    """Consecutive ``(start_sample, n_samples)`` windows of at most 30 s covering ``n_samples`` samples."""
    n_samples = int(n_samples)
    if n_samples < 0:
        raise ValueError(f"a clip cannot have {n_samples} samples")
    return [(start, min(WINDOW_SAMPLES, n_samples - start)) for start in range(0, n_samples, WINDOW_SAMPLES)]


def split_windows(audio) -> list[tuple[int, np.ndarray]]:
    """``(start_sample, chunk)`` per 30-s window of 16-kHz mono ``audio``; chunks are views, the last may be short."""
    return [(start, audio[start : start + length]) for start, length in window_spans(len(audio))]


def first_window(audio):
    """The first 30 s of ``audio`` (all of it when shorter): what Whisper hears of a clip in one window."""
    return audio[:WINDOW_SAMPLES]
