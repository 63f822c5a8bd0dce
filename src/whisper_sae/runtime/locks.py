"""One writer per artifact folder: a store, an SAE folder or a dashboard folder is locked while written.

Two ``extract`` runs into one store used to both succeed and leave every utterance twice. The lock is
a ``filelock`` (``flock`` on POSIX), so it is released by the kernel when its process dies, even by
``kill -9``: a stale lock never blocks a resume. Beside it a small JSON names the holder (pid, host,
command, start time) so the second run's error can say who is writing.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE = ".whisper-sae.lock"
HOLDER_FILE = ".whisper-sae.lock.json"


class FolderBusyError(RuntimeError):
    """Another run holds the folder's lock."""


def _names(suffix: str) -> tuple[str, str]:
    return (LOCK_FILE + suffix, HOLDER_FILE.replace(".json", f"{suffix}.json"))


def describe_holder(folder: str | Path, suffix: str = "") -> str:
    """'pid 123 on host, `whisper-sae extract ...`, since 12:00:01 UTC', or a plain phrase if unknown."""
    _, holder = _names(suffix)
    try:
        info = json.loads((Path(folder) / holder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "another process (holder unknown)"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.get("started", 0)))
    return f"pid {info.get('pid')} on {info.get('host')}, `{info.get('command')}`, since {started}"


@contextmanager
def exclusive(folder: str | Path, what: str, *, suffix: str = "") -> Iterator[Path]:
    """Hold ``folder``'s write lock for the ``with`` block, creating the folder if needed.

    ``what`` names the artifact in the error ("store", "SAE folder", "dashboard folder"); ``suffix``
    gives separate locks inside one folder (one per ``torchrun`` rank writing its part of one store).
    Raises :class:`FolderBusyError` at once (no waiting) when another process holds it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_name, holder_name = _names(suffix)
    lock = FileLock(str(folder / lock_name))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FolderBusyError(
            f"{what} {folder} is being written by {describe_holder(folder, suffix)}; wait for that run to "
            "finish (or stop it: its work is kept and a rerun resumes it), or write to another folder"
        ) from None
    holder = folder / holder_name
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv), "started": time.time()}
        holder.write_text(json.dumps(info) + "\n", encoding="utf-8")
        yield folder
    finally:
        try:
            holder.unlink()
        except OSError:
            pass
        lock.release()


def is_lock_file(name: str) -> bool:
    """Whether a file name is one of these locks' own files (readers and listings skip them)."""
    return name.startswith(LOCK_FILE)
