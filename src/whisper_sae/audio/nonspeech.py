"""A corpus without speech, made here from a seed: silence, noises, tones, chords, music-like arpeggios,
room tone.

Why: Whisper writes words for audio that holds none (it was trained on subtitles, where music and
silence often carry text). To measure how often (``circuits.hallucination``), and later to find the
features that fire when it does, the project needs audio that is certainly speech-free, of known kinds,
at varied lengths and levels, that anyone can regenerate bit for bit: no download, no licence.

Layout: ``OUT/nonspeech/KIND/KIND-NNN.flac`` (16 kHz, 16-bit), ``OUT/metadata.tsv`` (id, kind, seed,
duration, level_dbfs, detail) and ``OUT/corpus.json``. ``load_corpus(OUT)`` reads it, with ``kind``,
``seed``, ``duration``, ``level_dbfs`` and ``detail`` as each utterance's attributes; no utterance has
a transcript (the right one is empty). Clip ``i`` of a kind depends only on (seed, kind, i), so asking
for more clips per kind keeps the earlier ones.

Kinds: ``silence`` (digital zeros), ``white_noise``, ``pink_noise`` (power ∝ 1/f), ``brown_noise``
(∝ 1/f²), ``tone`` (a sine, 80 Hz–4 kHz), ``chord`` (three or four notes with harmonics), ``music``
(an arpeggiated chord progression with harmonics, plucked envelopes and a bass line), ``room_tone``
(low-passed noise plus mains hum at 50 or 60 Hz with harmonics). Levels are RMS in dBFS, drawn from
-45 to -15 (peaks kept below full scale).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from whisper_sae.audio.constants import SAMPLE_RATE, WINDOW_SECONDS

KINDS = ("silence", "white_noise", "pink_noise", "brown_noise", "tone", "chord", "music", "room_tone")
LEVEL_RANGE_DBFS = (-45.0, -15.0)
_FADE_SECONDS = 0.01
_NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def _rms_db(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def _coloured_noise(rng, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power spectral density falls as 1/f**exponent (0 white, 1 pink, 2 brown),
    flat below 20 Hz so that the level is not all in a DC drift."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum *= np.maximum(freqs, 20.0) ** (-exponent / 2)
    return np.fft.irfft(spectrum, n)


def _low_pass(x: np.ndarray, cutoff: float) -> np.ndarray:
    """Zero-phase low-pass in the frequency domain with a gentle (4th-order Butterworth-like) roll-off."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return np.fft.irfft(spectrum / np.sqrt(1 + (freqs / cutoff) ** 8), len(x))


def _note(freq: float, n: int, rng, n_harmonics: int, decay: float | None) -> np.ndarray:
    """A note of ``n`` samples: harmonics with falling amplitudes, a 5-ms attack, then exponential decay
    with time constant ``decay`` seconds (None: sustained)."""
    t = np.arange(n) / SAMPLE_RATE
    wave = np.zeros(n)
    for k in range(1, n_harmonics + 1):
        if k * freq < SAMPLE_RATE / 2 - 500:
            wave += 0.6 ** (k - 1) * np.sin(2 * np.pi * k * freq * t + rng.uniform(0, 2 * np.pi))
    envelope = np.minimum(t / 0.005, 1.0)
    if decay is not None:
        envelope *= np.exp(-t / decay)
    return wave * envelope


def _name(freq: float) -> str:
    midi = int(round(69 + 12 * np.log2(freq / 440.0)))
    return f"{_NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def _silence(rng, n):
    return np.zeros(n), "digital silence"


def _white(rng, n):
    return rng.standard_normal(n), "white noise"


def _pink(rng, n):
    return _coloured_noise(rng, n, 1.0), "pink noise (1/f)"


def _brown(rng, n):
    return _coloured_noise(rng, n, 2.0), "brown noise (1/f^2)"


def _tone(rng, n):
    freq = float(np.exp(rng.uniform(np.log(80), np.log(4000))))
    t = np.arange(n) / SAMPLE_RATE
    return np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)), f"tone {freq:.1f} Hz"


