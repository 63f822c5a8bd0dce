"""whisper-sae: sparse autoencoders on OpenAI Whisper's activations.

The package follows the data flow: ``audio`` → ``whisper`` → ``activations`` → ``sae`` →
``evaluate`` → ``analysis``; imports only point down that flow.

The public API is here at the top level, one function or class per stage::

    import whisper_sae
    lw = whisper_sae.load_whisper()                       # offline tiny.en
    sae = whisper_sae.SparseAutoencoder.from_pretrained("demo-out/sae")

Names are imported on first use (``import whisper_sae`` loads neither torch nor transformers), so that
the command line answers ``--help`` at once; the ``TYPE_CHECKING`` imports below let editors and type
checkers see them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from whisper_sae._lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from whisper_sae.activations import ActivationStore as ActivationStore
    from whisper_sae.activations import extract as extract
    from whisper_sae.analysis import analyze as analyze
    from whisper_sae.analysis import build_dashboard as build_dashboard
    from whisper_sae.analysis import intervene as intervene
    from whisper_sae.analysis import probe as probe
    from whisper_sae.audio import load_corpus as load_corpus
    from whisper_sae.evaluate.spliced import evaluate as evaluate
    from whisper_sae.sae import SparseAutoencoder as SparseAutoencoder
    from whisper_sae.sae import train as train
    from whisper_sae.whisper import capture as capture
    from whisper_sae.whisper import load_whisper as load_whisper
    from whisper_sae.whisper import patch as patch

_EXPORTS: dict[str, str | None] = {
    "load_whisper": "whisper",
    "capture": "whisper",
    "patch": "whisper",
    "load_corpus": "audio",
    "ActivationStore": "activations",
    "extract": "activations",
    "SparseAutoencoder": "sae",
    "train": "sae",
    # The package whisper_sae.evaluate, callable as its evaluate function (see its docstring).
    "evaluate": None,
    "analyze": "analysis",
    "probe": "analysis",
    "intervene": "analysis",
    "build_dashboard": "analysis",
}

__all__ = [
    "__version__",
    "load_whisper",
    "capture",
    "patch",
    "load_corpus",
    "ActivationStore",
    "extract",
    "SparseAutoencoder",
    "train",
    "evaluate",
    "analyze",
    "probe",
    "intervene",
    "build_dashboard",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
