"""Window planning: every sample of every utterance lands in exactly one window, on the frame grid."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_sae.activations.windows import FRAME_SAMPLES, WINDOW_SAMPLES, frames_of_samples, plan_windows

LENGTHS = [16000, 5 * 16000 + 17, 31 * 16000, 12 * 16000 + 319, 61 * 16000 + 1, 3 * 16000, 29 * 16000]


@pytest.mark.parametrize("mode", ["padded", "packed"])
def test_windows_cover_every_sample_once(mode):
    windows = plan_windows(LENGTHS, mode)
    covered = [np.zeros(n, dtype=int) for n in LENGTHS]
    for w in windows:
        assert w.used_samples <= WINDOW_SAMPLES
        ends = 0
        for s in sorted(w.segments, key=lambda s: s.dst_start):
            assert s.dst_start % FRAME_SAMPLES == 0 and s.dst_start >= ends  # on the grid, no overlap
            ends = s.dst_start + s.n_samples
            assert s.first_frame + s.n_frames <= 1500
            covered[s.utt][s.src_start : s.src_start + s.n_samples] += 1
    assert all((c == 1).all() for c in covered)
    frames = {}
    for w in windows:
        for s in w.segments:
            frames[s.utt] = frames.get(s.utt, 0) + s.n_frames
    assert [frames[i] for i in range(len(LENGTHS))] == [frames_of_samples(n) for n in LENGTHS]


def test_padded_is_one_piece_per_window_and_packed_uses_fewer():
    padded, packed = plan_windows(LENGTHS, "padded"), plan_windows(LENGTHS, "packed")
    assert all(len(w.segments) == 1 and w.segments[0].dst_start == 0 for w in padded)
    # 31 s -> 2 pieces, 61 s -> 3 pieces, the rest 1 each
    assert len(padded) == 10
    assert len(packed) < len(padded)
    long_pieces = [s for w in padded for s in w.segments if s.utt == 4]
    assert [s.pos_offset for s in long_pieces] == [0, 1500, 3000]


def test_window_audio_places_segments():
    audios = [np.full(n, i + 1, dtype=np.float32) for i, n in enumerate([16000, 8000 + 5])]
    (w,) = plan_windows([len(a) for a in audios], "packed")
    x = w.audio(audios)
    assert (x[:16000] == 1).all() and (x[16000:24005] == 2).all() and len(x) == 24005


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="padded, packed"):
        plan_windows([100], "cut")


def test_one_windowing_function_cuts_every_window():
    """plan_windows' pieces are audio.windows' cuts, and split_windows' chunks rebuild the audio exactly."""
    import numpy as np

    from whisper_sae.audio import first_window, split_windows, window_spans

    n = 2 * WINDOW_SAMPLES + 123
    audio = np.arange(n, dtype=np.float32)
    chunks = split_windows(audio)
    assert (
        [(s, len(c)) for s, c in chunks]
        == window_spans(n)
        == [(0, WINDOW_SAMPLES), (WINDOW_SAMPLES, WINDOW_SAMPLES), (2 * WINDOW_SAMPLES, 123)]
    )
    assert np.array_equal(np.concatenate([c for _, c in chunks]), audio)
    assert np.array_equal(first_window(audio), chunks[0][1])
    segs = [w.segments[0] for w in plan_windows([n], "padded")]
    assert [(g.src_start, g.n_samples) for g in segs] == window_spans(n)
    assert split_windows(audio[:0]) == []
