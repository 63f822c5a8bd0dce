"""Per-feature selectivity between attribute classes: AUROC, Cohen's d, Mann–Whitney and Welch tests
with Benjamini–Hochberg correction, and Spearman correlation for continuous attributes.

Everything here works on plain arrays (``X [n, F]`` features, one label per row) so it is tested on
hand-made numbers; the probe pipeline calls it at frame level and on utterance-pooled rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Columns are processed in blocks so that ranking 20k frames x 6k features stays within memory.
_BLOCK = 512


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values) of any-shaped ``p``; NaN counts as 1."""
    p = np.asarray(p, dtype=np.float64)
    flat = np.where(np.isfinite(p), p, 1.0).ravel()
    m = flat.size
    if m == 0:
        return p.copy()
    order = np.argsort(flat)
    scaled = flat[order] * m / np.arange(1, m + 1)
    # The step-up procedure: each q is the smallest scaled p at or above its rank.
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.clip(q_sorted, 0.0, 1.0)
    return q.reshape(p.shape)


def cohens_d(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Cohen's d of each column, ``pos`` minus ``neg``, with the pooled standard deviation.

    A column constant in both groups has d = 0 (no separation), not NaN.
    """
    n1, n0 = len(pos), len(neg)
    m1, m0 = pos.mean(0), neg.mean(0)
    v1 = pos.var(0, ddof=1) if n1 > 1 else np.zeros(pos.shape[1])
    v0 = neg.var(0, ddof=1) if n0 > 1 else np.zeros(neg.shape[1])
    pooled = np.sqrt(((n1 - 1) * v1 + (n0 - 1) * v0) / max(n1 + n0 - 2, 1))
    diff = m1 - m0
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(pooled > 0, diff / pooled, 0.0)
    return d


def one_vs_rest(X: np.ndarray, is_pos: np.ndarray) -> dict[str, np.ndarray]:
    """AUROC, Cohen's d and the two-sided Mann–Whitney and Welch p-values of every column of ``X``
    for rows where ``is_pos`` against the others.

    AUROC is P(feature of a positive row > feature of a negative row) with ties counted half, i.e. the
    Mann–Whitney U of the positive rows divided by n_pos * n_neg. Constant columns get AUROC 0.5 and p 1.
    """
    X = np.asarray(X, dtype=np.float64)
    is_pos = np.asarray(is_pos, dtype=bool)
    n1, n0 = int(is_pos.sum()), int((~is_pos).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError(f"one-vs-rest needs rows in both groups; got {n1} positive and {n0} negative rows")
    out = {k: np.empty(X.shape[1]) for k in ("auroc", "cohens_d", "p_mannwhitney", "p_welch")}
    for lo in range(0, X.shape[1], _BLOCK):
        cols = slice(lo, lo + _BLOCK)
        pos, neg = X[is_pos, cols], X[~is_pos, cols]
        constant = np.ptp(X[:, cols], axis=0) == 0
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            # Constant (dead) columns make scipy warn about precision; they are set to p = 1 below.
            warnings.simplefilter("ignore", RuntimeWarning)
            mw = stats.mannwhitneyu(pos, neg, axis=0, method="asymptotic", alternative="two-sided")
            welch = stats.ttest_ind(pos, neg, axis=0, equal_var=False)
        out["auroc"][cols] = np.where(constant, 0.5, mw.statistic / (n1 * n0))
        out["p_mannwhitney"][cols] = np.where(constant | ~np.isfinite(mw.pvalue), 1.0, mw.pvalue)
        out["p_welch"][cols] = np.where(~np.isfinite(welch.pvalue), 1.0, welch.pvalue)
        out["cohens_d"][cols] = cohens_d(pos, neg)
    return out


@dataclass
class Selectivity:
    """Per-feature selectivity of one categorical attribute at one level (frames or utterances).

    Each array field maps a class to a ``[F]`` array (that class against all the others). The q-values
    are Benjamini–Hochberg corrected over every (feature, class) test of this attribute and level.
    """

    classes: list[str]
    auroc: dict[str, np.ndarray]
    cohens_d: dict[str, np.ndarray]
    p_mannwhitney: dict[str, np.ndarray]
    q_mannwhitney: dict[str, np.ndarray]
    p_welch: dict[str, np.ndarray]
    q_welch: dict[str, np.ndarray]

    def score(self) -> tuple[np.ndarray, np.ndarray]:
        """(score [F], preferred class index [F]): the class whose one-vs-rest AUROC is furthest from
        0.5, and that distance as |2·AUROC − 1| (0 = no separation, 1 = perfect). Between equally
        strong classes (always the case with two) the one the feature fires *more* for is preferred,
        which is the easier reading ("fires for female voices")."""
        au = np.stack([self.auroc[c] for c in self.classes])  # [C, F]
        strength = np.abs(2 * au - 1)
        key = np.round(strength, 12) + 1e-9 * (au > 0.5)
        pref = key.argmax(0)
        return strength[pref, np.arange(au.shape[1])], pref


def categorical_selectivity(X: np.ndarray, labels: np.ndarray, classes: list[str]) -> Selectivity:
    """One-vs-rest selectivity of every column of ``X [n, F]`` for each class of ``labels [n]``.

    With two classes the second test mirrors the first (AUROC 1 − a, d negated, same p), which keeps
    the per-class view uniform for readers of probe.json.
    """
    labels = np.asarray(labels)
    per = {c: one_vs_rest(X, labels == c) for c in classes}
    p_mw = np.stack([per[c]["p_mannwhitney"] for c in classes])
    p_w = np.stack([per[c]["p_welch"] for c in classes])
    q_mw, q_w = benjamini_hochberg(p_mw), benjamini_hochberg(p_w)
    return Selectivity(
        classes=list(classes),
        auroc={c: per[c]["auroc"] for c in classes},
        cohens_d={c: per[c]["cohens_d"] for c in classes},
        p_mannwhitney={c: per[c]["p_mannwhitney"] for c in classes},
        q_mannwhitney={c: q_mw[i] for i, c in enumerate(classes)},
        p_welch={c: per[c]["p_welch"] for c in classes},
        q_welch={c: q_w[i] for i, c in enumerate(classes)},
    )


@dataclass
class Correlation:
    """Per-feature Spearman correlation with a continuous attribute, with BH q-values."""

    rho: np.ndarray
    p: np.ndarray
    q: np.ndarray

    def score(self) -> np.ndarray:
        return np.abs(self.rho)


def spearman_columns(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho and two-sided p (t approximation) of every column of ``X`` with ``y``.
    Constant columns get rho 0 and p 1."""
    X = np.asarray(X, dtype=np.float64)
    n = len(y)
    ry = stats.rankdata(y)
    ry = (ry - ry.mean()) / (ry.std() or 1.0)
    rho = np.zeros(X.shape[1])
    for lo in range(0, X.shape[1], _BLOCK):
        rx = stats.rankdata(X[:, lo : lo + _BLOCK], axis=0)
        sd = rx.std(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = ((rx - rx.mean(0)) * ry[:, None]).mean(0) / sd
        rho[lo : lo + _BLOCK] = np.where(sd > 0, r, 0.0)
    rho = np.clip(rho, -1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = rho * np.sqrt((n - 2) / np.maximum(1 - rho**2, 1e-300))
    p = np.where(rho == 0, 1.0, 2 * stats.t.sf(np.abs(t), max(n - 2, 1)))
    return rho, p


def continuous_selectivity(X: np.ndarray, y: np.ndarray) -> Correlation:
    rho, p = spearman_columns(X, np.asarray(y, dtype=np.float64))
    return Correlation(rho=rho, p=p, q=benjamini_hochberg(p))


def pool_by_group(X: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of the rows of ``X`` per group index in ``[0, n_groups)`` (a group without rows is NaN)."""
    sums = np.zeros((n_groups, X.shape[1]), dtype=np.float64)
    np.add.at(sums, group, X)
    counts = np.bincount(group, minlength=n_groups).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def rank_features(X: np.ndarray, y: np.ndarray, *, categorical: bool) -> np.ndarray:
    """Feature indices ordered from most to least selective for ``y`` (used to choose the best-k
    features on the training speakers only). Categorical: max one-vs-rest |2·AUROC − 1|;
    continuous: |Spearman rho|. Ties keep the lower index first."""
    if categorical:
        classes = sorted(set(y.tolist()))
        score = np.zeros(X.shape[1])
        for c in classes:
            au = _auroc_only(X, y == c)
            score = np.maximum(score, np.abs(2 * au - 1))
    else:
        score = np.abs(spearman_columns(X, y)[0])
    return np.argsort(-score, kind="stable")


def _auroc_only(X: np.ndarray, is_pos: np.ndarray) -> np.ndarray:
    """AUROC of each column from average ranks (no p-value: cheaper inside cross-validation)."""
    n1, n0 = int(is_pos.sum()), int((~is_pos).sum())
    out = np.empty(X.shape[1])
    for lo in range(0, X.shape[1], _BLOCK):
        r = stats.rankdata(X[:, lo : lo + _BLOCK], axis=0)
        u = r[is_pos].sum(0) - n1 * (n1 + 1) / 2
        out[lo : lo + _BLOCK] = u / (n1 * n0)
    return out
