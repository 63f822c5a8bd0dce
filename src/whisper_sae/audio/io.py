"""Reading audio files and checking in-memory audio: everything leaves here as float32 mono 16 kHz."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_sae.audio.utterance import SAMPLE_RATE, AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


def resample(audio: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy) from ``sr`` to ``target`` Hz; exact ratio, no drift in length."""
    if sr == target:
        return audio
    from scipy.signal import resample_poly  # imported here: scipy.signal is slow to import

    g = gcd(int(sr), int(target))
    return resample_poly(audio, target // g, int(sr) // g).astype(np.float32)


def check_audio(audio: np.ndarray, sr: int, name: str = "audio") -> np.ndarray:
    """Return ``audio`` as float32 mono at 16 kHz, or raise ``AudioError`` naming ``name``.

    Accepts ``[n]`` or ``[n, channels]`` arrays (integer PCM or float) at any sample rate. Empty
    audio and audio holding NaN or infinite values are errors; silence is valid audio and is kept
    (a corpus may well contain pauses, and Whisper's activations on them are real data).
    """
    x = np.asarray(audio)
    if x.ndim == 2:
        # soundfile gives [frames, channels]; a [channels, frames] array (torchaudio's habit) has few rows.
        if x.shape[0] <= 8 < x.shape[1]:
            x = x.T
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise AudioError(f"{name}: audio has shape {x.shape}; expected [samples] or [samples, channels].")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32, copy=False)
    if x.size == 0:
        raise AudioError(f"{name}: the audio is empty (0 samples).")
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise AudioError(f"{name}: {bad} of {x.size} samples are NaN or infinite; the file is damaged.")
    if sr <= 0:
        raise AudioError(f"{name}: sample rate {sr} Hz is not a positive number.")
    x = resample(x, int(sr))
    return np.ascontiguousarray(x, dtype=np.float32)


def decode_audio(data: bytes | str | Path, name: str | None = None) -> np.ndarray:
    """Decode a file path or in-memory file bytes (any format libsndfile reads) to 16 kHz mono."""
    import io

    name = name or (str(data) if not isinstance(data, bytes) else "audio bytes")
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    try:
        audio, sr = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        formats = ", ".join(sorted(sf.available_formats()))
        raise AudioError(f"{name}: cannot decode this audio ({err}); readable formats here are {formats}.") from None
    return check_audio(audio, sr, name)


def load_audio(path: str | Path) -> np.ndarray:
    """Read an audio file (wav/flac/ogg/mp3...) as float32 mono 16 kHz; ``AudioError`` names the file."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file.")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes).")
    return decode_audio(path, str(path))
