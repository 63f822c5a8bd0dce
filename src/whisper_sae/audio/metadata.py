"""Metadata tables: utterance or speaker id → attribute columns, merged into ``Utterance.attributes``.

Reads CSV, TSV and LibriSpeech's ``SPEAKERS.TXT`` (``ID | SEX | SUBSET | MINUTES | NAME`` with ``;``
comment lines). A row is looked up first by utterance id, then by speaker id, so one loader serves
per-utterance tables (the synthetic corpus's ``metadata.tsv``) and per-speaker ones alike.

Every table is decoded by ``textfile.read_text`` (BOM / UTF-16 detected, otherwise strict UTF-8 or an
error naming the file). A TSV is split on tabs only, with no CSV quoting: a value that starts with
``"`` (a quoted title, an inch mark) once opened a "quoted field" that swallowed the rows after it.
CSV keeps standard quoting, which is what CSV writers produce.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

from whisper_sae.audio.textfile import read_lines, read_text

log = logging.getLogger(__name__)

# Column names that hold the row's key, most specific first. "id" is ambiguous on purpose: it is
# matched against utterance ids and then speaker ids.
KEY_COLUMNS = (
    "utterance_id",
    "utt_id",
    "utterance",
    "id",
    "path",
    "file",
    "filename",
    "speaker_id",
    "speaker",
    "spk",
    "client_id",
)
SPEAKER_COLUMNS = ("speaker", "speaker_id", "spk", "client_id")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
_SEX_TO_GENDER = {"f": "female", "m": "male", "female": "female", "male": "male"}


@dataclass
class MetadataTable:
    """One table: ``rows`` maps a key (utterance or speaker id) to its attribute columns."""

    name: str
    key_column: str
    rows: dict[str, dict] = field(default_factory=dict)
    matched: int = 0  # utterances that took attributes from this table in the last pass

    def lookup(self, utterance_id: str, speaker: str | None) -> dict | None:
        row = self.rows.get(utterance_id)
        if row is None and speaker is not None:
            row = self.rows.get(speaker)
        return row


def normalise_key(value: str) -> str:
    """Strip spaces and, for file names, the folder and audio extension (Common Voice's ``path``)."""
    value = value.strip()
    if value.lower().endswith(AUDIO_SUFFIXES):
        value = Path(value).stem
    return value


def _parse_number(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text)


def _typed_columns(rows: list[dict], key_column: str) -> None:
    """Turn a column into numbers where every non-empty value is one (rate, pitch, minutes)."""
    columns = {c for row in rows for c in row} - {key_column, "speaker", "speaker_id", "id", "name"}
    for column in columns:
        values = [row[column] for row in rows if row.get(column) not in (None, "")]
        try:
            parsed = [_parse_number(v) for v in values]
        except ValueError:
            continue
        if not parsed:
            continue
        it = iter(parsed)
        for row in rows:
            if row.get(column) not in (None, ""):
                row[column] = next(it)


def _read_speakers_txt(path: Path) -> tuple[list[str], list[list[str]]]:
    header: list[str] = []
    records = []
    for line in read_lines(path):
        if line.startswith(";"):
            if "|" in line:  # the last commented line with bars is the header
                header = [h.strip().lower() for h in line[1:].split("|")]
            continue
        if not line.strip():
            continue
        n = len(header) or 5
        # Names may themselves contain bars (speaker 60 is "|CBW|Simon"), so split only n-1 times.
        records.append([v.strip() for v in line.split("|", n - 1)])
    return header or ["id", "sex", "subset", "minutes", "name"], records


def read_table(path: str | Path) -> MetadataTable:
    """Read a CSV/TSV/``SPEAKERS.TXT`` table; raise ``ValueError`` naming the file if it has no key column."""
    path = Path(path)
    text = read_text(path)
    if path.name.upper() == "SPEAKERS.TXT" or text.lstrip().startswith(";"):
        header, records = _read_speakers_txt(path)
    else:
        if path.suffix.lower() in (".tsv", ".tab") or "\t" in text.split("\n", 1)[0]:
            reader = (line.split("\t") for line in text.splitlines())  # tabs only: no quoting in a TSV
        else:
            reader = csv.reader(text.splitlines(), delimiter=",")
        lines = [r for r in reader if r and any(c.strip() for c in r)]
        if not lines:
            raise ValueError(f"metadata table {path} is empty; expected a header row and one row per id.")
        header, records = [h.strip().lower() for h in lines[0]], lines[1:]
    key = next((k for k in KEY_COLUMNS if k in header), None)
    if key is None:
        raise ValueError(
            f"metadata table {path} has columns {header} but no id column; name one of {list(KEY_COLUMNS)}."
        )
    rows = []
    for record in records:
        row = {h: (v.strip() if isinstance(v, str) else v) for h, v in zip(header, record) if h}
        rows.append(row)
    _typed_columns(rows, key)
    table = MetadataTable(name=str(path), key_column=key)
    for row in rows:
        k = normalise_key(str(row.pop(key, "")))
        if not k:
            continue
        sex = str(row.get("sex", row.get("gender", ""))).strip().lower()
        if "gender" not in row and sex in _SEX_TO_GENDER:
            row["gender"] = _SEX_TO_GENDER[sex]
        table.rows[k] = row
    log.info("metadata table %s: %d rows keyed by %r", path, len(table.rows), key)
    return table


def find_tables(root: Path) -> list[Path]:
    """Metadata tables that sit with a corpus folder: in it or (LibriSpeech's own layout) its parent."""
    names = ("metadata.tsv", "metadata.csv", "SPEAKERS.TXT", "speakers.tsv", "speakers.csv")
    found = []
    for folder in (root, root.parent):
        for name in names:
            if (folder / name).is_file():
                found.append(folder / name)
    return found


def merge_attributes(
    tables: list[MetadataTable], utterance_id: str, speaker: str | None, base: dict | None = None
) -> dict:
    """Attributes of one utterance: the speaker id, then table rows (later tables win), then ``base``."""
    attributes: dict = {}
    if speaker is not None:
        attributes["speaker"] = speaker
    for table in tables:
        row = table.lookup(utterance_id, speaker)
        if row is not None:
            table.matched += 1
            attributes.update(row)
    if base:
        attributes.update(base)
    if speaker is None:
        # A folder of files knows no speakers; a table's speaker column names them (Common Voice's client_id).
        found = next((attributes[c] for c in SPEAKER_COLUMNS if attributes.get(c) not in (None, "")), None)
        if found is not None:
            attributes["speaker"] = str(found)
    return attributes


def warn_unmatched(tables: list[MetadataTable], example_ids: list[str]) -> None:
    """After a full pass: a table that matched no utterance is almost always a wrong id column."""
    for table in tables:
        if table.rows and table.matched == 0:
            keys = list(table.rows)[:3]
            log.warning(
                "metadata table %s: none of its %d ids (e.g. %s, column %r) matches an utterance or "
                "speaker id of this corpus (e.g. %s); its columns were not used.",
                table.name,
                len(table.rows),
                keys,
                table.key_column,
                example_ids[:3],
            )
