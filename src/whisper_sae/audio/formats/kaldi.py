"""Kaldi data directories: ``wav.scp``, ``text``, ``utt2spk``, ``spk2gender``, ``spk2age``, ``segments``.

The convention of Kaldi and ESPnet recipes and of corpora shipped for them (speechocean762's
``train/`` and ``test/``). Each file is ``ID VALUE`` per line. ``wav.scp`` maps a recording id to
an audio file; with ``segments`` (``UTT REC START END`` in seconds, END -1 = to the end) each
utterance is a slice of a recording, read without decoding the rest of it. Any further
``spk2NAME`` or ``utt2NAME`` file of one value per id becomes attribute NAME (``spk2gender`` →
gender, normalised to female/male; ``spk2age`` → a numeric age).

Only plain paths are read: a ``wav.scp`` line ending in ``|`` is a shell command whose output is
the audio (sph2pipe, sox, ffmpeg); running commands found in a data file is not something a
corpus reader should do, so that is an error naming the line. Relative paths are resolved against
the data directory, then its parent and grandparent (recipes keep them relative to the recipe
folder, e.g. speechocean762's ``WAVE/SPEAKER0001/...`` beside ``train/``), then the working folder.
A path to a missing or unreadable file is skipped, named and counted like any bad file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from whisper_sae.audio.corpus import Corpus, Entry
from whisper_sae.audio.formats.common import load_segment, normalise_attributes, resolve_audio_path, warn_missing
from whisper_sae.audio.io import load_audio
from whisper_sae.audio.metadata import MetadataTable
from whisper_sae.audio.textfile import read_lines

# Kaldi files that are not one attribute per id.
NOT_ATTRIBUTES = {"spk2utt", "utt2spk", "utt2dur", "utt2num_frames", "utt2uniq", "utt2category"}


class KaldiFormatError(ValueError):
    """A Kaldi data file that cannot be read; the message names the file and line."""


def read_kaldi_map(path: Path, *, min_fields: int = 2) -> dict[str, list[str]]:
    """``ID FIELD...`` lines of a Kaldi file → {id: fields}; a line with too few fields is an error."""
    out: dict[str, list[str]] = {}
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < min_fields:
            raise KaldiFormatError(
                f"{path} line {n} ({line.strip()!r}) has {len(fields)} field(s); each line is `ID VALUE`, "
                f"with {min_fields - 1} value(s) after the id."
            )
        out[fields[0]] = fields[1:]
    return out


def _text_map(path: Path) -> dict[str, str]:
    """``text``: the id, then the transcript; an id alone is an empty transcript. Like every Kaldi file the
    separator is any whitespace (speechocean762 uses tabs)."""
    out = {}
    for line in read_lines(path):
        fields = line.strip().split(None, 1)
        if fields:
            out[fields[0]] = fields[1].strip() if len(fields) > 1 else ""
    return out


def read_wav_scp(path: Path) -> dict[str, str]:
    """``wav.scp`` → {recording id: path}; a piped command or an entry without a path is an error naming the line."""
    out = {}
    for n, line in enumerate(read_lines(path), 1):
        stripped = line.strip()
        if not stripped:
            continue
        rec, *rest = stripped.split(None, 1)  # id, whitespace (space or tab), then the path or command
        where = rest[0].strip() if rest else ""
        if where.endswith("|"):
            raise KaldiFormatError(
                f"{path} line {n} ({stripped[:80]!r}) is a piped command; piped wav.scp entries are not supported: "
                f"run the command once to write the audio to a file and list that file's path instead."
            )
        if not where:
            raise KaldiFormatError(f"{path} line {n} ({stripped!r}) has no path after the id; each line is `ID PATH`.")
        out[rec] = where
    return out


def _attribute_maps(root: Path) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """{attribute: {id: value}} from ``spk2NAME`` and ``utt2NAME`` files of one value per line."""
    per_speaker, per_utt = {}, {}
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.name in NOT_ATTRIBUTES or path.suffix:
            continue
        for prefix, target in (("spk2", per_speaker), ("utt2", per_utt)):
            if path.name.startswith(prefix) and len(path.name) > len(prefix):
                target[path.name[len(prefix) :]] = {k: " ".join(v) for k, v in read_kaldi_map(path).items()}
    return per_speaker, per_utt


def kaldi_corpus(root: Path, tables: list[MetadataTable], max_utterances: int | None, spec: str) -> Corpus:
    if not root.is_dir():
        raise FileNotFoundError(f"Kaldi data dir {root}: no such folder; give the folder holding wav.scp.")
    scp = root / "wav.scp"
    if not scp.is_file():
        raise FileNotFoundError(
            f"Kaldi data dir {root} has no wav.scp; a Kaldi data dir holds wav.scp, text, utt2spk "
            f"(and optionally segments, spk2gender, spk2age)."
        )
    recordings = read_wav_scp(scp)
    bases = [root, root.parent, root.parent.parent, Path.cwd()]
    paths = {rec: resolve_audio_path(p, bases) for rec, p in recordings.items()}
    texts = _text_map(root / "text") if (root / "text").is_file() else {}
    utt2spk = {u: v[0] for u, v in read_kaldi_map(root / "utt2spk").items()} if (root / "utt2spk").is_file() else {}
    per_speaker, per_utt = _attribute_maps(root)
    if (root / "segments").is_file():
        segments = read_kaldi_map(root / "segments", min_fields=4)
        cuts = {}
        for utt, (rec, start, end, *_) in segments.items():
            try:
                cuts[utt] = (rec, float(start), float(end))
            except ValueError:
                raise KaldiFormatError(
                    f"{root / 'segments'}: utterance {utt} has start/end {start!r} {end!r}; "
                    "they must be seconds (END -1 for the end of the recording)."
                ) from None
        unknown = sorted({rec for rec, _, _ in cuts.values()} - set(paths))
        if unknown:
            raise KaldiFormatError(
                f"{root / 'segments'} names recordings that wav.scp lacks (e.g. {', '.join(unknown[:3])}); "
                "every recording of segments needs a wav.scp line."
            )
    else:
        cuts = {utt: (utt, 0.0, None) for utt in paths}
    warn_missing(
        "transcripts name no utterance of wav.scp/segments", sorted(set(texts) - set(cuts)), str(root / "text")
    )

    def attributes(utt: str, speaker: str | None) -> dict:
        raw = {name: values[speaker] for name, values in per_speaker.items() if speaker in values}
        raw.update({name: values[utt] for name, values in per_utt.items() if utt in values})
        return normalise_attributes(raw)

    def entries() -> Iterator[Entry]:
        for utt, (rec, start, end) in cuts.items():
            path, speaker = paths[rec], utt2spk.get(utt)
            if end is None:
                load = lambda p=path: load_audio(p)  # noqa: E731
            else:
                load = lambda p=path, s=start, e=end, u=utt: load_segment(p, s, e, u)  # noqa: E731
            yield Entry(
                id=utt,
                load=load,
                path=str(path),
                text=texts.get(utt),
                speaker=speaker,
                attributes=attributes(utt, speaker),
            )

    return Corpus(spec, entries, length=len(cuts), tables=tables, max_utterances=max_utterances)


def open_corpus(spec, tables, max_utterances) -> Corpus:
    return kaldi_corpus(Path(spec.path).expanduser(), tables, max_utterances, spec.text)
