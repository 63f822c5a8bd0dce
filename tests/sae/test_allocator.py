"""Freed CPU memory stays in the heap for the next training step (runtime/allocator.py)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from whisper_sae.sae import TrainConfig

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)

# Eight "steps" that allocate what a training step does (two large temporaries, a small result that lives
# until the next step), in a fresh interpreter so that the heap starts the same way every time.
STEPS = """
import json, sys, torch
from whisper_sae.runtime.allocator import keep_freed_memory, minor_page_faults
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults, result = [], torch.ones(1000)
for _ in range(8):
    before = minor_page_faults()
    big = torch.empty(48 << 20, dtype=torch.uint8).fill_(1)
    other = torch.empty(8 << 20, dtype=torch.uint8).fill_(1)
    result = torch.ones(300, dtype=torch.uint8)
    del big, other
    faults.append(minor_page_faults() - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def _faults(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@glibc
def test_a_step_s_large_temporaries_stop_faulting_once_the_heap_keeps_them():
    pages = (56 << 20) // 4096
    default, kept = _faults("default"), _faults("keep")
    assert min(default["faults"][-3:]) > pages // 2  # glibc as it comes: fresh pages every step
    assert kept["kept"] is True
    assert max(kept["faults"][-3:]) < pages // 10, kept["faults"]


def test_cpu_heap_takes_keep_or_default():
    assert TrainConfig(steps=1).cpu_heap == "keep"
    with pytest.raises(ValueError, match="cpu_heap"):
        TrainConfig(steps=1, cpu_heap="cache")
