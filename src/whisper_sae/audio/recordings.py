"""Real recordings without speech, cut into Whisper-sized clips: a non-speech corpus from audio files.

The generated corpus (``audio.nonspeech``) is exact and licence-free but synthetic. Real background
noise, music and animal sounds test whether a hallucination finding holds outside it. This module
takes folders of such recordings (any format ``load_audio`` reads, any rate, stereo folded to mono)
and writes the same layout as the generated corpus, so every tool that reads one reads the other:

    OUT/nonspeech/KIND/KIND-NNN.flac   16 kHz, 16-bit; NNN counts the kind's clips in file order
    OUT/metadata.tsv                   id, kind, source (file under its folder), start, duration, level_dbfs
    OUT/corpus.json                    kind "nonspeech", origin "recordings", clips, seconds, sources

A clip's ``kind`` is the name of the folder that holds its file (``noise/pink.wav`` -> ``noise``), or of
the given folder itself for files directly inside it. Each file gives consecutive clips of
``clip_seconds`` from its start; a shorter tail is kept when it is at least ``min_seconds`` long; at most
``max_clips_per_file`` clips per file, so one long track cannot dominate. Nothing is written until every
file has been read, so an unreadable file (named in the error) leaves no half-written corpus.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from whisper_sae.audio.constants import SAMPLE_RATE, WINDOW_SECONDS
from whisper_sae.audio.io import AUDIO_EXTENSIONS, load_audio
from whisper_sae.audio.nonspeech import check_output_folder, level_dbfs, write_tables


def _kind_name(name: str) -> str:
    kind = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower()
    return kind or "recording"


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def cut_recordings(
    sources,
    out,
    *,
    clip_seconds: float = WINDOW_SECONDS,
    min_seconds: float = 1.0,
    max_clips_per_file: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Cut every audio file under the folders ``sources`` into clips (see the module docstring) and write
    them as a non-speech corpus in folder ``out``; returns ``out``."""
    import soundfile as sf

    out = Path(out)
    sources = [Path(s) for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    if not sources:
        raise ValueError("give at least one folder of recordings to cut")
    if not 0 < min_seconds <= clip_seconds <= WINDOW_SECONDS:
        raise ValueError(
            f"clip lengths must satisfy 0 < min_seconds <= clip_seconds <= {WINDOW_SECONDS} (one Whisper "
            f"window); got min {min_seconds}, clip {clip_seconds}"
        )
    if max_clips_per_file is not None and max_clips_per_file < 1:
        raise ValueError(f"max_clips_per_file must be at least 1 (or None for all); got {max_clips_per_file}")
    files: list[tuple[Path, str, str]] = []  # (file, kind, source label)
    for src in sources:
        if not src.is_dir():
            raise ValueError(f"{src}: not a folder of recordings")
        found = _audio_files(src)
        if not found:
            raise ValueError(f"{src} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        for f in found:
            rel = f.relative_to(src)
            kind = _kind_name(rel.parts[0] if len(rel.parts) > 1 else src.name)
            files.append((f, kind, f"{src.name}/{rel.as_posix()}"))
    check_output_folder(out, overwrite)

    step = int(round(clip_seconds * SAMPLE_RATE))
    shortest = int(round(min_seconds * SAMPLE_RATE))
    clips: list[tuple[str, np.ndarray, dict]] = []
    counts: dict[str, int] = {}
    for path, kind, label in files:
        audio = load_audio(path)  # AudioError names the file; nothing is written yet
        if not np.all(np.isfinite(audio)):
            raise ValueError(f"{path}: the audio holds NaN or infinite samples")
        starts = [s for s in range(0, len(audio), step) if len(audio) - s >= shortest]
        if max_clips_per_file is not None:
            starts = starts[:max_clips_per_file]
        for s in starts:
            piece = audio[s : s + step]
            i = counts.get(kind, 0)
            counts[kind] = i + 1
            row = {
                "id": f"{kind}-{i:03d}",
                "kind": kind,
                "source": label,
                "start": round(s / SAMPLE_RATE, 2),
                "duration": round(len(piece) / SAMPLE_RATE, 2),
                "level_dbfs": level_dbfs(piece, 1),
            }
            clips.append((kind, piece, row))
    if not clips:
        raise ValueError(f"no recording under {', '.join(map(str, sources))} is at least {min_seconds} s long")

    shutil.rmtree(out / "nonspeech", ignore_errors=True)
    for kind, piece, row in clips:
        folder = out / "nonspeech" / kind
        folder.mkdir(parents=True, exist_ok=True)
        peak = float(np.max(np.abs(piece))) if len(piece) else 0.0
        sf.write(folder / f"{row['id']}.flac", piece / peak if peak > 1.0 else piece, SAMPLE_RATE, subtype="PCM_16")
    columns = ["id", "kind", "source", "start", "duration", "level_dbfs"]
    write_tables(
        out,
        columns,
        [r for _, _, r in clips],
        {
            "kind": "nonspeech",
            "origin": "recordings",
            "kinds": sorted(counts),
            "clips_per_kind": dict(sorted(counts.items())),
            "n_clips": len(clips),
            "seconds": round(sum(r["duration"] for _, _, r in clips), 2),
            "clip_seconds": clip_seconds,
            "max_clips_per_file": max_clips_per_file,
            "sources": [str(s) for s in sources],
            "files": len(files),
            "sample_rate": SAMPLE_RATE,
        },
    )
    return out
