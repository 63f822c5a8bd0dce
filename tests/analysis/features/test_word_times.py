"""Word timestamps: the DTW path, and the whole path on a tiny random Whisper."""

from __future__ import annotations

import numpy as np

from whisper_sae.analysis.features.word_times import alignment_heads, dtw_path, token_starts, word_timestamps


def test_dtw_finds_the_diagonal_blocks():
    # Three tokens owning frames 0-3, 4-8 and 9-11.
    weights = np.zeros((3, 12))
    weights[0, :4] = weights[1, 4:9] = weights[2, 9:] = 1.0
    assert token_starts(weights).tolist() == [0, 4, 9]
    rows, cols = dtw_path(-weights)
    assert (np.diff(rows) >= 0).all() and (np.diff(cols) >= 0).all()
    assert (rows[0], cols[0], rows[-1], cols[-1]) == (0, 0, 2, 11)


def test_word_timestamps_are_ordered_and_inside_the_clip(analysis_whisper, aligned_utts):
    lw = analysis_whisper
    assert alignment_heads(lw) == [(1, 0), (1, 1)]  # no heads configured: the upper half of the decoder
    audio = aligned_utts[1].audio
    [words] = word_timestamps(lw, [audio], ["hello there general kenobi"])
    assert [w["word"] for w in words] == ["hello", "there", "general", "kenobi"]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["start"] <= w["end"] <= len(audio) / 16000 + 0.02 for w in words)
    assert word_timestamps(lw, [audio], [""]) == [[]]


def test_a_transcript_longer_than_the_decoder_is_cut_to_fit(analysis_whisper, aligned_utts):
    lw = analysis_whisper  # 64 decoder positions: 2 prompt tokens + 61 text tokens + the end token
    [words] = word_timestamps(lw, [aligned_utts[0].audio], [" ".join(["hello"] * 100)])
    assert 0 < len(words) <= 61 and all(w["word"] == "hello" for w in words)
