"""What each feature hears: per-feature statistics and top clips, phone/word labels from alignments,
interventions on transcripts, and a static HTML dashboard.

Imports are lazy so that ``whisper_sae.analysis.stats`` (plain numpy) loads without Whisper.
"""

from __future__ import annotations

from whisper_sae._lazy import lazy_exports

_EXPORTS = {
    "analyze": "pipeline", "load_sae": "pipeline",
    "AnalysisResult": "result", "load_analysis": "result",
    "FeatureStats": "stats", "AlignmentLabeler": "labels", "f1_summary": "labels",
    "intervene": "interventions", "Intervention": "interventions", "parse_frames": "interventions",
    "word_timestamps": "word_times",
    "build_dashboard": "dashboard",
    "probe": "probe",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
