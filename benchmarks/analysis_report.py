"""Label-F1 distributions and best-labelled features of saved analyses, as a PNG and a Markdown table.

python benchmarks/analysis_report.py NAME=SAE_DIR[/analysis] ... --png docs/label-f1.png --md report.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from whisper_sae.analysis import AnalysisResult


def plot(results: dict[str, AnalysisResult], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    bins = np.linspace(0, 1, 41)
    for ax, kind in zip(axes, ("phone", "word")):
        for name, res in results.items():
            if f"{kind}_f1" in res.arrays:
                alive = res.arrays["fire_count"] > 0
                ax.hist(res.arrays[f"{kind}_f1"][alive], bins=bins, histtype="step", linewidth=1.6, label=name)
        for t in (0.5, 0.7, 0.9):
            ax.axvline(t, color="#999", linestyle=":", linewidth=1)
        ax.set_xlabel(f"best {kind} label F1 (frames)")
        ax.set_yscale("log")
    axes[0].set_ylabel("features")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def table(name: str, res: AnalysisResult, n: int = 10) -> str:
    lines = [
        f"### {name}",
        "",
        f"{res.meta['model']} · {res.meta['hook']} · {res.d_sae} features "
        f"({res.meta['architecture']}) · {res.summary['n_utterances']} utterances, "
        f"{res.summary['n_positions']} frames",
        "",
    ]
    for kind in ("phone", "word"):
        s = res.summary.get(f"{kind}_labels")
        if s:
            lines.append(
                f"- {kind} labels: median F1 {s['median_f1']:.2f}; F1 > 0.5: {s['f1>0.5']}, "
                f"> 0.7: {s['f1>0.7']}, > 0.9: {s['f1>0.9']} of {s['n_alive']} alive features"
            )
    lines += [
        "",
        "| feature | phone | F1 | precision | recall | frequency | best word (F1) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in res.best_labelled(n, "phone"):
        lines.append(
            f"| {r['feature']} | {r['phone']} | {r['phone_f1']:.2f} | {r['phone_precision']:.2f} | "
            f"{r['phone_recall']:.2f} | {r['freq']:.2%} | {r.get('word')} ({r.get('word_f1', 0):.2f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("analyses", nargs="+", metavar="NAME=PATH")
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args(argv)
    results = {}
    for item in args.analyses:
        name, _, path = item.partition("=")
        results[name] = AnalysisResult.load(path)
    if args.png:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        plot(results, args.png)
    text = "\n".join(table(name, res) for name, res in results.items())
    if args.md:
        args.md.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
