"""Corpora: lazy, re-iterable sequences of ``Utterance`` read from a spec string.

Spec forms: a LibriSpeech-layout folder (``SUBSET/SPK/CHAPTER/*.flac`` + ``*.trans.txt``), any folder
of audio files, a ``datasets`` dataset saved with ``save_to_disk``, ``hf:NAME[:CONFIG]:SPLIT``
(streamed from the Hugging Face hub), a single audio file, and the formats of ``audio/formats/``
(Kaldi data dirs, lhotse manifests, Common Voice, LJSpeech, audio + a table keyed by file name,
emotional speech labelled by file names: RAVDESS, TESS, SAVEE, EmoDB),
told apart by a prefix or the folder's layout (grammar: ``load_corpus``). Bad files are skipped
with a warning and listed in ``Corpus.skipped``; they never stop a run.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from whisper_sae.audio.formats import READERS, Spec, default_name, detect_format, parse_spec
from whisper_sae.audio.io import AUDIO_EXTENSIONS, load_audio
from whisper_sae.audio.metadata import MetadataTable, find_tables, merge_attributes, read_table, warn_unmatched
from whisper_sae.audio.select import apply_common_options
from whisper_sae.audio.textfile import read_lines, read_text
from whisper_sae.audio.utterance import SAMPLE_RATE, AudioError, Utterance

log = logging.getLogger(__name__)

LIBRISPEECH_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)$")
SPEC_FORMS = (
    "a LibriSpeech-layout folder, a folder of audio files (wav/flac/ogg/mp3), a `datasets` folder "
    "written by save_to_disk, 'hf:NAME[:CONFIG]:SPLIT' (e.g. hf:openslr/librispeech_asr:clean:test), "
    "one audio file, or FORMAT:PATH with FORMAT one of kaldi, lhotse, commonvoice, ljspeech, csv, "
    "ravdess, tess, savee, emodb "
    "(see `whisper-sae corpus info --help`)"
)


@dataclass
class Entry:
    """An utterance before its audio is decoded: what a reader knows from names and side files."""

    id: str
    load: Callable[[], np.ndarray]
    path: str | None = None
    text: str | None = None
    speaker: str | None = None
    alignment: Path | dict | None = None
    attributes: dict = field(default_factory=dict)


class Corpus:
    """Iterable of ``Utterance``; each pass re-reads lazily and refills ``skipped``.

    ``len()`` works where the number of entries is known before reading (folders, saved datasets);
    it counts entries, including any that a pass will skip as unreadable.
    """

    def __init__(
        self,
        spec: str,
        entries: Callable[[], Iterator[Entry]],
        *,
        length: int | None = None,
        tables: list[MetadataTable] | None = None,
        max_utterances: int | None = None,
    ):
        self.spec = spec
        self._entries = entries
        self._length = length
        self.tables = tables or []
        self.max_utterances = max_utterances
        self.skipped: list[dict] = []

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError(f"corpus {self.spec} is streamed; its length is not known before reading it.")
        n = self._length
        return n if self.max_utterances is None else min(n, self.max_utterances)

    def __repr__(self) -> str:
        n = "streamed" if self._length is None else f"{len(self)} utterances"
        return f"Corpus({self.spec!r}, {n})"

    def __iter__(self) -> Iterator[Utterance]:
        self.skipped = []
        for table in self.tables:
            table.matched = 0
        n_done, seen = 0, []
        for entry in self._entries():
            if self.max_utterances is not None and n_done >= self.max_utterances:
                return  # an early stop: the unmatched-table check needs a full pass
            try:
                audio = entry.load()
            except AudioError as err:
                self._skip(entry, str(err))
                continue
            except Exception as err:  # noqa: BLE001 — a decoder's own error must not end the run
                self._skip(entry, f"{entry.path or entry.id}: {type(err).__name__}: {err}")
                continue
            n_done += 1
            if len(seen) < 3:
                seen.append(entry.id)
            attributes = merge_attributes(self.tables, entry.id, entry.speaker, entry.attributes)
            yield Utterance(
                id=entry.id,
                audio=audio,
                sample_rate=SAMPLE_RATE,
                text=entry.text,
                alignment=_read_alignment(entry),
                speaker=entry.speaker or attributes.get("speaker"),
                path=entry.path,
                attributes=attributes,
            )
        warn_unmatched(self.tables, seen)

    def _skip(self, entry: Entry, reason: str) -> None:
        log.warning("skipping utterance %s: %s", entry.id, reason)
        self.skipped.append({"id": entry.id, "path": entry.path, "reason": reason})


def _read_alignment(entry: Entry) -> dict | None:
    if entry.alignment is None or isinstance(entry.alignment, dict):
        return entry.alignment
    try:
        data = json.loads(read_text(entry.alignment))
        if not isinstance(data.get("words"), list) or not isinstance(data.get("phones", []), list):
            raise ValueError("expected 'words' and 'phones' lists")
    except (OSError, ValueError, AttributeError) as err:
        log.warning("utterance %s: alignment %s is unreadable (%s); using none", entry.id, entry.alignment, err)
        return None
    return data


# ----------------------------------------------------------------------------------------------
# Folders: LibriSpeech layout or any audio files


def _read_transcripts(folder: Path, cache: dict[Path, dict[str, str]]) -> dict[str, str]:
    """Every ``*.trans.txt`` of a folder: utterance id → text. Read with ``textfile.read_lines``, so a BOM,
    UTF-16 or a non-UTF-8 file is decoded right or refused with the file named, never garbled silently."""
    if folder not in cache:
        texts: dict[str, str] = {}
        for trans in sorted(folder.glob("*.trans.txt")):
            for line in read_lines(trans):
                utt, _, text = line.strip().partition(" ")
                if utt:
                    texts[utt] = text.strip()
        cache[folder] = texts
    return cache[folder]


def _alignment_index(root: Path) -> dict[str, Path]:
    """``alignments/`` folders in the corpus folder or beside it (as in ../shared/data/librispeech)."""
    index: dict[str, Path] = {}
    for folder in (root.parent / "alignments", root / "alignments"):
        if folder.is_dir():
            for path in sorted(folder.rglob("*.json")):
                index[path.stem] = path
    return index


def _audio_files(root: Path) -> list[Path]:
    files = [
        p
        for p in root.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files)


def _folder_ids(root: Path, files: list[Path]) -> list[str]:
    """File stems, or relative paths where two files share a stem (ids must be unique)."""
    stems = [p.stem for p in files]
    if len(set(stems)) == len(stems):
        return stems
    return [str(p.relative_to(root).with_suffix("")) for p in files]


def folder_corpus(root: Path, tables: list[MetadataTable], max_utterances: int | None) -> Corpus:
    files = _audio_files(root)
    if not files:
        raise ValueError(
            f"corpus folder {root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}); a corpus spec is {SPEC_FORMS}."
        )
    ids = _folder_ids(root, files)
    alignments = _alignment_index(root)

    def entries() -> Iterator[Entry]:
        cache: dict[Path, dict[str, str]] = {}
        for path, utt_id in zip(files, ids):
            match = LIBRISPEECH_NAME.match(path.stem)
            side = path.with_suffix(".json")
            yield Entry(
                id=utt_id,
                load=lambda p=path: load_audio(p),
                path=str(path),
                text=_read_transcripts(path.parent, cache).get(path.stem),
                speaker=match.group(1) if match else None,
                alignment=side if side.is_file() else alignments.get(path.stem),
            )

    return Corpus(str(root), entries, length=len(files), tables=tables, max_utterances=max_utterances)


def single_file_corpus(path: Path, tables: list[MetadataTable], max_utterances: int | None) -> Corpus:
    match = LIBRISPEECH_NAME.match(path.stem)
    side = path.with_suffix(".json")

    def entries() -> Iterator[Entry]:
        yield Entry(
            id=path.stem,
            load=lambda: load_audio(path),
            path=str(path),
            speaker=match.group(1) if match else None,
            alignment=side if side.is_file() else None,
        )

    return Corpus(str(path), entries, length=1, tables=tables, max_utterances=max_utterances)


def _is_saved_dataset(path: Path) -> bool:
    return any((path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json"))


def load_corpus(
    spec,
    *,
    max_utterances: int | None = None,
    metadata=None,
    split: str | None = None,
    text_column: str | None = None,
    audio_column: str | None = None,
    text: str | None = None,
) -> Corpus:
    """Open a corpus from ``spec`` as a lazy, re-iterable ``Corpus``; a list of specs is one corpus of all.

    Spec grammar (``whisper-sae corpus info --help`` prints the same)::

        [NAME=][FORMAT:]PATH[:ARG][?KEY=VALUE&...]    or    [NAME=]hf:DATASET[:CONFIG]:SPLIT

    FORMAT, where the folder's layout does not decide it: ``kaldi:DIR`` (wav.scp with plain paths,
    text, utt2spk, spk2gender, spk2age, segments), ``lhotse:DIR[:PART]`` or ``lhotse:MANIFEST``
    (needs ``pip install whisper-sae[lhotse]``), ``commonvoice:DIR[:SPLIT]`` (SPLIT.tsv + clips/;
    default validated.tsv, else train.tsv), ``ljspeech:DIR`` (metadata.csv + wavs/; options speaker,
    gender), ``csv:DIR[:TABLE]`` (audio + a table keyed by file name; options key, speaker,
    text_column, text, text_file), ``folder:DIR`` (LibriSpeech layout or any audio), ``dataset:DIR``
    (save_to_disk). Emotional speech whose labels are file names: ``ravdess:DIR``
    (``03-01-05-01-02-01-12.wav``), ``tess:DIR`` (``OAF_angry/OAF_back_angry.wav``), ``savee:DIR``
    (``DC/a01.wav``), ``emodb:DIR`` (``03a01Fa.wav``; option labels=audio_labels.csv for files named
    otherwise); detected without a prefix when most names follow one scheme and no metadata table
    sits with them. Their utterances carry ``emotion`` (neutral, calm, happy, sad, angry, fearful,
    disgust, surprised; EmoDB's boredom), ``emotion_raw`` (the corpus's word), gender and the scheme's
    other fields; files with malformed names are skipped like bad audio (``formats/emotion.py``;
    ``whisper-sae corpus labels`` writes the labels as an editable table). A spec naming an existing path as a whole is always that path. ``NAME=`` names the
    corpus; every utterance carries its corpus name in ``attributes["corpus"]`` (default: the
    folder's name, with its parent's for generic names such as train/). With a list of specs, ids
    that clash with an earlier corpus's are prefixed ``NAME/`` (see ``audio/concat.py``).

    ``metadata``: extra table path(s) (CSV/TSV/``SPEAKERS.TXT``) merged into attributes, after any
    ``metadata.tsv``/``metadata.csv``/``SPEAKERS.TXT`` found in an audio folder or its parent.
    ``split``, ``text_column``, ``audio_column`` apply to ``datasets`` corpora. ``text``: a transcript
    for every utterance that has none (corpora where everyone reads the same paragraph).
    """
    if isinstance(spec, Corpus):
        return spec
    if isinstance(spec, (list, tuple)):
        from whisper_sae.audio.concat import concat_corpora

        return concat_corpora(
            [
                load_corpus(
                    s, metadata=metadata, split=split, text_column=text_column, audio_column=audio_column, text=text
                )
                for s in spec
            ],
            max_utterances=max_utterances,
        )
    extra = [metadata] if isinstance(metadata, (str, Path)) else list(metadata or [])
    extra_tables = [read_table(p) for p in extra]
    parsed = parse_spec(str(spec))
    if parsed.format == "hf":
        from whisper_sae.audio.hf import hub_corpus  # datasets is slow to import; only when asked

        corpus = hub_corpus(
            parsed.path, extra_tables, max_utterances, text_column=text_column, audio_column=audio_column
        )
        return _named(corpus, parsed.name or parsed.path[3:], text)
    path = Path(parsed.path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"corpus {parsed.text!r}: no such file or folder; a corpus spec is {SPEC_FORMS}.")
    fmt = parsed.format or detect_format(path)
    if fmt in READERS:
        from importlib import import_module

        reader = import_module(f"whisper_sae.audio.formats.{READERS[fmt]}")
        corpus = reader.open_corpus(
            Spec(parsed.text, str(path), fmt, parsed.arg, parsed.name, parsed.options), extra_tables, max_utterances
        )
    else:
        corpus = _path_corpus(path, fmt, parsed.text, extra_tables, max_utterances, split, text_column, audio_column)
    corpus = apply_common_options(corpus, parsed.options, parsed.text)
    return _named(corpus, parsed.name or default_name(path, parsed.arg), text)


def _path_corpus(
    path: Path, fmt: str | None, spec_str: str, extra_tables, max_utterances, split, text_column, audio_column
) -> Corpus:
    """The layouts that predate ``audio/formats``: one audio file, a saved dataset, an audio folder."""
    found = find_tables(path if path.is_dir() else path.parent)
    tables = [read_table(p) for p in found] + extra_tables
    if path.is_file():
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            raise ValueError(
                f"corpus {spec_str!r} is a file but not audio ({', '.join(AUDIO_EXTENSIONS)}); "
                f"a corpus spec is {SPEC_FORMS}."
            )
        return single_file_corpus(path, tables, max_utterances)
    if fmt == "dataset" or (fmt is None and _is_saved_dataset(path)):
        from whisper_sae.audio.hf import disk_corpus

        return disk_corpus(
            path, tables, max_utterances, split=split, text_column=text_column, audio_column=audio_column
        )
    return folder_corpus(path, tables, max_utterances)


def _named(corpus: Corpus, name: str, text: str | None) -> Corpus:
    """Give every utterance of ``corpus`` its corpus name (``attributes["corpus"]``) and, where it has no
    transcript, the shared ``text``."""
    entries = corpus._entries
    corpus.name = name

    def named() -> Iterator[Entry]:
        for entry in entries():
            entry.attributes = {**entry.attributes, "corpus": name}
            if entry.text is None and text:
                entry.text = text
            yield entry

    corpus._entries = named
    return corpus
