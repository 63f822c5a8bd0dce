"""Emotion in Whisper's SAE features: acted emotional speech (RAVDESS, TESS, SAVEE) through extraction,
SAEs, probes on held-out actors, a cross-corpus check, loudness/pitch correlations of the top features,
and an ablation with its WER cost. Writes the numbers behind docs/emotion-report.md (JSON + Markdown).

Data: ``bash scripts/get_real_speech.sh --dest /work/data`` (RAVDESS, TESS, SAVEE under /work/data).
Stages (each skips what is already on disk, so a rerun resumes)::

    python benchmarks/emotion.py subsets  --out RUNS      # balanced subsamples as folders of symlinks
    python benchmarks/emotion.py extract  --out RUNS --model tiny.en --hooks encoder.blocks.1,encoder.out,decoder.out
    python benchmarks/emotion.py train    --out RUNS --model tiny.en --hooks ...   # SAEs on actors 1-16 only
    python benchmarks/emotion.py probe    --out RUNS --model tiny.en --hook encoder.out --sae DIR
    python benchmarks/emotion.py prosody  --out RUNS --model tiny.en --hook encoder.out
    python benchmarks/emotion.py tables   --out RUNS --md docs/emotion-tables.md

Subsets (chosen so the text cannot carry the label): RAVDESS 16 clips per actor (repetition 1; neutral at
normal intensity, the other seven emotions at strong intensity; both statements for every emotion), so
each emotion has exactly one clip of each sentence per actor; TESS the same 5 randomly chosen words for
every speaker and emotion; SAVEE sentences 01-02 of every emotion and speaker. The first 256 RAVDESS
clips in store order are actors 1-16 (the SAE-training actors when no LibriSpeech SAE is given and all
24 actors are extracted; with ``--actors 16`` the SAEs train on the frames of the probed actors, labels unused).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

DATA = Path(os.environ.get("WHISPER_SAE_DATA", "/work/data"))
RAVDESS = DATA / "ravdess/ravdess"
TESS = DATA / "tess/TESS_Toronto_emotional_speech_set_data"
SAVEE = DATA / "savee/AudioData"
TESS_FOREIGN = {"OAF_angry/OAF_back_angry.wav", "YAF_sad/YAF_beg_sad.wav"}  # 44.1-kHz strays (REAL-SPEECH.md)
SAE_ACTORS = 16
"""RAVDESS actors 1..16 train the fallback SAEs; the store lists them first (256 clips)."""


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        dest.symlink_to(src.resolve())


def make_subsets(out: Path, tess_words: int = 5, savee_sentences: int = 2, seed: int = 0) -> dict[str, int]:
    """Folders of symlinks (``out/subsets/{ravdess,tess,savee}``) holding the balanced subsamples."""
    root = out / "subsets"
    counts = {}
    n = 0
    for wav in sorted(RAVDESS.glob("Actor_*/*.wav")):
        _mod, _ch, emo, inten, _stmt, rep, _actor = wav.stem.split("-")
        if rep == "01" and (inten == "02" or emo == "01"):
            _link(wav, root / "ravdess" / wav.parent.name / wav.name)
            n += 1
    counts["ravdess"] = n
    words = sorted({p.stem.split("_")[1] for p in TESS.glob("OAF_neutral/*.wav")})
    chosen = set(random.Random(seed).sample(words, tess_words))
    n = 0
    for wav in sorted(TESS.glob("*/*.wav")):
        rel = f"{wav.parent.name}/{wav.name}"
        if rel not in TESS_FOREIGN and wav.stem.split("_")[1] in chosen:
            _link(wav, root / "tess" / rel)
            n += 1
    counts["tess"] = n
    n = 0
    for wav in sorted(SAVEE.glob("*/*.wav")):
        if int("".join(c for c in wav.stem if c.isdigit())) <= savee_sentences:
            _link(wav, root / "savee" / wav.parent.name / wav.name)
            n += 1
    counts["savee"] = n
    (root / "subsets.json").write_text(json.dumps({"counts": counts, "tess_words": sorted(chosen)}, indent=1))
    return counts


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "whisper_sae", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def store_path(out: Path, corpus: str, model: str) -> Path:
    return out / "stores" / f"{corpus}-{model}"


def extract(out: Path, model: str, hooks: str, corpora=("ravdess", "tess", "savee"), actors: int = 24) -> None:
    """One store per corpus. RAVDESS: the first ``actors`` actors (16 clips each, store order = actor order);
    with more than SAE_ACTORS, the first SAE_ACTORS actors' part is copied (``ravdess-MODEL-sae``) to
    train the SAEs on before the rest is extracted."""
    for corpus in corpora:
        dest = store_path(out, corpus, model)
        spec = f"{corpus}:{out / 'subsets' / corpus}"
        base = ["extract", "--model", model, "--corpus", spec, "--hooks", hooks, "--out", str(dest), "--no-progress"]
        if corpus == "ravdess":
            part = dest.with_name(dest.name + "-sae")
            if actors > SAE_ACTORS and not (part / "manifest.json").is_file():
                _cli(*base, "--max-utterances", str(16 * SAE_ACTORS))
                shutil.copytree(dest, part, ignore=shutil.ignore_patterns(".whisper-sae.lock*"))
            base += ["--max-utterances", str(16 * actors)]
        _cli(*base)


def sae_store(out: Path, model: str) -> Path:
    """The store the fallback SAEs train on: the SAE-actor copy when there is one, else the RAVDESS store."""
    part = store_path(out, "ravdess", model).with_name(f"ravdess-{model}-sae")
    return part if (part / "manifest.json").is_file() else store_path(out, "ravdess", model)


LABELS_CORPUS = Path(os.environ.get("WHISPER_SAE_LABELS", "/work/shared/data/librispeech/test-clean"))
"""Aligned speech whose phone/word labels annotate the features (LibriSpeech test-clean, 38 utterances)."""
SAE_WIDTH = {"encoder": (1152, 32), "decoder": (256, 8)}


def sae_dir(out: Path, model: str, hook: str, suite: Path | None = None) -> Path:
    """The lead's LibriSpeech/speechocean SAE (``SUITE/MODEL/HOOK-*`` with a DONE file) when present,
    else ours trained on the RAVDESS SAE-training actors (``out/sae/MODEL/HOOK``)."""
    if suite is not None:
        done = sorted(d for d in (suite / model).glob(f"{hook}-*") if (d / "DONE").is_file())
        if done:
            return done[0]
    return out / "sae" / model / hook


def train(out: Path, model: str, hooks: list[str], epochs: float = 8.0) -> None:
    """TopK SAEs on the RAVDESS frames of ``sae_store`` (no labels are used)."""
    store = sae_store(out, model)
    for hook in hooks:
        dest = out / "sae" / model / hook
        if (dest / "sae_weights.safetensors").is_file():
            continue
        width, k = SAE_WIDTH["decoder" if hook.startswith("decoder") else "encoder"]
        batch = "256" if hook.startswith("decoder") else "2048"
        _cli(
            "train", "--store", str(store), "--hooks", hook, "--out", str(dest), "--width", str(width),
            "--k", str(k), "--epochs", str(epochs * (4 if hook.startswith("decoder") else 1)), "--batch-size", batch,
        )  # fmt: skip


def labels(out: Path, model: str, hooks: list[str], suite: Path | None) -> None:
    """Phone/word labels of each encoder SAE's features from aligned LibriSpeech test-clean."""
    enc = [h for h in hooks if h.startswith("encoder")]
    store = out / "stores" / f"labels-{model}"
    # extract resumes (done utterances are skipped), so this is cheap once the store is complete
    _cli("extract", "--model", model, "--corpus", str(LABELS_CORPUS), "--hooks", ",".join(enc),
         "--out", str(store), "--no-progress")  # fmt: skip
    for hook in enc:
        sae = sae_dir(out, model, hook, suite)
        dest = out / "analysis" / model / hook
        if not (dest / "analysis.json").is_file():
            _cli("analyze", str(sae), "--store", str(store), "--out", str(dest), "--no-progress")


