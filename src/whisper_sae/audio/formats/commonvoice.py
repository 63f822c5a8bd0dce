"""Common Voice folders: ``validated.tsv`` / ``train.tsv`` / ``dev.tsv`` / ``test.tsv`` + ``clips/*.mp3``.

One row per clip: ``client_id`` (the speaker), ``path`` (the clip in ``clips/``), ``sentence``, then
``age`` (a decade band such as ``twenties``, kept as ``age_group``, with ``age`` its middle: 25),
``gender`` (``male``/``female``, newer releases ``male_masculine``...; normalised to male/female),
``accent`` (``accents`` since v7; kept as ``accent``) and ``locale`` (also given as ``language``
where it is a Whisper language code, e.g. ``zh-CN`` → zh). Vote counts are not attributes.

The TSVs are read with no CSV quoting: sentences hold unbalanced ``"`` marks, which a quoting reader
takes for the start of a field running over the next lines (silently merging clips). Which TSV is
read: ``commonvoice:DIR:SPLIT`` (``test`` → ``test.tsv``), else ``validated.tsv``, else ``train.tsv``.

Rows whose clip is absent (subsets of a release) are left out with one warning (``common.keep_present``).
The clips are MP3, decoded by soundfile (libsndfile ≥ 1.1 reads MPEG layer III; ``audio/io.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from whisper_sae.audio.corpus import Corpus, Entry
from whisper_sae.audio.formats import CV_SPLITS
from whisper_sae.audio.formats.common import keep_present, normalise_attributes, read_delimited, whisper_language
from whisper_sae.audio.io import load_audio
from whisper_sae.audio.metadata import MetadataTable

NOT_ATTRIBUTES = {"path", "sentence", "client_id", "up_votes", "down_votes", "sentence_id", "segment"}


def choose_tsv(root: Path, split: str | None) -> Path:
    if split is not None:
        tsv = root / (split if split.endswith(".tsv") else f"{split}.tsv")
        if not tsv.is_file():
            have = ", ".join(p.stem for p in sorted(root.glob("*.tsv"))) or "none"
            raise FileNotFoundError(f"Common Voice folder {root} has no {tsv.name}; its TSVs are {have}.")
        return tsv
    for name in ("validated.tsv", "train.tsv"):
        if (root / name).is_file():
            return root / name
    have = ", ".join(p.name for p in sorted(root.glob("*.tsv"))) or "none"
    raise FileNotFoundError(
        f"Common Voice folder {root} has neither validated.tsv nor train.tsv (TSVs: {have}); "
        f"choose one with commonvoice:{root}:SPLIT (one of {', '.join(CV_SPLITS)})."
    )


def commonvoice_corpus(
    root: Path, split: str | None, tables: list[MetadataTable], max_utterances: int | None, spec: str
) -> Corpus:
    if not root.is_dir():
        raise FileNotFoundError(
            f"Common Voice folder {root}: no such folder; give the folder holding clips/ and the TSVs."
        )
    tsv = choose_tsv(root, split)
    header, records = read_delimited(tsv, "\t", quoting=False)
    if "path" not in header:
        raise ValueError(
            f"Common Voice table {tsv} has columns {header} but no 'path' column; "
            "expected client_id, path, sentence, age, gender, accent(s), locale."
        )
    clips = root / "clips"

    def clip_of(row: dict) -> Path:
        clip = clips / row["path"]
        return clip if clip.suffix else clip.with_suffix(".mp3")

    rows = [row for row in (dict(zip(header, (v.strip() for v in record))) for record in records) if row.get("path")]
    rows = keep_present(rows, clip_of, str(tsv))

    def entries() -> Iterator[Entry]:
        for row in rows:
            clip = clip_of(row)
            attributes = normalise_attributes({k: v for k, v in row.items() if k not in NOT_ATTRIBUTES})
            language = whisper_language(row.get("locale")) if row.get("locale") else None
            if language:
                attributes["language"] = language
            yield Entry(
                id=clip.stem,
                load=lambda p=clip: load_audio(p),
                path=str(clip),
                text=row.get("sentence") or None,
                speaker=row.get("client_id") or None,
                attributes=attributes,
            )

    return Corpus(spec, entries, length=len(rows), tables=tables, max_utterances=max_utterances)


def open_corpus(spec, tables, max_utterances) -> Corpus:
    return commonvoice_corpus(Path(spec.path).expanduser(), spec.arg, tables, max_utterances, spec.text)
