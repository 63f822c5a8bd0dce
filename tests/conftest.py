"""Fixtures shared across the test suite. Tests make their own data; none needs ../shared."""

from __future__ import annotations


import pytest


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory):
    """A small synthetic corpus folder (LibriSpeech layout, ~10 utterances, ~30 s, 6 eSpeak voices of
    both genders and several accents; balanced: each text is spoken by 2 voices). Read it with
    ``whisper_sae.audio.load_corpus(synth_corpus)``: transcripts, word/phone alignments and attributes
    (gender, accent, voice, variant, rate, pitch, speaker) come with each utterance. Deterministic."""
    from whisper_sae.audio.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("synth_corpus")
    return synthesize_corpus(out, minutes=0.42, balanced=True, voices_per_text=2, n_speakers=6, max_words=12,
                             seed=0, progress=False)