_CHORDS = {"major": (0, 4, 7), "minor": (0, 3, 7), "dominant 7th": (0, 4, 7, 10), "major 7th": (0, 4, 7, 11)}


def _chord(rng, n):
    root = float(np.exp(rng.uniform(np.log(110), np.log(440))))
    quality = list(_CHORDS)[rng.integers(len(_CHORDS))]
    notes = [root * 2 ** (s / 12) for s in _CHORDS[quality]]
    wave = sum(_note(f, n, rng, n_harmonics=4, decay=None) for f in notes)
    # a slow swell and fade, like a sustained pad
    t = np.arange(n) / SAMPLE_RATE
    swell = np.minimum(1.0, t / 0.3) * np.minimum(1.0, (t[-1] - t + 1e-9) / 0.5)
    return wave * swell, f"{_name(root)} {quality} chord, root {root:.1f} Hz"


# I-vi-IV-V: four chords of a major key, in semitones from the key's root.
_PROGRESSION = [(0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14)]


def _music(rng, n):
    key = 130.81 * 2 ** (int(rng.integers(12)) / 12)  # C3 up to B3
    bpm = float(rng.uniform(80, 160))
    step = int(round(SAMPLE_RATE * 60 / bpm / 2))  # eighth notes
    pattern = [0, 1, 2, 1]  # up and down the chord: root, third, fifth, third
    wave = np.zeros(n)
    for index, start in enumerate(range(0, n, step)):
        chord = _PROGRESSION[(index // 8) % len(_PROGRESSION)]
        semitone = chord[pattern[index % 4]] + 12  # arpeggio an octave above the key
        length = min(n - start, 4 * step)  # each note rings on under the next ones
        wave[start : start + length] += _note(key * 2 ** (semitone / 12), length, rng, n_harmonics=6, decay=0.25)
        if index % 8 == 0:  # a bass note per chord (two beats)
            length = min(n - start, 8 * step)
            wave[start : start + length] += 0.8 * _note(key / 2 * 2 ** (chord[0] / 12), length, rng, 3, decay=0.8)
    return wave, f"arpeggio, I-vi-IV-V in {_name(key)}, {bpm:.0f} bpm"


def _room_tone(rng, n):
    cutoff = float(rng.uniform(150, 600))
    hum = float(rng.choice([50.0, 60.0]))
    noise = _low_pass(_coloured_noise(rng, n, 1.0), cutoff)
    noise /= max(np.sqrt(np.mean(noise**2)), 1e-12)
    t = np.arange(n) / SAMPLE_RATE
    hum_db = float(rng.uniform(-20, -6))  # hum level relative to the noise
    mains = sum(
        a * np.sin(2 * np.pi * k * hum * t + rng.uniform(0, 2 * np.pi)) for k, a in [(1, 1.0), (2, 0.5), (3, 0.3)]
    )
    mains *= 10 ** (hum_db / 20) / np.sqrt(np.mean(mains**2))
    return noise + mains, f"room tone, low-pass {cutoff:.0f} Hz, hum {hum:.0f} Hz at {hum_db:.0f} dB"


_MAKERS = {
    "silence": _silence,
    "white_noise": _white,
    "pink_noise": _pink,
    "brown_noise": _brown,
    "tone": _tone,
    "chord": _chord,
    "music": _music,
    "room_tone": _room_tone,
}


def make_clip(
    kind: str, index: int, seed: int = 0, *, min_seconds: float = 1.0, max_seconds: float = WINDOW_SECONDS
) -> tuple[np.ndarray, dict]:
    """(audio float32 at 16 kHz, its metadata row) of clip ``index`` of ``kind``; the same for the same
    (kind, index, seed) and duration range."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown non-speech kind {kind!r}; choose from {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, KINDS.index(kind), index])
    duration = round(float(rng.uniform(min_seconds, max_seconds)), 2)
    n = int(round(duration * SAMPLE_RATE))
    level = float(rng.uniform(*LEVEL_RANGE_DBFS))
    wave, detail = _MAKERS[kind](rng, n)
    if np.any(wave):
        wave = wave * 10 ** ((level - _rms_db(wave)) / 20)
        peak = float(np.max(np.abs(wave)))
        if peak > 0.95:  # keep peaks below full scale; the level drops accordingly
            wave *= 0.95 / peak
        fade = min(int(_FADE_SECONDS * SAMPLE_RATE), n // 2)
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
        wave[:fade] *= ramp
        wave[n - fade :] *= ramp[::-1]
    audio = wave.astype(np.float32)
    row = {
        "id": f"{kind}-{index:03d}",
        "kind": kind,
        "seed": seed,
        "duration": duration,
        "level_dbfs": level_dbfs(audio),
        "detail": detail,
    }
    return audio, row


def make_nonspeech_corpus(
    out,
    n_per_kind: int = 8,
    seed: int = 0,
    *,
    kinds=KINDS,
    min_seconds: float = 1.0,
    max_seconds: float = WINDOW_SECONDS,
    overwrite: bool = False,
) -> Path:
    """Write ``n_per_kind`` clips of each kind into folder ``out`` (see the module docstring); returns ``out``."""
    import soundfile as sf

    out = Path(out)
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown non-speech kinds {unknown or '(none given)'}; choose from {', '.join(KINDS)}")
    if isinstance(n_per_kind, bool) or not isinstance(n_per_kind, int) or n_per_kind < 1:
        raise ValueError(f"n_per_kind must be a whole number of clips, at least 1; got {n_per_kind!r}")
    if not 0 < min_seconds <= max_seconds <= WINDOW_SECONDS:
        raise ValueError(
            f"clip durations must satisfy 0 < min_seconds <= max_seconds <= {WINDOW_SECONDS} "
            f"(one Whisper window); got {min_seconds} to {max_seconds}"
        )
    check_output_folder(out, overwrite)
    shutil.rmtree(out / "nonspeech", ignore_errors=True)
    rows = []
    for kind in kinds:
        folder = out / "nonspeech" / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_kind):
            audio, row = make_clip(kind, i, seed, min_seconds=min_seconds, max_seconds=max_seconds)
            sf.write(folder / f"{row['id']}.flac", audio, SAMPLE_RATE, subtype="PCM_16")
            rows.append(row)
    write_tables(
        out,
        ["id", "kind", "seed", "duration", "level_dbfs", "detail"],
        rows,
        {
            "kind": "nonspeech",
            "kinds": kinds,
            "n_per_kind": n_per_kind,
            "seed": seed,
            "min_seconds": min_seconds,
            "max_seconds": max_seconds,
            "n_clips": len(rows),
            "seconds": round(sum(r["duration"] for r in rows), 2),
            "sample_rate": SAMPLE_RATE,
        },
    )
    return out


def check_output_folder(out: Path, overwrite: bool) -> None:
    """``out`` may receive a non-speech corpus: new, empty, or (with ``overwrite``) one written there before."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder to write the non-speech corpus into")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"{out} is not empty; give an empty or new folder, or pass overwrite "
                "(--overwrite) to replace a corpus written there before"
            )
        if (
            not (out / "corpus.json").is_file()
            or json.loads((out / "corpus.json").read_text()).get("kind") != "nonspeech"
        ):
            raise ValueError(
                f"{out} holds something other than a non-speech corpus (no corpus.json of kind "
                "'nonspeech'); overwrite only replaces such a corpus, so give another folder"
            )


def write_tables(out: Path, columns: list[str], rows: list[dict], summary: dict) -> None:
    """A non-speech corpus's ``metadata.tsv`` (one row per clip) and ``corpus.json`` (``summary``)."""
    lines = ["\t".join(columns)] + ["\t".join(str(r[c]) for c in columns) for r in rows]
    (out / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "corpus.json").write_text(json.dumps(summary, indent=1) + "\n")


def level_dbfs(x: np.ndarray, digits: int = 2) -> float | str:
    """RMS level in dBFS, rounded; "" for digital silence (the metadata's empty cell)."""
    level = _rms_db(x) if len(x) else float("-inf")
    return round(level, digits) if np.isfinite(level) else ""
