"""Speaker-attribute probes on real voices (docs/probe-real-report.md): gender on held-out LibriSpeech
readers, gender and child-vs-adult on speechocean762 *test* speakers, gender / native language /
native-vs-non-native on the Speech Accent Archive (CC BY-NC-SA: results only, no audio in the repo). Runs
``whisper_sae.analysis.probing.probe`` from activation stores (one per corpus) and writes one JSON plus the
markdown tables of the report. Every speaker probed is outside the real-speech SAEs' training split.

Stores (tiny.en encoder.out, padded 30-s windows, CPU), made first (DATA from
``bash scripts/get_real_speech.sh --dest DATA``; SPLIT = the ``libri-split.json`` that
``benchmarks/real_speech.py`` writes; LS = ``../shared/data/librispeech``):

    whisper-sae extract --hooks encoder.out --out RUNS/libri-heldout \\
        --corpus "tc100=folder:LS/train-clean-100?split=SPLIT:held_out" \\
        --corpus "minilibri=folder:DATA/minilibri/LibriSpeech/train-clean-5?split=SPLIT:held_out&every=20"
    whisper-sae extract --corpus "kaldi:DATA/speechocean/test?every=20" --hooks encoder.out --out RUNS/so-test
    whisper-sae extract --corpus "csv:DATA/accent:speakers_all.csv?every=2" --hooks encoder.out --out RUNS/accent

then ``python benchmarks/probe_real.py --runs RUNS --data DATA --sae tiny.en/encoder.out-k64 --sae DIR ...``.
LibriSpeech genders come from mini LibriSpeech's ``SPEAKERS.TXT`` (it lists every LibriSpeech reader).
Logistic probes only (no forest, no t-SNE, no ablation) to keep it to minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# (name, store folder under --runs, attributes, derived attributes, min speakers per class, metadata under
# --data, the class that pools the classes short of min speakers (None: they are dropped))
TASKS = (
    ("LibriSpeech held-out readers", "libri-heldout", ("gender",), (), 3, "minilibri/LibriSpeech/SPEAKERS.TXT", None),
    ("speechocean762 test", "so-test", ("gender",), ("child=age<=12",), 3, None, None),
    ("Speech Accent Archive", "accent", ("gender",), ("native=native_language==english",), 3, None, None),
    ("Speech Accent Archive", "accent", ("native_language",), (), 5, None, None),
    ("Speech Accent Archive", "accent", ("native_language",), (), 5, None, "other"),
)
SETS = ("sae", "raw", "top1", "top4", "top16")


def machine() -> dict:
    flags = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        flags = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Flags")), "")
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    except FileNotFoundError:
        model = platform.processor()
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma") if f in flags.split()]
    return {"cpu": model, "cores": os.cpu_count(), "simd_flags": simd, "load_1_5_15": list(os.getloadavg())}


def run_task(sae: str, runs: Path, task, out_root: Path, data: Path | None) -> dict:
    from whisper_sae.analysis.probing import ProbeOptions, probe

    corpus, store, attributes, derive, min_speakers, metadata, merge_rare = task
    if metadata is not None:
        if data is None:
            raise SystemExit(f"{corpus}: its attributes are in DATA/{metadata}; pass --data DATA")
        metadata = str(data / metadata)
    out = out_root / f"{Path(sae).name}--{store}--{'-'.join(attributes)}{'--pooled' if merge_rare else ''}"
    options = ProbeOptions(
        min_speakers=min_speakers,
        merge_rare=merge_rare,
        ablate_k=0,
        wer_utterances=0,
        tsne=False,
        progress=False,
        models=("logreg",),
    )
    start = time.time()
    report = probe(
        sae,
        None,
        list(attributes),
        derive=list(derive),
        metadata=metadata,
        store=str(runs / store),
        out=out,
        options=options,
        model="tiny.en",
    ).report
    rows = {}
    for name, block in report.attributes.items():
        utt = block.probes["utterance"]["logreg"]
        rows[name] = {
            "classes": {c: block.counts[c] for c in block.classes},
            "dropped": block.dropped,
            "chance": 1 / len(block.classes),
            "balanced_accuracy": {s: utt[s]["balanced_accuracy"] for s in SETS if s in utt},
            "macro_f1": {s: utt[s].get("macro_f1") for s in SETS if s in utt},
            "recall_sae": utt["sae"].get("recall"),
            "recall_raw": utt["raw"].get("recall"),
            "frame_balanced_accuracy": {
                s: block.probes["frame"]["logreg"][s]["balanced_accuracy"] for s in SETS if s in utt
            },
            "notes": block.notes,
        }
    return {
        "sae": sae,
        "corpus": corpus,
        "store": store,
        "n_utterances": report.n_utterances,
        "n_speakers": report.n_speakers,
        "seconds": round(time.time() - start, 1),
        "probe_json": str(out / "probe.json"),
        "attributes": rows,
    }


def markdown(results: list[dict]) -> str:
    lines = []
    for r in results:
        for name, a in r["attributes"].items():
            classes = ", ".join(f"{c} ({n['speakers']} spk.)" for c, n in a["classes"].items())
            lines += [
                f"### {name}: {r['corpus']}, SAE `{r['sae']}`",
                "",
                f"{r['n_utterances']} utterances, {r['n_speakers']} speakers; classes: {classes}; "
                f"chance {a['chance']:.2f}.",
                "",
                "| features | balanced acc. (utt.) | macro-F1 (utt.) | balanced acc. (frame) |",
                "|---|---|---|---|",
            ]
            for s in SETS:
                if s in a["balanced_accuracy"]:
                    f1 = a["macro_f1"].get(s)
                    lines.append(
                        f"| {s} | {a['balanced_accuracy'][s]:.3f} | {'–' if f1 is None else f'{f1:.3f}'} "
                        f"| {a['frame_balanced_accuracy'][s]:.3f} |"
                    )
            for key in ("recall_sae", "recall_raw"):
                if a[key]:
                    lines.append("")
                    lines.append(
                        f"Per-class recall ({key.split('_')[1]}): "
                        + ", ".join(f"{c} {v:.2f}" for c, v in a[key].items())
                    )
            pooled = [n for n in a["notes"] if "pooled into" in n]
            if pooled:
                lines += ["", "Pooled: " + "; ".join(pooled)]
            if a["dropped"]:
                lines.append("")
                lines.append(
                    "Dropped (too few speakers): "
                    + ", ".join(f"{c} ({n['speakers']})" for c, n in sorted(a["dropped"].items()))
                )
            lines.append("")
    return "\n".join(lines)


def feature_auroc(sae: str, runs: Path, feature: int, data: Path | None) -> list[dict]:
    """Utterance-level AUROC of one fixed feature (its mean code per utterance) for female vs male, per store,
    and on speechocean762 within each age group (adults, children age <= 12): no selection on these speakers."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from whisper_sae.activations import ActivationStore
    from whisper_sae.analysis.probing.attributes import apply_metadata
    from whisper_sae.sae import SparseAutoencoder

    metadata = {t[1]: t[5] for t in TASKS if t[5] is not None}
    model = SparseAutoencoder.from_pretrained(sae)
    rows = []
    for store in ("libri-heldout", "so-test", "accent"):
        st = ActivationStore(runs / store)
        utts = [json.loads(line) for line in (runs / store / "utterances.jsonl").read_text().splitlines()]
        if store in metadata:
            if data is None:
                raise SystemExit(f"{store}: its genders are in DATA/{metadata[store]}; pass --data DATA")
            apply_metadata(utts, data / metadata[store])
        acts, index = st.read("encoder.out")
        with torch.no_grad():
            code = model.encode(acts)[:, feature].double().numpy()
        utt = index["utt"].numpy()
        mean = np.bincount(utt, weights=code, minlength=len(utts)) / np.maximum(
            np.bincount(utt, minlength=len(utts)), 1
        )
        attrs = [u["attributes"] for u in utts]
        female = np.array([str(a.get("gender") or a.get("sex") or "").lower() in ("female", "f") for a in attrs])
        groups = {"all": np.ones(len(utts), bool)}
        if store == "so-test":
            age = np.array([float(a.get("age", -1)) for a in attrs])
            groups |= {"adults (age > 12)": age > 12, "children (age <= 12)": (age >= 0) & (age <= 12)}
        for name, m in groups.items():
            rows.append(
                {
                    "store": store,
                    "group": name,
                    "female": int(female[m].sum()),
                    "male": int((~female[m]).sum()),
                    "auroc": float(roc_auc_score(female[m], mean[m])),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=Path, required=True, help="folder holding the stores libri-heldout, so-test, accent"
    )
    parser.add_argument("--data", type=Path, help="folder made by scripts/get_real_speech.sh (for SPEAKERS.TXT)")
    parser.add_argument(
        "--sae", action="append", default=None, help="SAE folder or shipped name (default tiny.en/encoder.out-k64)"
    )
    parser.add_argument(
        "--stores", default=None, help="comma-separated store names to run (default all: libri-heldout,so-test,accent)"
    )
    parser.add_argument(
        "--pooled-only", action="store_true", help="only the tasks that pool rare classes (native language + other)"
    )
    parser.add_argument(
        "--feature-auroc",
        type=int,
        metavar="F",
        help="instead of the probes: AUROC of feature F of the (first) SAE for gender, per store and age group",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/probe_real"), help="output folder")
    args = parser.parse_args()
    saes = args.sae or ["tiny.en/encoder.out-k64"]
    if args.feature_auroc is not None:
        for r in feature_auroc(saes[0], args.runs, args.feature_auroc, args.data):
            print(
                f"{r['store']:14s} {r['group']:22s} female {r['female']:3d} male {r['male']:3d} AUROC {r['auroc']:.3f}"
            )
        return
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = [t for t in TASKS if args.stores is None or t[1] in args.stores.split(",")]
    if args.pooled_only:
        tasks = [t for t in tasks if t[6] is not None]
    results = [run_task(sae, args.runs, task, args.out, args.data) for sae in saes for task in tasks]
    doc = {"machine": machine(), "results": results}
    (args.out / "probe_real.json").write_text(json.dumps(doc, indent=1, default=str))
    (args.out / "probe_real.md").write_text(markdown(results))
    print(markdown(results))
    print(json.dumps(doc["machine"]))


if __name__ == "__main__":
    main()
