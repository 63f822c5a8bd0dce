"""Streaming statistics must equal the same numbers computed in one go on the concatenated codes."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_sae.analysis.features.stats import HIST_EDGES, FeatureStats, TopN


def _utterances(seed=0, n_utt=30, d=12):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_utt):
        t = int(rng.integers(5, 60))
        codes = rng.exponential(1.0, (t, d)).astype(np.float32)
        codes[rng.random((t, d)) < 0.8] = 0.0  # sparse
        out.append(codes)
    out[3][:, 7] = 0.0
    for codes in out:
        codes[:, 11] = 0.0  # a dead feature
    return out


def test_topn_matches_full_sort_in_any_chunking():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(500, 6)).astype(np.float32)
    for chunk in (1, 7, 100, 500):
        top = TopN(6, 10)
        for start in range(0, 500, chunk):
            rows = np.arange(start, min(start + chunk, 500))
            top.add(values[rows], np.zeros(len(rows)), rows)
        got, _, pos = top.result()
        for f in range(6):
            positive = np.sort(values[:, f][values[:, f] > 0])[::-1][:10]
            np.testing.assert_allclose(got[f, : len(positive)], positive)
            np.testing.assert_allclose(values[pos[f, : len(positive)], f], positive)


def test_topn_leaves_empty_slots_for_rare_features():
    top = TopN(2, 5)
    top.add(np.array([[3.0, 0.0], [0.0, 0.0], [1.0, 0.0]]), [0, 1, 2], [10, 11, 12])
    values, utt, pos = top.result()
    assert values[0].tolist() == [3.0, 1.0, 0.0, 0.0, 0.0]
    assert utt[0].tolist() == [0, 2, -1, -1, -1] and pos[0, :2].tolist() == [10, 12]
    assert (utt[1] == -1).all()


def test_feature_stats_equal_batch_computation():
    utts = _utterances()
    stats = FeatureStats(12, top_n=4, distinct_clips=False)
    for i, codes in enumerate(utts):
        stats.update(codes, i)
    res = stats.result()
    allc = np.concatenate(utts)
    firing = allc > 0
    np.testing.assert_allclose(res["freq"], firing.mean(0))
    with np.errstate(invalid="ignore"):
        mean = np.nan_to_num(np.where(firing, allc, 0).sum(0) / firing.sum(0))
    np.testing.assert_allclose(res["mean_act"], mean, rtol=1e-5)
    np.testing.assert_allclose(res["max_act"], allc.max(0))
    assert res["hist"].sum(1).tolist() == firing.sum(0).tolist()
    assert res["freq"][11] == 0 and (res["top_utt"][11] == -1).all()
    # Top values are the 4 largest over all frames, and (utt, pos) point back at them.
    for f in range(11):
        np.testing.assert_allclose(res["top_act"][f], np.sort(allc[:, f])[::-1][:4])
        for j in range(4):
            u, p = res["top_utt"][f, j], res["top_pos"][f, j]
            assert utts[u][p, f] == res["top_act"][f, j]


def test_distinct_clips_keeps_one_peak_per_utterance():
    utts = _utterances(seed=2)
    stats = FeatureStats(12, top_n=5, distinct_clips=True)
    for i, codes in enumerate(utts):
        stats.update(codes, i)
    res = stats.result()
    peaks = np.stack([c.max(0) for c in utts])  # [n_utt, d]
    for f in range(11):
        used = res["top_utt"][f][res["top_utt"][f] >= 0]
        assert len(set(used.tolist())) == len(used)
        np.testing.assert_allclose(res["top_act"][f], np.sort(peaks[:, f])[::-1][:5])
        for u, p, v in zip(res["top_utt"][f], res["top_pos"][f], res["top_act"][f]):
            assert utts[u][p, f] == v == utts[u][:, f].max()


def test_histogram_bins_are_log10_of_activation():
    stats = FeatureStats(1, top_n=1)
    stats.update(np.array([[1.0], [10.0], [10.0], [0.0], [1e-9]], np.float32), 0)
    hist = stats.result()["hist"][0]
    centre = (HIST_EDGES[:-1] + HIST_EDGES[1:]) / 2
    assert hist.sum() == 4 and hist[np.abs(centre - 1.05).argmin()] == 2
    assert hist[0] == 1  # below the range: clipped into the first bin


def test_wrong_width_is_a_sentence():
    with pytest.raises(ValueError, match=r"codes must be \[frames, 3\]"):
        FeatureStats(3).update(np.zeros((2, 4)), 0)
