"""The synthetic corpus: English (and other) prose spoken by eSpeak NG voices, with exact alignments."""

from whisper_sae.audio.synth.alignment import normalise_transcript
from whisper_sae.audio.synth.corpus import synthesize_corpus
from whisper_sae.audio.synth.texts import text_bank
from whisper_sae.audio.synth.voices import ENGLISH_ACCENTS, LANGUAGE_VOICES, Speaker, design_speakers

__all__ = ["ENGLISH_ACCENTS", "LANGUAGE_VOICES", "Speaker", "design_speakers", "normalise_transcript",
           "synthesize_corpus", "text_bank"]
