"""Hugging Face ``datasets`` corpora: a folder written by ``save_to_disk``, or a hub dataset streamed.

Audio is never decoded by ``datasets`` (its decoder needs ``torchcodec``, which does not load on
every machine): the audio column is cast to ``Audio(decode=False)`` and each row's bytes or path is
decoded with soundfile. Scalar columns other than audio and text (speaker_id, gender, accent, age…)
land in ``Utterance.attributes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from whisper_sae.audio.corpus import Corpus, Entry
from whisper_sae.audio.io import check_audio, decode_audio
from whisper_sae.audio.metadata import MetadataTable, normalise_key
from whisper_sae.audio.utterance import AudioError

TEXT_COLUMNS = ("text", "sentence", "transcript", "transcription", "normalized_text", "raw_text")
ID_COLUMNS = ("id", "utterance_id", "segment_id", "audio_id", "file", "path")
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")


def _audio_column(features, columns: list[str], wanted: str | None, name: str) -> str:
    import datasets

    if wanted is not None:
        if wanted not in columns:
            raise ValueError(f"dataset {name}: no column {wanted!r}; its columns are {columns}.")
        return wanted
    if features is not None:
        for column, feature in features.items():
            if isinstance(feature, datasets.Audio):
                return column
    if "audio" in columns:
        return "audio"
    raise ValueError(f"dataset {name}: no Audio column among {columns}; pass audio_column=NAME.")


def _decode_row_audio(value, name: str) -> np.ndarray:
    """An ``Audio(decode=False)`` cell is ``{"bytes", "path"}``; some datasets store decoded arrays."""
    if value is None:
        raise AudioError(f"{name}: the audio cell is empty.")
    if isinstance(value, dict) and value.get("array") is not None:
        return check_audio(np.asarray(value["array"]), int(value.get("sampling_rate") or 0), name)
    if isinstance(value, dict) and value.get("bytes"):
        return decode_audio(value["bytes"], name)
    path = value.get("path") if isinstance(value, dict) else value
    if path and Path(path).is_file():
        return decode_audio(Path(path), name)
    raise AudioError(f"{name}: the audio cell has neither bytes nor a readable path ({path!r}).")


def _scalar(value):
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    return None


def _entries(ds, name: str, audio_col: str, text_col: str | None) -> Iterator[Entry]:
    columns = list(ds.column_names or [])
    id_col = next((c for c in ID_COLUMNS if c in columns and c != audio_col), None)
    speaker_col = next((c for c in SPEAKER_COLUMNS if c in columns), None)
    for idx, row in enumerate(ds):
        utt_id = normalise_key(str(row[id_col])) if id_col and row.get(id_col) is not None else f"{idx:06d}"
        speaker = str(row[speaker_col]).strip() if speaker_col and row.get(speaker_col) is not None else None
        attributes = {}
        for column, value in row.items():
            if column in (audio_col, text_col):
                continue
            value = _scalar(value)
            if value is not None and value != "":
                attributes[column] = value
        text = row.get(text_col) if text_col else None
        label = f"{name} row {idx} ({utt_id})"
        yield Entry(
            id=utt_id,
            load=lambda v=row[audio_col], n=label: _decode_row_audio(v, n),
            path=f"{name}#{idx}",
            text=text.strip() if isinstance(text, str) else None,
            speaker=speaker,
            attributes=attributes,
        )


def _prepared(ds, name: str, audio_column: str | None, text_column: str | None):
    import datasets

    columns = list(ds.column_names or [])
    audio_col = _audio_column(ds.features, columns, audio_column, name)
    if ds.features is not None and isinstance(ds.features.get(audio_col), datasets.Audio):
        ds = ds.cast_column(audio_col, datasets.Audio(decode=False))
    if text_column is not None and text_column not in columns:
        raise ValueError(f"dataset {name}: no text column {text_column!r}; its columns are {columns}.")
    text_col = text_column or next((c for c in TEXT_COLUMNS if c in columns), None)
    return ds, audio_col, text_col


def disk_corpus(
    path: Path,
    tables: list[MetadataTable],
    max_utterances: int | None,
    *,
    split: str | None,
    text_column: str | None,
    audio_column: str | None,
) -> Corpus:
    """A dataset (or one split of a ``DatasetDict``) written by ``save_to_disk``."""
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in ds:
            raise ValueError(f"dataset {path} has splits {splits}; choose one with split=NAME.")
        ds = ds[split]
    ds, audio_col, text_col = _prepared(ds, str(path), audio_column, text_column)
    return Corpus(
        str(path),
        lambda: _entries(ds, path.name, audio_col, text_col),
        length=len(ds),
        tables=tables,
        max_utterances=max_utterances,
    )


def parse_hub_spec(spec: str) -> tuple[str, str | None, str]:
    """``hf:NAME[:CONFIG]:SPLIT`` → (name, config, split); a bare ``hf:NAME`` reads split "train"."""
    parts = spec[len("hf:") :].split(":")
    if not parts[0] or len(parts) > 3:
        raise ValueError(
            f"corpus spec {spec!r} is not hf:NAME[:CONFIG]:SPLIT (e.g. hf:openslr/librispeech_asr:clean:test)."
        )
    if len(parts) == 1:
        return parts[0], None, "train"
    if len(parts) == 2:
        return parts[0], None, parts[1]
    return parts[0], parts[1] or None, parts[2]


def hub_corpus(
    spec: str,
    tables: list[MetadataTable],
    max_utterances: int | None,
    *,
    text_column: str | None,
    audio_column: str | None,
) -> Corpus:
    """Stream a dataset with ``datasets.load_dataset(..., streaming=True)``; rows are read lazily."""
    import datasets

    name, config, split = parse_hub_spec(spec)
    try:
        ds = datasets.load_dataset(name, config, split=split, streaming=True)
    except Exception as err:  # noqa: BLE001 — offline, unknown name or split: say which, in one sentence
        raise RuntimeError(
            f"corpus {spec!r}: could not open dataset {name!r} (config {config!r}, split {split!r}) "
            f"for streaming: {type(err).__name__}: {err}. Streaming needs the Hugging Face hub (network) "
            f"or a local dataset folder given as hf:PATH:SPLIT."
        ) from err
    ds, audio_col, text_col = _prepared(ds, name, audio_column, text_column)
    return Corpus(
        spec, lambda: _entries(ds, name, audio_col, text_col), length=None, tables=tables, max_utterances=max_utterances
    )
