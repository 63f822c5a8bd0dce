"""Per-feature selectivity statistics on hand-made arrays, checked against sklearn/scipy and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from whisper_sae.analysis.probing.selectivity import (
    benjamini_hochberg,
    categorical_selectivity,
    cohens_d,
    continuous_selectivity,
    one_vs_rest,
    pool_by_group,
    rank_features,
)


@pytest.fixture
def planted():
    """300 rows, 6 columns: col 0 shifted up for the positives, col 1 rounded (many ties), col 2
    constant, col 3 ReLU-sparse, cols 4-5 noise."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = rng.integers(0, 2, 300).astype(bool)
    X[y, 0] += 1.0
    X[:, 1] = np.round(X[:, 1])
    X[:, 2] = 3.0
    X[:, 3] = np.maximum(X[:, 3] - 1, 0)
    return X, y


def test_auroc_matches_sklearn_with_ties(planted):
    X, y = planted
    out = one_vs_rest(X, y)
    expected = [roc_auc_score(y, X[:, j]) for j in range(X.shape[1])]
    np.testing.assert_allclose(out["auroc"], expected, atol=1e-12)


def test_p_values_match_scipy(planted):
    X, y = planted
    out = one_vs_rest(X, y)
    for j in (0, 1, 3, 4):
        welch = stats.ttest_ind(X[y, j], X[~y, j], equal_var=False).pvalue
        mw = stats.mannwhitneyu(X[y, j], X[~y, j], method="asymptotic").pvalue
        assert out["p_welch"][j] == pytest.approx(welch, rel=1e-9)
        assert out["p_mannwhitney"][j] == pytest.approx(mw, rel=1e-9)
    assert out["p_mannwhitney"][0] < 1e-10 < out["p_mannwhitney"][4]


def test_constant_column_is_neutral_not_nan(planted):
    X, y = planted
    out = one_vs_rest(X, y)
    assert out["auroc"][2] == 0.5 and out["cohens_d"][2] == 0.0
    assert out["p_welch"][2] == 1.0 and out["p_mannwhitney"][2] == 1.0


def test_cohens_d_by_hand():
    pos = np.array([[1.0], [2.0], [3.0]])
    neg = np.array([[4.0], [5.0], [6.0]])
    # Means 2 and 5, both sample SDs 1, so the pooled SD is 1 and d = (2 - 5) / 1.
    assert cohens_d(pos, neg)[0] == pytest.approx(-3.0)


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # Sorted p·m/rank: .04, .06, .0533, .2 -> running minimum from the top: .04, .0533, .0533, .2.
    np.testing.assert_allclose(benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert np.all(benjamini_hochberg(np.array([np.nan, 0.5])) == [1.0, 1.0])


def test_binary_classes_mirror_each_other(planted):
    X, y = planted
    labels = np.where(y, "female", "male")
    sel = categorical_selectivity(X, labels, ["female", "male"])
    np.testing.assert_allclose(sel.auroc["female"] + sel.auroc["male"], 1.0)
    np.testing.assert_allclose(sel.cohens_d["female"], -sel.cohens_d["male"])
    score, pref = sel.score()
    assert score[0] == pytest.approx(abs(2 * sel.auroc["female"][0] - 1))
    # Column 0 fires more for "female" rows, so that is its preferred (readable) class.
    assert sel.classes[pref[0]] == "female"
    assert sel.q_mannwhitney["female"][0] < 1e-8 and sel.q_mannwhitney["female"][2] == 1.0


def test_multiclass_one_vs_rest_finds_the_class():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.array(["a", "b", "c"]), 50)
    X = rng.normal(size=(150, 4))
    X[labels == "c", 2] += 3
    sel = categorical_selectivity(X, labels, ["a", "b", "c"])
    score, pref = sel.score()
    assert int(np.argmax(score)) == 2 and sel.classes[pref[2]] == "c"
    assert sel.auroc["c"][2] > 0.95


def test_spearman_matches_scipy():
    rng = np.random.default_rng(2)
    y = rng.normal(size=80)
    X = np.stack([y + rng.normal(size=80), np.round(rng.normal(size=80)), np.zeros(80)], axis=1)
    corr = continuous_selectivity(X, y)
    for j in (0, 1):
        rho, p = stats.spearmanr(X[:, j], y)
        assert corr.rho[j] == pytest.approx(rho, abs=1e-12)
        assert corr.p[j] == pytest.approx(p, rel=1e-6)
    assert corr.rho[2] == 0.0 and corr.p[2] == 1.0


def test_pool_by_group_is_the_group_mean():
    X = np.arange(12, dtype=float).reshape(6, 2)
    g = np.array([0, 0, 1, 1, 1, 2])
    np.testing.assert_allclose(pool_by_group(X, g, 3), [X[:2].mean(0), X[2:5].mean(0), X[5]])


def test_rank_features_puts_the_planted_one_first(planted):
    X, y = planted
    assert rank_features(X, y, categorical=True)[0] == 0
    yc = X[:, 3] * 2 + 0.01 * np.random.default_rng(0).normal(size=len(X))
    assert rank_features(X, yc, categorical=False)[0] == 3
