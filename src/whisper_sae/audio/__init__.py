"""Speech in: reading and checking audio, corpora of utterances, and the synthetic corpus (``synth``)."""

from whisper_sae.audio.corpus import Corpus, load_corpus
from whisper_sae.audio.io import AUDIO_EXTENSIONS, check_audio, decode_audio, load_audio
from whisper_sae.audio.metadata import read_table
from whisper_sae.audio.utterance import SAMPLE_RATE, AudioError, Utterance

__all__ = [
    "AUDIO_EXTENSIONS", "SAMPLE_RATE", "AudioError", "Corpus", "Utterance", "check_audio", "decode_audio",
    "load_audio", "load_corpus", "read_table",
]
