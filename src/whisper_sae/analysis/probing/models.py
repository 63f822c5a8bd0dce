"""Probes that predict a speaker attribute from features, scored on held-out speakers.

Folds are built over speakers (StratifiedGroupKFold for classes, GroupKFold for numbers) so that no
speaker is ever in both the training and the test part; predictions are collected out of fold and
scored once: balanced accuracy, per-class recall and macro-F1 for classes, R² for numbers. The best-k
feature sets are chosen inside each fold from the training speakers only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, f1_score, r2_score, recall_score
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .selectivity import rank_features

MODELS = ("logreg", "forest")


@dataclass(frozen=True)
class ProbeSettings:
    """How the probes are fitted."""

    n_splits: int = 5
    """Most folds over speakers; fewer when a class has fewer speakers."""
    C: float = 0.1
    """Inverse L2 strength of the logistic regression on standardised features (fixed, not tuned,
    so that SAE codes and raw activations get the same treatment)."""
    alpha: float = 300.0
    """Ridge strength for continuous attributes, on standardised features (strong: a few dozen
    speakers' values are easy to memorise from hundreds of features)."""
    n_trees: int = 50
    max_depth: int = 12
    """Trees are kept shallow enough that the forest costs seconds, not minutes, on 2 cores."""
    seed: int = 0


def make_model(name: str, *, categorical: bool, settings: ProbeSettings):
    if name == "logreg":
        if categorical:
            lin = LogisticRegression(C=settings.C, class_weight="balanced", max_iter=300, tol=1e-3)
        else:
            lin = Ridge(alpha=settings.alpha)
        return make_pipeline(StandardScaler(), lin)
    if name == "forest":
        cls = RandomForestClassifier if categorical else RandomForestRegressor
        kw = {"class_weight": "balanced"} if categorical else {}
        return cls(
            n_estimators=settings.n_trees,
            max_depth=settings.max_depth,
            min_samples_leaf=3,
            max_features="sqrt",
            n_jobs=-1,
            random_state=settings.seed,
            **kw,
        )
    raise ValueError(f"unknown probe model {name!r}; valid: {', '.join(MODELS)}")


def speaker_folds(
    y: np.ndarray, groups: np.ndarray, *, categorical: bool, settings: ProbeSettings = ProbeSettings()
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs with every group (speaker) entirely on one side.

    For classes the number of folds is at most the fewest speakers of any class, so that every class
    has speakers in each training part; the folds are stratified so each test part tends to hold every class.
    """
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if categorical:
        per_class = min(len(np.unique(groups[y == c])) for c in np.unique(y))
        k = min(settings.n_splits, per_class, n_groups)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=settings.seed) if k >= 2 else None
    else:
        k = min(settings.n_splits, n_groups)
        splitter = GroupKFold(n_splits=k) if k >= 2 else None
    if splitter is None:
        raise ValueError(f"held-out-speaker folds need at least 2 speakers per class; got {n_groups} speakers in all")
    folds = []
    for train, test in splitter.split(np.zeros(len(y)), y, groups):
        assert not set(groups[train]) & set(groups[test]), "a speaker is on both sides of a fold"
        folds.append((train, test))
    return folds


def cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    model: str,
    categorical: bool,
    k: int | None = None,
    settings: ProbeSettings = ProbeSettings(),
) -> dict:
    """Out-of-fold scores of ``model`` on ``X`` (all columns, or the ``k`` most selective columns
    ranked on each fold's training rows). Returns the metrics dict written to probe.json."""
    est = make_model(model, categorical=categorical, settings=settings)
    pred = np.empty(len(y), dtype=object if categorical else np.float64)
    covered = np.zeros(len(y), dtype=bool)
    picked = []
    for train, test in folds:
        cols = slice(None)
        if k is not None:
            order = rank_features(X[train], y[train], categorical=categorical)
            cols = np.sort(order[:k])
            picked.append(order[:k].tolist())
        fitted = clone(est)
        with warnings.catch_warnings():
            # A few hundred lbfgs steps are plenty for a comparison between feature sets; say so, not warn.
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted.fit(X[train][:, cols], y[train])
        pred[test] = fitted.predict(X[test][:, cols])
        covered[test] = True
    y_true, y_pred = y[covered], pred[covered]
    out = (
        _class_metrics(y_true, y_pred)
        if categorical
        else _regression_metrics(y_true, y_pred.astype(np.float64), folds, y, pred)
    )
    out.update({"n_rows": int(covered.sum()), "n_folds": len(folds)})
    if picked:
        out["features_per_fold"] = picked
    return out


def _class_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    classes = sorted(set(y_true.tolist()))
    recall = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "recall": {c: float(r) for c, r in zip(classes, recall)},
        "chance": 1.0 / len(classes),
    }


def _regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, folds, y_all: np.ndarray, pred_all: np.ndarray) -> dict:
    # R² of the pooled out-of-fold predictions; its baseline (0) is predicting the overall mean.
    per_fold = [float(r2_score(y_all[te], pred_all[te].astype(np.float64))) for _, te in folds if len(te) > 1]
    return {"r2": float(r2_score(y_true, y_pred)), "r2_per_fold": per_fold}


def run_probes(
    feature_sets: dict[str, np.ndarray],
    y: np.ndarray,
    groups: np.ndarray,
    *,
    categorical: bool,
    ks: tuple[int, ...] = (1, 4, 16),
    topk_from: str = "sae",
    models: tuple[str, ...] = MODELS,
    settings: ProbeSettings = ProbeSettings(),
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict:
    """Scores of every model on every feature set, plus the best-k columns of ``feature_sets[topk_from]``.

    Returns ``{model: {set_name | "top{k}": metrics}}``; every entry uses the same folds: held-out
    speakers (``groups``), or the ``folds`` given (e.g. one split: train on corpus A, test on corpus B).
    """
    if folds is None:
        folds = speaker_folds(y, groups, categorical=categorical, settings=settings)
    out: dict[str, dict] = {}
    for m in models:
        out[m] = {
            name: cross_validate(X, y, folds, model=m, categorical=categorical, settings=settings)
            for name, X in feature_sets.items()
        }
        if topk_from in feature_sets:
            X = feature_sets[topk_from]
            for k in ks:
                if k < X.shape[1]:
                    out[m][f"top{k}"] = cross_validate(
                        X, y, folds, model=m, categorical=categorical, k=k, settings=settings
                    )
    return out
