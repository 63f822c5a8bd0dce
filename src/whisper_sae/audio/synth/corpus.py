"""Write a synthetic corpus in LibriSpeech layout: audio, ``trans.txt``, alignments, ``metadata.tsv``.

Layout under ``out``: ``synth/SPK/CHAPTER/SPK-CHAPTER-UTT.flac`` with ``SPK-CHAPTER.trans.txt`` and one
``SPK-CHAPTER-UTT.json`` alignment beside each file; ``metadata.tsv`` (utterance id → speaker
attributes) and ``corpus.json`` (settings and totals) at the root. ``load_corpus(out)`` reads it all.

Reproducibility: eSpeak's output depends a little on what the same process synthesized before, so
each speaker is synthesized in a fresh process (``synth.worker``), and the noise some voices add is
seeded per utterance; the corpus is then identical for a given seed and settings, whatever the
number of workers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from whisper_sae.audio.io import resample
from whisper_sae.audio.synth.alignment import alignment_from_events, normalise_transcript
from whisper_sae.audio.synth.texts import text_bank
from whisper_sae.audio.synth.voices import LANGUAGE_VOICES, Speaker, check_languages, design_speakers
from whisper_sae.audio.synth.worker import speak_in_fresh_process
from whisper_sae.audio.utterance import SAMPLE_RATE

SUBSET = "synth"
METADATA_COLUMNS = (
    "id",
    "speaker",
    "language",
    "accent",
    "voice",
    "variant",
    "gender",
    "quality",
    "rate",
    "pitch",
    "text_id",
    "duration",
)


class CorpusExistsError(FileExistsError, ValueError):
    """The output folder already holds a corpus (a ValueError too, so the CLI shows it as a sentence)."""


def _estimate_seconds(text: str, rate: int) -> float:
    # Fitted on the English bank (r = 0.92): eSpeak's words are short, so it beats its nominal rate.
    return len(text.split()) * 60.0 / rate * 0.78


def _pick_speakers(speakers: list[Speaker], used: dict[int, int], k: int, rng: random.Random) -> list[Speaker]:
    """The ``k`` least-used speakers, alternating genders, ties broken at random (balanced and mixed)."""
    by_gender = {
        g: sorted((s for s in speakers if s.gender == g), key=lambda s: (used[s.id], rng.random()))
        for g in ("female", "male")
    }
    # The gender that has spoken less (per speaker) goes first, so an odd k does not favour one gender.
    load = {g: sum(used[s.id] for s in v) / len(v) if v else float("inf") for g, v in by_gender.items()}
    order = sorted(by_gender, key=lambda g: (load[g], rng.random()))
    chosen = []
    while len(chosen) < k:
        for g in order:
            if by_gender[g] and len(chosen) < k:
                chosen.append(by_gender[g].pop(0))
    for s in chosen:
        used[s.id] += 1
    return chosen


def plan_corpus(
    minutes: float,
    languages,
    seed: int,
    balanced: bool,
    voices_per_text: int,
    n_speakers: int,
    whispered: float,
    max_words: int | None = None,
    accents=None,
) -> list[tuple[Speaker, list[dict]]]:
    """Decide who says what: a list of (speaker, [{"id", "text", "text_id"}]) jobs, from the seed alone."""
    rng = random.Random(seed)
    jobs: dict[int, tuple[Speaker, list[dict]]] = {}
    budget = minutes * 60.0 / len(languages)
    for li, language in enumerate(languages):
        own = [a for a in accents or () if a in LANGUAGE_VOICES[language]] or None
        speakers = design_speakers(
            n_speakers, language, rng, first_id=1000 + 100 * li, whispered=whispered, accents=own
        )
        used = {s.id: 0 for s in speakers}
        bank = text_bank(language)
        order = [i for i, text in enumerate(bank) if max_words is None or len(text.split()) <= max_words]
        if not order:
            raise ValueError(f"no {language} text has at most {max_words} words; allow longer texts.")
        rng.shuffle(order)
        k = min(voices_per_text, len(speakers)) if balanced else 1
        total, i = 0.0, 0
        while total < budget:
            text_index = order[i % len(order)]
            i += 1
            for s in _pick_speakers(speakers, used, k, rng):
                job = jobs.setdefault(s.id, (s, []))[1]
                job.append(
                    {
                        "id": f"{s.id}-{li + 1}-{len(job):04d}",
                        "text": bank[text_index],
                        "text_id": f"{language}-{text_index:04d}",
                        "rand_seed": rng.getrandbits(31),
                    }
                )
                total += _estimate_seconds(bank[text_index], s.rate)
    return [jobs[key] for key in sorted(jobs)]


def _write_utterance(
    folder: Path, speaker: Speaker, utt: dict, samples: np.ndarray, events: list, sample_rate: int
) -> dict:
    """Resample to 16 kHz, write FLAC + alignment JSON, return the utterance's metadata row."""
    audio = resample(samples.astype(np.float32) / 32768.0, sample_rate, SAMPLE_RATE)
    audio = np.clip(audio, -1.0, 1.0)
    duration = len(audio) / SAMPLE_RATE
    sf.write(folder / f"{utt['id']}.flac", audio, SAMPLE_RATE, subtype="PCM_16")
    alignment = alignment_from_events(utt["id"], utt["text"], events, duration)
    (folder / f"{utt['id']}.json").write_text(json.dumps(alignment, ensure_ascii=False), encoding="utf-8")
    return {
        **speaker.row(),
        "id": utt["id"],
        "text_id": utt["text_id"],
        "duration": round(duration, 3),
        "transcript": normalise_transcript(utt["text"]),
    }


