"""Faithfulness of an SAE: held-out reconstruction and Whisper's WER / CE with the SAE spliced in.

``evaluate`` (and ``EvalResult``) load Whisper, so they are imported on first use; the metrics import
without ``transformers``.

The package is itself callable as ``evaluate``: ``whisper_sae.evaluate`` names both this package and the
top-level API function, and a package bound by an import cannot be replaced by a function without
breaking ``import whisper_sae.evaluate.metrics``, so ``whisper_sae.evaluate(sae, corpus)`` calls it.
"""

import sys
import types

from whisper_sae._lazy import lazy_exports
from whisper_sae.evaluate.metrics import (
    ReconstructionMetrics,
    ce_recovered,
    corpus_wer,
    normalize_text,
    reconstruction_metrics,
    word_errors,
)

__all__ = [
    "CompareResult",
    "EvalResult",
    "ReconstructionMetrics",
    "ce_recovered",
    "compare_saes",
    "corpus_wer",
    "evaluate",
    "normalize_text",
    "reconstruction_metrics",
    "word_errors",
]

__getattr__, __dir__ = lazy_exports(
    __name__, {"evaluate": "spliced", "EvalResult": "result", "compare_saes": "compare", "CompareResult": "compare"}
)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return self.evaluate(*args, **kwargs)

    @property
    def __wrapped__(self):  # inspect.signature and help() show evaluate's parameters
        return self.evaluate


sys.modules[__name__].__class__ = _CallablePackage
