"""Disk needs of an extraction: bytes per stored activation row, and a check that a size limit fits
on the disk before a long run starts rather than when it fails half-way."""

from __future__ import annotations

import shutil
from pathlib import Path

ITEM_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
# Besides the activations, each row stores utt, pos, token (int32) and time (float32).
INDEX_BYTES_PER_ROW = 16


def gb_per_million_rows(d_model: int, dtype: str = "float16", *, with_index: bool = False) -> float:
    """Disk per million rows of one hook: d_model x item size x 1e6 (optionally + the index columns)."""
    if dtype not in ITEM_BYTES:
        raise ValueError(f"store dtype {dtype!r} is not one of {', '.join(ITEM_BYTES)}")
    per_row = d_model * ITEM_BYTES[dtype] + (INDEX_BYTES_PER_ROW if with_index else 0)
    return per_row * 1e6 / 1e9


def free_gb(path) -> float:
    """Free space (GB) on the disk that holds ``path`` or, if it does not exist yet, its nearest parent."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free / 1e9


def folder_gb(path) -> float:
    """Bytes (GB) of the files under ``path`` (0 when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return 0.0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def check_free_space(path, limit_gb: float) -> None:
    """Refuse a store size limit that the disk cannot hold: ``limit_gb`` minus what the store at
    ``path`` already holds (when resuming) must fit in the free space there."""
    if limit_gb <= 0:
        raise ValueError(f"--max-store-gb must be positive, got {limit_gb}")
    free = free_gb(path)
    need = limit_gb - folder_gb(path)
    if need > free:
        raise ValueError(
            f"--max-store-gb {limit_gb:g} needs {need:.2f} GB more but only {free:.2f} GB are free "
            f"at {Path(path).resolve()}; free some space, lower the limit or choose another --out"
        )
