"""What each feature hears, and who speaks: per-feature statistics and top clips, phone/word labels
from alignments (``features``), speaker-attribute probes (``probing``), interventions on transcripts
(``interventions``), and a static HTML dashboard (``dashboard``).

Imports are lazy so that ``whisper_sae.analysis.features.stats`` (plain numpy) loads without Whisper.
"""

from __future__ import annotations

from whisper_sae._lazy import lazy_exports

_EXPORTS = {
    "analyze": "features.pipeline",
    "load_sae": "features.pipeline",
    "AnalysisResult": "features.result",
    "load_analysis": "features.result",
    "FeatureStats": "features.stats",
    "AlignmentLabeler": "features.labels",
    "f1_summary": "features.labels",
    "intervene": "interventions",
    "Intervention": "interventions",
    "parse_frames": "interventions",
    "Edit": "interventions",
    "transcribe_edited": "interventions",
    "reference_ce": "interventions",
    "word_timestamps": "features.word_times",
    "build_dashboard": "dashboard.build",
    "probe": "probing.run",
    "ProbeOptions": "probing.run",
    "ProbeResult": "probing.run",
    "ProbeReport": "probing.schema",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
