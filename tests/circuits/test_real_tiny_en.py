"""The encoder lens with the real tiny.en on synthesized speech: its last layer is plain transcription."""

from __future__ import annotations

import pytest

from whisper_sae.audio import load_corpus
from whisper_sae.circuits import encoder_lens
from whisper_sae.evaluate import corpus_wer
from whisper_sae.whisper import load_whisper

pytestmark = pytest.mark.slow


def test_last_layer_wer_equals_plain_transcription(synth_corpus):
    lw = load_whisper("tiny.en")
    utts = list(load_corpus(synth_corpus, max_utterances=4))
    result = encoder_lens(lw, utts, batch_size=4, max_new_tokens=lw.config.max_target_positions)
    plain = lw.transcribe([u.audio for u in utts], batch_size=4)
    wer = corpus_wer([u.text for u in utts], plain)
    assert [row["layers"][-1] for row in result.utterances] == plain
    assert result.encoder[-1]["wer"] == pytest.approx(wer) == pytest.approx(result.plain["wer"])
    assert wer < 0.8  # tiny.en mostly understands the eSpeak speech (about 50 % WER on these 4)...
    assert result.encoder[0]["wer"] > wer  # ...and the first block's residual is far from a transcript
    assert result.decoder[-1]["top1"] == result.plain["top1"] > result.decoder[0]["top1"]
