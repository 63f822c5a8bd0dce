"""Quality of SAEs on real speech: held-out explained variance, L0 and dead fraction, and the EV-vs-L0 frontier.

    python benchmarks/quality.py --store STORE --out runs/quality                # the sweep below, CPU or CUDA
    python benchmarks/quality.py --store STORE --out runs/quality --widths 1152 --epochs 5

Every SAE of one width is trained in the same pass over the store (shared batches): ReLU+L1 over L1
coefficients, TopK over k, BatchTopK, JumpReLU over L0 coefficients. Held out: 10 % of utterances.
Writes OUT/<width>/<name>/ (SAE folders), OUT/results.json, OUT/results.md and OUT/frontier.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from whisper_sae.activations import ActivationStore
from whisper_sae.sae import SAEConfig, SAESpec, train_specs

SWEEP = {  # (architecture, k, coefficient) per point
    "relu": [(None, c) for c in (1.0, 3.0, 8.0, 20.0)],
    "topk": [(k, None) for k in (16, 32, 64, 128)],
    "batchtopk": [(k, None) for k in (32, 64)],
    "jumprelu": [(None, c) for c in (0.05, 0.2, 1.0)],
}


def specs_for(store: ActivationStore, hook: str, width: int, archs: list[str]) -> list[SAESpec]:
    model = store.manifest.get("model", {})
    specs = []
    for arch in archs:
        for k, coef in SWEEP[arch]:
            cfg = SAEConfig(
                store.d_model(hook),
                width,
                arch,
                k=k,
                hook_name=hook,
                model_name=model.get("name"),
                model_spec=model.get("spec"),
                window_mode=store.settings.get("mode"),
            )
            name = f"{arch}-k{k}" if k else f"{arch}-c{coef:g}"
            specs.append(SAESpec(cfg, coef=coef, name=name))
    return specs


def frontier_png(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = {"relu": "tab:red", "topk": "tab:blue", "batchtopk": "tab:green", "jumprelu": "tab:purple"}
    widths = sorted({r["width"] for r in results})
    styles = dict(zip(widths, ["o-", "s--", "^:", "d-."]))
    for arch, color in colors.items():
        for width in widths:
            pts = sorted((r["l0"], r["ev"]) for r in results if r["arch"] == arch and r["width"] == width)
            if pts:
                ax.plot(*zip(*pts), styles[width], color=color, label=f"{arch} ({width})")
    ax.set_xscale("log")
    ax.set_xlabel("L0: active features per frame (held-out)")
    ax.set_ylabel("explained variance (held-out)")
    ax.set_title("SAEs on tiny.en encoder.out, LibriSpeech: EV vs L0 (up and left is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def collect(folders: list[Path], width: int) -> list[dict]:
    rows = []
    for folder in folders:
        doc = json.loads((folder / "cfg.json").read_text())
        held = doc["whisper_sae"]["training"]["held_out"]
        arch = doc["whisper_sae"]["architecture"]
        rows.append(
            {
                "name": folder.name,
                "arch": arch,
                "width": width,
                "k": doc["whisper_sae"]["k"],
                "coef": doc["whisper_sae"]["training"]["coef"],
                "ev": held["ev"],
                "l0": held["l0"],
                "dead_frac": held["dead_frac"],
                "val_rows": held["rows"],
                "path": str(folder),
            }
        )
    return rows


def export(
    results: list[dict], dest: Path, *, target_l0: float = 32, max_bytes: int = 15_500_000, max_files: int = 4
) -> list[Path]:
    """Tar, per width and architecture, the SAE whose held-out L0 is closest to ``target_l0`` (weights,
    cfg, metrics, plots), packed greedily into at most ``max_files`` tars of at most ``max_bytes``."""
    import tarfile

    chosen = {}
    for r in results:
        key = (r["width"], r["arch"])
        if key not in chosen or abs(r["l0"] - target_l0) < abs(chosen[key]["l0"] - target_l0):
            chosen[key] = r
    order = sorted(
        chosen.values(), key=lambda r: (r["width"], ["relu", "topk", "batchtopk", "jumprelu"].index(r["arch"]))
    )
    bins: list[list] = []
    for r in order:
        size = sum(f.stat().st_size for f in Path(r["path"]).iterdir())
        for b in bins:
            if b[0] + size <= max_bytes:
                b[0] += size
                b[1].append(r)
                break
        else:
            if len(bins) < max_files and size <= max_bytes:
                bins.append([size, [r]])
    dest.mkdir(parents=True, exist_ok=True)
    tars = []
    for i, (_, members) in enumerate(bins):
        path = dest / f"sae-{i}.tar"
        with tarfile.open(path, "w") as tar:
            for r in members:
                tar.add(r["path"], arcname=f"sae-{r['width']}-{r['name']}")
        tars.append(path)
    return tars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--hook", default="encoder.out")
    parser.add_argument("--out", default="runs/quality")
    parser.add_argument("--widths", default="1152,4608")
    parser.add_argument("--archs", default="relu,topk,batchtopk,jumprelu")
    parser.add_argument("--epochs", type=float, default=30)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dead-after-tokens", type=int, default=200_000)
    parser.add_argument("--export", default=None, help="folder for tars of the SAEs nearest L0=32 (per width, arch)")
    args = parser.parse_args()
    store = ActivationStore(args.store)
    out = Path(args.out)
    results = []
    for width in (int(w) for w in args.widths.split(",")):
        specs = specs_for(store, args.hook, width, args.archs.split(","))
        start = time.time()
        folders = train_specs(
            store,
            specs,
            out=out / str(width),
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            device=args.device,
            dead_after_tokens=args.dead_after_tokens,
            log_every=20,
            eval_every=200,
            checkpoint_every=1000,
        )
        print(f"width {width}: {len(specs)} SAEs in one pass, {time.time() - start:.0f} s", flush=True)
        results += collect(folders, width)
    info = {
        "store": str(store.path),
        "hook": args.hook,
        "model": store.manifest["model"].get("name"),
        "utterances": len(store.utterances),
        "rows": store.n_rows(args.hook),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "results": results,
    }
    (out / "results.json").write_text(json.dumps(info, indent=2))
    lines = ["| SAE | width | held-out EV | L0 | dead (never fired on held-out) |", "|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["width"], r["arch"], r["l0"])):
        lines.append(f"| {r['name']} | {r['width']} | {r['ev']:.3f} | {r['l0']:.1f} | {r['dead_frac']:.3f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    frontier_png(results, out / "frontier.png")
    if args.export:
        print("exported:", [str(p) for p in export(results, Path(args.export))])


if __name__ == "__main__":
    main()