def run_probe(out: Path, model: str, hook: str, suite: Path | None, test: str, ablate_k: int) -> Path:
    """Emotion on held-out RAVDESS actors, transfer to ``test`` (tess or savee), ablation when ablate_k."""
    from whisper_sae.analysis.probing import ProbeOptions, probe

    dest = out / "probe" / model / f"{hook}-{test}"
    if (dest / "probe.json").is_file():
        return dest
    analysis = out / "analysis" / model / hook
    # The main run (tess) has the full probe and the ablation; the savee run only adds its transfer.
    main = test == "tess"
    options = ProbeOptions(
        models=("logreg",),
        tsne=False,
        ks=(1, 4, 16) if main else (16,),
        frames_per_utterance=8 if main else 4,
        ablate=("emotion",),
        ablate_k=ablate_k if main else 0,
        wer_utterances=16,
        progress=False,
    )
    probe(
        sae_dir(out, model, hook, suite),
        None,
        ["emotion"],
        store=store_path(out, "ravdess", model),
        test_store=store_path(out, test, model) if hook.startswith("encoder") else None,
        out=dest,
        analysis=analysis if (analysis / "analysis.json").is_file() else None,
        model=model,
        options=options,
    )
    return dest


def prosody(out: Path, model: str, hook: str, suite: Path | None, n_top: int = 10, n_random: int = 50) -> dict:
    """Is the top emotion feature emotion, or loudness and pitch? Spearman correlations of the top
    features' codes with frame loudness (all frames) and F0 (voiced frames), and of their utterance
    means with clip loudness / F0; the same for random live features; and a probe on prosody alone."""
    import numpy as np
    from scipy.stats import spearmanr

    from whisper_sae.analysis.probing.data import codes_and_means, store_frames
    from whisper_sae.analysis.probing.models import ProbeSettings, run_probes
    from whisper_sae.analysis.probing.schema import ProbeReport
    from whisper_sae.artifacts import open_sae, open_store, resolve_path
    from whisper_sae.audio import load_audio
    from whisper_sae.audio.prosody import frame_loudness, frame_pitch, utterance_prosody

    report = ProbeReport.load(out / "probe" / model / f"{hook}-tess")
    block = report.attributes["emotion"]
    store = open_store(store_path(out, "ravdess", model))
    recs = store.utterances
    ids = [r["id"] for r in recs]
    frames = store_frames(store, hook, ids)
    sae, _ = open_sae(sae_dir(out, model, hook, suite))
    arrays = codes_and_means(sae, frames.raw, frames.utt, len(ids), np.arange(len(frames.raw)))
    codes, pooled = arrays["codes_frames"], arrays["codes_pooled"]
    loud = np.full(len(frames.raw), np.nan)
    f0 = np.full(len(frames.raw), np.nan)
    clip = []
    for i, r in enumerate(recs):
        audio = load_audio(resolve_path(r["path"], store.path))
        rows = np.flatnonzero(frames.utt == i)
        if hook.startswith("encoder"):
            loud[rows] = frame_loudness(audio, len(rows))
            f0[rows] = frame_pitch(audio, len(rows))
        clip.append(utterance_prosody(audio))
    top = [t.feature for t in block.top_features[:n_top]]
    alive = np.flatnonzero(pooled.max(0) > 0)
    rng = np.random.default_rng(0)
    rand = rng.choice(np.setdiff1d(alive, top), size=min(n_random, len(alive) - len(top)), replace=False)
    clip_loud = np.array([c["loudness_db"] for c in clip])
    clip_f0 = np.array([c["f0_hz"] for c in clip])
    voiced = np.isfinite(f0)

    def corr(f: int) -> dict:
        row = {
            "utt_loudness": spearmanr(pooled[:, f], clip_loud).statistic,
            "utt_f0": spearmanr(pooled[:, f], clip_f0, nan_policy="omit").statistic,
        }
        if hook.startswith("encoder"):
            row["frame_loudness"] = spearmanr(codes[:, f], loud).statistic
            row["frame_f0"] = spearmanr(codes[voiced, f], f0[voiced]).statistic
        return {k: float(v) for k, v in row.items()}

    top_rows = []
    for t in block.top_features[:n_top]:
        top_rows.append(
            {
                "feature": t.feature,
                "class": t.class_,
                "auroc": t.auroc_utterance,
                "labels": {k: v for k, v in t.labels.items()},
                **corr(t.feature),
            }
        )
    rand_rows = [corr(int(f)) for f in rand]
    # A probe on five prosody numbers per clip, with the same held-out-actor folds as the main probe.
    emotions = np.array([r["attributes"]["emotion"] for r in recs], dtype=object)
    groups = np.array([r["speaker"] for r in recs], dtype=object)
    P = np.array([[c[k] for k in ("loudness_db", "loudness_std_db", "f0_hz", "f0_spread_oct", "voiced_fraction")]
                  for c in clip])  # fmt: skip
    P = np.where(np.isfinite(P), P, np.nanmean(P, axis=0))
    # Loudness and F0 relative to the actor's own mean (actors differ in voice and microphone level).
    Pz = P.copy()
    for g in set(groups.tolist()):
        m = groups == g
        Pz[m] = P[m] - P[m].mean(0)
    settings = ProbeSettings()
    scores = run_probes(
        {"prosody": P, "prosody_actor_centred": Pz, "sae": pooled},
        emotions,
        groups,
        categorical=True,
        ks=(),
        models=("logreg",),
        settings=settings,
    )["logreg"]
    # Mean loudness / F0 per emotion (dB, Hz), to read the features' classes against.
    per_class = {
        c: {
            "loudness_db": float(np.mean(clip_loud[emotions == c])),
            "f0_hz": float(np.nanmedian(clip_f0[emotions == c])),
        }
        for c in sorted(set(emotions.tolist()))
    }
    result = {
        "model": model,
        "hook": hook,
        "n_utterances": len(recs),
        "n_frames": int(len(frames.raw)),
        "n_voiced_frames": int(voiced.sum()),
        "top": top_rows,
        "random_median_abs": {
            k: float(np.nanmedian(np.abs([r[k] for r in rand_rows]))) for k in (rand_rows[0] if rand_rows else {})
        },
        "random_n": len(rand_rows),
        "prosody_probe": {
            k: {"balanced_accuracy": v["balanced_accuracy"], "recall": v["recall"]} for k, v in scores.items()
        },
        "per_class": per_class,
    }
    dest = out / "results" / f"prosody-{model}-{hook}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=1))
    return result


