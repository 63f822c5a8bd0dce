"""probe.json blocks and probe.md: per-feature selectivity in a form the dashboard can read, the top
features per attribute, and the tables a person reads first. The blocks are built here as plain
dicts; ``schema.ProbeReport`` is what writes and reads the file (and what probe.md is made from).

probe.json, per attribute, holds ``selectivity`` (utterance level, one entry per feature):
``score`` (max over classes of |2·AUROC − 1|, or |Spearman rho| for numbers), ``class`` (the class
the feature separates best from the rest: higher there when AUROC > 0.5, lower when below), ``auroc``,
``cohens_d`` and ``q`` (BH-corrected Mann–Whitney p) for that class.
``features.{frame,utterance}.per_class`` has the full one-vs-rest arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .schema import AttributeBlock, ProbeReport, TopFeature
from .selectivity import Correlation, Selectivity


def selectivity_block(stats: Selectivity | Correlation) -> dict:
    if isinstance(stats, Correlation):
        return {"summary": {"score": stats.score(), "rho": stats.rho, "q": stats.q}, "per_class": None}
    score, pref = stats.score()
    cls = np.array(stats.classes, dtype=object)[pref]
    pick = lambda table: np.stack([table[c] for c in stats.classes])[pref, np.arange(len(pref))]  # noqa: E731
    summary = {
        "score": score,
        "class": cls.tolist(),
        "auroc": pick(stats.auroc),
        "cohens_d": pick(stats.cohens_d),
        "q": pick(stats.q_mannwhitney),
        "q_welch": pick(stats.q_welch),
    }
    per_class = {
        "auroc": stats.auroc,
        "cohens_d": stats.cohens_d,
        "q_mannwhitney": stats.q_mannwhitney,
        "q_welch": stats.q_welch,
    }
    return {"summary": summary, "per_class": per_class}


def top_features(block: dict, n: int) -> list[dict]:
    """The ``n`` features with the highest utterance-level selectivity score, with both levels' numbers."""
    u, f = block["features"]["utterance"]["summary"], block["features"]["frame"]["summary"]
    order = np.argsort(-np.asarray(u["score"], dtype=float), kind="stable")[:n]
    rows = []
    for i in order.tolist():
        row = {"feature": i, "score": float(u["score"][i])}
        if "class" in u:
            row.update(
                {
                    "class": u["class"][i],
                    "auroc_utterance": float(u["auroc"][i]),
                    "cohens_d_utterance": float(u["cohens_d"][i]),
                    "q_utterance": float(u["q"][i]),
                    "auroc_frame": _frame_auroc(block, u["class"][i], i),
                    "q_frame": _frame_q(block, u["class"][i], i),
                }
            )
        else:
            row.update(
                {
                    "rho_utterance": float(u["rho"][i]),
                    "q_utterance": float(u["q"][i]),
                    "rho_frame": float(f["rho"][i]),
                    "q_frame": float(f["q"][i]),
                }
            )
        rows.append(row)
    return rows


def attach_labels(rows: list[dict], analysis) -> list[dict]:
    """Add the analysis' best phone and word label (with F1) to each top-feature row, where it has them."""
    for row in rows:
        for kind in ("phone", "word"):
            if f"{kind}_f1" in analysis.arrays:
                label, f1 = analysis.label(row["feature"], kind)
                row[kind], row[f"{kind}_f1"] = label, f1
    return rows


def _labels_md(row: TopFeature) -> str:
    parts = [f"{kind} {label} ({f1:.2f})" for kind, (label, f1) in row.labels.items() if label]
    return ", ".join(parts) or "–"


def _frame_auroc(block, cls, i) -> float:
    return float(block["features"]["frame"]["per_class"]["auroc"][cls][i])


def _frame_q(block, cls, i) -> float:
    return float(block["features"]["frame"]["per_class"]["q_mannwhitney"][cls][i])


