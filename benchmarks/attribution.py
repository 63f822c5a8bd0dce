"""Does attribution (gradient x activation of SAE features) predict real ablations? Real speech.

    nice -n 5 python benchmarks/attribution.py --sae tiny/encoder.out-original --model tiny.en \
        --corpus ../shared/data/librispeech/test-clean --clips 20 --k 10 --random 3 \
        --out runs/attribution-bench [--analysis SAE_ANALYSIS_DIR] [--threads 1]

For each clip, one token of Whisper's own transcript (the middle text token, or --position FRACTION of
the way through) is attributed to the SAE's (feature, frame) entries; then, for real, with the error
term kept: each of the top-k features (by |attribution summed over frames|) is ablated on every frame,
each of the top-k (feature, frame) entries at its frame, the top-k features together, and k random
active features together (--random draws). Prints the correlation of estimate and effect (Pearson,
Spearman), the sign agreement, and |joint effect| of top-k against random-k; writes every number to
OUT/attribution-bench.json and a scatter plot OUT/attribution-bench.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from whisper_sae.artifacts import open_corpus, open_model, open_sae
from whisper_sae.circuits.attribution import ablation_check, attribute


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _stats(est, eff) -> dict:
    est, eff = np.asarray(est, float), np.asarray(eff, float)
    return {
        "n": int(len(est)),
        "pearson": float(np.corrcoef(est, eff)[0, 1]),
        "spearman": _spearman(est, eff),
        "sign_agreement": float(np.mean(np.sign(est) == np.sign(eff))),
        "median_abs_effect": float(np.median(np.abs(eff))),
        "median_abs_ratio_effect_over_estimate": float(np.median(np.abs(eff) / np.maximum(np.abs(est), 1e-9))),
    }


def machine() -> str:
    flags = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line), "")
        have = next((line for line in out.splitlines() if line.startswith("Flags")), "")
        flags = " ".join(f for f in ("avx2", "avx512f", "amx_tile") if f in have.split())
    except OSError:
        model = platform.processor()
    return f"{model or platform.machine()} ({flags}); load {os.getloadavg()[0]:.1f}; {os.cpu_count()} cpus"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sae", required=True, help="SAE at an encoder hook (folder or shipped name)")
    parser.add_argument("--model", default="tiny.en", help="Whisper model spec")
    parser.add_argument("--corpus", required=True, help="real speech, e.g. LibriSpeech test-clean")
    parser.add_argument("--clips", type=int, default=20, help="clips used (the first N of the corpus)")
    parser.add_argument("--position", type=float, default=0.5, help="token at this fraction of the transcript")
    parser.add_argument("--k", type=int, default=10, help="top features / entries ablated")
    parser.add_argument("--random", type=int, default=3, help="random k-feature draws per token")
    parser.add_argument("--analysis", default=None, help="analysis folder of the SAE (labels in the JSON)")
    parser.add_argument("--out", default="runs/attribution-bench", help="output folder")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from OUT/attribution-bench.json")
    args = parser.parse_args()
    if args.replot:
        doc = json.loads((Path(args.out) / "attribution-bench.json").read_text())
        _plot(doc["tokens"], Path(args.out) / "attribution-bench.png", doc["summary"])
        print(json.dumps(doc["summary"], indent=1))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sae, _ = open_sae(args.sae, "cpu")
    lw = open_model(args.model, device="cpu")
    labels = None
    if args.analysis:
        from whisper_sae.analysis.features.result import load_analysis

        labels = load_analysis(args.analysis)
    utterances, spec = open_corpus(args.corpus, args.clips)
    start, load_before = time.time(), os.getloadavg()[0]
    rows, seconds = [], 0.0
    for utt in tqdm(list(utterances), desc="attribution + ablations", unit="clip"):
        audio = np.asarray(utt.audio, dtype=np.float32)
        seconds += len(audio) / 16000
        greedy = lw.greedy_tokens(lw.log_mel([audio]), list(lw.prompt_ids), 200)[0]
        n_tokens = len(greedy)
        if n_tokens == 0:
            continue
        token = min(n_tokens - 1, int(args.position * n_tokens))
        result = attribute(sae, lw, audio, token=token, labels=labels, clip=utt.id, text_ids=greedy)
        check = ablation_check(sae, lw, result, k=args.k, n_random=args.random)
        rows.append(
            {
                "id": utt.id,
                "token": result.meta["token"],
                "token_index": token,
                "top_features": result.encoder.by_feature(args.k, labels),
                "error_share": float(
                    np.abs(result.encoder.error).sum() / max(np.abs(result.encoder.total).sum(), 1e-9)
                ),
                **check,
            }
        )
        # Written after every clip, so that a run stopped early still leaves its figures.
        summary = _summary(args, rows, sae, lw, spec, seconds, start, load_before)
        (out / "attribution-bench.json").write_text(json.dumps({"summary": summary, "tokens": rows}, indent=1))
    _plot(rows, out / "attribution-bench.png", summary)
    print(json.dumps(summary, indent=1))


def _summary(args, rows, sae, lw, spec, seconds, start, load_before) -> dict:
    if len(rows) < 2:
        return {"clips": len(rows)}
    elapsed = time.time() - start
    feats = _stats(
        [e for r in rows for e in r["features"]["estimate"]], [e for r in rows for e in r["features"]["effect"]]
    )
    entries = _stats(
        [e for r in rows for e in r["entries"]["estimate"]], [e for r in rows for e in r["entries"]["effect"]]
    )
    joint_top = np.array([abs(r["joint_top_k"]["effect"]) for r in rows])
    joint_rand = np.array([abs(e) for r in rows for e in r["joint_random_k"]["effect"]])
    joint = _stats([r["joint_top_k"]["estimate"] for r in rows], [r["joint_top_k"]["effect"] for r in rows])
    summary = {
        "command": "python benchmarks/attribution.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "sae": args.sae,
        "hook": sae.cfg.hook_name,
        "model": lw.name,
        "corpus": spec,
        "clips": len(rows),
        "seconds_of_audio": round(seconds, 1),
        "machine": machine(),
        "load_at_start": load_before,
        "wall_s": elapsed,
        "features": feats,
        "entries": entries,
        "joint_top_k": joint,
        "joint_top_k_abs_effect_mean": float(joint_top.mean()),
        "joint_random_k_abs_effect_mean": float(joint_rand.mean()),
        "joint_top_over_random": float(joint_top.mean() / max(joint_rand.mean(), 1e-9)),
        "mean_error_share": float(np.mean([r["error_share"] for r in rows])),
    }
    return summary


def _plot(rows, path, summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, key, title in (
        (axes[0], "features", "top-k features, ablated on every frame"),
        (axes[1], "entries", "top-k (feature, frame) entries"),
    ):
        est = [e for r in rows for e in r[key]["estimate"]]
        eff = [e for r in rows for e in r[key]["effect"]]
        ax.scatter(est, eff, s=8, alpha=0.6)
        lim = max(max(map(abs, est + eff), default=1.0), 1e-6)
        ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.7, ls="--")
        s = summary[key]
        ax.set(
            xlabel="attribution estimate of the logit change",
            ylabel="real logit change when ablated",
            title=f"{title}\nPearson {s['pearson']:.2f}, Spearman {s['spearman']:.2f}, n={s['n']}",
        )
    ax = axes[2]
    top = [abs(r["joint_top_k"]["effect"]) for r in rows]
    rand = [abs(e) for r in rows for e in r["joint_random_k"]["effect"]]
    ax.boxplot([top, rand])
    ax.set_xticks([1, 2], ["top-k attributed", "k random active"])
    ax.set(ylabel="|logit change|, k features ablated together", title="joint ablation (k features)")
    fig.suptitle(f"{summary['model']} {summary['hook']}, {summary['clips']} clips; {summary['machine']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
