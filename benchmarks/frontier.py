"""The faithfulness frontier: spliced WER and CE recovered against L0, per architecture and training objective.

    python benchmarks/frontier.py --store runs/real-speech/stores/tiny.en-train --work runs/frontier \\
        --ft-corpus "tc100=folder:DATA/train-clean-100?split=SPLIT.json:train&every=8" \\
        --eval "test-clean=folder:../shared/data/librispeech/test-clean" \\
        --eval "heldout-libri=folder:DATA/train-clean-5?split=SPLIT.json:held_out&every=6" \\
        --plot docs/faithfulness-frontier.png --report benchmarks/results/frontier.md

Stages (``--stages``, default all; each skips what exists, so a rerun resumes):

- ``train``: MSE-trained parents from the store, one ``whisper-sae train --sweep`` per ``--points`` entry
  (``ARCH:NAME=V1,V2``, e.g. ``topk:k=16,32,64`` or ``relu:l1=2,5``), ``--steps`` each;
- ``finetune``: every parent whose held-out L0 is at most ``--max-l0`` fine-tuned on Whisper's logits
  (``whisper_sae.sae.kl_training.finetune``, ``--objective kl``) for ``--ft-steps`` steps on ``--ft-corpus``
  (speakers disjoint from the evaluation sets), written beside it as ``<parent>-kl``;
- ``kl-start``: ``--kl-start`` points trained with ``--objective kl`` from initialisation (``--kl-steps``);
- ``eval``: every SAE spliced into Whisper on each ``--eval`` set (``whisper_sae.evaluate``; clean and
  ablation rows computed once per set and lent to the others);
- ``report``: a markdown table (per SAE and evaluation set: method, L0, EV, dead %, spliced WER against clean,
  CE recovered, utterances looping past 100 % WER, training wall time and rows/s) and one plot of spliced WER
  against L0, a line per method, clean WER dashed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_speech import evaluate_all, sae_folders  # noqa: E402


def log_run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(cmd), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)


def parse_point(text: str) -> tuple[str, str, list[str]]:
    """``"topk:k=16,32"`` -> ("topk", "k", ["16", "32"])."""
    arch, _, sweep = text.partition(":")
    name, _, values = sweep.partition("=")
    if not arch or not name or not values:
        raise SystemExit(f"--points entry {text!r} should read ARCH:NAME=V1,V2 (e.g. topk:k=16,32)")
    return arch.strip(), name.strip(), [v.strip() for v in values.split(",") if v.strip()]


def parse_evals(items: list[str]) -> dict[str, list[str]]:
    """``NAME=SPEC`` entries (repeat a NAME for several corpora in one set) -> {name: [spec, ...]}."""
    sets: dict[str, list[str]] = {}
    for item in items:
        name, _, spec = item.partition("=")
        if not spec:
            raise SystemExit(f"--eval {item!r} should read NAME=CORPUS_SPEC")
        sets.setdefault(name, []).append(spec)
    return sets


def cfg_of(folder: Path) -> dict:
    return json.loads((folder / "cfg.json").read_text())


def objective_of(folder: Path) -> str:
    """mse (trained on the store), kl-ft (a KL fine-tune of an MSE parent) or kl (KL from initialisation)."""
    training = cfg_of(folder).get("whisper_sae", {}).get("training", {})
    loss = training.get("loss", "mse")
    if loss == "mse":
        return "mse"
    return f"{loss}-ft" if training.get("parent") else loss


def held_out_l0(folder: Path) -> float | None:
    training = cfg_of(folder).get("whisper_sae", {}).get("training", {})
    return (training.get("held_out") or {}).get("l0")


def train_stage(args) -> None:
    root = Path(args.work) / "sae"
    for text in args.points:
        arch, name, values = parse_point(text)
        out = root / f"{arch}-{name}"
        if (out / "DONE").exists():
            continue
        cmd = [sys.executable, "-m", "whisper_sae", "train", "--store", str(args.store), "--hooks", args.hook]
        cmd += ["--out", str(out), "--arch", arch, "--width", str(args.width), "--steps", str(args.steps)]
        cmd += ["--batch-size", str(args.batch_size), "--seed", str(args.seed), "--sweep", f"{name}={','.join(values)}"]
        t0 = time.perf_counter()
        log_run(cmd, Path(args.work) / f"logs/train-{arch}-{name}.log")
        (out / "DONE").write_text(f"{time.perf_counter() - t0:.1f}\n")


def parents(args) -> list[Path]:
    root = Path(args.work) / "sae"
    return [f for f in sae_folders(root) if objective_of(f) == "mse"]


def kl_finetune(
    parent: Path,
    out: Path,
    corpus,
    *,
    steps: int,
    lr: float,
    utterances_per_step: int = 4,
    device: str = "cpu",
    seed: int = 0,
) -> Path:
    """KL fine-tune ``parent`` into ``out`` (resumed from its checkpoint, skipped once its DONE file, which
    holds the wall seconds, exists); shared by this script and ``seeds.py``."""
    from whisper_sae.sae.kl_training import finetune

    if (out / "DONE").exists():
        return out
    t0 = time.perf_counter()
    finetune(
        parent,
        corpus,
        out=out,
        steps=steps,
        resume=(out / "checkpoint").exists(),
        objective="kl",
        utterances_per_step=utterances_per_step,
        lr=lr,
        device=device,
        seed=seed,
        log_every=5,
        checkpoint_every=20,
    )
    (out / "DONE").write_text(f"{time.perf_counter() - t0:.1f}\n")
    print(f"fine-tuned {parent} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def finetune_stage(args) -> None:
    for parent in parents(args):
        l0 = held_out_l0(parent)
        if l0 is not None and l0 > args.max_l0:
            print(f"skip fine-tuning {parent}: held-out L0 {l0:.0f} > --max-l0 {args.max_l0}", flush=True)
            continue
        kl_finetune(
            parent,
            parent.with_name(parent.name + "-kl"),
            args.ft_corpus,
            steps=args.ft_steps,
            lr=args.ft_lr,
            utterances_per_step=args.ft_utterances_per_step,
            device=args.device,
            seed=args.seed,
        )


def kl_start_stage(args) -> None:
    root = Path(args.work) / "sae"
    for text in args.kl_start:
        arch, name, values = parse_point(text)
        for value in values:
            out = root / f"{arch}-{name}-klstart" / f"{name}{value}"
            if (out / "DONE").exists():
                continue
            cmd = [sys.executable, "-m", "whisper_sae", "train", "--store", str(args.store), "--hooks", args.hook]
            cmd += ["--out", str(out), "--arch", arch, "--width", str(args.width), "--steps", str(args.kl_steps)]
            cmd += ["--seed", str(args.seed), f"--{name}", value, "--objective", "kl", "--lr", str(args.ft_lr)]
            cmd += ["--utterances-per-step", str(args.ft_utterances_per_step)]
            for spec in args.ft_corpus:
                cmd += ["--corpus", spec]
            t0 = time.perf_counter()
            log_run(cmd, Path(args.work) / f"logs/klstart-{arch}-{name}{value}.log")
            (out / "DONE").write_text(f"{time.perf_counter() - t0:.1f}\n")


def eval_stage(args) -> None:
    root = Path(args.work) / "sae"
    every = sae_folders(root)
    folders = every
    if args.only:
        # in the order of the patterns, so the points that matter most are evaluated first
        rel = {f: f.relative_to(root).as_posix() for f in every}
        folders = list(dict.fromkeys(f for pat in args.only for f in every if fnmatch.fnmatch(rel[f], pat)))
        if not folders:
            raise SystemExit(f"--only {args.only} matches no SAE under {root}")
    # the SAEs not selected by --only still lend their clean and ablation rows
    lenders = [Path(p) for p in args.lend] + [f for f in every if f not in folders]
    for name, corpora in parse_evals(args.eval).items():
        evaluate_all(args, folders, name, corpora, others=lenders)


# ---------------------------------------------------------------------------------------------- report


def training_cost(folder: Path) -> dict:
    """Wall seconds (the DONE file of the run or its sweep) and rows per second (metrics.jsonl)."""
    metrics = [json.loads(s) for s in (folder / "metrics.jsonl").read_text().splitlines() if s.strip()]
    train = [m for m in metrics if m.get("split") == "train"]
    rates = [m["tokens_per_s"] for m in train if m.get("tokens_per_s")]
    wall = None
    for place in (folder, folder.parent):
        done = place / "DONE"
        if done.exists():
            try:
                wall = float(done.read_text().split()[0])
            except (ValueError, IndexError):
                wall = None
            shared = place != folder
            break
    else:
        shared = False
    return {
        "wall_s": wall,
        "wall_shared_by_sweep": shared,
        "rows_per_s": sorted(rates)[len(rates) // 2] if rates else None,
        "steps": train[-1]["step"] if train else None,
    }


def collect(args) -> list[dict]:
    rows = []
    for folder in sae_folders(Path(args.work) / "sae"):
        cfg = cfg_of(folder)
        ws = cfg.get("whisper_sae", {})
        row = {
            "sae": str(folder),
            # the training architecture (a BatchTopK SAE is saved as JumpReLU, a ReLU one as SAELens' "standard")
            "arch": ws.get("architecture") or cfg.get("architecture"),
            "k": ws.get("k"),
            "coef": (ws.get("training") or {}).get("coef"),
            "objective": objective_of(folder),
            "training": training_cost(folder),
        }
        for name in parse_evals(args.eval):
            path = folder / f"eval-{name}"
            if not (path / "eval.json").exists():
                continue
            doc = json.loads((path / "eval.json").read_text())
            utts = [json.loads(s) for s in (path / "eval_utterances.jsonl").read_text().splitlines() if s.strip()]
            rec, cond = doc["reconstruction"], doc["conditions"]
            loops = sum(1 for u in utts if (u.get("spliced") or {}).get("wer", 0) > 1.0)
            row[name] = {
                "n": doc["n_utterances"],
                "l0": rec["l0"],
                "ev": rec["explained_variance"],
                "dead": rec["dead_fraction"],
                "wer_clean": cond["clean"]["wer"],
                "wer_spliced": cond["spliced"]["wer"],
                "ce_clean": cond["clean"]["ce"],
                "ce_spliced": cond["spliced"]["ce"],
                "ce_recovered": doc["ce_recovered"]["zero"],
                "utterances_over_100pct": loops,
            }
        rows.append(row)
    return rows


def method_of(row: dict) -> str:
    return f"{row['arch']} {row['objective']}"


def report(args) -> None:
    rows = collect(args)
    evals = list(parse_evals(args.eval))
    out = Path(args.work)
    (out / "frontier.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        f"# Faithfulness frontier: {args.hook}, width {args.width} (generated by benchmarks/frontier.py)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {_cpu_flags()}; torch threads as run.",
        "",
    ]
    for name in evals:
        have = [r for r in rows if name in r]
        if not have:
            continue
        clean = have[0][name]
        lines += [
            f"## {name}: {clean['n']} utterances, clean WER {_pct(clean['wer_clean'])}, clean CE "
            f"{clean['ce_clean']:.3f}",
            "",
            "| method | sparsity | L0 | EV | dead | spliced WER | Δ WER (pt) | CE recovered | utts > 100 % WER "
            "| train wall (s) | rows/s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sorted(have, key=lambda r: (r["arch"], r["objective"], r[name]["l0"])):
            m, t = r[name], r["training"]
            sparsity = f"k={r['k']}" if r["arch"] in ("topk", "batchtopk") else f"coef={r['coef']}"
            rate = "–" if t["rows_per_s"] is None else f"{t['rows_per_s']:.0f}"
            wall = (
                "–" if t["wall_s"] is None else f"{t['wall_s']:.0f}" + (" (sweep)" if t["wall_shared_by_sweep"] else "")
            )
            lines.append(
                f"| {method_of(r)} | {sparsity} | {m['l0']:.1f} | {m['ev']:.3f} | {_pct(m['dead'])} | "
                f"{_pct(m['wer_spliced'])} | {100 * (m['wer_spliced'] - m['wer_clean']):+.1f} | "
                f"{m['ce_recovered']:.3f} | {m['utterances_over_100pct']} | {wall} | "
                f"{rate} |"
            )
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(text + "\n")
    if args.plot:
        plot(rows, evals, Path(args.plot))


def plot(rows: list[dict], evals: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [e for e in evals if any(e in r for r in rows)]
    # one colour per method in every panel, so the panels read side by side; one legend for all
    methods = sorted({method_of(r) for r in rows})
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(evals), figsize=(5.5 * len(evals) + 1.8, 4.2), squeeze=False)
    for ax, name in zip(axes[0], evals):
        have = [r for r in rows if name in r]
        for method in methods:
            pts = sorted((r[name]["l0"], 100 * r[name]["wer_spliced"]) for r in have if method_of(r) == method)
            if pts:
                style = "--" if "kl" in method else "-"
                ax.plot(
                    [p[0] for p in pts], [p[1] for p in pts], style, marker="o", color=colours[method], label=method
                )
        clean = 100 * have[0][name]["wer_clean"]
        ax.axhline(clean, color="black", linestyle=":", label="clean Whisper")
        ax.axhline(clean + 1.5, color="grey", linestyle=":", linewidth=0.8, label="clean + 1.5 pt (goal)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_ylim(max(0.5, 0.5 * clean), None)
        ax.set_xlabel("L0 (active features per frame, on this set)")
        ax.set_ylabel("spliced WER (%, log scale)")
        ax.set_title(f"{name} ({have[0][name]['n']} utterances, clean {clean:.1f} %)")
        ax.grid(alpha=0.3, which="both")
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), fontsize=8, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 1.7 / fig.get_figwidth(), 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def _pct(x):
    return "–" if x is None else f"{100 * x:.1f} %"


def _cpu_flags() -> str:
    try:
        flags = next(s for s in Path("/proc/cpuinfo").read_text().splitlines() if s.startswith("flags")).split()
    except (OSError, StopIteration):
        return "CPU flags unknown"
    keep = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return "flags " + " ".join(keep)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", type=Path, help="activation store of the training speech (for train, kl-start)")
    p.add_argument("--hook", default="encoder.out")
    p.add_argument("--width", type=int, default=1152)
    p.add_argument("--work", type=Path, required=True, help="folder for the SAEs, logs and frontier.json")
    p.add_argument(
        "--points",
        nargs="+",
        default=["topk:k=16,32,64,128", "batchtopk:k=32,64", "relu:l1=2,5,12", "jumprelu:coef=1,4"],
        help="MSE parents to train, ARCH:NAME=V1,V2 each (one sweep per entry)",
    )
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps of each MSE parent")
    p.add_argument("--batch-size", type=int, default=1024, help="rows per step of the MSE parents")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ft-corpus", action="append", default=[], help="speech for the KL fine-tunes (repeatable)")
    p.add_argument("--ft-steps", type=int, default=100)
    p.add_argument("--ft-lr", type=float, default=3e-4)
    p.add_argument("--ft-utterances-per-step", type=int, default=4)
    p.add_argument("--max-l0", type=float, default=128, help="fine-tune only parents with held-out L0 <= this")
    p.add_argument("--kl-start", nargs="*", default=[], help="points trained with --objective kl from init")
    p.add_argument("--kl-steps", type=int, default=200)
    p.add_argument("--eval", action="append", default=[], help="NAME=CORPUS_SPEC (repeat a NAME for a union)")
    p.add_argument("--eval-batch", type=int, default=8)
    p.add_argument(
        "--only",
        nargs="*",
        default=[],
        help="eval stage: SAE folders (relative to WORK/sae, globs) to evaluate, in order",
    )
    p.add_argument(
        "--lend", nargs="*", default=[], help="SAE folders whose eval-NAME rows (clean, ablations) can be reused"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--stages", default="train,finetune,kl-start,eval,report")
    p.add_argument("--report", default=None, help="write the markdown table here too")
    p.add_argument("--plot", default=None, help="PNG of spliced WER against L0")
    args = p.parse_args(argv)
    stages = {s.strip() for s in args.stages.split(",")}
    unknown = stages - {"train", "finetune", "kl-start", "eval", "report"}
    if unknown:
        p.error(f"unknown stage(s) {sorted(unknown)}")
    if stages & {"train", "kl-start"} and args.store is None:
        p.error("--store is needed to train")
    if stages & {"finetune", "kl-start"} and not args.ft_corpus:
        p.error("--ft-corpus is needed to fine-tune")
    if "train" in stages:
        train_stage(args)
    if "finetune" in stages:
        finetune_stage(args)
    if "kl-start" in stages:
        kl_start_stage(args)
    if "eval" in stages:
        eval_stage(args)
    if "report" in stages:
        report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
