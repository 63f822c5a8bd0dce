"""The media of one dashboard clip: an audio excerpt (Ogg/Opus, else FLAC), its spectrogram as a WebP image
(else PNG) with the ticks of its frequency and time axes, and SVG drawings (activation over time,
activation-density histogram) written as strings for the page.

Compressed media keep a dashboard of every feature small enough to publish: on LibriSpeech test-clean a 3-s
clip is about 8 kB as Opus at ~20 kbit/s (95 kB as 16-bit WAV) and its spectrogram about 8 kB as lossy WebP
at the height it is shown (138 kB as full-height RGBA PNG); ``benchmarks/dashboard_size.py`` measures it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_sae.audio.constants import HOP_LENGTH, SAMPLE_RATE

SVG_W, SVG_H = 1000, 100
SPECTROGRAM_HEIGHT = 140
"""Pixel rows of a spectrogram image: the height the page shows it at (201 frequency bins are resampled)."""
OPUS_COMPRESSION = 0.95
"""libsndfile's Opus compression level (0 best quality, 1 smallest) for the clips."""


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


def _normalised(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    """audio[start:end] (seconds), peak-normalised to 0.9 so quiet clips are audible."""
    clip = excerpt(audio, start, end)
    peak = float(np.abs(clip).max()) if len(clip) else 0.0
    return clip * (0.9 / peak) if peak > 0 else clip


def write_wav(path: Path, audio: np.ndarray, start: float, end: float) -> None:
    """16-bit PCM WAV of audio[start:end] (seconds), peak-normalised so quiet clips are audible."""
    sf.write(path, _normalised(audio, start, end), SAMPLE_RATE, subtype="PCM_16")


def audio_format() -> tuple[str, str, str]:
    """``(extension, soundfile format, subtype)`` of the dashboard's clips: Ogg/Opus where this libsndfile
    writes it (1.0.29 and later), else FLAC (lossless, about 0.8x the WAV)."""
    if "OPUS" in sf.available_subtypes("OGG"):
        return "ogg", "OGG", "OPUS"
    return "flac", "FLAC", "PCM_16"


def write_audio(path: Path, audio: np.ndarray, start: float, end: float) -> None:
    """audio[start:end] (seconds), peak-normalised, in the format of :func:`audio_format` (``path``'s
    extension should be the one it names)."""
    _, fmt, subtype = audio_format()
    # Opus: libsndfile's compression level 0.95 is about 20 kbit/s at 16 kHz, plenty for speech.
    extra = {"compression_level": OPUS_COMPRESSION} if subtype == "OPUS" else {}
    sf.write(path, _normalised(audio, start, end), SAMPLE_RATE, format=fmt, subtype=subtype, **extra)


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


def image_format() -> str:
    """The extension of the dashboard's spectrograms: ``webp`` where Pillow writes WebP, else ``png``."""
    from PIL import features

    return "webp" if features.check("webp") else "png"


def write_spectrogram(
    path: Path, audio: np.ndarray, start: float, end: float, quality: int = 60, height: int = SPECTROGRAM_HEIGHT
) -> None:
    """The spectrogram of audio[start:end] (seconds) as an RGB image ``height`` pixels tall, one column per
    10-ms frame (80 dB of range, magma colours): lossy WebP when ``path`` ends in .webp, else an 8-bit
    palette PNG."""
    from matplotlib import colormaps
    from PIL import Image

    db = log_spectrogram(excerpt(audio, start, end))
    top = float(db.max())
    level = np.clip((db - (top - 80)) / 80, 0, 1)
    rgb = (colormaps["magma"](level)[..., :3] * 255).round().astype(np.uint8)
    image = Image.fromarray(rgb)
    if height and height != image.height:
        image = image.resize((image.width, height), Image.LANCZOS)
    if Path(path).suffix.lower() == ".webp":
        image.save(path, "WEBP", quality=quality, method=6)
    else:
        image.quantize(256).save(path, "PNG", optimize=True)


def nice_step(span: float, target: int = 6) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``target`` ticks over ``span``."""
    raw = max(span, 1e-9) / target
    power = 10 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9)))


def time_ticks(start: float, end: float, target: int = 6) -> list[tuple[float, str]]:
    """``(fraction of the width, label)`` of the round times (utterance seconds) inside [start, end]."""
    step = nice_step(end - start, target)
    first = np.ceil(start / step - 1e-9) * step
    digits = max(0, -int(np.floor(np.log10(step))))
    ticks = []
    for t in np.arange(first, end + step * 1e-6, step):
        t = float(t) + 0.0  # no "-0.0"
        ticks.append((float((t - start) / max(end - start, 1e-9)) + 0.0, f"{t:.{digits}f}"))
    return ticks


def frequency_ticks(top_hz: float = SAMPLE_RATE / 2, step_hz: float = 2000) -> list[tuple[float, str]]:
    """``(fraction of the height from the bottom, label in kHz)`` of the spectrogram's frequency axis."""
    return [(hz / top_hz, f"{hz / 1000:g}") for hz in np.arange(0, top_hz + 1, step_hz)]


def activation_svg(
    times: np.ndarray, acts: np.ndarray, start: float, end: float, scale: float, peak: float | None = None
) -> str:
    """An SVG (stretched over the spectrogram) of activation against time in [start, end]."""
    keep = (times >= start) & (times <= end)
    t, a = times[keep], np.clip(acts[keep] / max(scale, 1e-12), 0, 1)
    # Inside a run of zeros only the run's ends shape the drawing: drop the points between them.
    zero = a == 0
    inner = zero & np.r_[False, zero[:-1]] & np.r_[zero[1:], False]
    t, a = t[~inner], a[~inner]
    span = max(end - start, 1e-9)
    # Whole viewBox units (0.1 % of the width, 1 % of the height) keep the page small.
    pts = " ".join(f"{(ti - start) / span * SVG_W:.0f},{SVG_H - ai * (SVG_H - 4):.0f}" for ti, ai in zip(t, a))
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