def dashboard(out: Path, model: str, hook: str, suite: Path | None) -> Path:
    """A dashboard of the SAE whose clips are RAVDESS clips (analysis of the emotion store) and whose
    index carries the emotion selectivity of the probe; checks that the emotion column and filter are there."""
    sae = sae_dir(out, model, hook, suite)
    analysis = out / "analysis" / model / f"{hook}-ravdess"
    if not (analysis / "analysis.json").is_file():
        _cli("analyze", str(sae), "--store", str(store_path(out, "ravdess", model)), "--out", str(analysis),
             "--top-n", "5", "--no-progress")  # fmt: skip
    site = out / "dashboard" / model / hook
    probe_dir = out / "probe" / model / f"{hook}-tess"
    _cli("dashboard", str(sae), "--analysis", str(analysis), "--probe", str(probe_dir), "--out", str(site),
         "--max-features", "12", "--clips", "3", "--attribute-pages", "6", "--no-progress")  # fmt: skip
    html = (site / "index.html").read_text(encoding="utf-8")
    found = {k: k in html for k in ('"sel:emotion"', '"cls:emotion"', '"name": "emotion"', '"name":"emotion"')}
    print("dashboard", site, found)
    return site


def _f(x, nd=3) -> str:
    return "–" if x is None or x != x else f"{x:.{nd}f}"


