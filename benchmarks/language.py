"""Language in multilingual Whisper ``base``: probes, language-selective features, phone features shared across
languages, and steering of Whisper's language detection with SAE features (issue 19, language half).

One command runs every stage (each skipped when its output exists) and writes language.json + language.md:

    OMP_NUM_THREADS=2 nice -n 5 python benchmarks/language.py --work /work/runs/language \
        --emodb /work/data/emodb --librispeech /work/data/minilibri/LibriSpeech/train-clean-5

Stages, each the CLI a user would run (printed as it runs):
  corpus   whisper-sae corpus synth (7 eSpeak languages) + corpus split by voice (held out for probing); subsets of
           EmoDB (real German) and mini LibriSpeech (real English) as hard-linked folders
  extract  whisper-sae extract --model base (training voices -> train store; held-out voices + real speech -> probe store)
  train    whisper-sae train TopK k=32 width 1152, one SAE per hook, on the training voices only
  probe    whisper-sae probe --attribute language on the probe store (held-out voices; CV grouped by speaker)
  phones   per-language phone F1 of every feature against eSpeak's alignments (held-out voices)
  steer    Whisper's language detection and transcripts with language-selective features ablated / clamped
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt")
HOOKS = ("encoder.blocks.2", "encoder.out")
REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, log: Path | None = None) -> None:
    """Run ``whisper-sae ARGS`` (this checkout's code) and fail loudly."""
    cmd = [sys.executable, "-m", "whisper_sae", *args]
    print("$ whisper-sae " + " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.time()
    with open(log, "a") if log else open(os.devnull, "w") as fh:
        subprocess.run(cmd, check=True, env=env, stderr=fh if log else None)
    print(f"  ({time.time() - t0:.0f} s)", flush=True)


def _link_tree(src: Path, dst: Path, keep) -> int:
    """Hard-link the files under ``src`` for which ``keep(path)`` holds into ``dst`` (same layout)."""
    n = 0
    for path in sorted(src.rglob("*")):
        if path.is_file() and keep(path):
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(path, target)
            n += 1
    return n


def stage_corpus(args, work: Path) -> dict:
    synth = work / "synth"
    if not (synth / "corpus.json").exists():
        cli(
            "corpus",
            "synth",
            "--out",
            str(synth),
            "--minutes",
            str(args.minutes),
            "--languages",
            ",".join(LANGUAGES),
            "--speakers",
            str(args.voices),
            "--max-words",
            "14",
            "--workers",
            "2",
            "--seed",
            "0",
        )
    split = work / "split.json"
    if not split.exists():
        cli(
            "corpus",
            "split",
            str(synth),
            "--held-out",
            str(args.held_out),
            "--stratify",
            "language",
            "--out",
            str(split),
        )
    doc = json.loads(split.read_text())
    for side, speakers in (("train", doc["train_speakers"]), ("probe", doc["held_out_speakers"])):
        out = work / f"synth-{side}"
        if not (out / "corpus.json").exists():
            _link_tree(
                synth / "synth",
                out / "synth",
                lambda p, keep=set(speakers): p.relative_to(synth / "synth").parts[0] in keep,
            )
            for name in ("metadata.tsv", "corpus.json"):
                shutil.copy(synth / name, out / name)
    # Real speech: a few utterances per speaker, spread over all speakers (the shortest, to bound compute).
    real = {}
    if args.emodb:
        out = work / "emodb-subset"
        if not (out / "wav").exists():
            wavs = sorted(Path(args.emodb, "wav").glob("*.wav"))
            by_spk: dict[str, list[Path]] = {}
            for w in wavs:
                by_spk.setdefault(w.name[:2], []).append(w)
            (out / "wav").mkdir(parents=True)
            for files in by_spk.values():
                for w in sorted(files, key=lambda p: p.stat().st_size)[: args.emodb_per_speaker]:
                    os.link(w, out / "wav" / w.name)
            shutil.copy(Path(args.emodb, "audio_labels.csv"), out / "audio_labels.csv")
        real["emodb"] = f"emodb=emodb:{out}"
    if args.librispeech:
        out = work / "libri-subset"
        if not out.exists():
            root = Path(args.librispeech)
            speakers = sorted(p.name for p in root.iterdir() if p.is_dir())[: args.real_speakers]
            for spk in speakers:
                flacs = sorted((root / spk).rglob("*.flac"), key=lambda p: p.stat().st_size)[: args.libri_per_speaker]
                for f in flacs:
                    target = out / f.relative_to(root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.link(f, target)
                for trans in (root / spk).rglob("*.trans.txt"):
                    target = out / trans.relative_to(root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    ids = {f.stem for f in target.parent.glob("*.flac")}
                    lines = [ln for ln in trans.read_text().splitlines() if ln.split(" ", 1)[0] in ids]
                    target.write_text("\n".join(lines) + "\n")
            ids = sorted(f.stem for f in out.rglob("*.flac"))
            (out / "metadata.tsv").write_text("id\tlanguage\n" + "".join(f"{i}\ten\n" for i in ids))
        real["librispeech"] = f"librispeech={out}"
    return real


def machine() -> dict:
    """CPU model, the vector flags that matter for speed, core count and load (the figures' machine)."""
    flags, model = set(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma")
    return {
        "cpu": model,
        "flags": [f for f in wanted if f in flags],
        "cores": os.cpu_count(),
        "load_1_5_15": list(os.getloadavg()),
        "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
    }


def stage_extract(args, work: Path, real: dict) -> None:
    hooks = ",".join(HOOKS)
    jobs = [("store-train", [str(work / "synth-train")]), ("store-probe-synth", [str(work / "synth-probe")])]
    if real:
        jobs.append(("store-probe-real", list(real.values())))
    for name, corpora in jobs:
        if (work / name / "manifest.json").exists() and (work / f"{name}.done").exists():
            continue
        flags = [x for c in corpora for x in ("--corpus", c)]
        cli(
            "extract",
            "--model",
            "base",
            *flags,
            "--hooks",
            hooks,
            "--out",
            str(work / name),
            "--mode",
            args.mode,
            "--no-progress",
        )
        (work / f"{name}.done").write_text("ok\n")


def sae_dir(work: Path, hook: str) -> Path:
    return work / "saes" / hook


def stage_train(args, work: Path) -> None:
    if all((sae_dir(work, h) / "cfg.json").exists() for h in HOOKS):
        return
    cli(
        "train",
        "--store",
        str(work / "store-train"),
        "--hooks",
        ",".join(HOOKS),
        "--out",
        str(work / "saes"),
        "--arch",
        "topk",
        "--k",
        "32",
        "--width",
        str(args.width),
        "--steps",
        str(args.steps),
        "--seed",
        "0",
    )


def probe_dir(work: Path, hook: str, which: str) -> Path:
    return work / "probe" / hook / which


def stage_probe(args, work: Path) -> None:
    for hook in HOOKS:
        for which in ("synth", "real"):
            store = work / f"store-probe-{which}"
            out = probe_dir(work, hook, which)
            if (out / "probe.json").exists() or not (store / "manifest.json").exists():
                continue
            cli(
                "probe",
                str(sae_dir(work, hook)),
                "--store",
                str(store),
                "--attribute",
                "language",
                "--out",
                str(out),
                "--models",
                "logreg",
                "--no-tsne",
                "--ablate-k",
                "10",
                "--wer-utterances",
                "0",
                "--no-progress",
            )


def _utterance_means(store_path: Path, sae, hook: str) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Per utterance of a store: record, mean SAE code and mean raw activation."""
    from whisper_sae.activations.store import ActivationStore
    from whisper_sae.analysis.features.codes import store_codes

    store = ActivationStore(store_path)
    recs, codes, raw = [], [], []
    acts, index = store.read(hook)
    utt_col = index["utt"].long().numpy()
    for rec, uc in store_codes(store, sae, hook):
        recs.append(rec)
        codes.append(uc.codes.mean(0))
        raw.append(acts[utt_col == rec["idx"]].numpy().mean(0))
    return recs, np.stack(codes), np.stack(raw)


def _language(rec: dict) -> str | None:
    return (rec.get("attributes") or {}).get("language")


def selective_features(work: Path, hook: str, n: int) -> dict[str, list[dict]]:
    """Per language, the ``n`` features with the highest utterance-level one-vs-rest AUROC on held-out voices."""
    doc = json.loads((probe_dir(work, hook, "synth") / "probe.json").read_text())
    block = _attribute_block(doc)
    per_class = block["features"]["utterance"]["per_class"]
    frame = block["features"]["frame"]["per_class"]
    out = {}
    for lang in block["classes"]:
        auroc = np.asarray(per_class["auroc"][lang], dtype=float)
        order = np.argsort(-np.nan_to_num(auroc, nan=0.0))[:n]
        out[lang] = [
            {
                "feature": int(f),
                "auroc_utterance": float(auroc[f]),
                "cohens_d_utterance": float(per_class["cohens_d"][lang][f]),
                "q_utterance": float(per_class["q_mannwhitney"][lang][f]),
                "auroc_frame": float(frame["auroc"][lang][f]),
            }
            for f in order
        ]
    return out


def _attribute_block(doc: dict) -> dict:
    """The ``language`` attribute's block of a probe.json (first SAE)."""
    saes = doc.get("saes") or [doc]
    for sae in saes:
        attrs = sae.get("attributes", {})
        if "language" in attrs:
            return attrs["language"]
    raise KeyError("probe.json has no 'language' attribute")


def stage_transfer(work: Path) -> dict:
    """A language probe trained on synthetic held-out voices, applied to real EmoDB (German) and LibriSpeech
    (English): does what separates eSpeak's languages carry over to real speakers?"""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from whisper_sae.artifacts import open_sae

    out = {}
    if not (work / "store-probe-real" / "manifest.json").exists():
        return out
    for hook in HOOKS:
        sae, _ = open_sae(str(sae_dir(work, hook)))
        recs_s, codes_s, raw_s = _utterance_means(work / "store-probe-synth", sae, hook)
        recs_r, codes_r, raw_r = _utterance_means(work / "store-probe-real", sae, hook)
        y_s = np.array([_language(r) for r in recs_s])
        corpus_r = np.array([(r.get("attributes") or {}).get("corpus", r.get("corpus", "?")) for r in recs_r])
        y_r = np.array([_language(r) for r in recs_r])
        res = {}
        for name, xs, xr in (("sae", codes_s, codes_r), ("raw", raw_s, raw_r)):
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
            clf.fit(xs, y_s)
            pred = clf.predict(xr)
            res[name] = {
                str(c): {
                    "n": int((corpus_r == c).sum()),
                    "accuracy": float((pred[corpus_r == c] == y_r[corpus_r == c]).mean()),
                    "predicted": {str(k): int(v) for k, v in zip(*np.unique(pred[corpus_r == c], return_counts=True))},
                }
                for c in sorted(set(corpus_r))
            }
        out[hook] = res
    return out


def stage_phones(work: Path, min_frames: int) -> dict:
    """Per-language phone F1 (held-out voices, eSpeak alignments) and whether the best feature is shared."""
    from whisper_sae.activations.store import ActivationStore
    from whisper_sae.analysis.features.codes import store_codes
    from whisper_sae.analysis.features.group_labels import GroupedLabelF1
    from whisper_sae.analysis.features.labels import AlignmentIndex
    from whisper_sae.artifacts import open_sae
    from whisper_sae.sae.config import SAEConfig
    from whisper_sae.sae.model import SparseAutoencoder

    index = AlignmentIndex(work / "synth-probe")
    out = {}
    jobs = []
    for hook in HOOKS:
        sae, _ = open_sae(str(sae_dir(work, hook)))
        jobs.append((hook, hook, sae))
        # Control: an untrained TopK SAE of the same shape (random directions): the F1s and sharing chance gives.
        torch.manual_seed(0)
        cfg = SAEConfig(d_in=sae.cfg.d_in, d_sae=sae.cfg.d_sae, architecture="topk", k=sae.cfg.k, hook_name=hook)
        jobs.append((f"{hook} (untrained SAE)", hook, SparseAutoencoder(cfg).eval()))
    for name, hook, sae in jobs:
        grouped = GroupedLabelF1(sae.cfg.d_sae)
        store = ActivationStore(work / "store-probe-synth")
        for rec, uc in store_codes(store, sae, hook):
            alignment = index.get(rec["id"])
            if alignment and _language(rec):
                grouped.update(_language(rec), uc.codes, uc.times, alignment.get("phones") or [])
        rows = [grouped.compare(p, min_frames) for p in grouped.shared_labels(min_frames)]
        for row in rows:
            gs = row["groups"]
            # how well each language's best feature does in the other languages, relative to their own best
            ratios = [row["cross"][a][b] / max(row["best_f1"][b], 1e-9) for a in gs for b in gs if a != b]
            row["cross_ratio_mean"] = float(np.mean(ratios)) if ratios else None
            row["n_distinct_best"] = len(set(row["best_feature"].values()))
        out[name] = {"frames": grouped.frames, "phones": rows}
    return out


def probe_summary(work: Path) -> dict:
    """Balanced accuracy of the language probes (held-out speakers) per hook, store, level and feature set."""
    out = {}
    for hook in HOOKS:
        for which in ("synth", "real"):
            path = probe_dir(work, hook, which) / "probe.json"
            if not path.exists():
                continue
            doc = json.loads(path.read_text())
            block = _attribute_block(doc)
            out.setdefault(hook, {})[which] = {
                "classes": block["classes"],
                "counts": block["counts"],
                "dropped": block["dropped"],
                "notes": block["notes"],
                "probes": block.get("probes"),
                "ablation": doc.get("ablation"),
                "n_utterances": doc.get("n_utterances"),
                "n_frames": doc.get("n_frames"),
            }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="folder for corpora, stores, SAEs and results (not in the repo)")
    ap.add_argument("--emodb", help="EmoDB folder (wav/ + audio_labels.csv), real German")
    ap.add_argument("--librispeech", help="a LibriSpeech split folder (real English), e.g. mini LibriSpeech")
    ap.add_argument("--minutes", type=float, default=21.0, help="minutes of synthetic speech, all languages")
    ap.add_argument("--voices", type=int, default=8, help="eSpeak voices per language")
    ap.add_argument("--held-out", type=float, default=0.375, help="fraction of voices held out for probing")
    ap.add_argument("--emodb-per-speaker", type=int, default=8, help="EmoDB utterances per speaker (the shortest)")
    ap.add_argument(
        "--libri-per-speaker", type=int, default=4, help="LibriSpeech utterances per speaker (the shortest)"
    )
    ap.add_argument("--real-speakers", type=int, default=10, help="LibriSpeech speakers")
    ap.add_argument(
        "--mode",
        default="padded",
        choices=["padded", "packed"],
        help="extraction mode: padded is Whisper's own computation (one 30-s window per clip); packed is faster "
        "but a different computation (its cosine to padded is in benchmarks/extract.py)",
    )
    ap.add_argument("--width", type=int, default=1152, help="SAE width (base's d_model is 512)")
    ap.add_argument("--steps", type=int, default=2000, help="SAE training steps (batches of 1024 frames)")
    ap.add_argument("--top", type=int, default=8, help="language-selective features listed (and steered) per language")
    ap.add_argument("--min-frames", type=int, default=20, help="frames a phone needs in a language to be compared")
    ap.add_argument("--steer-per-language", type=int, default=1, help="held-out synthetic voices steered per language")
    ap.add_argument("--steer-real-speakers", type=int, default=2, help="EmoDB and LibriSpeech speakers steered")
    ap.add_argument("--stages", default="corpus,extract,train,probe,phones,steer,report")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    results_path = work / "language.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("machine", {})["start"] = machine()

    def save() -> None:
        results["machine"]["end"] = machine()
        results_path.write_text(json.dumps(results, indent=1))

    real = stage_corpus(args, work) if "corpus" in stages else {}
    if "extract" in stages:
        stage_extract(args, work, real)
    if "train" in stages:
        stage_train(args, work)
    if "probe" in stages:
        stage_probe(args, work)
        results["probe"] = probe_summary(work)
        results["selective"] = {h: selective_features(work, h, args.top) for h in HOOKS}
        save()
        results["transfer"] = stage_transfer(work)
        save()
    if "phones" in stages:
        results["phones"] = stage_phones(work, args.min_frames)
        save()
    if "steer" in stages:
        from steer_language import run_steering  # benchmarks/steer_language.py

        results["steer"] = run_steering(work, results["selective"], sae_dir, HOOKS[-1:], args)
        save()
    save()
    if "report" in stages:
        rows_path = work / "steer-rows.jsonl"
        if "steer" not in results and rows_path.exists():  # an interrupted steering run: report the clips it did
            rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
            results["steer"] = {"clips": rows, "partial": True}
            save()
        from language_tables import write_markdown  # benchmarks/language_tables.py

        (work / "language.md").write_text(write_markdown(results, work))
        print(f"wrote {results_path} and {work / 'language.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
