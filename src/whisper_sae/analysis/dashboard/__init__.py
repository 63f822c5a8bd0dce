"""The static HTML dashboard of an SAE's features, by job: ``build`` (``build_dashboard``, the folder's
manifest, ``serve``), ``render`` (the pages' HTML), ``media`` (each clip's WAV, spectrogram and SVGs),
``selectivity`` (speaker-attribute numbers read from probe.json) and ``assets`` (CSS and JavaScript
shipped as package data).
"""

from __future__ import annotations

from whisper_sae._lazy import lazy_exports

_EXPORTS = {"build_dashboard": "build", "serve": "build"}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