def write_tables(out: Path, md: Path | None) -> dict:
    """Collect every probe.json and prosody JSON under ``out`` into results/emotion-summary.json and
    Markdown tables (``md``)."""
    from whisper_sae.analysis.features.result import AnalysisResult
    from whisper_sae.analysis.probing.schema import ProbeReport

    summary: dict = {"runs": []}
    lines = []
    main_rows, transfer_rows, abl_rows, top_lines, pros_rows, recall_rows = [], [], [], [], [], []
    for tess_dir in sorted((out / "probe").glob("*/*-tess")):
        model, hook = tess_dir.parent.name, tess_dir.name[: -len("-tess")]
        rep = ProbeReport.load(tess_dir)
        b = rep.attributes["emotion"]
        u, fr = b.scores("utterance"), b.scores("frame")
        sae_path = str(rep.sae.path)
        run = {"model": model, "hook": hook, "sae": sae_path, "n_utterances": rep.n_utterances,
               "n_speakers": rep.n_speakers, "n_frames": rep.n_frames, "utterance": u, "frame": fr,
               "recall_sae": b.probes["utterance"]["logreg"]["sae"]["recall"],
               "recall_raw": b.probes["utterance"]["logreg"]["raw"]["recall"]}  # fmt: skip
        main_rows.append(
            f"| {model} | {hook} | {rep.sae.d_sae} | {_f(u.get('sae'))} | {_f(u.get('raw'))} | {_f(u.get('top1'))} | "
            f"{_f(u.get('top4'))} | {_f(u.get('top16'))} | {_f(fr.get('sae'))} | {_f(fr.get('raw'))} |"
        )
        rec = run["recall_sae"]
        recall_rows.append(f"| {model} | {hook} | " + " | ".join(f"{c} {_f(v, 2)}" for c, v in rec.items()) + " |")
        cells = [model, hook]
        for test in ("tess", "savee"):
            d = tess_dir.with_name(f"{hook}-{test}")
            t = ProbeReport.load(d).attributes["emotion"].transfer if (d / "probe.json").is_file() else None
            if t and t.get("probes"):
                s = {k: v["balanced_accuracy"] for k, v in t["probes"]["utterance"]["logreg"].items()}
                run[f"transfer_{test}"] = {"scores": s, "classes": t["classes"], "n_test": t["n_test_utterance"],
                                           "recall_raw": t["probes"]["utterance"]["logreg"]["raw"]["recall"]}  # fmt: skip
                cells += [_f(s.get("sae")), _f(s.get("raw")), _f(s.get("top16"))]
            else:
                cells += ["–"] * 3
        transfer_rows.append("| " + " | ".join(cells) + " |")
        if rep.ablation is not None:
            run["ablation"] = {c: {"features": e.features, "probes": e.probes["emotion"], **e.wer}
                               for c, e in rep.ablation.conditions.items()}  # fmt: skip
            for c, e in rep.ablation.conditions.items():
                pr = e.probes["emotion"]
                abl_rows.append(
                    f"| {model} | {hook} | {c} | {_f(pr['utterance']['sae'])} | {_f(pr['utterance']['raw'])} | "
                    f"{_f(pr['frame']['raw'])} | {_f(100 * e.wer['wer'], 1) if e.wer.get('wer') is not None else '–'} | "
                    f"{_f(100 * e.wer['wer_vs_clean_transcript'], 1) if e.wer.get('wer_vs_clean_transcript') is not None else '–'} |"
                )
        pf = out / "results" / f"prosody-{model}-{hook}.json"
        if pf.is_file():
            pr = json.loads(pf.read_text())
            run["prosody"] = pr
            rnd = pr["random_median_abs"]
            top_lines += ["", f"**{model} {hook}** (median |rho| of {pr['random_n']} random live features: "
                          + ", ".join(f"{k} {_f(v, 2)}" for k, v in rnd.items()) + ")", "",
                          "| feature | class | AUROC utt. | phone (F1) | word (F1) | rho loud. frame | rho F0 frame | "
                          "rho loud. utt. | rho F0 utt. |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
            labelled = out / "analysis" / model / hook
            analysis = AnalysisResult.load(labelled) if (labelled / "analysis.json").is_file() else None
            for t in pr["top"]:
                lab = t["labels"]
                if analysis is not None and not lab:  # labels made after the probe ran
                    lab = {k: list(analysis.label(t["feature"], k)) for k in ("phone", "word")
                           if f"{k}_f1" in analysis.arrays}  # fmt: skip
                    t["labels"] = lab
                ph = f"{lab['phone'][0]} ({_f(lab['phone'][1], 2)})" if lab.get("phone") and lab["phone"][0] else "–"
                wd = f"{lab['word'][0]} ({_f(lab['word'][1], 2)})" if lab.get("word") and lab["word"][0] else "–"
                top_lines.append(
                    f"| {t['feature']} | {t['class']} | {_f(t['auroc'])} | {ph} | {wd} | {_f(t.get('frame_loudness'), 2)} | "
                    f"{_f(t.get('frame_f0'), 2)} | {_f(t['utt_loudness'], 2)} | {_f(t['utt_f0'], 2)} |"
                )
            pp = pr["prosody_probe"]
            pros_rows.append(
                f"| {model} | {hook} | {_f(pp['prosody']['balanced_accuracy'])} | "
                f"{_f(pp['prosody_actor_centred']['balanced_accuracy'])} | {_f(pp['sae']['balanced_accuracy'])} |"
            )
        summary["runs"].append(run)
    lines += ["### Emotion on held-out RAVDESS actors (balanced accuracy, 8 classes, chance 0.125)", "",
              "| model | hook | SAE width | SAE codes utt. | raw utt. | best 1 | best 4 | best 16 | SAE codes frame | raw frame |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|", *main_rows, "",
              "### Per-class recall (SAE codes, utterance level)", "", "| model | hook | recall |", "|---|---|---|",
              *recall_rows, "",
              "### Cross-corpus: trained on every extracted RAVDESS actor, tested on TESS / SAVEE (7 shared classes, chance 0.143)",
              "", "| model | hook | TESS codes | TESS raw | TESS best 16 | SAVEE codes | SAVEE raw | SAVEE best 16 |",
              "|---|---|---:|---:|---:|---:|---:|---:|", *transfer_rows, "",
              "### Prosody alone vs SAE codes (utterance level, held-out actors)", "",
              "| model | hook | 5 prosody numbers | same, actor-centred | SAE codes |", "|---|---|---:|---:|---:|",
              *pros_rows, "", "### Most emotion-selective features: labels and loudness / pitch correlations (Spearman)",
              *top_lines, "", "### Ablation of the top emotion features (probes re-trained on held-out actors; WER on 24 clips)",
              "", "| model | hook | ablated | emotion codes utt. | emotion raw utt. | emotion raw frame | WER % | WER vs clean % |",
              "|---|---|---|---:|---:|---:|---:|---:|", *abl_rows]  # fmt: skip
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "results" / "emotion-summary.json").write_text(json.dumps(summary, indent=1))
    text = "\n".join(lines) + "\n"
    if md is not None:
        md.write_text(text)
    print(text)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "stage", choices=["subsets", "extract", "train", "labels", "probe", "prosody", "dashboard", "tables"]
    )
    p.add_argument("--out", type=Path, required=True, help="runs folder (stores, SAEs, probes, results)")
    p.add_argument("--model", default="tiny.en", help="Whisper model (tiny.en or base)")
    p.add_argument("--hooks", default="encoder.blocks.1,encoder.out,decoder.out", help="hooks, comma-separated")
    p.add_argument("--corpora", default="ravdess,tess,savee", help="corpora to extract, comma-separated")
    p.add_argument("--actors", type=int, default=24, help="RAVDESS actors extracted (16 clips each)")
    p.add_argument("--suite", type=Path, default=None, help="folder of the lead's SAEs (MODEL/HOOK-*/DONE)")
    p.add_argument("--ablate-k", type=int, default=10, help="top emotion features ablated (probe stage)")
    p.add_argument("--md", type=Path, default=None, help="tables stage: Markdown file to write")
    a = p.parse_args(argv)
    hooks = a.hooks.split(",")
    if a.stage == "subsets":
        print(make_subsets(a.out))
    elif a.stage == "extract":
        extract(a.out, a.model, a.hooks, tuple(a.corpora.split(",")), a.actors)
    elif a.stage == "train":
        train(a.out, a.model, hooks)
    elif a.stage == "labels":
        labels(a.out, a.model, hooks, a.suite)
    elif a.stage == "probe":
        for hook in hooks:
            run_probe(a.out, a.model, hook, a.suite, "tess", a.ablate_k)
            if hook.startswith("encoder"):  # TESS / SAVEE stores hold encoder hooks only
                run_probe(a.out, a.model, hook, a.suite, "savee", a.ablate_k)
    elif a.stage == "prosody":
        for hook in hooks:
            prosody(a.out, a.model, hook, a.suite)
    elif a.stage == "dashboard":
        for hook in hooks:
            dashboard(a.out, a.model, hook, a.suite)
    elif a.stage == "tables":
        write_tables(a.out, a.md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
