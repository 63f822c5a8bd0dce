"""Reading an activation store: shuffled training batches with bounded memory, hold-out splits, subsets.

A store is ``STORE/manifest.json``, ``STORE/utterances.jsonl`` and ``STORE/HOOK/shard_NNNNN.safetensors``
(see ``writer.py``). Rows of one utterance sit next to each other in the shards, so shuffling mixes
several randomly chosen shards at a time in a buffer of ``buffer_rows`` rows: memory stays bounded
and a batch draws from many utterances.

A shard that is missing, truncated or unreadable is reported by name with the fix (``whisper-sae store
info --verify STORE`` to list every bad shard, then re-extract), never as a raw safetensors error deep
inside training: its size is checked against the manifest before it is opened, and a failing load is
turned into :class:`StoreDamagedError`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from whisper_sae.artifacts import resolve_path

from .stream import ShuffledBatches
from .writer import DTYPES, FORMAT, file_digest

INDEX_COLUMNS = ("utt", "pos", "time", "token")


class StoreDamagedError(RuntimeError):
    """A shard of a store is missing, truncated or unreadable; the message names it and the fix."""


def _damaged(store: Path, shard: Path, what: str) -> StoreDamagedError:
    return StoreDamagedError(
        f"shard {shard} of store {store} {what}; run `whisper-sae store info --verify {store}` "
        "to list every bad shard, then re-extract into a new --out (or delete the store and rerun)"
    )


class ActivationStore:
    """A store written by ``extract`` or ``StoreWriter``; every read goes through the manifest."""

    def __init__(self, path):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{self.path} is not an activation store: it has no manifest.json")
        self.manifest = json.loads(manifest.read_text(encoding="utf-8"))
        if self.manifest.get("format") != FORMAT:
            raise ValueError(
                f"{manifest} has format {self.manifest.get('format')!r}; this reader understands {FORMAT!r}"
            )
        self._utterances = None

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.path)!r}, hooks={self.hooks}, utterances={len(self.utterances)})"

    # -- what is in it ----------------------------------------------------------------------------
    @property
    def hooks(self) -> list[str]:
        return list(self.manifest["hooks"])

    @property
    def settings(self) -> dict:
        return self.manifest["settings"]

    @property
    def corpus(self) -> str | None:
        """The corpus the store was extracted from, as a path usable from here (recorded relative to the store)."""
        return resolve_path(self.manifest.get("corpus") or None, self.path)

    def _hook(self, hook: str) -> dict:
        if hook not in self.manifest["hooks"]:
            raise ValueError(f"hook {hook!r} is not in {self.path}; it holds {', '.join(self.hooks)}")
        return self.manifest["hooks"][hook]

    def d_model(self, hook: str) -> int:
        return self._hook(hook)["d_model"]

    def n_rows(self, hook: str) -> int:
        return self._hook(hook)["n_rows"]

    def kind(self, hook: str) -> str:
        return self._hook(hook)["kind"]

    @property
    def utterances(self) -> list[dict]:
        """Done utterances in index order; ``utterances[i]["idx"] == i`` for a store written in one go."""
        if self._utterances is None:
            with open(self.path / "utterances.jsonl", encoding="utf-8") as f:
                recs = [json.loads(line) for line in f if line.strip()]
            self._utterances = sorted(recs, key=lambda r: r["idx"])
        return self._utterances

    def utterance(self, idx: int) -> dict:
        """The record of utterance index ``idx`` (the ``utt`` column of the shards)."""
        recs = self.utterances
        if 0 <= idx < len(recs) and recs[idx]["idx"] == idx:
            return recs[idx]
        for r in recs:
            if r["idx"] == idx:
                return r
        raise KeyError(f"no utterance with index {idx} in {self.path}")

    def split_utterances(self, holdout: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Split utterance indices into (train, validation), so no utterance has rows on both sides."""
        if not 0 <= holdout < 1:
            raise ValueError(f"holdout is the fraction of utterances held out, in [0, 1); got {holdout}")
        idx = np.array([r["idx"] for r in self.utterances], dtype=np.int64)
        if holdout > 0 and len(idx) < 2:
            raise ValueError(f"{self.path} has {len(idx)} utterance(s); a hold-out split needs at least 2")
        perm = np.random.default_rng(seed).permutation(idx)
        n_val = 0 if holdout == 0 else min(len(idx) - 1, max(1, round(holdout * len(idx))))
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    # -- reading ----------------------------------------------------------------------------------
    def _shard_path(self, hook: str, s: dict) -> Path:
        # A store merged from several ranks (see ranks.py) names each shard by its path.
        return self.path / s["path"] if "path" in s else self.path / hook / s["file"]

    def _shards(self, hook: str, utterances) -> list[tuple[Path, torch.Tensor | None, dict]]:
        """Shard paths of ``hook`` that may hold rows of ``utterances`` (all shards when None)."""
        spec = self._hook(hook)
        wanted = None
        if utterances is not None:
            wanted = torch.as_tensor(np.asarray(utterances, dtype=np.int64)).unique()
        out = []
        for s in spec["shards"]:
            if wanted is not None:
                lo, hi = torch.searchsorted(wanted, torch.tensor([s["utt_min"], s["utt_max"] + 1]))
                if lo == hi:
                    continue
            out.append((self._shard_path(hook, s), wanted, s))
        return out

    def _size_problem(self, path: Path, entry: dict) -> str | None:
        """Why a shard cannot be what the manifest says, from its size alone (no read), or None."""
        if not path.is_file():
            return "is missing"
        size = path.stat().st_size
        if "bytes" in entry and size != entry["bytes"]:
            return f"has {size} bytes but was written with {entry['bytes']} (truncated or altered)"
        return None

    def _open(self, path: Path, entry: dict) -> tuple[dict[str, torch.Tensor] | None, str | None]:
        """(columns, None) for a sound shard, (None, problem) otherwise."""
        problem = self._size_problem(path, entry)
        if problem:
            return None, problem
        try:
            cols = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            return None, f"cannot be read ({err})"
        if "acts" not in cols or len(cols["acts"]) != entry.get("rows", len(cols["acts"])):
            return None, f"does not hold the {entry.get('rows')} rows the manifest lists"
        return cols, None

    def _load(self, path: Path, wanted: torch.Tensor | None, entry: dict) -> dict[str, torch.Tensor]:
        cols, problem = self._open(path, entry)
        if problem:
            raise _damaged(self.path, path, problem)
        if wanted is not None:
            keep = torch.isin(cols["utt"].long(), wanted)
            cols = {k: v[keep] for k, v in cols.items()}
        return cols

    def read(
        self, hook: str, utterances=None, *, dtype: torch.dtype = torch.float32, max_rows: int | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """All rows of ``hook`` (or of the given utterance indices) in store order: (acts [n, d], index).

        ``index`` holds the columns ``utt``, ``pos``, ``time``, ``token`` aligned with the rows.
        Meant for subsets that fit in memory (evaluation, analysis); train with ``batches``.
        ``max_rows`` keeps the first rows only, and stops reading shards once it has them.
        """
        parts, held = [], 0
        for shard in self._shards(hook, utterances):
            if max_rows is not None and held >= max_rows:
                break
            parts.append(self._load(*shard))
            held += len(parts[-1]["acts"])
        if max_rows is not None and held > max_rows:
            parts[-1] = {k: v[: len(v) - (held - max_rows)] for k, v in parts[-1].items()}
        d = self.d_model(hook)
        if not parts:
            empty = {
                "utt": torch.zeros(0, dtype=torch.int32),
                "pos": torch.zeros(0, dtype=torch.int32),
                "time": torch.zeros(0),
                "token": torch.zeros(0, dtype=torch.int32),
            }
            return torch.zeros(0, d, dtype=dtype), empty
        acts = torch.cat([c["acts"] for c in parts]).to(dtype)
        return acts, {k: torch.cat([c[k] for c in parts]) for k in INDEX_COLUMNS}

    def batches(
        self,
        hook: str,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        utterances=None,
        dtype: torch.dtype = torch.float32,
        loop: bool = False,
        drop_last: bool = True,
        buffer_rows: int = 262_144,
    ) -> ShuffledBatches:
        """Yield ``[batch_size, d]`` batches of ``hook``'s rows; each epoch covers every row once.

        With ``shuffle``, each epoch visits the shards in a new random order, ``buffer_rows // shard
        rows`` shards at a time, and shuffles rows within that buffer (plus the rows left over from
        the previous buffer, so no row is lost between buffers). ``utterances`` restricts to those
        utterance indices (e.g. one side of ``split_utterances``). ``loop`` repeats epochs forever;
        otherwise the last short batch is yielded unless ``drop_last``. The rows pass through one buffer of
        about ``buffer_rows`` rows allocated once (``stream.py``), so memory does not grow with the store.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive number of rows, got {batch_size}")
        if not isinstance(buffer_rows, int) or isinstance(buffer_rows, bool) or buffer_rows < 1:
            raise ValueError(f"buffer_rows must be a positive number of rows, got {buffer_rows!r}")
        shards = self._shards(hook, utterances)
        if not shards:
            raise ValueError(f"hook {hook!r} of {self.path} has no rows for the requested utterances")
        per_buffer = max(1, buffer_rows // max(1, self.settings.get("shard_rows", buffer_rows)))
        return ShuffledBatches(
            lambda i: self._load(*shards[i])["acts"],
            [entry.get("rows", self.settings.get("shard_rows", 1)) for _, _, entry in shards],
            self.d_model(hook),
            batch_size,
            shuffle=shuffle,
            seed=seed,
            dtype=dtype,
            store_dtype=DTYPES[self.settings.get("dtype", "float16")],
            loop=loop,
            drop_last=drop_last,
            per_buffer=per_buffer,
        )

    def verify(self, *, checksums: bool = True) -> list[tuple[Path, str]]:
        """Every shard that is not as written: ``(path, problem)``; empty when all are sound.

        Sizes are checked for every shard; with ``checksums`` each shard is read and its BLAKE2b
        compared with the manifest's (shards of stores written before checksums are loaded instead,
        and listed with "no checksum recorded" only if they fail to load).
        """
        bad = []
        for hook, spec in self.manifest["hooks"].items():
            for entry in spec["shards"]:
                path = self._shard_path(hook, entry)
                problem = self._size_problem(path, entry)
                if problem is None and checksums:
                    if "blake2b" in entry:
                        if file_digest(path) != entry["blake2b"]:
                            problem = "does not match its recorded checksum (altered or damaged)"
                    else:
                        _, problem = self._open(path, entry)
                        problem = problem and f"no checksum recorded; it {problem}"
                if problem:
                    bad.append((path, problem))
        return bad

    def verify_report(self) -> tuple[bool, str]:
        """(all sound, lines for ``store info --verify``)."""
        shards = [(h, e) for h, spec in self.manifest["hooks"].items() for e in spec["shards"]]
        bad = self.verify()
        unrecorded = sum("blake2b" not in e for _, e in shards)
        lines = [
            f"verify    {len(shards) - len(bad)} of {len(shards)} shards sound"
            + (f" ({unrecorded} with no checksum recorded: checked by loading them)" if unrecorded else "")
        ]
        lines += [f"  BAD {path}: {problem}" for path, problem in bad]
        if bad:
            lines.append(f"  re-extract into a new --out (or delete {self.path} and rerun extract)")
        return not bad, "\n".join(lines)

    def summary(self) -> str:
        """A few lines describing the store, for ``whisper-sae store info``."""
        m = self.manifest
        u = m["utterances"]
        dur = sum(r.get("duration") or 0.0 for r in self.utterances)
        n_bad = len(self.verify(checksums=False))
        state = "complete" if m.get("complete") else "incomplete: rerun extract to resume"
        if n_bad:
            state = f"damaged: {n_bad} shard(s) missing or truncated; run store info --verify"
        lines = [
            f"store     {self.path}  ({state})",
            f"model     {m['model'].get('name')}  ({m['model'].get('spec')})",
            f"corpus    {self.corpus}",
            "settings  " + ", ".join(f"{k}={v}" for k, v in m["settings"].items()),
            f"utterances {u['n_done']} done ({dur / 60:.1f} min of audio), {u.get('n_skipped', 0)} skipped",
        ]
        for s in u.get("skipped", [])[:5]:
            lines.append(f"  skipped {s['id']}: {s['reason']}")
        for name, h in m["hooks"].items():
            lines.append(
                f"hook      {name}: {h['kind']} rows, d_model {h['d_model']}, "
                f"{h['n_rows']} rows in {h['n_shards']} shards"
            )
        for k, v in m.get("info", {}).items():
            lines.append(f"info      {k}: {v}")
        return "\n".join(lines)
