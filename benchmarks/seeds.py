"""Same features from another seed? Train one recipe under several seeds and match their features pairwise.

    python benchmarks/seeds.py --store runs/real-speech/stores/tiny.en-train --work runs/seeds \\
        --label-store runs/real-speech/stores/tiny.en-test-clean \\
        --alignments ../shared/data/librispeech/alignments --report benchmarks/results/seeds.md

For each seed (``--seeds``), ``whisper-sae train`` (``--arch/--k/--width/--steps``, the seed sets the
initialisation and the batch order; the data is the same) unless ``--reuse SEED=FOLDER`` names an SAE
already trained that way; optionally (``--ft-corpus``) a KL fine-tune of each (``--ft-steps``). Each SAE is
analysed on ``--label-store`` with forced alignments (``whisper_sae.analyze``: phone and word labels), and
every pair of seeds is matched with ``whisper_sae.evaluate.compare.compare_saes`` (Hungarian on decoder
cosines): the fraction of features matched above 0.7 and 0.9, the mean matched cosine, and how often matched
pairs carry the same phone / word label. Each pair's compare.json / compare.md / cosines.png is kept in
``--work/compare-<a>-<b>``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def train_seed(args, seed: int) -> Path:
    reuse = dict(item.split("=", 1) for item in args.reuse)
    if str(seed) in reuse:
        return Path(reuse[str(seed)])
    out = Path(args.work) / f"seed{seed}"
    if (out / "sae_weights.safetensors").exists():
        return out
    cmd = [sys.executable, "-m", "whisper_sae", "train", "--store", str(args.store), "--hooks", args.hook]
    cmd += ["--out", str(out), "--arch", args.arch, "--width", str(args.width), "--steps", str(args.steps)]
    cmd += ["--batch-size", str(args.batch_size), "--seed", str(seed), "--k", str(args.k)] + (
        ["--coef", str(args.coef)] if args.coef else []
    )
    print("$", " ".join(cmd), flush=True)
    log = Path(args.work) / f"logs/train-seed{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    (out / "DONE").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return out


def finetune_seed(args, parent: Path, seed: int) -> Path:
    from frontier import kl_finetune

    return kl_finetune(
        parent, Path(args.work) / f"seed{seed}-kl", args.ft_corpus, steps=args.ft_steps, lr=args.ft_lr, seed=seed
    )


def labelled(args, folder: Path) -> None:
    from whisper_sae import analyze

    if (folder / "analysis" / "analysis.json").exists():
        return
    analyze(folder, store=args.label_store, alignments_dir=args.alignments, out=folder / "analysis", progress=False)


def compare_all(args, folders: dict[str, Path]) -> list[dict]:
    from whisper_sae.evaluate.compare import compare_saes

    rows = []
    for (na, a), (nb, b) in itertools.combinations(folders.items(), 2):
        out = Path(args.work) / f"compare-{na}-{nb}"
        if not (out / "compare.json").exists():
            compare_saes(a, b).write(out)
        doc = json.loads((out / "compare.json").read_text())
        lab = doc.get("labels") or {}
        rows.append(
            {
                "a": na,
                "b": nb,
                "matched_0.7": doc["matched_fraction"]["0.7"],
                "matched_0.9": doc["matched_fraction"]["0.9"],
                "mean_cosine": doc["matched_cosine"]["mean"],
                "phone_agree": (lab.get("phone") or {}).get("agree_fraction"),
                "phone_pairs": (lab.get("phone") or {}).get("both_labelled"),
                "word_agree": (lab.get("word") or {}).get("agree_fraction"),
                "word_pairs": (lab.get("word") or {}).get("both_labelled"),
                "compare": str(out / "compare.md"),
            }
        )
    return rows


def _f(x, nd=3):
    return "–" if x is None else f"{x:.{nd}f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, required=True, help="activation store of the training speech")
    p.add_argument("--hook", default="encoder.out")
    p.add_argument("--arch", default="topk")
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--coef", type=float, default=None)
    p.add_argument("--width", type=int, default=1152)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--reuse", nargs="*", default=[], help="SEED=FOLDER: an SAE of this recipe already trained")
    p.add_argument("--ft-corpus", action="append", default=[], help="KL fine-tune each seed on this speech too")
    p.add_argument("--ft-steps", type=int, default=100)
    p.add_argument("--ft-lr", type=float, default=3e-4)
    p.add_argument("--label-store", type=Path, required=True, help="store of aligned speech for the labels")
    p.add_argument("--alignments", type=Path, required=True, help="forced alignments of --label-store's speech")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--report", default=None)
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    mse = {f"seed{s}": train_seed(args, s) for s in seeds}
    groups = {"mse": mse}
    if args.ft_corpus:
        groups["kl-ft"] = {f"seed{s}-kl": finetune_seed(args, mse[f"seed{s}"], s) for s in seeds}
    lines = [
        f"# Seed consistency: {args.arch} k={args.k}, width {args.width}, {args.hook}, {args.steps} steps "
        "(generated by benchmarks/seeds.py)",
        "",
        "| objective | A | B | matched > 0.7 | matched > 0.9 | mean matched cosine | same phone label "
        "(pairs) | same word label (pairs) |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    result = {}
    for name, folders in groups.items():
        for folder in folders.values():
            labelled(args, folder)
        rows = compare_all(args, folders)
        result[name] = rows
        for r in rows:
            lines.append(
                f"| {name} | {r['a']} | {r['b']} | {_f(r['matched_0.7'])} | {_f(r['matched_0.9'])} | "
                f"{_f(r['mean_cosine'])} | {_f(r['phone_agree'], 2)} ({r['phone_pairs']}) | "
                f"{_f(r['word_agree'], 2)} ({r['word_pairs']}) |"
            )
    text = "\n".join(lines)
    print(text)
    (Path(args.work) / "seeds.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.report:
        Path(args.report).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
