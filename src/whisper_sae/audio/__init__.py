"""Speech in: reading and checking audio, corpora of utterances, and the synthetic corpus (``synth``).

Names are imported on first use, so that a process needing one submodule (the eSpeak worker) does
not pay for the others.
"""

from importlib import import_module

_EXPORTS = {
    "AUDIO_EXTENSIONS": "io", "check_audio": "io", "decode_audio": "io", "load_audio": "io", "resample": "io",
    "Corpus": "corpus", "load_corpus": "corpus", "read_table": "metadata",
    "SAMPLE_RATE": "utterance", "AudioError": "utterance", "Utterance": "utterance",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"whisper_sae.audio.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'whisper_sae.audio' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
