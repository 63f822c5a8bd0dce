"""The real-speech SAE suite: speaker-disjoint data, one SAE per hook and width, evaluated on held-out real speech.

    bash scripts/get_real_speech.sh --dest DATA minilibri speechocean     # ~1 GB of public corpora
    python benchmarks/real_speech.py --data DATA --librispeech ../shared/data/librispeech --work runs/real-speech \
        --report docs/real-speech-report.md

Every step is skipped when its output exists, so a rerun resumes, and ``--report`` alone rebuilds the tables.

Data (by speaker, never by utterance; ``whisper-sae corpus split`` with ``?split=`` specs):
- train: mini LibriSpeech train-clean-5 and the 251-speaker train-clean-100 sample (they share readers, so
  they are split together, 20 % of speakers held out, gender-stratified) plus speechocean762 ``train``
  (125 non-native speakers, children among them);
- held out: the held-out LibriSpeech readers and speechocean762 ``test`` (125 other speakers), subsampled
  with ``?every=`` for the spliced evaluation;
- test-clean (``--librispeech``/test-clean, one reader, 38 utterances, with forced alignments) is never trained on;
- the "57-minute" baseline: the same recipe trained, for the same number of steps, on the train-clean-100
  sample's training-side speakers only — the data this project's SAEs saw before.

Per model (``--models``), a store of the training speech is extracted once for all its hooks; one pass of
``whisper-sae train --hooks ... --sweep width=...`` trains every SAE of that model. Each SAE is evaluated
spliced into Whisper (``whisper_sae.evaluate``: WER, CE recovered; SAE-independent rows computed once per
hook and lent to the others) and analysed for phone/word labels on the aligned held-out speech
(``whisper_sae.analyze`` from a store; alignments from ``whisper-sae corpus align``).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HOOKS = {
    "tiny.en": [
        "encoder.blocks.0",
        "encoder.blocks.1",
        "encoder.blocks.2",
        "encoder.blocks.3",
        "encoder.out",
        "decoder.out",
    ],
    "base": ["encoder.blocks.2", "encoder.out"],
}
ARPABET = "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()


def run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(cmd), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)


def specs(args) -> dict[str, list[str]]:
    data, ls = Path(args.data), Path(args.librispeech)
    split = Path(args.work) / "libri-split.json"
    mini = data / "minilibri/LibriSpeech/train-clean-5"
    tc100 = ls / "train-clean-100"
    so = data / "speechocean"
    sub = f"&every={args.train_every}" if args.train_every > 1 else ""
    return {
        "train": [
            f"minilibri=folder:{mini}?split={split}:train{sub}",
            f"tc100=folder:{tc100}?split={split}:train{sub}",
            f"speechocean=kaldi:{so}/train" + (f"?every={args.train_every}" if args.train_every > 1 else ""),
        ],
        "baseline": [f"tc100=folder:{tc100}?split={split}:train"],
        "heldout-libri": [f"minilibri=folder:{mini}?split={split}:held_out&every={args.heldout_every}"],
        "heldout-speechocean": [f"speechocean=kaldi:{so}/test?every={args.speechocean_every}"],
        "test-clean": [f"test-clean=folder:{ls}/test-clean"],
    }


def make_split(args) -> Path:
    path = Path(args.work) / "libri-split.json"
    if not path.exists():
        mini = Path(args.data) / "minilibri/LibriSpeech/train-clean-5"
        run(
            [
                *WS,
                "corpus",
                "split",
                str(mini),
                str(Path(args.librispeech) / "train-clean-100"),
                "--held-out",
                "0.2",
                "--stratify",
                "gender",
                "--out",
                str(path),
            ],
            Path(args.work) / "logs/split.log",
        )
    return path


def extract(args, model: str, name: str, corpora: list[str], hooks: list[str]) -> Path:
    out = Path(args.work) / "stores" / f"{model}-{name}"
    cmd = [*WS, "extract", "--model", model, "--hooks", ",".join(hooks), "--out", str(out), "--no-progress"]
    for c in corpora:
        cmd += ["--corpus", c]
    if not (out / "DONE").exists():
        run(cmd, Path(args.work) / f"logs/extract-{model}-{name}.log")
        (out / "DONE").write_text(time.strftime("%F %T\n"))
    return out


def train(args, model: str, name: str, store: Path, hooks: list[str], widths: list[int], steps: int) -> Path:
    out = Path(args.work) / "sae" / model / name
    if not (out / "DONE").exists():
        cmd = [*WS, "train", "--store", str(store), "--hooks", ",".join(hooks), "--out", str(out)]
        cmd += ["--arch", "topk", "--k", str(args.k), "--steps", str(steps), "--batch-size", str(args.batch_size)]
        if len(widths) > 1:
            cmd += ["--sweep", "width=" + ",".join(map(str, widths))]
        else:
            cmd += ["--width", str(widths[0])]
        run(cmd, Path(args.work) / f"logs/train-{model}-{name}.log")
        (out / "DONE").write_text(time.strftime("%F %T\n"))
    return out


def sae_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("sae_weights.safetensors"))


def evaluate_all(args, folders: list[Path], corpus_name: str, corpus, *, others: list[Path] = ()) -> None:
    """Spliced evaluation of each SAE folder on one corpus; the SAE-independent rows (clean, zero and mean
    ablation) are computed once per model and hook and lent to the others, also from an earlier run's
    eval.json of another SAE in ``folders`` or ``others``."""
    from whisper_sae import evaluate
    from whisper_sae.audio import load_corpus
    from whisper_sae.evaluate.result import load_eval_result
    from whisper_sae.sae import SparseAutoencoder

    loaded = load_corpus(corpus)
    baselines = {}
    for folder in [*folders, *others]:
        done = folder / f"eval-{corpus_name}"
        if (done / "eval.json").exists() and (done / "eval_utterances.jsonl").exists():
            cfg = json.loads((folder / "cfg.json").read_text())
            baselines.setdefault((cfg.get("model_name"), cfg.get("hook_name")), load_eval_result(done))
    for folder in folders:
        out = folder / f"eval-{corpus_name}"
        if (out / "eval.json").exists():
            continue
        sae = SparseAutoencoder.from_pretrained(folder)
        key = (sae.cfg.model_name, sae.cfg.hook_name)
        t0 = time.perf_counter()
        result = evaluate(
            folder, loaded, out=out, baseline=baselines.get(key), progress=False, batch_size=args.eval_batch
        )
        baselines.setdefault(key, result)
        print(f"evaluated {folder} on {corpus_name} in {time.perf_counter() - t0:.0f} s", flush=True)


def analyze_all(args, folders: list[Path], store_name: str, store: Path, alignments: Path | None) -> None:
    from whisper_sae import analyze

    for folder in folders:
        out = folder / f"analysis-{store_name}"
        if (out / "analysis.json").exists():
            continue
        analyze(folder, store=store, alignments_dir=alignments, out=out, progress=False)


# ---------------------------------------------------------------------------------------------- report


def _eval(folder: Path, name: str) -> dict | None:
    path = folder / f"eval-{name}" / "eval.json"
    return json.loads(path.read_text()) if path.exists() else None


def _labels(folder: Path, name: str) -> dict | None:
    path = folder / f"analysis-{name}"
    if not (path / "analysis.json").exists():
        return None
    from whisper_sae.analysis import load_analysis

    res = load_analysis(path)
    out = {}
    for kind in ("phone", "word"):
        if f"{kind}_f1" not in res.arrays:
            continue
        f1 = res.arrays[f"{kind}_f1"]
        lab = res.arrays[f"{kind}_label"]
        vocab = res.phone_vocab if kind == "phone" else res.word_vocab
        good = {vocab[int(lab[i])] for i in range(len(f1)) if f1[i] >= 0.5 and lab[i] >= 0}
        out[kind] = {"features_f1>=0.5": int((f1 >= 0.5).sum()), "labels_f1>=0.5": len(good)}
        if kind == "phone":
            out[kind]["arpabet_covered"] = len(good & set(ARPABET))
    return out


def _row(folder: Path, evals: list[str]) -> dict:
    cfg = json.loads((folder / "cfg.json").read_text())
    row = {"sae": str(folder), "hook": cfg.get("hook_name"), "width": cfg.get("d_sae"), "model": cfg.get("model_name")}
    for name in evals:
        doc = _eval(folder, name)
        if doc is None:
            continue
        rec, cond = doc.get("reconstruction") or {}, doc["conditions"]
        row[name] = {
            "ev": rec.get("explained_variance"),
            "l0": rec.get("l0"),
            "dead": rec.get("dead_fraction"),
            "wer_clean": cond["clean"]["wer"],
            "wer_spliced": cond["spliced"]["wer"],
            "ce_recovered": (doc.get("ce_recovered") or {}).get("zero"),
            "n": doc.get("n_utterances"),
        }
    return row


def _training_row(folder: Path, kind: str) -> str:
    """One row of the report's label table: rows per epoch, the SAE's own validation EV/L0/dead
    (metrics.jsonl), phones and word features with F1 >= 0.5 on test-clean / held-out, spliced test-clean."""
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [m for m in metrics if m.get("split") == "train"][-1]
    val = ([m for m in metrics if m.get("split") == "val"] or [{}])[-1]
    labels = {n: _labels(folder, n) or {} for n in ("test-clean", "heldout-libri")}
    phones = " / ".join(str(lab.get("phone", {}).get("arpabet_covered", "–")) for lab in labels.values())
    words = " / ".join(str(lab.get("word", {}).get("features_f1>=0.5", "–")) for lab in labels.values())
    ev = _eval(folder, "test-clean")
    spliced = "–"
    if ev is not None:
        c = ev["conditions"]
        spliced = (
            f"{_pct(c['clean']['wer'])} → {_pct(c['spliced']['wer'])}, CE rec {ev['ce_recovered']['zero']:.3f}, "
            f"EV {ev['reconstruction']['explained_variance']:.3f}"
        )
    cfg = json.loads((folder / "cfg.json").read_text())
    data = cfg.get("whisper_sae", {}).get("training", {}).get("data", {})
    epochs = (data.get("epochs") or {}).get(cfg.get("hook_name"))
    batch = data.get("batch_size", 4096)  # v1 runs recorded no per-hook epochs; they used 4096-frame batches
    # rows the hook's own stream holds: steps x batch / that hook's epochs (a pass over several hooks loops
    # the smaller ones, so the pass's steps_per_epoch is the largest hook's)
    rows = train["step"] * batch / epochs if epochs else train["steps_per_epoch"] * batch
    return (
        f"| {kind} | {cfg.get('hook_name', folder.name)} | {cfg['d_sae']} | {rows / 1e3:.0f}k | "
        f"{_f(val.get('ev'), 3)} | {_f(val.get('l0'), 0)} | {_pct(val.get('dead_frac'))} | {phones} | {words} | "
        f"{spliced} |"
    )


def report(args) -> None:
    work = Path(args.work)
    evals = ["test-clean", "heldout-libri", "heldout-speechocean"]
    rows = []
    for model in args.models:
        for kind in ("suite", "suite-wide", "baseline"):
            for folder in sae_folders(work / "sae" / model / kind):
                row = _row(folder, evals)
                row["data"] = kind
                row["labels"] = {n: _labels(folder, n) for n in ("test-clean", "heldout-libri")}
                rows.append(row)
    info = json.loads((work / "data-info.json").read_text()) if (work / "data-info.json").exists() else {}
    (work / "results.json").write_text(json.dumps({"rows": rows, "data": info}, indent=1) + "\n")
    lines = [
        "| model | hook | width | data | "
        + " | ".join(f"{e}: EV / L0 / dead / WER (clean→spliced) / CE rec" for e in evals)
        + " | phones (test-clean / held-out) |"
    ]
    lines.append("|" + "---|" * (5 + len(evals)))
    for r in sorted(rows, key=lambda r: (r["model"], r["hook"], r["width"], r["data"])):
        cells = []
        for e in evals:
            m = r.get(e)
            if not m:
                cells.append("–")
                continue
            cells.append(
                f"{_f(m['ev'], 3)} / {_f(m['l0'], 0)} / {_pct(m['dead'])} / "
                f"{_pct(m['wer_clean'])}→{_pct(m['wer_spliced'])} / {_f(m['ce_recovered'], 3)}"
            )
        phones = " / ".join(
            str((r["labels"].get(n) or {}).get("phone", {}).get("arpabet_covered", "–"))
            for n in ("test-clean", "heldout-libri")
        )
        lines.append(
            f"| {r['model']} | {r['hook']} | {r['width']} | {r['data']} | " + " | ".join(cells) + f" | {phones} |"
        )
    table = "\n".join(lines)
    data = ["| set | corpora | utterances | hours | speakers |", "|---|---|---:|---:|---:|"]
    for name, d in info.items():
        corpora = "<br>".join(f"`{c}`" for c in d["corpora"])
        data.append(f"| {name} | {corpora} | {d['utterances']} | {d['hours']:.2f} | {d['speakers']} |")
    labels = [
        "| data | hook | width | rows/epoch | val EV | L0 | dead | phones (test-clean / held-out) "
        "| word feats (test-clean / held-out) | spliced on test-clean |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for model in args.models:
        for kind in ("suite", "suite-wide", "baseline"):
            labels += [_training_row(f, kind) for f in sae_folders(work / "sae" / model / kind)]
    block = "\n".join(["### Data", "", *data, "", "### SAEs", "", table, "", "### Labels and training", "", *labels])
    print(block)
    (work / "results.md").write_text(block + "\n")
    if args.report:
        path = Path(args.report)
        text = path.read_text() if path.exists() else f"# Real-speech SAEs\n\n{BEGIN}\n{END}\n"
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        path.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")


BEGIN = "<!-- results: python benchmarks/real_speech.py ... --report (generated) -->"
END = "<!-- end of results -->"


def _f(x, nd):
    return "–" if x is None else f"{x:.{nd}f}"


def _pct(x):
    return "–" if x is None else f"{100 * x:.1f} %"


def data_info(args, sp: dict[str, list[str]]) -> None:
    path = Path(args.work) / "data-info.json"
    if path.exists():
        return
    from whisper_sae.audio import load_corpus

    info = {}
    for name, corpora in sp.items():
        utts = seconds = 0
        speakers = set()
        for u in load_corpus(corpora):
            utts += 1
            seconds += len(u.audio) / u.sample_rate
            speakers.add((u.attributes.get("corpus"), u.speaker))
        info[name] = {"corpora": corpora, "utterances": utts, "hours": seconds / 3600, "speakers": len(speakers)}
    path.write_text(json.dumps(info, indent=1) + "\n")


WS = [sys.executable, "-m", "whisper_sae"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder made by scripts/get_real_speech.sh (minilibri, speechocean)")
    p.add_argument(
        "--librispeech", required=True, help="folder with test-clean/ and train-clean-100/ (../shared/data/librispeech)"
    )
    p.add_argument(
        "--alignments", help="forced alignments of the held-out LibriSpeech speech (whisper-sae corpus align)"
    )
    p.add_argument("--work", required=True, help="where stores, SAEs and results go")
    p.add_argument("--models", default="tiny.en", help="comma-separated: tiny.en, base")
    p.add_argument("--widths", default="1152,4608", help="SAE widths (one SAE per hook and width)")
    p.add_argument(
        "--wide-hooks", default="encoder.out", help="hooks that also get the wider SAEs (--widths after the first)"
    )
    p.add_argument("--k", type=int, default=32, help="TopK k")
    p.add_argument("--steps", type=int, default=500, help="optimizer steps per SAE")
    p.add_argument("--batch-size", type=int, default=4096, help="frames per optimizer step")
    p.add_argument("--train-every", type=int, default=1, help="keep every Nth training utterance (base: 4)")
    p.add_argument("--heldout-every", type=int, default=6, help="every Nth held-out LibriSpeech utterance")
    p.add_argument("--speechocean-every", type=int, default=25, help="every Nth speechocean762 test utterance")
    p.add_argument("--eval-batch", type=int, default=8, help="utterances per forward pass in the spliced evaluation")
    p.add_argument(
        "--train-sets",
        default="suite,suite-wide,baseline",
        help="which SAE sets to train: suite (every hook, first width), suite-wide, baseline (the 57 minutes)",
    )
    p.add_argument(
        "--evals",
        default="test-clean,heldout-libri,heldout-speechocean",
        help="comma-separated sets for the spliced evaluation (each costs minutes per SAE on a CPU)",
    )
    p.add_argument(
        "--eval-hooks",
        help="comma-separated hooks whose SAEs the spliced evaluation covers (default: every hook)",
    )
    p.add_argument(
        "--lend",
        nargs="*",
        default=[],
        help="earlier SAE folders (any depth) whose eval-SET rows of the same model and hook are lent (clean, ablations)",
    )
    p.add_argument("--only", choices=["extract", "train", "evaluate", "analyze", "report"], help="run one step")
    p.add_argument("--report", help="also write the tables into this Markdown file's RESULTS block")
    args = p.parse_args()
    args.models = args.models.split(",")
    widths = [int(w) for w in args.widths.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    make_split(args)
    sp = specs(args)
    print(f"machine: {platform.processor() or platform.machine()}", flush=True)
    for model in args.models:
        hooks = HOOKS[model]
        sets = args.train_sets.split(",")
        if args.only in (None, "extract"):
            data_info(args, sp)
            extract(args, model, "train", sp["train"], hooks)
            if "baseline" in sets:
                extract(args, model, "baseline", sp["baseline"], hooks)
            extract(args, model, "test-clean", sp["test-clean"], hooks)
            extract(args, model, "heldout-libri", sp["heldout-libri"], hooks)
        stores = work / "stores"
        if args.only in (None, "train"):
            store = stores / f"{model}-train"
            if "suite" in sets:
                train(args, model, "suite", store, hooks, widths[:1], args.steps)
            wide = [h for h in args.wide_hooks.split(",") if h in hooks]
            if wide and len(widths) > 1 and "suite-wide" in sets:
                train(args, model, "suite-wide", store, wide, widths[1:], args.steps)
            if "baseline" in sets:
                train(args, model, "baseline", stores / f"{model}-baseline", hooks, widths[:1], args.steps)
        folders = sae_folders(work / "sae" / model)
        if args.only in (None, "evaluate"):
            lenders = [f for root in args.lend for f in sae_folders(Path(root))]
            chosen = folders
            if args.eval_hooks:
                wanted = set(args.eval_hooks.split(","))
                chosen = [f for f in folders if json.loads((f / "cfg.json").read_text()).get("hook_name") in wanted]
            for name in args.evals.split(","):
                evaluate_all(args, chosen, name, sp[name], others=lenders)
        if args.only in (None, "analyze"):
            analyze_all(
                args, folders, "test-clean", stores / f"{model}-test-clean", Path(args.librispeech) / "alignments"
            )
            if args.alignments:
                analyze_all(args, folders, "heldout-libri", stores / f"{model}-heldout-libri", Path(args.alignments))
    report(args)


if __name__ == "__main__":
    main()
