"""lhotse manifests: recordings + supervisions (``*.jsonl[.gz]``), or a cuts manifest.

lhotse's recipes prepare dozens of speech corpora (mini LibriSpeech, LJSpeech, Common Voice...) into
one standard format, so reading it gives all of them. lhotse itself parses the manifests and loads
the audio (``pip install whisper-sae[lhotse]``); nothing of its format is re-implemented here. One
utterance per supervision: a recording or cut with several supervisions is trimmed to each
(``trim_to_supervisions``), one without supervisions is a whole utterance without text. The
utterance id is the supervision's id. Speaker, gender (normalised to female/male), language
(a Whisper code where lhotse's value maps to one, e.g. "English" → en; the raw value is kept as
``locale``) and the supervision's ``custom`` fields (age...) become attributes.

Recipes write audio paths relative to the folder they ran in; a relative path that does not exist
from the working folder but does from the manifest's folder is read from there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from whisper_sae.audio.corpus import Corpus, Entry
from whisper_sae.audio.formats import MANIFEST, SPEC_GRAMMAR, SpecError
from whisper_sae.audio.formats.common import MissingExtraError, normalise_attributes, whisper_language
from whisper_sae.audio.io import check_audio
from whisper_sae.audio.metadata import MetadataTable

log = logging.getLogger(__name__)

INSTALL = "pip install whisper-sae[lhotse]"


def import_lhotse():
    try:
        import lhotse
    except ImportError:
        raise MissingExtraError(
            f"reading lhotse manifests needs the lhotse package, which is not installed; "
            f"run `{INSTALL}` (or `pip install lhotse`)."
        ) from None
    return lhotse


def _part(path: Path, kind: str) -> str:
    """The part a recipe's manifest file is of: ``librispeech_recordings_train-clean-5.jsonl.gz`` → train-clean-5."""
    stem = MANIFEST.sub("", path.name)
    _, _, after = stem.partition(kind)
    return after.strip("_-.") or stem


def find_manifests(root: Path, part: str | None) -> tuple[Path | None, Path | None, Path | None]:
    """(recordings, supervisions, cuts) manifest paths of ``root`` (a folder or one manifest file)."""
    if root.is_file():
        name = root.name
        if "cuts" in name:
            return None, None, root
        if "recordings" in name:
            sup = root.with_name(name.replace("recordings", "supervisions"))
            return root, sup if sup.is_file() else None, None
        if "supervisions" in name:
            rec = root.with_name(name.replace("supervisions", "recordings"))
            if not rec.is_file():
                raise FileNotFoundError(
                    f"lhotse supervisions {root} have no recordings manifest beside them ({rec.name}); "
                    "pass the recordings (or cuts) manifest."
                )
            return rec, root, None
        raise SpecError(f"{root} is not a lhotse manifest (its name holds none of cuts, recordings, supervisions).")
    found = {}
    for kind in ("recordings", "supervisions", "cuts"):
        files = sorted(p for p in root.iterdir() if p.is_file() and kind in p.name and MANIFEST.search(p.name))
        if part is not None:
            files = [p for p in files if _part(p, kind) == part] or [p for p in files if part in p.name]
        found[kind] = files
    kind = "recordings" if found["recordings"] else "cuts"
    files = found[kind]
    if not files:
        what = f" of part {part!r}" if part else ""
        raise FileNotFoundError(
            f"lhotse folder {root} holds no recordings or cuts manifest{what} "
            "(*recordings*.jsonl[.gz] or *cuts*.jsonl[.gz])."
        )
    if len(files) > 1:
        parts = ", ".join(_part(p, kind) for p in files)
        raise SpecError(
            f"lhotse folder {root} holds several {kind} manifests (parts {parts}); choose one with "
            f"lhotse:{root}:PART or pass the manifest file.\n{SPEC_GRAMMAR}"
        )
    if kind == "cuts":
        return None, None, files[0]
    sups = [p for p in found["supervisions"] if _part(p, "supervisions") == _part(files[0], "recordings")]
    return files[0], (sups[0] if sups else None), None


def _supervision_attributes(sup) -> dict:
    raw = dict(sup.custom or {})
    if sup.gender:
        raw["gender"] = sup.gender
    attributes = normalise_attributes({k: v for k, v in raw.items() if isinstance(v, (str, int, float, bool))})
    if sup.language:
        code = whisper_language(sup.language)
        if code:
            attributes["language"] = code
        if code != sup.language:
            attributes["locale"] = str(sup.language)
    return attributes


def _needs_prefix(cut, base: Path) -> bool:
    """True when the cut's audio file is relative, missing from the working folder and present in ``base``."""
    recording = getattr(cut, "recording", None)
    for source in getattr(recording, "sources", []) or []:
        if source.type == "file":
            p = Path(source.source)
            return not p.is_absolute() and not p.exists() and (base / p).exists()
    return False


def lhotse_corpus(
    root: Path, part: str | None, tables: list[MetadataTable], max_utterances: int | None, spec: str
) -> Corpus:
    lhotse = import_lhotse()
    if not root.exists():
        raise FileNotFoundError(f"lhotse manifests {root}: no such file or folder.")
    recordings, supervisions, cuts_path = find_manifests(root, part)
    if cuts_path is not None:
        cuts = lhotse.load_manifest(cuts_path)
        base = cuts_path.parent
    else:
        sups = lhotse.load_manifest(supervisions) if supervisions is not None else None
        cuts = lhotse.CutSet.from_manifests(recordings=lhotse.load_manifest(recordings), supervisions=sups)
        base = recordings.parent
    cuts = list(cuts)
    if cuts and _needs_prefix(cuts[0], base):
        cuts = [c.with_recording_path_prefix(str(base)) for c in cuts]
    pieces = []  # (id, cut, supervision or None)
    for cut in cuts:
        if not cut.supervisions:
            pieces.append((cut.id, cut, None))
        elif (
            len(cut.supervisions) == 1
            and cut.supervisions[0].start <= 0
            and cut.supervisions[0].end >= cut.duration - 1e-3
        ):
            pieces.append((cut.supervisions[0].id, cut, cut.supervisions[0]))
        else:
            for piece in cut.trim_to_supervisions(keep_overlapping=False):
                pieces.append((piece.supervisions[0].id, piece, piece.supervisions[0]))
    log.info("lhotse %s: %d utterances from %d cuts", root, len(pieces), len(cuts))

    def load(cut, name: str) -> np.ndarray:
        audio = cut.load_audio()  # [channels, samples] at the cut's rate
        return check_audio(np.asarray(audio).T, int(cut.sampling_rate), name)

    def entries() -> Iterator[Entry]:
        for utt, cut, sup in pieces:
            source = next((s.source for s in getattr(cut.recording, "sources", []) or [] if s.type == "file"), None)
            yield Entry(
                id=utt,
                load=lambda c=cut, u=utt: load(c, u),
                path=source,
                text=sup.text if sup is not None else None,
                speaker=sup.speaker if sup is not None else None,
                attributes=_supervision_attributes(sup) if sup is not None else {},
            )

    return Corpus(spec, entries, length=len(pieces), tables=tables, max_utterances=max_utterances)


def open_corpus(spec, tables, max_utterances) -> Corpus:
    return lhotse_corpus(Path(spec.path).expanduser(), spec.arg, tables, max_utterances, spec.text)
