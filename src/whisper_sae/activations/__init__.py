"""Activations: run Whisper over a corpus and keep what it computes at chosen hook points, in a store.

``extract`` fills a store; ``ActivationStore`` reads it back (shuffled batches, hold-out splits);
``StoreWriter`` writes the same format for tests and other stages.
"""

from __future__ import annotations

from .store import ActivationStore
from .writer import FORMAT, StoreWriter

__all__ = ["ActivationStore", "StoreWriter", "FORMAT", "extract", "plan_windows"]


def __getattr__(name):
    # Extraction pulls in transformers; reading a store should not have to.
    if name == "extract":
        from .extraction import extract

        return extract
    if name == "plan_windows":
        from .windows import plan_windows

        return plan_windows
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