def write_markdown(report: ProbeReport, path: Path, pictures: list[str]) -> Path:
    lines = [
        f"# Speaker-attribute probe: {report.sae.hook} SAE ({report.sae.d_sae} features)",
        "",
        f"Corpus `{report.corpus}`: {report.n_utterances} utterances, {report.n_speakers} speakers, "
        f"{report.n_frames} frames ({report.n_frames_sampled} sampled for frame-level numbers). "
        f"Model `{report.model}`. All probe scores are on held-out speakers (out-of-fold).",
        "",
    ]
    lines += [f"- {n}" for n in report.notes]
    for name, block in report.attributes.items():
        lines += _attribute_md(name, block)
    if report.ablation is not None:
        lines += _ablation_md(report.ablation)
    if pictures:
        lines += ["", "## Pictures", ""] + [f"![{p}]({p})" for p in pictures]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _attribute_md(name: str, block: AttributeBlock) -> list[str]:
    categorical = block.categorical
    lines = ["", f"## {name} (column `{block.column}`, {block.kind})", ""]
    if categorical:
        lines.append(
            "Classes: "
            + ", ".join(f"{c} ({n['utterances']} utt., {n['speakers']} spk.)" for c, n in block.counts.items())
        )
    else:
        c = block.counts
        lines.append(f"{c['utterances']} utterances, {c['speakers']} speakers, values {c['min']:g} … {c['max']:g}")
    lines += [""] + [f"- {n}" for n in block.notes]
    metric = "balanced accuracy" if categorical else "R²"
    chance = f" (chance {1 / len(block.classes):.2f})" if categorical else " (0 = predicting the mean)"
    models = [m for m, v in block.probes["frame"].items() if isinstance(v, dict)]
    cols = [(m, lvl) for m in models for lvl in ("frame", "utterance")]
    shown = {"logreg": "logreg" if categorical else "ridge", "forest": "forest"}  # "logreg" fits a ridge for numbers
    lines += [
        "",
        f"Probe {metric}{chance}:",
        "",
        "| features | " + " | ".join(f"{shown.get(m, m)} {lvl}" for m, lvl in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for fs in block.probes["utterance"][models[0]]:
        cells = [block.probes[lvl][m].get(fs, {}).get(block.metric) for m, lvl in cols]
        lines.append(f"| {fs} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in cells) + " |")
    if categorical:
        rec = block.probes["utterance"]["logreg"]["sae"]["recall"]
        lines += [
            "",
            "Per-class recall (logreg, SAE codes, utterance level): "
            + ", ".join(f"{c} {r:.2f}" for c, r in rec.items()),
        ]
        lines += [
            "",
            "| feature | class | AUROC utt. | d utt. | q utt. | AUROC frame | q frame | labels (F1) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in block.top_features:
            lines.append(
                f"| {t.feature} | {t.class_} | {t.auroc_utterance:.3f} | {t.cohens_d_utterance:.2f} | "
                f"{t.q_utterance:.2g} | {t.auroc_frame:.3f} | {t.q_frame:.2g} | {_labels_md(t)} |"
            )
    else:
        lines += [
            "",
            "| feature | rho utt. | q utt. | rho frame | q frame | labels (F1) |",
            "|---|---|---|---|---|---|",
        ]
        for t in block.top_features:
            lines.append(
                f"| {t.feature} | {t.rho_utterance:.3f} | {t.q_utterance:.2g} | {t.rho_frame:.3f} | "
                f"{t.q_frame:.2g} | {_labels_md(t)} |"
            )
    if block.transfer is not None:
        lines += _transfer_md(block.transfer)
    return lines


def _transfer_md(t: dict) -> list[str]:
    lines = [
        "",
        f"Cross-corpus: trained on this corpus, tested on `{t['test_corpus']}` ({t.get('n_test_speakers')} speakers)",
    ]
    if not t.get("probes"):
        return lines + ["", f"- {t.get('note', 'not scored')}"]
    lines += [
        f"over the {len(t['classes'])} shared classes ({', '.join(t['classes'])}; chance {1 / len(t['classes']):.2f}; "
        f"only here: {', '.join(t['only_train']) or 'none'}; only there: {', '.join(t['only_test']) or 'none'}), "
        "balanced accuracy:",
        "",
    ]
    models = list(t["probes"]["utterance"])
    cols = [(m, lvl) for m in models for lvl in ("frame", "utterance")]
    lines += ["| features | " + " | ".join(f"{m} {lvl}" for m, lvl in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for fs in t["probes"]["utterance"][models[0]]:
        cells = [t["probes"][lvl][m].get(fs, {}).get("balanced_accuracy") for m, lvl in cols]
        lines.append(f"| {fs} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in cells) + " |")
    return lines


def _ablation_md(ablation) -> list[str]:
    conds = ablation.conditions
    names = list(next(iter(conds.values())).probes)
    head = [f"{a} {lvl} {fs}" for a in names for lvl in ("frame", "utterance") for fs in ("sae", "raw")]
    lines = [
        "",
        f"## Ablation of the top {ablation.k} selective features (x − their decoder contribution; SAE error kept)",
        "",
        "Linear probes re-trained on the edited activations (held-out speakers; balanced accuracy or R²); "
        f"WER over {ablation.n_wer_utterances} utterances.",
        "",
        "| ablated | " + " | ".join(head) + " | WER | WER vs clean |",
        "|---" * (len(head) + 3) + "|",
    ]
    for cond, e in conds.items():
        cells = [e.probes[a][lvl][fs] for a in names for lvl in ("frame", "utterance") for fs in ("sae", "raw")]
        lines.append(
            f"| {cond} | "
            + " | ".join(f"{v:.3f}" for v in cells)
            + f" | {_pct(e.wer.get('wer'))} | {_pct(e.wer.get('wer_vs_clean_transcript'))} |"
        )
    return lines


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"
