"""Files we write get the permissions the user's umask asks for.

``safetensors.save_file`` creates its file 0600 whatever the umask, so a store, an SAE or a checkpoint
written by one user could not be read by their group or by a web server publishing it. Every writer of
safetensors calls :func:`honour_umask` on the file before moving it into place.
"""

from __future__ import annotations

import os
from pathlib import Path


def _umask() -> int:
    """This process' umask. Linux reports it in /proc; elsewhere it is read by setting and restoring it,
    which for an instant leaves it at 0 for every thread (the store's writer thread creates files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def file_mode() -> int:
    """The permissions a new file gets under this process' umask (0o644 for the usual 022)."""
    return 0o666 & ~_umask()


def honour_umask(path: str | Path) -> None:
    """Give ``path`` the permissions a plainly created file would have under the current umask."""
    os.chmod(path, file_mode())