def _run_jobs(jobs, root: Path, workers: int, progress: bool) -> tuple[list[dict], str]:
    rows: list[dict] = []
    version = ""
    bar = tqdm(total=sum(len(u) for _, u in jobs), desc="synthesizing", unit="utt", disable=not progress)
    # A fresh process per speaker: eSpeak's state never leaks between speakers. Workers only speak;
    # resampling and writing happen here, so they never import scipy (slow to import).
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(speak_in_fresh_process, s, utts) for s, utts in jobs]
        for (speaker, utts), future in zip(jobs, futures):
            version, sample_rate, spoken = future.result()
            folder = root / SUBSET / str(speaker.id) / utts[0]["id"].split("-")[1]
            folder.mkdir(parents=True, exist_ok=True)
            for utt, (samples, events) in zip(utts, spoken):
                rows.append(_write_utterance(folder, speaker, utt, samples, events, sample_rate))
                bar.update(1)
    bar.close()
    return rows, version


def _write_tables(root: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: r["id"])
    by_chapter: dict[Path, list[dict]] = {}
    for row in rows:
        spk, chapter, _ = row["id"].split("-")
        by_chapter.setdefault(root / SUBSET / spk / chapter / f"{spk}-{chapter}.trans.txt", []).append(row)
    for path, chapter_rows in by_chapter.items():
        path.write_text("".join(f"{r['id']} {r['transcript']}\n" for r in chapter_rows), encoding="utf-8")
    lines = ["\t".join(METADATA_COLUMNS)]
    lines += ["\t".join(str(r[c]) for c in METADATA_COLUMNS) for r in rows]
    (root / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def synthesize_corpus(
    out_dir,
    *,
    minutes: float = 2.0,
    languages=("en",),
    seed: int = 0,
    balanced: bool = False,
    voices_per_text: int = 3,
    n_speakers: int = 12,
    whispered: float = 0.0,
    max_words: int | None = None,
    accents=None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Synthesize about ``minutes`` of speech into ``out_dir`` (LibriSpeech layout) and return ``out_dir``.

    ``balanced``: every text is spoken by ``voices_per_text`` speakers of both genders, so content
    and speaker are not confounded. ``n_speakers`` per language, half female, accents cycled;
    ``whispered`` is the fraction of speakers using eSpeak's whisper variants; ``max_words`` keeps
    only texts that short (quick tests want short utterances); ``accents`` (eSpeak voice names such
    as ``en-us``, ``en-gb-x-rp``) restricts the voices. The same seed and
    settings give the same corpus, byte for byte.
    """
    languages = check_languages([languages] if isinstance(languages, str) else languages)
    accents = [accents] if isinstance(accents, str) else list(accents or [])
    known = {a for lang in languages for a in LANGUAGE_VOICES[lang]}
    if set(accents) - known:
        raise ValueError(
            f"accents {sorted(set(accents) - known)} are not voices of {list(languages)}; choose from {sorted(known)}."
        )
    if minutes <= 0:
        raise ValueError(f"minutes must be positive, not {minutes}.")
    if balanced and voices_per_text < 2:
        raise ValueError(f"a balanced corpus needs voices_per_text >= 2, not {voices_per_text}.")
    root = Path(out_dir)
    if (root / SUBSET).exists() or (root / "metadata.tsv").exists():
        if not overwrite:
            raise CorpusExistsError(
                f"{root} already holds a synthetic corpus; choose another folder or pass "
                f"overwrite=True (--overwrite) to replace it."
            )
        shutil.rmtree(root / SUBSET, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    jobs = plan_corpus(minutes, languages, seed, balanced, voices_per_text, n_speakers, whispered, max_words, accents)
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    rows, version = _run_jobs(jobs, root, workers, progress)
    _write_tables(root, rows)
    settings = {
        "minutes": minutes,
        "languages": list(languages),
        "seed": seed,
        "balanced": balanced,
        "voices_per_text": voices_per_text,
        "n_speakers": n_speakers,
        "whispered": whispered,
        "max_words": max_words,
        "accents": accents or None,
    }
    summary = {
        "format": "whisper-sae-synth/1",
        "settings": settings,
        "espeak": version,
        "n_utterances": len(rows),
        "n_speakers": len(jobs),
        "seconds": round(sum(r["duration"] for r in rows), 3),
    }
    (root / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return root
