"""Training records: metrics as JSON lines, and the loss / metric plots drawn from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Append-only JSONL of training records; on resume, records past the checkpoint's step are dropped so
    the file reads as if the run had never stopped."""

    def __init__(self, path: Path, *, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        clean = {
            key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in record.items()
        }
        with self.path.open("a") as handle:
            handle.write(json.dumps(clean) + "\n")


def read_metrics(path) -> list[dict]:
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training(folder, *, title: str | None = None) -> list[Path]:
    """Write ``loss.png`` (loss over steps, epochs on a second axis when known) and ``metrics.png``
    (explained variance, L0, dead and dense fractions) into ``folder`` from its ``metrics.jsonl``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    records = read_metrics(folder)
    train = [r for r in records if r.get("split") == "train"]
    val = [r for r in records if r.get("split") == "val"]
    if not train:
        return []
    steps = [r["step"] for r in train]
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.plot(steps, [r["loss"] for r in train], label="total loss")
    ax.plot(steps, [r["mse"] for r in train], label="MSE (normalised units)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title or f"SAE training loss ({folder.name})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    steps_per_epoch = train[-1].get("steps_per_epoch")
    if steps_per_epoch:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch))
        top.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(folder / "loss.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for split, rows, style in (("train", train, "-"), ("held-out", val, "o-")):
        if rows:
            axes[0].plot([r["step"] for r in rows], [r["ev"] for r in rows], style, label=split)
            axes[1].plot([r["step"] for r in rows], [r["l0"] for r in rows], style, label=split)
    axes[2].plot(steps, [r["dead_frac"] for r in train], label="dead (train window)")
    axes[2].plot(steps, [r["dense_frac"] for r in train], label="dense (>10% of tokens)")
    if val:
        axes[2].plot([r["step"] for r in val], [r["dead_frac"] for r in val], "o-", label="never fired on held-out")
    for axis, name in zip(axes, ("explained variance", "L0 (active features per frame)", "fraction of features")):
        axis.set_xlabel("step")
        axis.set_title(name)
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(folder / "metrics.png", dpi=100)
    plt.close(fig)
    return [folder / "loss.png", folder / "metrics.png"]
