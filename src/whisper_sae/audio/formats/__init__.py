"""Corpus formats the speech field already uses, told apart by a spec prefix or by the folder's layout.

Real corpora come in a handful of conventions: Kaldi data directories (speechocean762), lhotse
manifests (the recipes of mini LibriSpeech, LJSpeech, Common Voice...), Common Voice's TSV + clips
folders, LJSpeech's ``metadata.csv``, a folder of audio with a table keyed by file name (the
Speech Accent Archive), and emotional-speech corpora whose labels are spelled into file and folder
names (RAVDESS, TESS, SAVEE, EmoDB: ``emotion.py``). Each has its own reader module here; this module only parses the spec
string and recognises the layouts, so ``corpus.py`` can dispatch without importing every reader
(lhotse is an optional extra and slow to import).

Spec grammar (also in ``load_corpus`` and ``whisper-sae corpus info --help``)::

    SPEC    := [NAME "="] [FORMAT ":"] PATH [":" ARG] ["?" KEY "=" VALUE ("&" KEY "=" VALUE)*]
             | [NAME "="] "hf:" DATASET [":" CONFIG] ":" SPLIT

A spec that names an existing file or folder as a whole is always a path (so paths with ``:`` or
``=`` still work). Without a FORMAT the layout decides (see ``detect_format``; a naming scheme
decides when most audio file names follow it and no metadata table sits with them); an ambiguous
layout is an error that asks for a prefix.

MP3 (Common Voice's clips, the Speech Accent Archive) is decoded like every other file, by soundfile
(``audio/io.py``): libsndfile reads MPEG layer III from 1.1 on, which soundfile ≥ 0.12 wheels ship.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# format → (what its ARG means, options it takes)
FORMATS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "kaldi": (None, ()),
    "lhotse": ("PART: which manifests of a folder holding several (e.g. train-clean-5)", ()),
    "commonvoice": ("SPLIT: which TSV to read (validated, train, dev, test, other...)", ()),
    "ljspeech": (None, ("speaker", "gender")),
    "csv": ("TABLE: the metadata CSV/TSV, relative to DIR", ("key", "speaker", "text", "text_file", "text_column")),
    "folder": (None, ()),
    "librispeech": (None, ()),
    "dataset": (None, ()),
    "ravdess": (None, ()),
    "tess": (None, ()),
    "savee": (None, ()),
    "emodb": (None, ("labels",)),
}
# Readers of the new formats, imported only when a spec needs one.
READERS = {
    "kaldi": "kaldi",
    "lhotse": "lhotse_manifest",
    "commonvoice": "commonvoice",
    "ljspeech": "ljspeech",
    "csv": "csv_folder",
    "ravdess": "emotion",
    "tess": "emotion",
    "savee": "emotion",
    "emodb": "emotion",
}
NAME_SCHEMES = ("ravdess", "tess", "savee", "emodb")
# Options every spec takes, with or without a FORMAT: prefix; applied by ``load_corpus`` after the reader.
COMMON_OPTIONS = ("split", "every")

SPEC_GRAMMAR = """\
corpus spec grammar:  [NAME=][FORMAT:]PATH[:ARG][?KEY=VALUE&...]   or   [NAME=]hf:DATASET[:CONFIG]:SPLIT
  FORMAT (optional; the folder's layout decides when it is unambiguous):
    kaldi:DIR             Kaldi data dir: wav.scp (plain paths), text, utt2spk, spk2gender, spk2age, segments
    lhotse:DIR[:PART]     lhotse manifests: *recordings*.jsonl[.gz] + *supervisions*.jsonl[.gz], or *cuts*.jsonl[.gz]
    lhotse:FILE           one cuts (or recordings) manifest            (needs: pip install whisper-sae[lhotse])
    commonvoice:DIR[:SPLIT]  Common Voice: SPLIT.tsv + clips/*.mp3 (default validated.tsv, else train.tsv)
    ljspeech:DIR          LJSpeech: metadata.csv (ID|transcript|normalized) + wavs/ID.wav, one speaker
                          options: ?speaker=NAME&gender=female
    csv:DIR[:TABLE]       audio files + a CSV/TSV keyed by file name (Speech Accent Archive: speakers_all.csv)
                          options: ?key=COLUMN&speaker=COLUMN&text_column=COLUMN&text=SHARED TEXT&text_file=PATH
    ravdess:DIR           emotional speech labelled by file names: RAVDESS 03-01-05-01-02-01-12.wav (emotion,
    tess:DIR              intensity, statement, actor), TESS OAF_angry/OAF_back_angry.wav, SAVEE DC/a01.wav,
    savee:DIR             EmoDB 03a01Fa.wav (German; ?labels=audio_labels.csv for files named otherwise).
    emodb:DIR             emotion is one of neutral calm happy sad angry fearful disgust surprised (EmoDB
                          adds boredom), the corpus's own word in emotion_raw. Edit the labels as a table:
                          whisper-sae corpus labels DIR --scheme S --out DIR/metadata.tsv, then csv:DIR:metadata.tsv
    folder:DIR            any folder of audio (LibriSpeech layout: SPK-CHAPTER.trans.txt, SPEAKERS.TXT)
    dataset:DIR           a `datasets` folder written by save_to_disk
  Options for any spec (after the path, with or without FORMAT:):
    ?split=SPLIT.json:train|held_out   only the speakers of one side of `whisper-sae corpus split --out SPLIT.json`
    ?every=N                           every Nth utterance (a spread-out subset; after split=)
  NAME= names the corpus (its utterances' attributes["corpus"]); the default is the folder's name
  (with its parent's for generic names such as train/ or en/). Several corpora in one store:
  extract --corpus A --corpus B (an id that clashes with an earlier corpus's becomes NAME/ID). Examples:
    kaldi:speechocean762/train   commonvoice:cv/en:test   csv:saa:speakers_all.csv?text_file=para.txt
    ljs=LJSpeech-1.1             hf:openslr/librispeech_asr:clean:test    ravdess:data/ravdess
"""

GENERIC_NAMES = {
    "train",
    "test",
    "dev",
    "valid",
    "validation",
    "eval",
    "data",
    "audio",
    "wav",
    "wavs",
    "clips",
    "validated",
    "all",
    "corpus",
    "speech",
    "en",
    "manifests",
    ".",
}
_NAME = re.compile(r"^([A-Za-z0-9_.+-]+)=(.+)$")
_OPTIONS = re.compile(r"^[A-Za-z_]+=[^&]*(&[A-Za-z_]+=[^&]*)*$")
MANIFEST = re.compile(r"\.jsonl(\.gz)?$|\.json(\.gz)?$")
CV_SPLITS = ("validated", "train", "dev", "test", "other", "invalidated")


class SpecError(ValueError):
    """A corpus spec that cannot be parsed or whose layout is ambiguous; the message gives the grammar."""


@dataclass
class Spec:
    """A parsed corpus spec: ``format`` is None where the layout decides."""

    text: str
    path: str
    format: str | None = None
    arg: str | None = None
    name: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def parse_spec(spec: str) -> Spec:
    """Split ``spec`` into name, format, path, arg and options (see the module docstring)."""
    text, name = spec, None
    m = _NAME.match(spec)
    if m and not Path(spec).expanduser().exists():
        name, spec = m.group(1), m.group(2)
    if spec.startswith("hf:"):
        return Spec(text, spec, "hf", name=name)
    options: dict[str, str] = {}
    head, sep, query = spec.rpartition("?")
    if sep and _OPTIONS.match(query) and not Path(spec).expanduser().exists():
        spec = head
        for pair in query.split("&"):
            key, _, value = pair.partition("=")
            options[key] = value
    fmt, sep, rest = spec.partition(":")
    if not sep or fmt not in FORMATS or Path(spec).expanduser().exists():
        if set(options) - set(COMMON_OPTIONS):
            raise SpecError(
                f"corpus spec {text!r} has options ({'&'.join(options)}) but no FORMAT: prefix; "
                f"options belong to a format, e.g. csv:DIR?text_file=PATH.\n{SPEC_GRAMMAR}"
            )
        return Spec(text, spec, None, name=name, options=options)
    path, arg = rest, None
    if not Path(rest).expanduser().exists() and ":" in rest:
        head, _, tail = rest.rpartition(":")
        if Path(head).expanduser().exists() or "/" not in tail:
            path, arg = head, tail
    arg_help, allowed = FORMATS[fmt]
    if arg is not None and arg_help is None:
        raise SpecError(
            f"corpus spec {text!r}: format {fmt} takes no ':{arg}' after its path "
            f"(no such folder {rest!r} either).\n{SPEC_GRAMMAR}"
        )
    unknown = sorted(set(options) - set(allowed) - set(COMMON_OPTIONS))
    if unknown:
        raise SpecError(
            f"corpus spec {text!r}: format {fmt} has no option {', '.join(unknown)}; "
            f"its options are {', '.join(allowed) or 'none'} (and {', '.join(COMMON_OPTIONS)}, which every spec takes)."
        )
    return Spec(text, path, fmt, arg=arg, name=name, options=options)


def _manifest_files(folder: Path, kind: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and kind in p.name and MANIFEST.search(p.name))


def _cv_tsvs(folder: Path) -> list[Path]:
    return [folder / f"{s}.tsv" for s in CV_SPLITS if (folder / f"{s}.tsv").is_file()]


def _is_ljspeech(folder: Path) -> bool:
    meta = folder / "metadata.csv"
    if not (meta.is_file() and (folder / "wavs").is_dir()):
        return False
    with open(meta, "rb") as f:
        first = f.readline()
    return b"|" in first


def accent_tables(folder: Path) -> list[Path]:
    """CSV tables beside audio that name files (``filename``/``file``/``path`` column), other than the
    ``metadata.csv``/``speakers.csv`` that every folder corpus merges anyway."""
    found = []
    for p in sorted(folder.glob("*.csv")):
        if p.name in ("metadata.csv", "speakers.csv"):
            continue
        with open(p, "rb") as f:
            header = f.readline().decode("utf-8-sig", errors="replace").lower()
        columns = [c.strip().strip('"') for c in header.split(",")]
        if any(c in ("filename", "file", "file_name", "path") for c in columns):
            found.append(p)
    return found


def detect_format(path: Path) -> str | None:
    """The format a path's layout shows, or None for the older layouts (audio folder, dataset, file).

    Raises ``SpecError`` when the folder fits two formats, naming both and the prefixes to choose.
    """
    if path.is_file():
        return (
            "lhotse"
            if MANIFEST.search(path.name) and any(k in path.name for k in ("cuts", "recordings", "supervisions"))
            else None
        )
    found = []
    if (path / "wav.scp").is_file():
        found.append("kaldi")
    if _manifest_files(path, "cuts") or _manifest_files(path, "recordings"):
        found.append("lhotse")
    if (path / "clips").is_dir() and _cv_tsvs(path):
        found.append("commonvoice")
    if _is_ljspeech(path):
        found.append("ljspeech")
    if len(accent_tables(path)) == 1 and not found:
        from whisper_sae.audio.io import AUDIO_EXTENSIONS

        if any(p.suffix.lower() in AUDIO_EXTENSIONS for p in path.iterdir()):
            found.append("csv")
    if found in ([], ["csv"]):
        from whisper_sae.audio.formats.emotion import detect_scheme
        from whisper_sae.audio.metadata import find_tables

        # A metadata table beside the files (e.g. written by `corpus labels`) wins over the names.
        scheme = None if find_tables(path) else detect_scheme(path)
        if scheme:
            found.append(scheme)
    if len(found) > 1:
        raise SpecError(
            f"corpus folder {path} looks like {' and like '.join(found)}; say which with a prefix, "
            f"e.g. {found[0]}:{path}.\n{SPEC_GRAMMAR}"
        )
    return found[0] if found else None


def default_name(path: Path, arg: str | None = None) -> str:
    """A short corpus name: the folder's (or file's) name, with its parent's where the name is generic."""
    path = Path(path).expanduser().absolute()
    name = path.name
    if path.is_file():
        name = MANIFEST.sub("", name) if MANIFEST.search(name) else path.stem
    if name.lower() in GENERIC_NAMES and path.parent.name:
        name = f"{path.parent.name}/{name}"
    return f"{name}:{arg}" if arg else name
