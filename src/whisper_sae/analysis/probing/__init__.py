"""Do the SAE's features encode who speaks? The speaker-attribute probe, by job:

- ``run``: the ``probe`` entry point (``ProbeOptions``, ``ProbeResult``);
- ``schema``: probe.json as typed dataclasses (``ProbeReport``), the one reader and writer of the file;
- ``attributes``: attribute labels (corpus attributes, metadata tables, speaker ids) and their checks;
- ``data``: frames at the hook (from Whisper or a store), SAE codes and utterance means;
- ``selectivity``: per-feature AUROC, Cohen's d, BH-corrected tests, Spearman;
- ``models``: probes scored on held-out speakers; ``ablate``: the ablation check;
- ``report``: probe.json blocks and probe.md; ``plots``: the PNGs.

(Named ``probing`` rather than ``probe`` so that ``whisper_sae.analysis.probe`` can be the function.)
Imports are lazy: the statistics modules load without Whisper or matplotlib.
"""

from __future__ import annotations

from whisper_sae._lazy import lazy_exports

_EXPORTS = {
    "probe": "run",
    "ProbeOptions": "run",
    "ProbeResult": "run",
    "ProbeReport": "schema",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
