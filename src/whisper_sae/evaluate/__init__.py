"""Faithfulness of an SAE: held-out reconstruction and Whisper's WER / CE with the SAE spliced in.

``evaluate`` (and ``EvalResult``) load Whisper, so they are imported on first use; the metrics import
without ``transformers``.
"""

from whisper_sae.evaluate.metrics import (ReconstructionMetrics, ce_recovered, corpus_wer, normalize_text,
                                          reconstruction_metrics, word_errors)

__all__ = ["EvalResult", "ReconstructionMetrics", "ce_recovered", "corpus_wer", "evaluate", "normalize_text",
           "reconstruction_metrics", "word_errors"]


def __getattr__(name: str):
    if name == "evaluate":
        from whisper_sae.evaluate.spliced import evaluate

        return evaluate
    if name == "EvalResult":
        from whisper_sae.evaluate.result import EvalResult

        return EvalResult
    raise AttributeError(f"module 'whisper_sae.evaluate' has no attribute {name!r}")
