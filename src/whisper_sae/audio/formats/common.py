"""What the format readers share: speaker attributes in one vocabulary, delimited tables read without
guessing, relative audio paths resolved, and audio segments cut from a recording.

Attributes are normalised so that a probe for ``gender`` or ``age`` sees the same values whatever the
corpus: gender is ``female``/``male`` (from f/m, female/male, Common Voice's ``female_feminine``...;
anything else is kept lower-cased, e.g. ``other``), age is a number (Common Voice's decade bands
become their middle, e.g. ``twenties`` → 25, with the band kept as ``age_group``), and the other
columns are stripped strings, or numbers where every value of the column is one.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_sae.audio.io import check_audio
from whisper_sae.audio.textfile import read_text
from whisper_sae.audio.utterance import AudioError

log = logging.getLogger(__name__)

AGE_BANDS = {
    "teens": 16,
    "twenties": 25,
    "thirties": 35,
    "fourties": 45,
    "forties": 45,
    "fifties": 55,
    "sixties": 65,
    "seventies": 75,
    "eighties": 85,
    "nineties": 95,
}
RENAMED = {"accents": "accent"}  # Common Voice renamed accent to accents in v7


class MissingExtraError(RuntimeError):
    """An optional dependency a corpus format needs is not installed; the message gives the pip command."""


def normalise_gender(value) -> str | None:
    """``female``/``male`` for the usual spellings (as metadata.py does for ``sex``), else the lower-cased value."""
    text = str(value).strip().lower()
    if not text:
        return None
    if text in ("f", "female", "woman", "w") or text.startswith("female"):
        return "female"
    if text in ("m", "male", "man") or text.startswith("male"):
        return "male"
    return text


def parse_number(text: str):
    """An int where the value is whole ("24.0" → 24), else a float; ``ValueError`` if not a number."""
    x = float(text)
    if not np.isfinite(x):
        raise ValueError(text)
    return int(x) if x.is_integer() else x


def normalise_attributes(raw: dict) -> dict:
    """Strip values, drop empty ones, and bring gender and age into the shared vocabulary."""
    out: dict = {}
    for key, value in raw.items():
        key = RENAMED.get(str(key).strip().lower(), str(key).strip().lower())
        if value is None or not key:
            continue
        value = value.strip() if isinstance(value, str) else value
        if value == "":
            continue
        out[key] = value
    gender = out.get("gender", out.get("sex"))
    if gender is not None:
        g = normalise_gender(gender)
        if g is not None:
            out["gender"] = g
    if "age" in out and isinstance(out["age"], str):
        band = out["age"].lower()
        try:
            out["age"] = parse_number(band)
        except ValueError:
            out["age_group"] = band
            if band in AGE_BANDS:
                out["age"] = AGE_BANDS[band]
            else:
                del out["age"]
    return out


def typed_columns(rows: list[dict], keep_text: tuple[str, ...] = ()) -> None:
    """Make a column numeric where every non-empty value of it is a number (ages, onsets, scores)."""
    columns = {c for row in rows for c in row} - set(keep_text)
    for column in columns:
        values = [row[column] for row in rows if isinstance(row.get(column), str) and row[column].strip()]
        try:
            parsed = [parse_number(v) for v in values]
        except ValueError:
            continue
        it = iter(parsed)
        for row in rows:
            if isinstance(row.get(column), str) and row[column].strip():
                row[column] = next(it)


def read_delimited(
    path: Path, delimiter: str, *, quoting: bool = True, header: bool = True
) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV/TSV/bar-separated file, decoded by ``textfile.read_text``.

    ``quoting=False`` reads every quote character as text, as Common Voice's TSVs and LJSpeech's
    ``metadata.csv`` need (their sentences hold unbalanced quotes that a CSV reader would swallow
    into the next line).
    """
    text = read_text(path)
    reader = csv.reader(
        text.splitlines(), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
    )
    lines = [r for r in reader if r and any(c.strip() for c in r)]
    if not header:
        return [], lines
    if not lines:
        raise ValueError(f"table {path} is empty; expected a header row and one row per file.")
    return [h.strip().lower().lstrip("\ufeff") for h in lines[0]], lines[1:]


def resolve_audio_path(recorded: str, bases: list[Path]) -> Path:
    """An absolute path as it is; a relative one against the first base where it exists (else the first)."""
    p = Path(recorded).expanduser()
    if p.is_absolute():
        return p
    for base in bases:
        if (base / p).exists():
            return base / p
    return bases[0] / p


def load_segment(path: Path, start: float, end: float | None, name: str) -> np.ndarray:
    """Samples [start, end) seconds of an audio file (read at its own rate, then made 16 kHz mono).

    Only the segment is read from disk; ``end`` None (or negative, Kaldi's "to the end") reads to the end.
    """
    if not path.is_file():
        raise AudioError(f"{name}: no such audio file {path}.")
    try:
        info = sf.info(str(path))
        first = int(round(start * info.samplerate))
        last = None if end is None or end < 0 else int(round(end * info.samplerate))
        if first >= info.frames or (last is not None and last <= first):
            raise AudioError(
                f"{name}: segment {start:.3f}-{end} s lies outside {path} ({info.frames / info.samplerate:.3f} s long)."
            )
        audio, sr = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{name}: cannot decode {path} ({err}).") from None
    return check_audio(audio, sr, name)


def keep_present(rows: list, path_of, where: str) -> list:
    """The rows whose audio file exists; one warning counts and names the others.

    LJSpeech and Common Voice are often copied in part (LJSpeech "part 1": 385 of 13,100 wavs beside the
    full metadata.csv), so an absent file is a row left out, not a bad file: listing each as skipped
    would bury the real failures under thousands of lines. Files that exist but do not decode are
    still skipped, named and counted one by one.
    """
    kept = [r for r in rows if path_of(r).is_file()]
    warn_missing(
        f"of its {len(rows)} rows name an audio file that is absent; they are left out",
        [str(path_of(r).name) for r in rows if not path_of(r).is_file()],
        where,
    )
    return kept


def warn_missing(what: str, ids: list[str], where: str) -> None:
    """One warning for ids that a side file lists but the corpus lacks (or the reverse)."""
    if ids:
        log.warning("%s: %d %s (e.g. %s)", where, len(ids), what, ", ".join(ids[:3]))


def whisper_language(value) -> str | None:
    """A Whisper language code for ``value`` ("en", "English", Common Voice's "zh-CN"), or None.

    ``attributes["language"]`` chooses the decoder prompt of multilingual models, so only codes Whisper
    knows may go there; other values are kept by the readers under ``locale``.
    """
    text = str(value or "").strip().lower()
    if not text:
        return None
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE  # a plain table

    for candidate in (text, text.split("-")[0].split("_")[0]):
        if candidate in LANGUAGES:
            return candidate
        if candidate in TO_LANGUAGE_CODE:
            return TO_LANGUAGE_CODE[candidate]
    return None
