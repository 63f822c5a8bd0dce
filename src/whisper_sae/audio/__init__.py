"""Speech in: reading and checking audio, corpora of utterances, and the synthetic corpus (``synth``).

Names are imported on first use, so that a process needing one submodule (the eSpeak worker) does
not pay for the others.
"""

from whisper_sae._lazy import lazy_exports

_EXPORTS = {
    "AUDIO_EXTENSIONS": "io",
    "check_audio": "io",
    "decode_audio": "io",
    "load_audio": "io",
    "resample": "io",
    "Corpus": "corpus",
    "load_corpus": "corpus",
    "read_table": "metadata",
    "SAMPLE_RATE": "constants",
    "AudioError": "utterance",
    "Utterance": "utterance",
    "split_windows": "windows",
    "window_spans": "windows",
    "first_window": "windows",
    "concat_corpora": "concat",
    "speaker_split": "splits",
    "load_split": "splits",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
