"""Faithfulness of an SAE: held-out reconstruction and Whisper's WER / CE with the SAE spliced in.

``evaluate`` (and ``EvalResult``) load Whisper, so they are imported on first use; the metrics import
without ``transformers``.
"""

from whisper_sae._lazy import lazy_exports
from whisper_sae.evaluate.metrics import (ReconstructionMetrics, ce_recovered, corpus_wer, normalize_text,
                                          reconstruction_metrics, word_errors)

__all__ = ["CompareResult", "EvalResult", "ReconstructionMetrics", "ce_recovered", "compare_saes", "corpus_wer",
           "evaluate", "normalize_text", "reconstruction_metrics", "word_errors"]

__getattr__, __dir__ = lazy_exports(__name__, {"evaluate": "spliced", "EvalResult": "result",
                                               "compare_saes": "compare", "CompareResult": "compare"})
