"""Extraction by several processes (``torchrun``): each rank writes its share of the corpus into its
own sub-store, and rank 0 merges the sub-stores' manifests into the store's one.

Layout: ``STORE/ranks/RRRRR/`` is an ordinary store (its own manifest, table and shards) written by
rank R alone, so the single-writer crash safety and resume of ``writer.py`` hold per rank unchanged.
Rank R of N takes utterances number R, R+N, R+2N, ... of the corpus and numbers them R, R+N, ...
in the ``utt`` column, so indices never collide across ranks and, with no bad files, equal the
ones a single process would give. ``STORE/manifest.json`` lists every rank's shards by path and
``STORE/utterances.jsonl`` every rank's utterances: ``ActivationStore`` reads the merged store as
any other. Rerunning the same ``torchrun`` command resumes each rank's part.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from whisper_sae.artifacts import record_path, resolve_path
from whisper_sae.runtime import World, barrier
from whisper_sae.runtime.locks import exclusive

from .store import ActivationStore
from .writer import FORMAT, StoreWriter, write_json_atomic

RANKS_DIR = "ranks"


def rank_dir(out, rank: int) -> Path:
    return Path(out) / RANKS_DIR / f"{rank:05d}"


class RankShard:
    """Every ``size``-th utterance of a corpus starting at ``rank`` (of the first ``limit`` utterances).

    Each rank still reads the whole listing in order (so every rank agrees on the numbering) but
    the corpus decodes audio lazily per utterance; decoding is far cheaper than the encoder.
    """

    def __init__(self, corpus: Iterable, rank: int, size: int, limit: int | None = None):
        self.corpus, self.rank, self.size, self.limit = corpus, rank, size, limit

    def __iter__(self) -> Iterator:
        for i, u in enumerate(self.corpus):
            if self.limit is not None and i >= self.limit:
                return
            if i % self.size == self.rank:
                yield u

    def __len__(self) -> int:
        n = len(self.corpus)  # TypeError for streaming corpora, as for the corpus itself
        n = n if self.limit is None else min(n, self.limit)
        return max(0, (n - self.rank + self.size - 1) // self.size)

    @property
    def skipped(self) -> list:
        return getattr(self.corpus, "skipped", [])


def check_layout(out, world: World) -> None:
    """Refuse to resume a store with a different number of processes than wrote it."""
    out = Path(out)
    manifest = out / "manifest.json"
    ranked = (out / RANKS_DIR).is_dir()
    if world.size == 1 and ranked:
        sizes = _recorded_world_size(out)
        raise ValueError(
            f"{out} was extracted by {sizes or 'several'} processes (it has {out / RANKS_DIR}); "
            f"resume it with torchrun --nproc-per-node {sizes or 'N'}, or use a new --out"
        )
    if world.size > 1 and manifest.is_file() and not ranked:
        raise ValueError(
            f"{out} holds a store extracted by a single process; resume it without torchrun, "
            "or use a new --out for a multi-process extraction"
        )
    recorded = _recorded_world_size(out)
    if world.size > 1 and recorded not in (None, world.size):
        raise ValueError(
            f"{out} was extracted by {recorded} processes, not {world.size}: each rank's share "
            f"of the corpus depends on the count; resume with torchrun --nproc-per-node {recorded}"
        )


def _recorded_world_size(out: Path) -> int | None:
    sub = rank_dir(out, 0) / "manifest.json"
    if not sub.is_file():
        return None
    return json.loads(sub.read_text(encoding="utf-8"))["settings"].get("world_size")


def extract_rank(
    out,
    world: World,
    writer_kw: dict,
    run: Callable[[StoreWriter, Iterable], None],
    corpus: Iterable,
    max_utterances: int | None,
) -> ActivationStore:
    """Extract this rank's share into ``ranks/RRRRR``, wait for every rank, merge on rank 0.

    Each rank holds its own lock on the store (``suffix=.rankR``): ranks of one run never block each
    other, but the same rank of a second, independent run fails at once, naming the holder.
    """
    with exclusive(out, "store", suffix=f".rank{world.rank}"):
        check_layout(out, world)
        barrier()  # every rank has checked the layout before any writes into it
        settings = dict(writer_kw.get("settings") or {}, rank=world.rank, world_size=world.size)
        writer = StoreWriter(
            rank_dir(out, world.rank),
            **{**writer_kw, "settings": settings},
            index_offset=world.rank,
            index_stride=world.size,
        )
        run(writer, RankShard(corpus, world.rank, world.size, max_utterances))
        barrier()  # every rank's sub-store is closed
        if world.is_main:
            merge_ranks(out, world.size)
        barrier()  # the merged manifest exists before any rank opens the store
    return ActivationStore(out)


def merge_ranks(out, size: int) -> Path:
    """Write ``out/manifest.json`` and ``out/utterances.jsonl`` describing every rank's sub-store.

    Nothing is copied: shards stay where their rank wrote them and the merged manifest names them
    by path. Safe to rerun (e.g. by hand after a rank was restarted alone).
    """
    out = Path(out)
    subs = []
    for r in range(size):
        path = rank_dir(out, r) / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"rank {r} of {size} wrote no store at {path.parent}; rerun the extraction")
        subs.append(json.loads(path.read_text(encoding="utf-8")))
    first = subs[0]
    hooks = {}
    for name, spec in first["hooks"].items():
        shards = []
        for r, sub in enumerate(subs):
            for s in sub["hooks"][name]["shards"]:
                shards.append(dict(s, path=f"{RANKS_DIR}/{r:05d}/{name}/{s['file']}"))
        hooks[name] = {
            "d_model": spec["d_model"],
            "kind": spec["kind"],
            "n_shards": len(shards),
            "n_rows": sum(s["rows"] for s in shards),
            "shards": shards,
        }
    skipped = {}
    for sub in subs:
        for s in sub["utterances"]["skipped"]:
            skipped.setdefault(s["id"], s)
    settings = {k: v for k, v in first["settings"].items() if k != "rank"}
    # Each rank recorded the corpus relative to its own sub-store; the merged manifest, relative to ``out``.
    corpus = record_path(resolve_path(first["corpus"], rank_dir(out, 0)), out) if first.get("corpus") else ""
    manifest = {
        "format": FORMAT,
        "model": first["model"],
        "corpus": corpus,
        "settings": settings,
        "hooks": hooks,
        "utterances": {
            "n_done": sum(s["utterances"]["n_done"] for s in subs),
            "n_skipped": len(skipped),
            "skipped": list(skipped.values()),
            "open": [],
        },
        "complete": all(s.get("complete") for s in subs),
        "info": {"ranks": [dict(s.get("info", {}), rank=r, complete=s.get("complete")) for r, s in enumerate(subs)]},
    }
    lines = []
    for r in range(size):
        with open(rank_dir(out, r) / "utterances.jsonl", encoding="utf-8") as f:
            lines += [line for line in f if line.strip()]
    records = sorted((json.loads(line) for line in lines), key=lambda rec: rec["idx"])
    table = out / "utterances.jsonl"
    tmp = table.with_name(table.name + ".tmp")
    tmp.write_text("".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records), encoding="utf-8")
    tmp.replace(table)
    write_json_atomic(out / "manifest.json", manifest)
    return out
