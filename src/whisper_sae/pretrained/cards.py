"""Model cards and index entries of SAEs, written from what the SAE folder already records.

One description serves three readers: ``index.json`` (the ``pretrained list`` table), ``MODEL_CARD.md``
beside a shipped SAE (``pretrained info``), and ``README.md`` on the Hugging Face Hub (``push``; the YAML
front matter is what the Hub shows as licence, tags and base model). The numbers come from the folder's
``cfg.json`` (architecture, sizes, hook, model, training record) and an ``eval.json`` from
``whisper-sae evaluate``, never typed twice; what a folder cannot know (hours and speakers of the training
data, the licence) is passed in.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

# Keys of an index entry's `headline`, with the words the card uses for them.
HEADLINE = {
    "l0": "L0 (active features per frame)",
    "explained_variance": "explained variance",
    "held_out_explained_variance": "explained variance, training run's held-out utterances",
    "clean_wer": "WER, clean Whisper",
    "spliced_wer": "WER, SAE spliced in",
    "ce_recovered_zero": "CE recovered (vs zero ablation)",
    "ce_recovered_mean": "CE recovered (vs mean ablation)",
}
PERCENT = {"clean_wer", "spliced_wer"}


def read_json(path: str | Path, what: str) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / what
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}; give the file or the folder that holds it")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(doc).__name__}")
    return doc


def headline_from_eval(eval_doc: dict) -> dict:
    """The card's numbers from an ``eval.json`` written by ``whisper-sae evaluate``."""
    try:
        rec, cond, ce = eval_doc["reconstruction"], eval_doc["conditions"], eval_doc["ce_recovered"]
        meta = eval_doc.get("meta", {})
        numbers = {
            "l0": rec["l0"],
            "explained_variance": rec["explained_variance"],
            "clean_wer": cond["clean"]["wer"],
            "spliced_wer": cond["spliced"]["wer"],
            "ce_recovered_zero": ce["zero"],
            "ce_recovered_mean": ce["mean"],
        }
    except (KeyError, TypeError) as err:
        raise ValueError(f"the eval.json given lacks {err}; give one written by `whisper-sae evaluate`") from None
    where = f"{eval_doc.get('n_utterances', '?')} utterances of {meta.get('corpus', 'an unnamed corpus')}"
    return {
        **{k: _round(v) for k, v in numbers.items()},
        "measured_on": f"{where}, spliced into {meta.get('model', '?')}",
    }


def entry_from(
    cfg_doc: dict,
    *,
    folder: str,
    eval_doc: dict | None = None,
    headline: dict | None = None,
    training_data: dict | None = None,
    licence: str = "MIT",
    recommended: bool = True,
    **extra,
) -> dict:
    """An index entry for an SAE folder whose ``cfg.json`` is ``cfg_doc``."""
    ours = cfg_doc.get("whisper_sae") or {}
    numbers = dict(headline_from_eval(eval_doc)) if eval_doc else {}
    numbers.update(headline or {})
    held_out = (ours.get("training") or {}).get("held_out") or {}
    if isinstance(held_out.get("explained_variance"), (int, float)):
        numbers.setdefault("held_out_explained_variance", _round(held_out["explained_variance"]))
    return {
        "folder": folder,
        "model": cfg_doc.get("model_name"),
        "hook": cfg_doc.get("hook_name"),
        "architecture": ours.get("architecture") or cfg_doc.get("architecture"),
        "d_in": cfg_doc.get("d_in"),
        "width": cfg_doc.get("d_sae"),
        "k": cfg_doc.get("k", ours.get("k")),
        "training_data": dict(training_data or {}),
        "licence": licence,
        "headline": numbers,
        "recommended": bool(recommended),
        **extra,
    }


def render_card(name: str, entry: dict, *, notes: str | None = None, load_as: str | None = None) -> str:
    """The model card of an SAE: front matter for the Hub, what it is, its numbers, how to load it, notes."""
    data = entry.get("training_data") or {}
    model = entry.get("model") or "an unnamed Whisper model"
    licence = entry.get("licence") or "unknown"
    front = [
        "---",
        "library_name: whisper-sae",
        f"license: {_hub_licence(licence)}",
        "tags: [sparse-autoencoder, saelens, whisper, interpretability, speech]",
    ]
    if entry.get("model"):
        front.append(f"base_model: {entry['model']}")
    front.append("---")
    k = f", k={entry['k']}" if entry.get("k") else ""
    what = (
        f"A {entry.get('architecture')} sparse autoencoder{k} of width {entry.get('width')} on the "
        f"`{entry.get('hook')}` activations (d_in {entry.get('d_in')}) of `{model}`, in the SAELens layout "
        "(`cfg.json` + `sae_weights.safetensors`)."
    )
    lines = [*front, "", f"# {name}", "", what, ""]
    if not entry.get("recommended", True):
        lines += ["**Shipped for reference and reproduction, not as a recommended SAE** (see the notes below).", ""]
    rows = [
        ("model", f"`{model}`"),
        ("hook", f"`{entry.get('hook')}`"),
        ("architecture", entry.get("architecture")),
        ("width (d_sae)", entry.get("width")),
        ("k", entry.get("k") or "–"),
        ("training data", _data_text(data)),
        ("licence (weights)", licence),
    ]
    if data.get("licence"):
        rows.append(("licence (training data)", data["licence"]))
    if entry.get("source"):
        rows.append(("source", entry["source"]))
    lines += ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    numbers = entry.get("headline") or {}
    shown = [(HEADLINE[k], _fmt(k, numbers[k])) for k in HEADLINE if numbers.get(k) is not None]
    if shown:
        lines += ["## Measured", "", "| | |", "|---|---:|", *(f"| {k} | {v} |" for k, v in shown), ""]
        if numbers.get("measured_on"):
            lines += [f"Measured on {numbers['measured_on']}.", ""]
    where = load_as or name
    lines += [
        "## Load",
        "",
        "```python",
        "from whisper_sae.sae import SparseAutoencoder",
        "",
        f'sae = SparseAutoencoder.from_pretrained("{where}")',
        "codes, x_hat = sae(activations)  # [..., d_in]",
        "```",
        "",
        f"or `whisper-sae evaluate {where} --corpus ...`; `sae_lens.SAE.load_from_disk` reads the folder too.",
        "",
    ]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    return "\n".join(lines)


def _data_text(data: dict) -> str:
    if not data:
        return "not recorded"
    parts = [data.get("corpus") or "unnamed corpus"]
    extent = ", ".join(
        x
        for x in (
            f"{data['hours']:g} h" if data.get("hours") is not None else "",
            f"{data['speakers']} speakers" if data.get("speakers") is not None else "",
        )
        if x
    )
    return f"{parts[0]} ({extent})" if extent else parts[0]


def _hub_licence(licence: str) -> str:
    """The Hub's licence identifiers are lower-case SPDX-like ids (mit, apache-2.0, cc-by-4.0); else 'other'."""
    ident = licence.strip().lower()
    return ident if ident and all(c.isalnum() or c in "-." for c in ident) else "other"


def _fmt(key: str, value) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return str(value)
    if key in PERCENT:
        return f"{100 * value:.1f} %"
    return f"{value:.1f}" if key == "l0" else f"{value:.3f}"


def _round(value):
    return round(float(value), 4) if isinstance(value, (int, float)) and math.isfinite(value) else None
