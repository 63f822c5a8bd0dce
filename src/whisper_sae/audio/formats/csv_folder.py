"""A folder of audio files plus one table (CSV or TSV) keyed by file name: the Speech Accent Archive's
``speakers_all.csv`` (filename, native_language, sex, age, age_onset, birthplace, country, speakerid)
and corpora like it.

The audio files make the corpus; the table annotates them. A file is matched to the row whose
file-name column (``?key=COLUMN``, else filename/file/file_name/path) equals its path relative to
the folder or its name, with or without the extension. Files without a row are kept without
attributes, rows without a file are left out; each case is one warning with a count. The speaker
is the ``?speaker=COLUMN`` column, else speaker/speaker_id/speakerid/spk/client_id (for one
speaker per file and no such column, ``?speaker=filename``). The transcript is the
``?text_column=`` column (else text/transcript/sentence/transcription), and for read-the-same-text
corpora a shared one given with ``?text=...``, ``?text_file=PATH`` or ``load_corpus(text=...)``
(``whisper-sae corpus info --text``) fills every utterance that has none. Other columns become
attributes: numbers where the whole column is numeric, ``sex`` also as gender female/male.

MP3 files (the archive's format) are decoded by soundfile (libsndfile ≥ 1.1; see ``audio/io.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from whisper_sae.audio.corpus import Corpus, Entry, _audio_files
from whisper_sae.audio.formats import SPEC_GRAMMAR, SpecError, accent_tables
from whisper_sae.audio.formats.common import normalise_attributes, read_delimited, typed_columns, warn_missing
from whisper_sae.audio.io import AUDIO_EXTENSIONS, load_audio
from whisper_sae.audio.metadata import MetadataTable
from whisper_sae.audio.textfile import read_text

log = logging.getLogger(__name__)

KEY_COLUMNS = ("filename", "file", "file_name", "path")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "speakerid", "spk", "client_id")
TEXT_COLUMNS = ("text", "transcript", "sentence", "transcription")


def _file_key(value: str) -> str:
    value = value.strip().replace("\\", "/")
    return value[: -len(Path(value).suffix)] if Path(value).suffix.lower() in AUDIO_EXTENSIONS else value


def _choose_table(root: Path, table: str | None) -> Path:
    if table is not None:
        given = Path(table).expanduser()
        path = next((p for p in (root / given, given) if p.is_file()), None)  # root / absolute = absolute
        if path is None:
            raise FileNotFoundError(f"metadata table {table!r}: no such file in {root} or the working folder.")
        return path
    found = accent_tables(root)
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none with a filename/file/path column"
        raise SpecError(
            f"csv corpus {root}: choose its table with csv:{root}:TABLE (CSV tables here: {listed}).\n{SPEC_GRAMMAR}"
        )
    return found[0]


def _pick(header: list[str], wanted: str | None, candidates: tuple[str, ...], table: Path, what: str) -> str | None:
    if wanted is not None:
        if wanted.lower() not in header:
            raise ValueError(
                f"metadata table {table} has no column {wanted!r} for the {what}; its columns are {header}."
            )
        return wanted.lower()
    return next((c for c in candidates if c in header), None)


def csv_corpus(
    root: Path,
    table: str | None,
    tables: list[MetadataTable],
    max_utterances: int | None,
    spec: str,
    *,
    key: str | None = None,
    speaker: str | None = None,
    text_column: str | None = None,
    text: str | None = None,
) -> Corpus:
    if not root.is_dir():
        raise FileNotFoundError(f"csv corpus {root}: no such folder; give the folder holding the audio files.")
    path = _choose_table(root, table)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    header, records = read_delimited(path, delimiter)
    if delimiter == "," and len(header) == 1 and "\t" in header[0]:
        header, records = read_delimited(path, "\t")
    key_column = _pick(header, key, KEY_COLUMNS, path, "file name")
    if key_column is None:
        raise ValueError(
            f"metadata table {path} has columns {header} but no file-name column "
            f"({', '.join(KEY_COLUMNS)}); name it with ?key=COLUMN."
        )
    speaker_column = _pick(header, speaker, SPEAKER_COLUMNS, path, "speaker")
    text_col = _pick(header, text_column, TEXT_COLUMNS, path, "transcript")
    rows = [dict(zip(header, record)) for record in records]
    typed_columns(rows, keep_text=tuple(c for c in (key_column, speaker_column, text_col) if c))
    by_key: dict[str, dict] = {}
    for row in rows:
        k = _file_key(str(row.get(key_column, "")))
        if k:
            by_key[k] = row
    files = _audio_files(root)
    if not files:
        raise ValueError(f"csv corpus {root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}).")
    matched: list[tuple[Path, dict | None]] = []
    used = set()
    for f in files:
        rel = f.relative_to(root).with_suffix("").as_posix()
        k = rel if rel in by_key else f.stem if f.stem in by_key else None
        matched.append((f, by_key.get(k) if k else None))
        used.add(k)
    warn_missing(
        "audio files have no row in the table; they have no attributes",
        [f.name for f, row in matched if row is None],
        str(path),
    )
    warn_missing("rows name no audio file of the folder; they are left out", sorted(set(by_key) - used), str(path))
    ids = [f.stem for f, _ in matched]
    if len(set(ids)) != len(ids):
        ids = [f.relative_to(root).with_suffix("").as_posix() for f, _ in matched]
    skip = {key_column, speaker_column, text_col}

    def entries() -> Iterator[Entry]:
        for utt, (f, row) in zip(ids, matched):
            row = row or {}
            spk = row.get(speaker_column) if speaker_column else None
            said = (row.get(text_col) or "").strip() if text_col else ""
            yield Entry(
                id=utt,
                load=lambda p=f: load_audio(p),
                path=str(f),
                text=said or text,
                speaker=None if spk in (None, "") else str(spk),
                attributes=normalise_attributes({k: v for k, v in row.items() if k not in skip}),
            )

    return Corpus(spec, entries, length=len(files), tables=tables, max_utterances=max_utterances)


def open_corpus(spec, tables, max_utterances) -> Corpus:
    text = spec.options.get("text")
    if spec.options.get("text_file"):
        text = read_text(Path(spec.options["text_file"]).expanduser()).strip()
    return csv_corpus(
        Path(spec.path).expanduser(),
        spec.arg,
        tables,
        max_utterances,
        spec.text,
        key=spec.options.get("key"),
        speaker=spec.options.get("speaker"),
        text_column=spec.options.get("text_column"),
        text=text or None,
    )
