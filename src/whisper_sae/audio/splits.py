"""Held-out splits by speaker, never by utterance.

A probe or an SAE evaluated on utterances of speakers it was trained on measures, in part, how well
it remembers those voices: with one speaker on both sides, speaker identity, gender and accent
leak from training into the held-out score. So speakers, not utterances, are drawn: every
utterance of a speaker lands on the same side. Speaker ids are compared as they are, across
corpora too (the same id in mini LibriSpeech and LibriSpeech is the same reader), so a speaker
present in two corpora is held out, or not, in both.

``held_out`` is the fraction of *speakers* held out (at least one on each side). The draw depends
only on the set of speakers and the seed (speakers are sorted before the seeded permutation), not
on the order utterances arrive in. ``stratify="gender"`` draws that fraction within each value of
the attribute (the largest remainders get the rounding), so both sides keep the corpus's mix.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SpeakerSplit:
    """Utterance ids and speakers on each side; unpacks as ``train, held_out = split``."""

    train: set[str]
    held_out: set[str]
    train_speakers: set[str]
    held_out_speakers: set[str]
    held_out_fraction: float
    seed: int
    stratify: str | None = None
    info: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.train, self.held_out))

    def to_json(self) -> dict:
        return {
            "held_out_fraction": self.held_out_fraction,
            "seed": self.seed,
            "stratify": self.stratify,
            **self.info,
            "n_train": len(self.train),
            "n_held_out": len(self.held_out),
            "train_speakers": sorted(self.train_speakers),
            "held_out_speakers": sorted(self.held_out_speakers),
            "train": sorted(self.train),
            "held_out": sorted(self.held_out),
        }

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        return path


def load_split(path) -> SpeakerSplit:
    """Read a split written by ``SpeakerSplit.save`` (``whisper-sae corpus split --out``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [k for k in ("train", "held_out", "train_speakers", "held_out_speakers") if k not in data]
    if missing:
        raise ValueError(
            f"{path} is not a speaker split (no {', '.join(missing)}); write one with `whisper-sae corpus split`."
        )
    return SpeakerSplit(
        set(data["train"]),
        set(data["held_out"]),
        set(data["train_speakers"]),
        set(data["held_out_speakers"]),
        data.get("held_out_fraction"),
        data.get("seed"),
        data.get("stratify"),
    )


def entry_records(corpus) -> Iterator[dict]:
    """Id, speaker and attributes of every entry of a ``Corpus``, read from its side files, without decoding audio."""
    from whisper_sae.audio.metadata import merge_attributes

    if hasattr(corpus, "records"):
        yield from corpus.records()
        return
    for n, entry in enumerate(corpus._entries()):
        if corpus.max_utterances is not None and n >= corpus.max_utterances:
            return
        attributes = merge_attributes(corpus.tables, entry.id, entry.speaker, entry.attributes)
        yield {"id": entry.id, "speaker": entry.speaker or attributes.get("speaker"), "attributes": attributes}


def _record(item) -> tuple[str, str | None, dict]:
    if isinstance(item, dict):
        attributes = item.get("attributes") or {}
        speaker = item.get("speaker") if item.get("speaker") is not None else attributes.get("speaker")
        return str(item["id"]), speaker, attributes
    attributes = getattr(item, "attributes", None) or {}
    speaker = item.speaker if getattr(item, "speaker", None) is not None else attributes.get("speaker")
    return str(item.id), speaker, attributes


def _quotas(sizes: dict, fraction: float) -> dict:
    """Speakers to hold out per stratum: ``fraction`` of each, rounded by largest remainder to the overall total."""
    total = sum(sizes.values())
    want = min(max(round(fraction * total), 1), total - 1)
    exact = {k: fraction * n for k, n in sizes.items()}
    quota = {k: int(np.floor(x)) for k, x in exact.items()}
    for k in sorted(sizes, key=lambda k: (-(exact[k] - quota[k]), str(k)))[: max(0, want - sum(quota.values()))]:
        quota[k] += 1
    return {k: min(q, sizes[k]) for k, q in quota.items()}


def speaker_split(
    utterances_or_records: Iterable, held_out: float = 0.1, seed: int = 0, stratify: str | None = None
) -> SpeakerSplit:
    """Split utterances into train and held-out id sets with no speaker on both sides.

    ``utterances_or_records``: a ``Corpus`` (read without decoding audio), ``Utterance`` objects, or
    records with ``id``, ``speaker`` and ``attributes`` (a store's ``utterances.jsonl`` lines).
    ``held_out``: fraction of speakers, in (0, 1). ``stratify``: an attribute to keep balanced.
    """
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a fraction of speakers between 0 and 1, got {held_out}.")
    items = (
        entry_records(utterances_or_records) if hasattr(utterances_or_records, "_entries") else utterances_or_records
    )
    by_speaker: dict[str, list[str]] = {}
    strata: dict[str, Counter] = {}
    no_speaker, seen = [], set()
    for item in items:
        uid, speaker, attributes = _record(item)
        if uid in seen:
            raise ValueError(f"utterance id {uid!r} occurs twice; ids must be unique to split them.")
        seen.add(uid)
        if speaker in (None, ""):
            no_speaker.append(uid)
            continue
        by_speaker.setdefault(str(speaker), []).append(uid)
        if stratify is not None:
            strata.setdefault(str(speaker), Counter())[str(attributes.get(stratify))] += 1
    if no_speaker:
        raise ValueError(
            f"{len(no_speaker)} utterances have no speaker (e.g. {', '.join(no_speaker[:3])}); a split by "
            "speaker needs one for each: give the corpus speakers (utt2spk, a speaker column, ?speaker=COLUMN)."
        )
    if len(by_speaker) < 2:
        raise ValueError(f"a speaker split needs at least 2 speakers; the utterances have {len(by_speaker)}.")
    speakers = sorted(by_speaker)
    group = {s: (strata[s].most_common(1)[0][0] if stratify is not None else "") for s in speakers}
    if stratify is not None and all(g == "None" for g in group.values()):
        raise ValueError(f"no utterance has attribute {stratify!r} to stratify by; choose one the corpus has.")
    rng = np.random.default_rng(seed)
    order = [speakers[i] for i in rng.permutation(len(speakers))]
    quota = _quotas(Counter(group.values()), held_out)
    held_speakers = set()
    for s in order:
        if quota[group[s]] > 0:
            held_speakers.add(s)
            quota[group[s]] -= 1
    train_speakers = set(speakers) - held_speakers
    info = {}
    if stratify is not None:
        info["strata"] = {
            g: {
                "train": sum(group[s] == g for s in train_speakers),
                "held_out": sum(group[s] == g for s in held_speakers),
            }
            for g in sorted(set(group.values()))
        }
    return SpeakerSplit(
        train={u for s in train_speakers for u in by_speaker[s]},
        held_out={u for s in held_speakers for u in by_speaker[s]},
        train_speakers=train_speakers,
        held_out_speakers=held_speakers,
        held_out_fraction=held_out,
        seed=seed,
        stratify=stratify,
        info=info,
    )
