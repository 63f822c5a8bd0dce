"""The synthetic corpus: English (and other) prose spoken by eSpeak NG voices, with exact alignments."""

from importlib import import_module

_EXPORTS = {
    "synthesize_corpus": "corpus", "normalise_transcript": "alignment", "text_bank": "texts",
    "ENGLISH_ACCENTS": "voices", "LANGUAGE_VOICES": "voices", "Speaker": "voices", "design_speakers": "voices",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"whisper_sae.audio.synth.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'whisper_sae.audio.synth' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
