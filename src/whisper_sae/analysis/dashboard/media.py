"""The media of one dashboard clip: a WAV excerpt, its spectrogram as a PNG, and SVG drawings
(activation over time, activation-density histogram) written as strings for the page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_sae.audio.constants import HOP_LENGTH, SAMPLE_RATE

SVG_W, SVG_H = 1000, 100


def excerpt_bounds(peak: float, duration: float, seconds: float) -> tuple[float, float]:
    """A window of ``seconds`` centred on ``peak``, shifted to lie inside [0, duration]."""
    seconds = min(seconds, duration)
    start = min(max(peak - seconds / 2, 0.0), max(duration - seconds, 0.0))
    return start, start + seconds


def excerpt(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    """audio[start:end] (seconds), exactly round((end - start) * SAMPLE_RATE) samples where the audio has them
    (flooring both ends separately could give one sample more than the excerpt's length)."""
    first = int(round(start * SAMPLE_RATE))
    return np.asarray(audio[first : first + int(round((end - start) * SAMPLE_RATE))], dtype=np.float32)


def write_wav(path: Path, audio: np.ndarray, start: float, end: float) -> None:
    """16-bit PCM WAV of audio[start:end] (seconds), peak-normalised so quiet clips are audible."""
    clip = excerpt(audio, start, end)
    peak = float(np.abs(clip).max()) if len(clip) else 0.0
    if peak > 0:
        clip = clip * (0.9 / peak)
    sf.write(path, clip, SAMPLE_RATE, subtype="PCM_16")


def log_spectrogram(audio: np.ndarray, *, hop: int = HOP_LENGTH, window: int = 400) -> np.ndarray:
    """Log power [freq bins, frames] (dB, 0-8 kHz, 10-ms hop), the top row the highest frequency."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < window:
        audio = np.pad(audio, (0, window - len(audio)))
    n = 1 + (len(audio) - window) // hop
    frames = np.lib.stride_tricks.sliding_window_view(audio, window)[::hop][:n]
    power = np.abs(np.fft.rfft(frames * np.hanning(window), axis=1)) ** 2
    db = 10 * np.log10(power + 1e-10)
    return db.T[::-1]


def write_spectrogram_png(path: Path, audio: np.ndarray, start: float, end: float) -> None:
    import matplotlib.pyplot as plt

    db = log_spectrogram(excerpt(audio, start, end))
    top = float(db.max())
    plt.imsave(path, db, cmap="magma", vmin=top - 80, vmax=top)


def activation_svg(
    times: np.ndarray, acts: np.ndarray, start: float, end: float, scale: float, peak: float | None = None
) -> str:
    """An SVG (stretched over the spectrogram) of activation against time in [start, end]."""
    keep = (times >= start) & (times <= end)
    t, a = times[keep], np.clip(acts[keep] / max(scale, 1e-12), 0, 1)
    span = max(end - start, 1e-9)
    pts = " ".join(f"{(ti - start) / span * SVG_W:.1f},{SVG_H - ai * (SVG_H - 4):.1f}" for ti, ai in zip(t, a))
    fill = f"0,{SVG_H} {pts} {SVG_W},{SVG_H}" if pts else ""
    marker = ""
    if peak is not None and start <= peak <= end:
        x = (peak - start) / span * SVG_W
        marker = f'<line class="peak" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{SVG_H}"/>'
    return (
        f'<svg class="act" viewBox="0 0 {SVG_W} {SVG_H}" preserveAspectRatio="none" aria-hidden="true">'
        f'<polygon class="area" points="{fill}"/><polyline class="line" points="{pts}"/>{marker}</svg>'
    )


def histogram_svg(counts: np.ndarray, edges: np.ndarray, width: int = 600, height: int = 120) -> str:
    """Bars of a histogram over log10(activation), with the axis labelled in activation units."""
    counts = np.asarray(counts, dtype=np.float64)
    nz = np.nonzero(counts)[0]
    if len(nz) == 0:
        return '<p class="muted">This feature never fired on the analysed corpus.</p>'
    lo, hi = max(nz[0] - 2, 0), min(nz[-1] + 3, len(counts))
    counts, edges = counts[lo:hi], edges[lo : hi + 1]
    bar_w = width / len(counts)
    top = counts.max()
    bars = "".join(
        f'<rect x="{i * bar_w:.1f}" y="{height - 20 - c / top * (height - 30):.1f}" width="{bar_w * 0.9:.1f}" '
        f'height="{c / top * (height - 30):.1f}"><title>{10 ** edges[i]:.3g}–{10 ** edges[i + 1]:.3g}: '
        f"{int(c)}</title></rect>"
        for i, c in enumerate(counts)
    )
    ticks = "".join(
        f'<text x="{i * bar_w:.1f}" y="{height - 4}">{10 ** edges[i]:.2g}</text>'
        for i in range(0, len(counts) + 1, max(1, len(counts) // 6))
    )
    return (
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="activation density">{bars}{ticks}</svg>'
    )
