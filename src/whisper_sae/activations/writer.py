"""Writing an activation store: fixed-size safetensors shards per hook, an utterance table and a manifest.

Crash safety rests on one rule: ``manifest.json`` is the truth. A shard is written to a temporary
file and renamed into place, then the lines of the utterances it completes are appended to
``utterances.jsonl``, then the manifest is replaced atomically. Anything on disk beyond what the
manifest counts (a renamed shard, appended lines) is removed when the store is reopened, so a run
killed at any instant resumes without duplicated or lost rows.

Rows are appended in stream order, and shards are cut from that stream, so the committed rows of a
hook are always a prefix of it. An utterance is *done* once every one of its rows, in every hook,
sits in a committed shard; only done utterances are listed in ``utterances.jsonl`` and skipped on
resume. An utterance whose first rows were committed when the run stopped is *open*: the manifest
keeps how many of its rows each hook already holds, and when the resumed run re-does it those
rows are dropped instead of written twice.

Integrity: each shard's entry in the manifest records its size (``bytes``) and a BLAKE2b digest
(``blake2b``, of the file's bytes), so a truncated or altered shard is named by ``store info --verify``
and by every reader (see ``store.py``) instead of surfacing as a raw safetensors error in training.
Stores written before these keys still read; verify says "no checksum recorded" for them.

Non-finite rows are refused: ``add`` raises on NaN or infinite values, or on values beyond the storage
dtype's range (float16 stops at 65504, beyond it a value becomes inf), since one such row turns every
SAE loss it touches into NaN. ``extract`` checks each utterance before writing it and *skips* an
utterance with such rows: it logs a warning naming the utterance and lists it in the manifest's
``skipped`` with the reason, like an unreadable file.

Background writes: by default a writer thread does the disk work of each commit (safetensors
serialisation, checksum, fsync, rename, the table lines, the manifest) while the caller computes the
next batch. The caller still decides everything a commit means (which rows form the shard, which
utterances it completes, the manifest to write after it) and hands it over whole; the thread runs the
commits strictly in order, so the disk goes through the same sequence of states as without it, and
the crash safety above holds unchanged. The queue is bounded (``QUEUE_COMMITS``), so a slow disk
slows the caller instead of filling memory. An error in the thread stops all later commits (a
manifest must never count a shard that was not written) and is raised again, the same exception,
in the caller's next ``add``/``end_utterance``/``close``. ``background=False`` writes in the caller.

Files are written with the permissions the umask gives (0644 under the usual 022), so a store written
by one user can be read by the group that trains on it. The corpus is recorded relative to the store
(``artifacts.record_path``), so a store moved together with its corpus, or read from another working
directory, still finds it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import queue
import threading
import time as clock
from pathlib import Path

import torch
from safetensors.torch import save

from whisper_sae.artifacts import record_path, resolve_path
from whisper_sae.runtime.files import file_mode
from whisper_sae.runtime.locks import is_lock_file

FORMAT = "whisper-sae-store/1"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
HOOK_KINDS = ("frame", "token")
DEFAULT_SHARD_ROWS = 32_768
DEFAULT_COMMIT_EVERY_S = 300.0  # at most this much work lost on a kill, even at hooks that fill shards slowly
QUEUE_COMMITS = 2  # commits waiting for the writer thread before the caller blocks


def digest(data: bytes) -> str:
    """The checksum recorded for a shard's bytes (BLAKE2b, 32-byte digest, hex)."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def same_corpus(recorded: str | None, given: str | None, store: Path) -> bool:
    """Whether ``given`` names the corpus a store recorded (paths compared resolved, specs as text)."""
    if not recorded or not given:
        return True  # stores written without a corpus name, or a writer given none
    old = resolve_path(recorded, store)
    if Path(old).exists() and Path(given).exists():
        return Path(old).resolve() == Path(given).resolve()
    return old == given or recorded == given


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to ``path`` so that a reader sees either the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)


def shard_name(i: int) -> str:
    return f"shard_{i:05d}.safetensors"


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"store dtype {name!r} is not supported; use one of {', '.join(DTYPES)}")
    return DTYPES[name]


