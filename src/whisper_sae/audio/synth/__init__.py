"""The synthetic corpus: English (and other) prose spoken by eSpeak NG voices, with exact alignments."""

from whisper_sae._lazy import lazy_exports

_EXPORTS = {
    "synthesize_corpus": "corpus",
    "normalise_transcript": "alignment",
    "text_bank": "texts",
    "ENGLISH_ACCENTS": "voices",
    "LANGUAGE_VOICES": "voices",
    "Speaker": "voices",
    "design_speakers": "voices",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
