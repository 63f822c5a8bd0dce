"""Pictures of speaker attributes in SAE codes: 2-D projections of utterance-pooled codes (PCA and
t-SNE), a per-class mean-feature heatmap, and a dendrogram of the classes. Each function writes one PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (CI, notebooks over ssh)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.cluster.hierarchy import dendrogram, linkage  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402


def projection(
    pooled: np.ndarray,
    values: np.ndarray,
    *,
    categorical: bool,
    title: str,
    out: Path,
    method: str = "pca",
    seed: int = 0,
) -> Path | None:
    """Scatter of utterance-pooled codes ``[n_utt, F]`` in 2-D, coloured by the attribute ``values``.

    Codes are log1p-compressed first so that a handful of very strong features do not make the picture;
    t-SNE is skipped (None) when there are too few utterances for a meaningful perplexity.
    """
    Z = np.log1p(np.maximum(pooled, 0))
    Z = Z[:, Z.std(0) > 0]
    if len(Z) < 3 or Z.shape[1] < 2:
        return None
    if method == "pca":
        pca = PCA(n_components=2, random_state=seed)
        xy = pca.fit_transform(Z)
        axes = [f"PC{i + 1} ({100 * v:.0f} % var.)" for i, v in enumerate(pca.explained_variance_ratio_)]
    elif method == "tsne":
        if len(Z) < 10:
            return None
        # Perplexity must stay below the number of points; 30 is the usual value for a few hundred.
        perplexity = float(min(30, max(2, (len(Z) - 1) // 3)))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(Z)
        axes = ["t-SNE 1", "t-SNE 2"]
    else:
        raise ValueError(f"unknown projection {method!r}; valid: pca, tsne")
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    if categorical:
        classes = sorted(set(values.tolist()))
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, c in enumerate(classes):
            sel = values == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, alpha=0.8, color=cmap(i % cmap.N), label=f"{c} ({sel.sum()})")
        ax.legend(fontsize=7, markerscale=1.2, loc="best", frameon=False)
    else:
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=14, c=values.astype(float), cmap="viridis")
        fig.colorbar(sc, ax=ax, label=title.split(":")[0])
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title, fontsize=10)
    return _save(fig, out)


def class_heatmap(
    pooled: np.ndarray, values: np.ndarray, classes: list[str], features: list[int], *, title: str, out: Path
) -> Path:
    """Per-class mean of the given features, each feature z-scored across utterances, as a heatmap
    (classes × features) so that weak and strong features share one colour scale."""
    X = pooled[:, features]
    sd = X.std(0)
    Z = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
    M = np.stack([Z[values == c].mean(0) for c in classes])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * len(features) + 2), max(2.2, 0.35 * len(classes) + 1.4)))
    lim = float(np.abs(M).max()) or 1.0
    im = ax.imshow(M, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xticks(range(len(features)), [str(f) for f in features], rotation=90, fontsize=7)
    ax.set_xlabel("feature")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="class mean (z)")
    return _save(fig, out)


def class_dendrogram(
    pooled: np.ndarray, values: np.ndarray, classes: list[str], *, title: str, out: Path
) -> Path | None:
    """Average-linkage dendrogram of the classes' mean pooled codes (correlation distance), the way
    accents were grouped in the original analysis. Needs at least three classes."""
    if len(classes) < 3:
        return None
    M = np.stack([pooled[values == c].mean(0) for c in classes])
    M = M[:, M.std(0) > 0]
    Z = linkage(M, method="average", metric="correlation")
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(classes) + 2))
    dendrogram(Z, labels=classes, orientation="left", ax=ax, color_threshold=0)
    ax.set_xlabel("1 − correlation of class-mean codes")
    ax.set_title(title, fontsize=10)
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
