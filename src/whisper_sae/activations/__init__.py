"""Activations: run Whisper over a corpus and keep what it computes at chosen hook points, in a store.

``extract`` fills a store; ``ActivationStore`` reads it back (shuffled batches, hold-out splits);
``StoreWriter`` writes the same format for tests and other stages.
"""

from __future__ import annotations

from whisper_sae._lazy import lazy_exports

from .store import ActivationStore
from .writer import FORMAT, StoreWriter

__all__ = ["ActivationStore", "StoreWriter", "FORMAT", "extract", "plan_windows"]

# Extraction pulls in transformers; reading a store should not have to.
__getattr__, __dir__ = lazy_exports(__name__, {"extract": "extraction", "plan_windows": "windows"})
