"""LJSpeech-style folders: ``metadata.csv`` (``ID|transcript|normalized transcript``) + ``wavs/ID.wav``.

One reader, one speaker: the speaker is the corpus's name unless ``?speaker=NAME`` says otherwise,
and ``?gender=female`` gives every utterance that gender. A folder whose name starts with
``LJSpeech`` is the LJ Speech corpus itself, one woman reading (Linda Johnson), so its gender is
female unless the spec says otherwise. The transcript is the second field, as written (digits,
abbreviations), which is what Whisper writes; the normalized third field is used only where the
second is empty. The file is read with no CSV quoting: its transcripts hold unbalanced quotes.
Rows whose wav is absent (partial copies) are left out with one warning; see ``common.keep_present``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from whisper_sae.audio.corpus import Corpus, Entry
from whisper_sae.audio.formats.common import keep_present, normalise_attributes, read_delimited
from whisper_sae.audio.io import load_audio
from whisper_sae.audio.metadata import MetadataTable


def ljspeech_corpus(
    root: Path, tables: list[MetadataTable], max_utterances: int | None, spec: str, *, speaker: str, gender: str | None
) -> Corpus:
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise FileNotFoundError(
            f"LJSpeech folder {root} has no metadata.csv (lines `ID|transcript|normalized transcript`)."
        )
    _, records = read_delimited(meta, "|", quoting=False, header=False)
    rows = []
    for n, record in enumerate(records, 1):
        if len(record) < 2:
            raise ValueError(
                f"{meta} line {n} ({'|'.join(record)[:60]!r}) has no transcript after the id; "
                "each line is `ID|transcript|normalized transcript`."
            )
        text = record[1].strip() or (record[2].strip() if len(record) > 2 else "")
        rows.append((record[0].strip(), text or None))
    rows = keep_present(rows, lambda r: root / "wavs" / f"{r[0]}.wav", str(meta))
    attributes = normalise_attributes({"gender": gender} if gender else {})

    def entries() -> Iterator[Entry]:
        for utt, text in rows:
            path = root / "wavs" / f"{utt}.wav"
            yield Entry(
                id=utt,
                load=lambda p=path: load_audio(p),
                path=str(path),
                text=text,
                speaker=speaker,
                attributes=dict(attributes),
            )

    return Corpus(spec, entries, length=len(rows), tables=tables, max_utterances=max_utterances)


def open_corpus(spec, tables, max_utterances) -> Corpus:
    from whisper_sae.audio.formats import default_name

    root = Path(spec.path).expanduser()
    gender = spec.options.get("gender")
    if gender is None and root.absolute().name.lower().startswith("ljspeech"):
        gender = "female"
    speaker = spec.options.get("speaker") or spec.name or default_name(root)
    return ljspeech_corpus(root, tables, max_utterances, spec.text, speaker=speaker, gender=gender)