class StoreWriter:
    """Append activations utterance by utterance; resumable. Use as a context manager or call ``close``.

    ``hooks`` maps each hook name to ``{"d_model": int, "kind": "frame" | "token"}``. Per utterance:
    ``idx = begin_utterance(record)``, then ``add(hook, idx, acts, pos, time, token)`` any number of
    times, then ``end_utterance(idx)``. ``record`` needs an ``"id"``; the rest (duration, text,
    speaker, path, attributes, ...) is stored as given in ``utterances.jsonl``.
    """

    def __init__(
        self,
        path,
        *,
        hooks: dict[str, dict],
        model: dict | None = None,
        corpus: str = "",
        settings: dict | None = None,
        dtype: str = "float16",
        shard_rows: int = DEFAULT_SHARD_ROWS,
        resume: bool = True,
        index_offset: int = 0,
        index_stride: int = 1,
        background: bool = True,
        commit_every_s: float | None = DEFAULT_COMMIT_EVERY_S,
    ):
        self.path = Path(path)
        if commit_every_s is not None and not commit_every_s > 0:
            raise ValueError(f"commit_every_s must be a positive number of seconds or None, got {commit_every_s}")
        # A hook with few rows per utterance (decoder.out: ~20 tokens against 1500 frames) would otherwise
        # fill its first shard only after hours, and a killed run would lose every utterance since the start.
        self._commit_every_s = commit_every_s
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # Utterance indices are offset + stride * k: several writers (one per rank, see ranks.py)
        # then fill disjoint index sets that merge into one store without renumbering.
        if index_stride < 1 or not 0 <= index_offset < index_stride:
            raise ValueError(f"index_offset {index_offset} and index_stride {index_stride} need 0 <= offset < stride")
        self._index_offset, self._index_stride = index_offset, index_stride
        self.dtype = parse_dtype(dtype)
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be a positive number of rows, got {shard_rows}")
        for name, spec in hooks.items():
            if spec.get("kind") not in HOOK_KINDS or int(spec.get("d_model", 0)) < 1:
                raise ValueError(f"hook {name!r} needs d_model > 0 and kind in {HOOK_KINDS}, got {spec}")
        settings = dict(settings or {}, dtype=dtype, shard_rows=shard_rows)
        fresh = {
            "format": FORMAT,
            "model": dict(model or {}),
            "corpus": record_path(str(corpus), self.path) if corpus else "",
            "settings": settings,
            "hooks": {
                h: {"d_model": int(s["d_model"]), "kind": s["kind"], "n_rows": 0, "n_shards": 0, "shards": []}
                for h, s in hooks.items()
            },
            "utterances": {"n_done": 0, "n_skipped": 0, "skipped": [], "open": []},
            "complete": False,
            "info": {},
        }
        manifest_path = self.path / "manifest.json"
        if manifest_path.exists():
            if not resume:
                raise FileExistsError(f"{self.path} already holds a store; choose a new --out or resume it")
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            self._check_compatible(fresh, str(corpus))
            self._repair()
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self.manifest = fresh
            for h in hooks:
                (self.path / h).mkdir(exist_ok=True)
            (self.path / "utterances.jsonl").write_text("", encoding="utf-8")
            write_json_atomic(manifest_path, self.manifest)
        self.manifest["complete"] = False
        self.hooks = self.manifest["hooks"]
        self._done_ids = self._read_done_ids()
        self._buffer: dict[str, list[dict]] = {h: [] for h in self.hooks}
        self._buffered = {h: 0 for h in self.hooks}
        self._waiting_since = {h: clock.monotonic() for h in self.hooks}  # when its oldest uncommitted row came
        self._pending: dict[int, dict] = {}
        self._reopen = {o["id"]: o for o in self.manifest["utterances"]["open"]}
        used = [o["idx"] for o in self._reopen.values()] + [self._max_done_idx]
        self._next_idx = index_offset if max(used) < 0 else max(used) + index_stride
        if background:
            self._queue = queue.Queue(maxsize=QUEUE_COMMITS)
            self._thread = threading.Thread(target=self._work, name=f"store-writer {self.path.name}", daemon=True)
            self._thread.start()

    # -- resume -----------------------------------------------------------------------------------
    def _check_compatible(self, fresh: dict, corpus: str) -> None:
        old = self.manifest
        if old.get("format") != FORMAT:
            raise ValueError(f"{self.path} has format {old.get('format')!r}, expected {FORMAT!r}")
        if not same_corpus(old.get("corpus"), corpus, self.path):
            raise ValueError(
                f"{self.path} was extracted from corpus {resolve_path(old['corpus'], self.path)!r}, "
                f"not {corpus!r}; resume with the same --corpus or use a new --out"
            )
        for key in ("name", "spec"):
            if fresh["model"].get(key) and old["model"].get(key) != fresh["model"].get(key):
                raise ValueError(
                    f"{self.path} was extracted with model {key} {old['model'].get(key)!r}, "
                    f"not {fresh['model'].get(key)!r}; resume with the same model or use a new --out"
                )
        old_hooks = {h: (s["d_model"], s["kind"]) for h, s in old["hooks"].items()}
        new_hooks = {h: (s["d_model"], s["kind"]) for h, s in fresh["hooks"].items()}
        if old_hooks != new_hooks:
            raise ValueError(
                f"{self.path} holds hooks {sorted(old_hooks)}, not {sorted(new_hooks)}; "
                "resume with the same hooks or use a new --out"
            )
        for key, value in fresh["settings"].items():
            if key in old["settings"] and old["settings"][key] != value:
                raise ValueError(
                    f"{self.path} was extracted with {key}={old['settings'][key]!r}, not "
                    f"{value!r}; resume with the same settings or use a new --out"
                )

    def _repair(self) -> None:
        """Drop whatever a killed run left beyond the manifest: uncounted shards, temp files, lines."""
        for hook, spec in self.manifest["hooks"].items():
            keep = {s["file"] for s in spec["shards"]}
            for f in (self.path / hook).iterdir():
                if f.name not in keep and not is_lock_file(f.name):
                    f.unlink()
        for f in self.path.glob("*.tmp"):
            f.unlink()
        table = self.path / "utterances.jsonl"
        lines = table.read_text(encoding="utf-8").splitlines(keepends=True) if table.exists() else []
        n = self.manifest["utterances"]["n_done"]
        if len(lines) < n:
            raise ValueError(
                f"{table} lists {len(lines)} utterances but the manifest counts {n}; "
                "the store is damaged, extract into a new --out"
            )
        if len(lines) > n:
            tmp = table.with_name(table.name + ".tmp")
            tmp.write_text("".join(lines[:n]), encoding="utf-8")
            os.replace(tmp, table)

    def _read_done_ids(self) -> set[str]:
        self._max_done_idx = -1
        ids = set()
        with open(self.path / "utterances.jsonl", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                ids.add(rec["id"])
                self._max_done_idx = max(self._max_done_idx, rec["idx"])
        return ids

    @property
    def done_ids(self) -> set[str]:
        """Ids of utterances whose rows are all committed (skip these when resuming)."""
        return set(self._done_ids)

    @property
    def n_bytes(self) -> int:
        """Bytes of activations written or buffered so far (index columns not counted)."""
        item = torch.finfo(self.dtype).bits // 8
        return sum((s["n_rows"] + self._buffered[h]) * s["d_model"] * item for h, s in self.hooks.items())

    @property
    def n_done(self) -> int:
        return self.manifest["utterances"]["n_done"]

    # -- appending --------------------------------------------------------------------------------
    def begin_utterance(self, record: dict) -> int:
        uid = str(record["id"])
        if uid in self._done_ids:
            raise ValueError(f"utterance {uid!r} is already in {self.path}; skip ids in done_ids")
        if any(p["record"]["id"] == uid for p in self._pending.values()):
            raise ValueError(f"utterance {uid!r} was begun twice in this run")
        prior = self._reopen.pop(uid, None)
        if prior is not None:
            idx, drop = prior["idx"], dict(prior["committed"])
        else:
            idx, drop = self._next_idx, {}
            self._next_idx += self._index_stride
        self._pending[idx] = {
            "record": dict(record, id=uid, idx=idx),
            "appended": {},
            "committed": {},
            "ended": False,
            "drop": {h: drop.get(h, 0) for h in self.hooks},
            "kept": dict(drop),
        }
        return idx

    def add(self, hook: str, idx: int, acts: torch.Tensor, pos, time=None, token=None) -> None:
        """Append rows ``acts`` [n, d] of utterance ``idx`` to ``hook``'s stream."""
        self._raise_background_error()
        if hook not in self.hooks:
            raise ValueError(f"hook {hook!r} is not in this store; it has {', '.join(self.hooks)}")
        p = self._pending.get(idx)
        if p is None or p["ended"]:
            raise ValueError(f"utterance index {idx} is not open for writing; call begin_utterance first")
        n, d = acts.shape
        if d != self.hooks[hook]["d_model"]:
            raise ValueError(f"hook {hook!r} stores d_model={self.hooks[hook]['d_model']}, got rows of width {d}")
        pos = torch.as_tensor(pos, dtype=torch.int32).reshape(-1)
        time = torch.full((n,), float("nan")) if time is None else torch.as_tensor(time, dtype=torch.float32)
        token = torch.full((n,), -1, dtype=torch.int32) if token is None else torch.as_tensor(token, dtype=torch.int32)
        if not (len(pos) == len(time.reshape(-1)) == len(token.reshape(-1)) == n):
            raise ValueError(
                f"hook {hook!r}: {n} rows but index columns of lengths {len(pos)}, {time.numel()}, {token.numel()}"
            )
        bad = self.count_nonfinite(acts)
        if bad:
            raise ValueError(
                f"utterance {p['record']['id']!r}, hook {hook!r}: {bad} of {n} rows hold NaN or infinite "
                f"values (or values beyond {str(self.dtype).replace('torch.', '')}'s range); "
                "they would poison training, so the store refuses them: skip the utterance"
            )
        skip = min(p["drop"][hook], n)  # rows a killed run already committed for this utterance
        p["drop"][hook] -= skip
        if skip == n:
            return
        chunk = {
            "acts": acts[skip:].detach().to("cpu", self.dtype),
            "utt": torch.full((n - skip,), idx, dtype=torch.int32),
            "pos": pos[skip:],
            "time": time.reshape(-1)[skip:].float(),
            "token": token.reshape(-1)[skip:],
        }
        if not self._buffered[hook]:
            self._waiting_since[hook] = clock.monotonic()
        self._buffer[hook].append(chunk)
        self._buffered[hook] += n - skip
        p["appended"][hook] = p["appended"].get(hook, 0) + n - skip
        while self._buffered[hook] >= self.manifest["settings"]["shard_rows"]:
            self._commit_shard(hook, self.manifest["settings"]["shard_rows"])

    def count_nonfinite(self, acts: torch.Tensor) -> int:
        """Rows of ``acts`` that are not finite once cast to the storage dtype (fp16 overflows past 65504)."""
        if acts.numel() == 0:
            return 0
        return int((~torch.isfinite(acts.detach().to(self.dtype))).reshape(len(acts), -1).any(1).sum())

    def end_utterance(self, idx: int) -> None:
        self._raise_background_error()
        p = self._pending.get(idx)
        if p is None:
            raise ValueError(f"utterance index {idx} was not begun")
        p["ended"] = True
        if self._commit_every_s is not None:
            # A shorter shard for each hook whose oldest waiting row is older than commit_every_s.
            now = clock.monotonic()
            for hook in self.hooks:
                if self._buffered[hook] and now - self._waiting_since[hook] >= self._commit_every_s:
                    self._commit_shard(hook, self._buffered[hook])
        if self._is_done(p):  # e.g. a resumed utterance whose rows were all committed before
            self._checkpoint()

    def skip(self, uid: str, reason: str, path: str | None = None) -> None:
        """Count an utterance that could not be used (bad audio, too long a transcript, ...)."""
        u = self.manifest["utterances"]
        if uid not in {s["id"] for s in u["skipped"]}:
            u["skipped"].append({"id": uid, "path": path, "reason": reason})
            u["n_skipped"] = len(u["skipped"])

    def set_info(self, **info) -> None:
        """Record facts about the run (timings, measured cosines, ...) in the manifest's ``info``."""
        self.manifest["info"].update(info)

    # -- committing -------------------------------------------------------------------------------
    def _is_done(self, p: dict) -> bool:
        return p["ended"] and all(p["committed"].get(h, 0) == n for h, n in p["appended"].items())

    def _commit_shard(self, hook: str, rows: int) -> None:
        cols = {k: torch.cat([c[k] for c in self._buffer[hook]]) for k in ("acts", "utt", "pos", "time", "token")}
        shard = {k: v[:rows].contiguous() for k, v in cols.items()}
        rest = {k: v[rows:] for k, v in cols.items()}
        spec = self.hooks[hook]
        name = shard_name(spec["n_shards"])
        # bytes and blake2b are filled in when the shard is written (by the writer thread, in order);
        # every manifest written after that lists this same dict, so it carries them.
        entry = {"file": name, "rows": rows, "utt_min": int(shard["utt"].min()), "utt_max": int(shard["utt"].max())}
        spec["shards"].append(entry)
        spec["n_shards"] += 1
        spec["n_rows"] += rows
        ids, counts = torch.unique(shard["utt"], return_counts=True)
        for i, c in zip(ids.tolist(), counts.tolist()):
            per = self._pending[i]["committed"]
            per[hook] = per.get(hook, 0) + c
        self._buffer[hook] = [rest] if len(rest["acts"]) else []
        self._buffered[hook] -= rows
        self._waiting_since[hook] = clock.monotonic()
        self._checkpoint(shard=(hook, shard, entry))

    def _write_shard(self, hook: str, shard: dict, entry: dict) -> None:
        """Serialise ``shard`` to a temporary file, fsync it, rename it into place; record size and digest."""
        data = save(shard, metadata={"format": FORMAT, "hook": hook})
        tmp = self.path / (hook + "." + entry["file"] + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, self.path / hook / entry["file"])
        entry.update(bytes=len(data), blake2b=digest(data))

    def _checkpoint(self, shard: tuple | None = None) -> None:
        """Commit: write ``shard`` (if any), append newly done utterances to the table, then replace the
        manifest (the commit point). The bookkeeping is done here; the disk work in the writer thread."""
        lines = []
        for i in [i for i in sorted(self._pending) if self._is_done(self._pending[i])]:
            rec = self._pending.pop(i)["record"]
            lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
            self._done_ids.add(rec["id"])
        self.manifest["utterances"]["n_done"] += len(lines)
        self.manifest["utterances"]["open"] = self._open_list()
        commit = (shard, lines, self._snapshot())
        if self._queue is None:
            self._write_commit(*commit)
            return
        self._raise_background_error()
        self._queue.put(commit)

    def _snapshot(self) -> dict:
        """A copy of the manifest as it stands, sharing the shard entries (filled in when written)."""
        memo = {id(e): e for spec in self.manifest["hooks"].values() for e in spec["shards"]}
        return copy.deepcopy(self.manifest, memo)

    def _write_commit(self, shard: tuple | None, lines: list[str], manifest: dict) -> None:
        if shard is not None:
            self._write_shard(*shard)
        if lines:
            with open(self.path / "utterances.jsonl", "a", encoding="utf-8") as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())
        write_json_atomic(self.path / "manifest.json", manifest)

    def _work(self) -> None:
        """The writer thread: commits in order; after an error, none (they are drained unwritten)."""
        while True:
            commit = self._queue.get()
            try:
                if commit is None:
                    return
                if self._error is None:
                    self._write_commit(*commit)
            except BaseException as e:  # kept for the caller, who raises it
                self._error = e
            finally:
                self._queue.task_done()

    def _raise_background_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _stop_thread(self) -> None:
        """Let the writer thread finish the commits handed to it, then end it."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def flush(self) -> None:
        """Wait until every commit handed to the writer thread is on disk; raise its error, if any."""
        if self._queue is not None:
            self._queue.join()
        self._raise_background_error()

    def abort(self) -> None:
        """Stop without writing the buffered rows (as a killed run would), after the commits already
        handed to the writer thread are on disk. Errors of that thread are dropped: the caller is
        already failing. The store stays resumable."""
        self._stop_thread()

    def _open_list(self) -> list[dict]:
        """Utterances with some but not all rows committed: a resumed run must not write those rows again."""
        out = list(self._reopen.values())  # open in an earlier run and not re-begun yet
        for idx, p in sorted(self._pending.items()):
            committed = {h: p["kept"].get(h, 0) + p["committed"].get(h, 0) for h in self.hooks}
            if any(committed.values()):
                out.append({"idx": idx, "id": p["record"]["id"], "record": p["record"], "committed": committed})
        return out

    def close(self, complete: bool = True) -> None:
        """Write the remaining rows as a last (shorter) shard per hook; mark the store complete if so."""
        unfinished = [p["record"]["id"] for p in self._pending.values() if not p["ended"]]
        if unfinished:
            raise RuntimeError(f"utterances {unfinished[:5]} were begun but not ended; call end_utterance")
        try:
            for hook in self.hooks:
                if self._buffered[hook]:
                    self._commit_shard(hook, self._buffered[hook])
            self.manifest["complete"] = complete and not self._reopen
            self._checkpoint()
        finally:
            self._stop_thread()
        self._raise_background_error()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        # On an error the buffered rows are dropped on purpose: the manifest already describes a
        # consistent store, and a rerun redoes exactly the utterances that are not done.
        return False
