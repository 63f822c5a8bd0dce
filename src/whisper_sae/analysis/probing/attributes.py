"""Attribute labels for the probes: where they come from (utterance attributes, a metadata table, the
speaker id) and the checks that keep a probe from being trained on nonsense.

Every problem is either an error that names the column, the counts per class and what was skipped, or
a note (a sentence kept in probe.json / probe.md) when the data could be repaired: labels differing in
case or whitespace are merged, classes with too few speakers are dropped (or pooled into one named class
with ``merge_rare``), unlabelled utterances skipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from whisper_sae.audio.metadata import read_table

# Columns that mean the same thing in different corpora (LibriSpeech SPEAKERS.TXT says SEX).
_ALIASES = {"gender": ("gender", "sex"), "sex": ("sex", "gender")}
# Short spellings of the two values a gender column usually holds.
_GENDER_WORDS = {"m": "male", "f": "female", "man": "male", "woman": "female"}
SPEAKER = "speaker"


@dataclass
class AttributeLabels:
    """One attribute resolved over a list of utterance records.

    ``values[i]`` is the class (str) or number (float) of record i, or None where the record is skipped.
    ``counts`` maps each kept class to ``{"utterances", "speakers"}``; ``dropped`` the same for dropped
    classes. ``notes`` are sentences saying what was repaired or skipped.
    """

    name: str
    column: str
    kind: str  # "categorical" | "continuous"
    values: list
    classes: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray:
        return np.array([v is not None for v in self.values])

    def targets(self) -> np.ndarray:
        """Labels of the kept records: class strings, or floats for a continuous attribute."""
        kept = [v for v in self.values if v is not None]
        return np.array(kept, dtype=np.float64 if self.kind == "continuous" else object)


def apply_metadata(records: list[dict], path: str | Path) -> list[str]:
    """Merge the columns of a metadata table (CSV/TSV/``SPEAKERS.TXT``, read by the audio package) into
    each record's ``attributes``, looking rows up by utterance id, then speaker id.

    Returns notes about partial matches; raises when no id of the table matches the corpus at all,
    since every attribute taken from it would then be missing.
    """
    table = read_table(path)
    matched_keys, unmatched = set(), 0
    for r in records:
        speaker = None if r.get("speaker") is None else str(r["speaker"])
        row = table.lookup(r["id"], speaker)
        if row is None:
            unmatched += 1
            continue
        matched_keys.add(r["id"] if r["id"] in table.rows else speaker)
        r["attributes"] = {**(r.get("attributes") or {}), **row}
    keys = set(table.rows)
    if not matched_keys:
        ids = {r["id"] for r in records}
        speakers = {str(r["speaker"]) for r in records if r.get("speaker") is not None}
        raise ValueError(
            f"metadata table {path}: none of its {len(keys)} ids ({_examples(keys)}, column "
            f"{table.key_column!r}) matches an utterance id ({_examples(ids)}) or a speaker id "
            f"({_examples(speakers) or 'none known'}) of the corpus; nothing was taken from it"
        )
    notes = []
    if unmatched:
        notes.append(
            f"metadata table {path}: {unmatched} of {len(records)} utterances have no row; their metadata columns are missing"
        )
    if keys - matched_keys:
        notes.append(
            f"metadata table {path}: {len(keys - matched_keys)} of its {len(keys)} ids match no utterance or speaker of the corpus ({_examples(keys - matched_keys)}); ignored"
        )
    return notes


def resolve(
    records: list[dict],
    attribute: str,
    *,
    min_speakers: int = 3,
    categorical: bool | None = None,
    merge_rare: str | None = None,
) -> AttributeLabels:
    """Resolve ``attribute`` over ``records`` (dicts with ``id``, ``speaker``, ``attributes``).

    ``categorical=None`` decides from the values: numbers with at least 3 distinct values are
    continuous (regression), anything else is a class label. ``min_speakers`` is the fewest distinct
    speakers a class needs to be kept (held-out-speaker scores need speakers on both sides of a split).
    ``merge_rare`` names one class into which two or more classes short of ``min_speakers`` are pooled (e.g.
    ``"other"`` for native languages with a few speakers each) instead of being dropped; the pooled class
    is kept when it reaches ``min_speakers`` itself, and a note lists what went into it.
    """
    column, raw = _column_values(records, attribute)
    missing = [i for i, v in enumerate(raw) if _is_missing(v)]
    notes = []
    if missing:
        notes.append(f"column {column!r}: {len(missing)} of {len(raw)} utterances have no value; skipped")
    present = [v for v in raw if not _is_missing(v)]
    numbers = _as_numbers(present)
    if categorical is None:
        categorical = numbers is None or len(set(numbers)) < 3
    speakers = [str(r.get("speaker")) if r.get("speaker") is not None else r["id"] for r in records]
    if not categorical:
        return _continuous(attribute, column, raw, speakers, notes, min_speakers)
    return _categorical(attribute, column, raw, speakers, notes, min_speakers, merge_rare)


def _continuous(name, column, raw, speakers, notes, min_speakers) -> AttributeLabels:
    values = [None if _is_missing(v) else float(v) for v in raw]
    if any(v is not None and not math.isfinite(v) for v in values):
        raise ValueError(f"column {column!r} has non-finite numbers; give finite values or leave the cell empty")
    kept = [v for v in values if v is not None]
    spk = {s for s, v in zip(speakers, values) if v is not None}
    if len(set(kept)) < 2:
        raise ValueError(
            f"column {column!r} is constant ({_fmt(kept[0]) if kept else 'no values'} for all {len(kept)} labelled utterances); a probe needs values that vary"
        )
    if name != SPEAKER and len(spk) < min_speakers:
        raise ValueError(
            f"column {column!r} is labelled for only {len(spk)} speakers; held-out-speaker regression needs at least {min_speakers}"
        )
    counts = {"utterances": len(kept), "speakers": len(spk), "min": min(kept), "max": max(kept)}
    return AttributeLabels(name, column, "continuous", values, counts=counts, notes=notes)


def _categorical(name, column, raw, speakers, notes, min_speakers, merge_rare=None) -> AttributeLabels:
    values, spellings = [], {}
    for v in raw:
        if _is_missing(v):
            values.append(None)
            continue
        label = _normalise(v, gender=name.lower() in _ALIASES)
        spellings.setdefault(label, set()).add(str(v))
        values.append(label)
    for label, forms in sorted(spellings.items()):
        if len(forms) > 1:
            notes.append(
                f"column {column!r}: {len(forms)} spellings merged into {label!r} ({', '.join(repr(f) for f in sorted(forms))})"
            )
    counts = _class_counts(values, speakers)
    if len(counts) < 2:
        only = next(iter(counts), None)
        raise ValueError(
            f"column {column!r} is constant: all {sum(c['utterances'] for c in counts.values())} labelled "
            f"utterances are {only!r}; a probe needs at least two classes"
        )
    # The speaker attribute is probed across utterances of the same speakers, so the rule is per utterance.
    unit, need = ("utterances", 2) if name == SPEAKER else ("speakers", min_speakers)
    rare = [c for c, n in counts.items() if n[unit] < need]
    if merge_rare is not None and name != SPEAKER and len(rare) > 1:
        if merge_rare in counts and merge_rare not in rare:
            raise ValueError(
                f"column {column!r} already has a class {merge_rare!r} with {counts[merge_rare]['speakers']} "
                f"speakers; give --merge-rare a name that is not a class"
            )
        pooled = set(rare)
        values = [merge_rare if v in pooled else v for v in values]
        counts = _class_counts(values, speakers)
        notes.append(
            f"column {column!r}: {len(pooled)} classes with fewer than {need} speakers pooled into {merge_rare!r} "
            f"({counts[merge_rare]['speakers']} speakers): {', '.join(sorted(pooled))}"
        )
    dropped = {c: n for c, n in counts.items() if n[unit] < need}
    for c, n in dropped.items():
        notes.append(
            f"column {column!r}: class {c!r} dropped: {n['speakers']} speakers, {n['utterances']} utterances (fewer than {need} {unit})"
        )
    kept = {c: n for c, n in counts.items() if c not in dropped}
    if len(kept) < 2:
        raise ValueError(
            f"column {column!r}: fewer than two classes have at least {need} {unit} "
            f"(counts per class: {_fmt_counts(counts)}); a probe on one class would be meaningless"
        )
    values = [v if v in kept else None for v in values]
    return AttributeLabels(
        name, column, "categorical", values, classes=sorted(kept), counts=kept, dropped=dropped, notes=notes
    )


def _column_values(records: list[dict], attribute: str) -> tuple[str, list]:
    if attribute == SPEAKER:
        if all(r.get("speaker") is None for r in records):
            raise ValueError("attribute 'speaker' needs speaker ids, and no utterance of this corpus has one")
        return SPEAKER, [r.get("speaker") for r in records]
    available: dict[str, str] = {}
    for r in records:
        for k in r.get("attributes") or {}:
            available.setdefault(k.strip().lower(), k)
    for wanted in _ALIASES.get(attribute.lower(), (attribute.lower(),)):
        if wanted in available:
            col = available[wanted]
            return col, [(r.get("attributes") or {}).get(col) for r in records]
    names = sorted(available.values()) + [SPEAKER]
    raise ValueError(
        f"attribute {attribute!r} is not a column of this corpus or its metadata; available: "
        f"{', '.join(names)} (add a metadata table with --metadata to bring more)"
    )


def _class_counts(values: list, speakers: list[str]) -> dict:
    counts: dict[str, dict] = {}
    for v, s in zip(values, speakers):
        if v is None:
            continue
        c = counts.setdefault(v, {"utterances": 0, "speakers": set()})
        c["utterances"] += 1
        c["speakers"].add(s)
    return {c: {"utterances": n["utterances"], "speakers": len(n["speakers"])} for c, n in sorted(counts.items())}


def _normalise(v, *, gender: bool) -> str:
    label = re.sub(r"\s+", " ", str(v)).strip().lower()
    return _GENDER_WORDS.get(label, label) if gender else label


def _is_missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip().lower() in ("", "nan", "none", "na", "n/a")


def _as_numbers(values: list) -> list[float] | None:
    if not values or any(isinstance(v, bool) for v in values):
        return None
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def _examples(items, n: int = 3) -> str:
    items = sorted(map(str, items))
    more = f", … {len(items)} in all" if len(items) > n else ""
    return ", ".join(repr(i) for i in items[:n]) + more


def _fmt(x: float) -> str:
    return f"{x:g}"


def _fmt_counts(counts: dict) -> str:
    return "; ".join(f"{c!r}: {n['utterances']} utterances / {n['speakers']} speakers" for c, n in counts.items())
