"""The real LibriSpeech samples in ../shared/data, when this checkout has them (skipped otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from whisper_sae.audio import load_corpus

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "librispeech"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="no ../shared/data/librispeech in this checkout")


def test_test_clean_with_transcripts_and_alignments():
    utts = list(load_corpus(DATA / "test-clean"))
    assert len(utts) == 38 and all(u.text and u.alignment and u.speaker == "1089" for u in utts)
    assert sum(u.duration for u in utts) / 60 == pytest.approx(4.6, abs=0.1)
    u = utts[0]
    assert [w["word"] for w in u.alignment["words"]] == [w for w in u.text.split()][: len(u.alignment["words"])]


def test_train_clean_100_without_transcripts():
    corpus = load_corpus(DATA / "train-clean-100", max_utterances=20)
    utts = list(corpus)
    assert len(utts) == 20 and corpus.skipped == []
    assert all(u.text is None and u.speaker == u.id.split("-")[0] == u.attributes["speaker"] for u in utts)
