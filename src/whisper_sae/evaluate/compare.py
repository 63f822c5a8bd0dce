"""Do two SAEs find the same features? Match their decoder directions one-to-one and see how many agree.

A feature is its decoder direction (a row of ``W_dec``, unit-normed here). Two SAEs trained on the same
activations from different seeds, at different widths, or with different losses (MSE, KL) are compared
by the cosine between every pair of directions; the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) then picks the one-to-one matching with the largest summed
cosine. Reported:

- the fraction of the narrower SAE's features whose match has cosine above 0.7 and above 0.9 (Paulo &
  Belrose 2025 use 0.7 for "the same feature"; 0.9 is nearly the same direction), and the distribution
  of matched cosines, and of each feature's best (not exclusive) match in the other SAE;
- across widths, **splits**: features of the wider SAE whose best match in the narrower one has cosine
  above 0.7 but are not its one-to-one partner; they are the extra pieces of a narrow feature that the
  wide SAE cut in several (Bricken et al. 2023's feature splitting);
- when both SAE folders hold an ``analysis/`` (``whisper-sae analyze``), whether matched pairs carry the
  same phone / word label. That reads ``whisper_sae.analysis.load_analysis`` lazily (the only import
  from above this package, and optional: without it, or without an analysis, the labels are skipped
  and the reason is recorded).

A 4608-wide pair costs a 4608 x 4608 cost matrix (170 MB in float64) and a few seconds to a minute of
assignment on a CPU.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from whisper_sae.artifacts import SAEFolder, open_sae

THRESHOLDS = (0.7, 0.9)
SPLIT_COSINE = 0.7


@dataclass
class CompareResult:
    """The outcome of ``compare_saes``; ``to_dict`` is what ``compare.json`` holds."""

    meta: dict
    pairs: np.ndarray
    """[n, 2] matched feature indices (a, b), n = the narrower width."""
    cosine: np.ndarray
    """[n] cosine of each matched pair."""
    best_a: np.ndarray
    """[d_sae of A] each A feature's best cosine with any B feature."""
    best_b: np.ndarray
    """[d_sae of B] each B feature's best cosine with any A feature."""
    splits: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    def fraction_above(self, threshold: float) -> float:
        return float((self.cosine > threshold).mean()) if len(self.cosine) else math.nan

    @property
    def n_pairs(self) -> int:
        return len(self.cosine)

    def to_dict(self, *, with_pairs: bool = True) -> dict:
        quantiles = {f"q{int(q * 100):02d}": float(np.quantile(self.cosine, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)}
        doc = {
            "meta": self.meta,
            "n_pairs": self.n_pairs,
            "matched_fraction": {str(t): self.fraction_above(t) for t in THRESHOLDS},
            "matched_cosine": {"mean": float(self.cosine.mean()), **quantiles},
            "best_match_mean": {"a": float(self.best_a.mean()), "b": float(self.best_b.mean())},
            "best_match_fraction": {
                side: {str(t): float((best > t).mean()) for t in THRESHOLDS}
                for side, best in (("a", self.best_a), ("b", self.best_b))
            },
            "splits": self.splits,
            "labels": self.labels,
        }
        if with_pairs:
            doc["pairs"] = [[int(i), int(j), round(float(c), 5)] for (i, j), c in zip(self.pairs, self.cosine)]
        return doc

    def markdown(self) -> str:
        m = self.meta
        lines = [
            f"# SAE comparison: {m['a']['name']} vs {m['b']['name']}",
            "",
            f"- A: `{m['a']['path']}` ({m['a']['architecture']}, {m['a']['d_sae']} features, hook "
            f"{m['a']['hook']}, loss {m['a']['loss']})",
            f"- B: `{m['b']['path']}` ({m['b']['architecture']}, {m['b']['d_sae']} features, hook "
            f"{m['b']['hook']}, loss {m['b']['loss']})",
            "",
        ]
        if m.get("warning"):
            lines += [f"**Note:** {m['warning']}", ""]
        lines += [
            "| one-to-one matches (Hungarian, decoder cosine) | value |",
            "| --- | --- |",
            f"| pairs (narrower width) | {self.n_pairs} |",
        ]
        for t in THRESHOLDS:
            lines.append(f"| fraction with cosine > {t} | {self.fraction_above(t):.3f} |")
        lines.append(f"| mean matched cosine | {float(self.cosine.mean()):.3f} |")
        lines.append(f"| median matched cosine | {float(np.median(self.cosine)):.3f} |")
        lines.append(
            f"| mean best-match cosine A→B / B→A | {float(self.best_a.mean()):.3f} / {float(self.best_b.mean()):.3f} |"
        )
        lines.append("")
        s = self.splits
        if s.get("applies"):
            lines += [
                f"**Splits** ({s['wide']} is wider): {s['n_split_features']} of its features match a narrow "
                f"feature at cosine > {SPLIT_COSINE} without being its one-to-one partner; "
                f"{s['n_narrow_split']} narrow features are split in two or more.",
                "",
            ]
            for fam in s.get("largest", [])[:10]:
                lines.append(f"- narrow feature {fam['narrow']}: wide features {fam['wide']} (cosines {fam['cosine']})")
            lines.append("")
        lab = self.labels
        if lab.get("available"):
            lines += [
                "| labels of pairs matched at cosine > 0.7 | phone | word |",
                "| --- | --- | --- |",
                f"| pairs with a label on both sides | {lab['phone']['both_labelled']} | "
                f"{lab['word']['both_labelled']} |",
                f"| same label | {_fmt(lab['phone']['agree_fraction'])} | {_fmt(lab['word']['agree_fraction'])} |",
                "",
            ]
        else:
            lines += [f"Labels: not compared ({lab.get('reason', 'no analysis')}).", ""]
        if self.files.get("plot"):
            lines += [f"![cosines]({Path(self.files['plot']).name})", ""]
        return "\n".join(lines)

    def write(self, out) -> dict:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.files = {
            "json": str(out / "compare.json"),
            "markdown": str(out / "compare.md"),
            "plot": str(out / "cosines.png"),
        }
        _plot(self, out / "cosines.png")
        (out / "compare.json").write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        (out / "compare.md").write_text(self.markdown() + "\n")
        return self.files


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _directions(sae) -> torch.Tensor:
    w = sae.W_dec.detach().double().cpu()
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _describe(sae, folder: Path | None, fallback: str) -> dict:
    training = {}
    if folder is not None and SAEFolder(folder).cfg.is_file():
        training = (json.loads(SAEFolder(folder).cfg.read_text()).get("whisper_sae") or {}).get("training") or {}
    return {
        "name": folder.name if folder is not None else fallback,
        "path": str(folder) if folder else None,
        "architecture": sae.cfg.architecture,
        "d_sae": sae.cfg.d_sae,
        "k": sae.cfg.k,
        "hook": sae.cfg.hook_name,
        "model": sae.cfg.model_name,
        "loss": training.get("loss", "mse" if training else None),
    }


def match(cos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching of rows to columns with the largest summed cosine: (pairs [n, 2], cosines [n])."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cos, maximize=True)
    return np.stack([rows, cols], axis=1), cos[rows, cols]


def _splits(cos: np.ndarray, pairs: np.ndarray, a_is_wide: bool, names: tuple[str, str]) -> dict:
    """Wide features whose best narrow match (cosine > SPLIT_COSINE) is matched one-to-one to another feature."""
    if cos.shape[0] == cos.shape[1]:
        return {"applies": False}
    wide_cos = cos if a_is_wide else cos.T  # [n_wide, n_narrow]
    partner = {}  # narrow -> its one-to-one wide partner
    for i, j in pairs:
        w, n = (i, j) if a_is_wide else (j, i)
        partner[int(n)] = int(w)
    best = wide_cos.argmax(1)
    best_cos = wide_cos.max(1)
    families: dict[int, list[int]] = {}
    n_split = 0
    for w in range(wide_cos.shape[0]):
        n = int(best[w])
        if best_cos[w] > SPLIT_COSINE and partner.get(n) != w:
            n_split += 1
            families.setdefault(n, [partner[n]] if n in partner else []).append(w)
    largest = sorted(families.items(), key=lambda kv: -len(kv[1]))
    return {
        "applies": True,
        "wide": names[0] if a_is_wide else names[1],
        "threshold": SPLIT_COSINE,
        "n_split_features": n_split,
        "n_narrow_split": len(families),
        "largest": [
            {"narrow": n, "wide": ws, "cosine": [round(float(wide_cos[w, n]), 3) for w in ws]} for n, ws in largest[:50]
        ],
    }


def _load_labels(folder: Path | None):
    """The SAE's analysis (or None, reason): optional, never fatal."""
    if folder is None:
        return None, "an in-memory SAE has no analysis"
    if not SAEFolder(folder).analysis_json.is_file():
        return None, f"{folder} has no analysis/analysis.json (run `whisper-sae analyze`)"
    try:
        from whisper_sae.analysis import load_analysis

        return load_analysis(SAEFolder(folder).analysis), None
    except Exception as err:  # noqa: BLE001 — labels are an extra; a bad or newer analysis must not stop the comparison
        return None, f"the analysis of {folder} could not be read ({type(err).__name__}: {err})"


def _label_agreement(pairs: np.ndarray, cosine: np.ndarray, folder_a, folder_b) -> dict:
    an_a, why_a = _load_labels(folder_a)
    an_b, why_b = _load_labels(folder_b)
    if an_a is None or an_b is None:
        return {"available": False, "reason": why_a or why_b}
    out = {"available": True, "threshold": SPLIT_COSINE}
    for kind in ("phone", "word"):
        both = agree = 0
        examples = []
        for (i, j), c in zip(pairs, cosine):
            if c <= SPLIT_COSINE:
                continue
            try:
                la, _ = an_a.label(int(i), kind)
                lb, _ = an_b.label(int(j), kind)
            except (IndexError, KeyError):
                continue
            if la is None or lb is None:
                continue
            both += 1
            agree += la == lb
            if len(examples) < 20:
                examples.append({"a": int(i), "b": int(j), "cosine": round(float(c), 3), "label_a": la, "label_b": lb})
        out[kind] = {
            "both_labelled": both,
            "agree": agree,
            "agree_fraction": agree / both if both else None,
            "examples": examples,
        }
    return out


def compare_saes(a, b, *, device="cpu") -> CompareResult:
    """Compare two SAEs (folders or ``SparseAutoencoder``\\ s) feature by feature; see the module docstring."""
    sae_a, dir_a = open_sae(a, device)
    sae_b, dir_b = open_sae(b, device)
    if sae_a.cfg.d_in != sae_b.cfg.d_in:
        raise ValueError(
            f"the SAEs read activations of different widths (A d_in={sae_a.cfg.d_in}, B "
            f"d_in={sae_b.cfg.d_in}); compare SAEs of the same hook of the same model"
        )
    meta = {"a": _describe(sae_a, dir_a, "A"), "b": _describe(sae_b, dir_b, "B")}
    if (sae_a.cfg.hook_name, sae_a.cfg.model_name) != (sae_b.cfg.hook_name, sae_b.cfg.model_name):
        meta["warning"] = (
            f"A reads {sae_a.cfg.hook_name} of {sae_a.cfg.model_name}, B reads {sae_b.cfg.hook_name} "
            f"of {sae_b.cfg.model_name}: their directions live in different spaces"
        )
    da, db = _directions(sae_a), _directions(sae_b)
    cos = (da @ db.T).numpy()
    pairs, matched = match(cos)
    names = (meta["a"]["name"], meta["b"]["name"])
    result = CompareResult(
        meta=meta,
        pairs=pairs,
        cosine=matched,
        best_a=cos.max(1),
        best_b=cos.max(0),
        splits=_splits(cos, pairs, cos.shape[0] > cos.shape[1], names),
        labels=_label_agreement(pairs, matched, dir_a, dir_b),
    )
    return result


def default_out(a, b) -> Path:
    """``SAE_A/compare-<name of B>``."""
    return Path(a) / f"compare-{Path(str(b).rstrip('/')).name}"


def _plot(result: CompareResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = np.linspace(-0.2, 1.0, 61)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(result.cosine, bins=bins, alpha=0.8, label=f"one-to-one matches ({result.n_pairs})")
    ax.hist(result.best_a, bins=bins, histtype="step", linewidth=1.5, label="best match of each A feature")
    ax.hist(result.best_b, bins=bins, histtype="step", linewidth=1.5, label="best match of each B feature")
    for t in THRESHOLDS:
        ax.axvline(t, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("decoder-direction cosine")
    ax.set_ylabel("features")
    ax.set_title(f"{result.meta['a']['name']} vs {result.meta['b']['name']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
