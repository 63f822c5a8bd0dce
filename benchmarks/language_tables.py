"""Markdown tables of benchmarks/language.py's results (language.json -> language.md)."""

from __future__ import annotations

import numpy as np

SETS = ("sae", "raw", "top1", "top4", "top16")


def _f(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def probe_table(results: dict) -> str:
    rows = []
    for hook, by_store in results.get("probe", {}).items():
        for which, block in by_store.items():
            n_cls = len(block["classes"])
            for level in ("utterance", "frame"):
                metrics = (block.get("probes") or {}).get(level, {}).get("logreg", {})
                scores = [_f((metrics.get(s) or {}).get("balanced_accuracy")) for s in SETS]
                speakers = ", ".join(f"{c} {v['speakers']}" for c, v in block["counts"].items())
                rows.append([hook, which, level, n_cls, _f(1 / n_cls), *scores, speakers])
    header = ["hook", "data", "level", "classes", "chance", *SETS, "speakers per class"]
    return _table(header, rows)


def transfer_table(results: dict) -> str:
    rows = []
    for hook, by_set in results.get("transfer", {}).items():
        for name, by_corpus in by_set.items():
            for corpus, r in by_corpus.items():
                pred = ", ".join(f"{k} {v}" for k, v in sorted(r["predicted"].items(), key=lambda kv: -kv[1]))
                rows.append([hook, name, corpus, r["n"], _f(r["accuracy"]), pred])
    return _table(["hook", "features", "real corpus", "utterances", "accuracy", "predicted languages"], rows)


def selective_table(results: dict, n: int = 3) -> str:
    rows = []
    for hook, by_lang in results.get("selective", {}).items():
        for lang, feats in by_lang.items():
            cells = [f"{r['feature']} ({_f(r['auroc_utterance'])} / {_f(r['auroc_frame'])})" for r in feats[:n]]
            rows.append([hook, lang, *cells])
    return _table(["hook", "language", *[f"#{i + 1} feature (AUROC utt / frame)" for i in range(n)]], rows)


def phone_tables(results: dict, n: int = 14) -> str:
    out = []
    summary = []
    for hook, block in results.get("phones", {}).items():
        rows = block["phones"]
        wide = [r for r in rows if len(r["groups"]) >= 4]
        same = sum(r["same_best"] for r in wide)
        ratio = [r["cross_ratio_mean"] for r in wide if r["cross_ratio_mean"] is not None]
        summary.append(
            [
                hook,
                len(rows),
                len(wide),
                same,
                _f(np.mean(ratio) if ratio else None),
                _f(np.mean([np.mean(list(r["best_f1"].values())) for r in wide]) if wide else None),
            ]
        )
    out.append(
        _table(
            [
                "hook",
                "phones in >=2 languages",
                "in >=4",
                "same best feature in all",
                "mean cross/own F1",
                "mean best F1",
            ],
            summary,
        )
    )
    for hook, block in results.get("phones", {}).items():
        if "untrained" in hook:
            continue
        rows = []
        for r in block["phones"][:n]:
            best = ", ".join(f"{g}:{r['best_feature'][g]}" for g in r["groups"])
            f1 = [r["best_f1"][g] for g in r["groups"]]
            rows.append(
                [
                    f"/{r['label']}/",
                    len(r["groups"]),
                    r["n_distinct_best"],
                    best,
                    f"{min(f1):.2f}–{max(f1):.2f}",
                    _f(r["cross_ratio_mean"]),
                ]
            )
        out.append(f"\n`{hook}`, most widespread phones:\n\n")
        out.append(
            _table(
                [
                    "phone",
                    "languages",
                    "distinct best features",
                    "best feature per language",
                    "best F1 range",
                    "cross/own F1",
                ],
                rows,
            )
        )
    return "".join(out)


def steer_tables(results: dict, examples: int = 16) -> str:
    steer = results.get("steer") or {}
    clips = steer.get("clips", [])
    if not clips:
        return "(no steering run)\n"
    order = ["base", "ablate-own", "ablate-own-all", "ablate-random", "clamp-target x1", "clamp-target x4"]
    rows = []
    for hook in sorted({c["hook"] for c in clips}):
        for kind in ("synth", "real"):
            for cond in order:
                sel = [
                    c
                    for c in clips
                    if c["hook"] == hook and c["condition"] == cond and (c["corpus"] == "synth") == (kind == "synth")
                ]
                if not sel:
                    continue
                rows.append(
                    [
                        hook,
                        kind,
                        cond,
                        len(sel),
                        f"{np.mean([c['detected'] == c['language'] for c in sel]):.2f}",
                        _f(np.mean([c["p_own"] for c in sel])),
                        _f(np.mean([c["p_target"] for c in sel])),
                        f"{np.mean([c['detected'] == c['target'] for c in sel]):.2f}",
                    ]
                )
    out = [
        _table(
            ["hook", "clips", "condition", "n", "detected = own", "mean p(own)", "mean p(target)", "detected = target"],
            rows,
        )
    ]
    ex = []
    base = {(c["hook"], c["clip"]): c for c in clips if c["condition"] == "base"}
    for c in clips:
        if c["condition"] == "base" or len(ex) >= examples:
            continue
        b = base[(c["hook"], c["clip"])]
        if c["transcript"] is None and c["detected"] == b["detected"]:
            continue
        if c["detected"] != b["detected"] or c["transcript"] != b["transcript"]:
            ex.append(
                [
                    c["clip"],
                    c["language"],
                    c["condition"],
                    f"{b['detected']}→{c['detected']}",
                    (b["transcript"] or "")[:60].replace("|", "/"),
                    (c["transcript"] or "(not transcribed)")[:60].replace("|", "/"),
                ]
            )
    if ex:
        out.append("\nClips whose detection or transcript changed (first 60 characters):\n\n")
        out.append(_table(["clip", "language", "condition", "detected", "transcript before", "after"], ex))
    return "".join(out)


def write_markdown(results: dict, work) -> str:
    m = results.get("machine", {})
    start, end = m.get("start", {}), m.get("end", {})
    parts = [
        "# Language in Whisper base: tables (benchmarks/language.py)\n\n",
        f"Machine: {start.get('cpu')} ({', '.join(start.get('flags', []))}), {start.get('cores')} cores shared, "
        f"load {start.get('load_1_5_15')} at start, {end.get('load_1_5_15')} at end; work folder {work}.\n\n",
        "## Language probes (logistic regression, cross-validated by speaker; balanced accuracy)\n\n",
        probe_table(results),
        "\n## Probe trained on synthetic held-out voices, applied to real speech (utterance means)\n\n",
        transfer_table(results),
        "\n## Most language-selective features (held-out voices, one-vs-rest)\n\n",
        selective_table(results),
        "\n## Phone features across languages (held-out voices, eSpeak alignments)\n\n",
        phone_tables(results),
        "\n## Steering Whisper's language detection\n\n",
        steer_tables(results),
    ]
    return "".join(parts)
