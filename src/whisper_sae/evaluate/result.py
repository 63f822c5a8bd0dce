"""The result of a spliced evaluation: pooled numbers per condition, the checks, and the files written."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import Tensor

from whisper_sae.evaluate.metrics import ReconstructionMetrics, ce_recovered, plot_feature_density
from whisper_sae.evaluate.splice import CONDITION_LABELS, CONDITIONS

# The splice plus the SAE's error term must reproduce clean Whisper; float rounding in x_hat + (x - x_hat)
# moves logits by ~1e-5 at most, far below anything that changes a transcript.
ERROR_TERM_CE_TOLERANCE = 1e-3


@dataclass
class EvalResult:
    """What ``evaluate`` measured. ``conditions[name]`` has ``wer``, ``errors``, ``ref_words``, ``ce``
    (nats per reference token) and ``n_tokens``; ``utterances`` has one row per utterance."""

    meta: dict
    n_utterances: int
    reconstruction: ReconstructionMetrics
    conditions: dict[str, dict]
    ce_recovered: dict[str, float]
    error_term_check: dict
    utterances: list[dict] = field(repr=False)
    skipped: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self, *, with_utterances: bool = False) -> dict:
        data = asdict(self)
        data["reconstruction"] = self.reconstruction.to_dict()
        if not with_utterances:
            del data["utterances"]
        return _json_safe(data)

    def table(self) -> str:
        """A short markdown table: WER and CE per condition, then CE recovered and the checks."""
        lines = ["| condition | WER | CE (nats/token) |", "| --- | ---: | ---: |"]
        for name in CONDITIONS:
            c = self.conditions[name]
            lines.append(f"| {CONDITION_LABELS[name]} | {_pct(c['wer'])} | {c['ce']:.4f} |")
        r = self.reconstruction
        check = self.error_term_check
        lines += [
            "",
            f"CE recovered: {_num(self.ce_recovered['zero'])} vs zero ablation, "
            f"{_num(self.ce_recovered['mean'])} vs mean ablation.",
            f"Reconstruction over {r.n_rows} rows: explained variance {r.explained_variance:.3f}, "
            f"cosine {r.cosine:.3f}, MSE {r.mse:.4g}, L0 {r.l0:.1f}, dead {r.dead_fraction:.1%}, "
            f"dense {r.dense_fraction:.1%}.",
            f"Error-term check {'passed' if check['passed'] else 'FAILED'}: max |Δlogit| "
            f"{check['max_abs_logit_diff']:.2e}, max |ΔCE| {check['max_abs_ce_diff']:.2e}, "
            f"transcripts identical: {check['transcripts_equal']}.",
        ]
        return "\n".join(lines)

    def markdown(self) -> str:
        m = self.meta
        k = f", k={m['k']}" if m.get("k") else ""
        head = [
            f"# Spliced evaluation of {m.get('sae') or 'an SAE'}",
            "",
            f"{m['architecture']} SAE, {m['d_sae']} features{k}, at `{m['hook']}` of {m['model']}; "
            f"{self.n_utterances} utterances of {m['corpus']} ({m['window_mode']} 30-s windows; only real "
            f"audio frames are replaced).",
            "",
            self.table(),
            "",
        ]
        worst = self.worst_utterances(5)
        if worst:
            head += [
                "## Utterances the splice hurts most",
                "",
                "| id | clean WER | spliced WER | spliced transcript |",
                "| --- | ---: | ---: | --- |",
            ]
            for row in worst:
                text = row["spliced"]["text"].replace("|", "\\|")
                head.append(f"| {row['id']} | {_pct(row['clean']['wer'])} | {_pct(row['spliced']['wer'])} | {text} |")
            head.append("")
        if self.skipped:
            head.append(f"Skipped {len(self.skipped)} utterances (see eval.json).")
        return "\n".join(head) + "\n"

    def worst_utterances(self, n: int) -> list[dict]:
        """The ``n`` utterances whose errors rose most when the SAE was spliced in (ties: by CE rise)."""

        def rise(row):
            return (row["spliced"]["errors"] - row["clean"]["errors"], row["spliced"]["ce"] - row["clean"]["ce"])

        return [row for row in sorted(self.utterances, key=rise, reverse=True)[:n] if rise(row)[0] > 0]

    def write(self, out: str | Path, firing_frequency: Tensor) -> dict[str, str]:
        """Write eval.json, eval.md, eval_utterances.jsonl and feature_density.png into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.files = {
            "json": str(out / "eval.json"),
            "markdown": str(out / "eval.md"),
            "utterances": str(out / "eval_utterances.jsonl"),
            "density_png": str(out / "feature_density.png"),
        }
        plot_feature_density(
            firing_frequency,
            self.files["density_png"],
            title=f"{self.meta['architecture']} {self.meta['d_sae']} @ {self.meta['hook']}",
        )
        with open(self.files["utterances"], "w") as f:
            for row in self.utterances:
                f.write(json.dumps(_json_safe(row)) + "\n")
        Path(self.files["json"]).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        Path(self.files["markdown"]).write_text(self.markdown())
        return self.files


def load_eval_result(folder: str | Path) -> EvalResult:
    """Read back what ``EvalResult.write`` put in ``folder`` (eval.json + eval_utterances.jsonl), enough to
    lend its SAE-independent rows to another evaluation (``evaluate(baseline=...)``); the reconstruction
    metrics are not kept."""
    folder = Path(folder)
    doc = json.loads((folder / "eval.json").read_text())
    lines = (folder / "eval_utterances.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return EvalResult(
        meta=doc["meta"],
        n_utterances=len(rows),
        reconstruction=None,
        conditions=doc["conditions"],
        ce_recovered=doc["ce_recovered"],
        error_term_check=doc["error_term_check"],
        utterances=rows,
    )


def summarise(
    *, rows: list[dict], reconstruction: ReconstructionMetrics, check: dict, meta: dict, skipped: list[dict]
) -> EvalResult:
    """Pool per-utterance rows into per-condition numbers, CE recovered and the error-term check."""
    conditions = {}
    for name in CONDITIONS:
        errors = sum(r[name]["errors"] for r in rows)
        ref_words = sum(r[name]["ref_words"] for r in rows)
        nll = sum(r[name]["nll"] for r in rows)
        n_tokens = sum(r[name]["n_tokens"] for r in rows)
        conditions[name] = {
            "wer": errors / ref_words if ref_words else math.nan,
            "errors": errors,
            "ref_words": ref_words,
            "ce": nll / n_tokens,
            "n_tokens": n_tokens,
        }
    ce = {name: conditions[name]["ce"] for name in CONDITIONS}
    recovered = {abl: ce_recovered(ce["clean"], ce["spliced"], ce[abl]) for abl in ("zero", "mean")}
    ce_diff = max(abs(r["spliced_error"]["ce"] - r["clean"]["ce"]) for r in rows)
    same_text = all(r["spliced_error"]["text"] == r["clean"]["text"] for r in rows)
    full_check = {
        **check,
        "max_abs_ce_diff": ce_diff,
        "transcripts_equal": same_text,
        "wer_equal": conditions["spliced_error"]["errors"] == conditions["clean"]["errors"],
        "passed": same_text and ce_diff < ERROR_TERM_CE_TOLERANCE,
    }
    return EvalResult(
        meta=meta,
        n_utterances=len(rows),
        reconstruction=reconstruction,
        conditions=conditions,
        ce_recovered=recovered,
        error_term_check=full_check,
        utterances=rows,
        skipped=skipped,
    )


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.1f} %"


def _num(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _json_safe(value):
    """NaN and infinity are not JSON: write them as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
