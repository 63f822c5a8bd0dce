"""Held-out-speaker probes on hand-made features: folds never share a speaker, balanced metrics
expose a majority-class predictor, best-k features are chosen from training speakers only."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_sae.analysis.probing.models import ProbeSettings, _class_metrics, cross_validate, run_probes, speaker_folds

FAST = ProbeSettings(n_trees=10, max_depth=4)


def speaker_data(n_speakers=12, per=15, seed=0):
    """Speakers alternate f/m; column 3 carries gender; columns 0-2 carry a per-speaker offset
    (identity, not gender) that a probe could memorise if a speaker leaked across folds."""
    rng = np.random.default_rng(seed)
    spk = np.repeat(np.arange(n_speakers), per)
    y = np.where(spk % 2 == 0, "female", "male").astype(object)
    X = rng.normal(size=(len(spk), 20))
    X[:, :3] += rng.normal(scale=3, size=(n_speakers, 3))[spk]
    X[:, 3] += 3.0 * (y == "female")
    return X, y, spk


def test_folds_never_share_a_speaker_and_cover_every_row():
    X, y, spk = speaker_data()
    folds = speaker_folds(y, spk, categorical=True)
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen.tolist()) == list(range(len(y)))
    for train, test in folds:
        assert not set(spk[train]) & set(spk[test])
        assert set(y[train]) == {"female", "male"}


def test_folds_are_limited_by_the_smallest_class():
    y = np.array(["a"] * 6 + ["b"] * 6, dtype=object)
    spk = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    # Three speakers per class allow three folds at most, so every training part has both classes.
    assert len(speaker_folds(y, spk, categorical=True)) == 3


def test_balanced_accuracy_exposes_a_majority_class_predictor():
    # The original's trap: 90 % accuracy with female recall 0 is a 0.5 balanced accuracy.
    y_true = np.array(["male"] * 90 + ["female"] * 10, dtype=object)
    m = _class_metrics(y_true, np.array(["male"] * 100, dtype=object))
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["recall"] == {"female": 0.0, "male": 1.0}
    assert m["macro_f1"] == pytest.approx((0 + 2 * 0.9 / 1.9) / 2)


def test_planted_gender_feature_is_found_and_noise_is_at_chance():
    X, y, spk = speaker_data()
    codes = X[:, 3:]  # the gender column (now 0) and noise, without the speaker-identity columns
    out = run_probes({"sae": codes, "noise": X[:, 4:]}, y, spk, categorical=True, ks=(1, 4), settings=FAST)
    assert out["logreg"]["sae"]["balanced_accuracy"] > 0.85
    assert out["logreg"]["top1"]["balanced_accuracy"] > 0.85
    # The gender column wins on every fold's training speakers.
    assert all(f == [0] for f in out["logreg"]["top1"]["features_per_fold"])
    assert out["logreg"]["noise"]["balanced_accuracy"] < 0.7
    assert out["forest"]["sae"]["balanced_accuracy"] > 0.75
    assert set(out["logreg"]["sae"]["recall"]) == {"female", "male"}


def test_identity_features_do_not_leak_through_held_out_speakers():
    # Gender is a function of the speaker; columns 0-2 identify speakers. With speakers held out they
    # must not predict gender (they would, near perfectly, if a speaker were on both sides).
    X, y, spk = speaker_data(n_speakers=16, seed=3)
    out = run_probes({"identity": X[:, :3]}, y, spk, categorical=True, ks=(), settings=FAST)
    assert out["logreg"]["identity"]["balanced_accuracy"] < 0.8


def test_regression_r2_on_held_out_speakers():
    rng = np.random.default_rng(4)
    spk = np.repeat(np.arange(10), 12)
    rate = rng.uniform(120, 200, size=10)[spk]
    X = rng.normal(size=(len(spk), 8))
    X[:, 5] += (rate - 160) / 10
    out = run_probes({"sae": X}, rate, spk, categorical=False, ks=(1,), settings=ProbeSettings(alpha=1.0, n_trees=10))
    assert out["logreg"]["sae"]["r2"] > 0.7
    assert out["logreg"]["top1"]["features_per_fold"][0] == [5]
    assert len(out["logreg"]["sae"]["r2_per_fold"]) == 5


def test_cross_validate_rejects_an_unknown_model():
    X, y, spk = speaker_data()
    with pytest.raises(ValueError, match="unknown probe model 'svm'"):
        cross_validate(X, y, speaker_folds(y, spk, categorical=True), model="svm", categorical=True)
