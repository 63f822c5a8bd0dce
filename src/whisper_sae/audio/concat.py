"""Several corpora read as one: ``load_corpus([A, B])``, ``extract --corpus A --corpus B``.

Each utterance keeps its corpus's name in ``attributes["corpus"]`` (and so in a store's utterance
records). Utterance ids must be unique in a store, and two corpora may well share some ("1-1-0001",
or Kaldi ids reused across a train and a test dir): an id that an earlier corpus already has is
prefixed with the later corpus's name (``NAME/ID``), and a warning per corpus says how many were.
Ids that do not clash are kept as they are, so a corpus read alone or with others gives the same
ids. The decision looks only at earlier corpora's entries, so it is the same on every pass and a
resumed extraction sees the same ids.

Speaker ids are not prefixed: the same id in two corpora may be the same person (mini LibriSpeech
shares 28 of its 29 speakers with LibriSpeech's train-clean-100), and a speaker split must then
keep them on one side.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from whisper_sae.audio.corpus import Corpus
from whisper_sae.audio.utterance import Utterance

log = logging.getLogger(__name__)


class ConcatCorpus(Corpus):
    """The utterances of ``corpora`` one corpus after the other; ``skipped`` gathers theirs."""

    def __init__(self, corpora: list[Corpus], *, max_utterances: int | None = None):
        names = [getattr(c, "name", None) or c.spec for c in corpora]
        specs = [c.spec for c in corpora]
        for i, spec in enumerate(specs):
            if spec in specs[:i]:
                raise ValueError(f"corpus {spec!r} is given twice; give each corpus once.")
        for i, name in enumerate(names):  # distinct names, so NAME/ID prefixes are distinct too
            n = 2
            while names[i] in names[:i]:
                names[i] = f"{name}#{n}"
                n += 1
            if names[i] != name:
                log.warning("two corpora are named %r; the second (%s) is called %r", name, specs[i], names[i])
        super().__init__(" + ".join(specs), lambda: iter(()), max_utterances=max_utterances)
        self.corpora, self.names = corpora, names
        self.name = " + ".join(names)

    def __len__(self) -> int:
        n = sum(len(c) for c in self.corpora)
        return n if self.max_utterances is None else min(n, self.max_utterances)

    def __iter__(self) -> Iterator[Utterance]:
        self.skipped = []
        earlier: set[str] = set()
        n_done = 0
        for corpus, name in zip(self.corpora, self.names):
            mine: set[str] = set()
            clashes = 0
            for u in corpus:
                if self.max_utterances is not None and n_done >= self.max_utterances:
                    return
                mine.add(u.id)
                if u.id in earlier:
                    clashes += 1
                    u.id = f"{name}/{u.id}"
                u.attributes = {**(u.attributes or {}), "corpus": name}
                n_done += 1
                yield u
            for s in corpus.skipped:
                mine.add(s["id"])
                uid = f"{name}/{s['id']}" if s["id"] in earlier else s["id"]
                self.skipped.append({**s, "id": uid, "corpus": name})
            if clashes:
                log.warning(
                    "corpus %s: %d utterance ids also belong to an earlier corpus; they are called %s/ID",
                    name,
                    clashes,
                    name,
                )
            earlier |= mine

    def records(self) -> Iterator[dict]:
        """Id, speaker and attributes of every entry, renamed as ``__iter__`` renames them, without decoding audio."""
        from whisper_sae.audio.splits import entry_records

        earlier: set[str] = set()
        for corpus, name in zip(self.corpora, self.names):
            mine = set()
            for rec in entry_records(corpus):
                mine.add(rec["id"])
                if rec["id"] in earlier:
                    rec["id"] = f"{name}/{rec['id']}"
                rec["attributes"]["corpus"] = name
                yield rec
            earlier |= mine


def concat_corpora(corpora: list, *, max_utterances: int | None = None) -> Corpus:
    """One corpus of ``corpora`` (specs or ``Corpus`` objects) in order; a single one is returned as it is."""
    from whisper_sae.audio.corpus import load_corpus

    loaded = [load_corpus(c) for c in corpora]
    if not loaded:
        raise ValueError("no corpus given; pass at least one corpus spec")
    if len(loaded) == 1:
        loaded[0].max_utterances = max_utterances if max_utterances is not None else loaded[0].max_utterances
        return loaded[0]
    return ConcatCorpus(loaded, max_utterances=max_utterances)
