"""Speaker-attribute selectivity for the dashboard, read from one or more ``probe.json`` files.

``whisper-sae probe`` scores every feature per attribute (utterance level: ``score`` = max over classes
of |2·AUROC − 1|, or |Spearman rho| for numbers, with a Benjamini–Hochberg ``q``). The dashboard
shows those numbers on each feature page, adds one sortable column per attribute to the index with a
filter on it, and gives the most selective features a page even when their phone/word labels are weak.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)
SIGNIFICANT_Q = 0.05
"""Features with a BH-corrected q below this count as selective in the index filter."""


@dataclass
class AttributeSelectivity:
    """Per-feature selectivity of several attributes, merged from probe.json files."""

    attributes: dict[str, dict] = field(default_factory=dict)
    """``{attribute: {"kind", "classes", "source", "n_utterances", "n_speakers", "selectivity": {...}}}``"""

    def __bool__(self) -> bool:
        return bool(self.attributes)

    def of(self, feature: int) -> dict[str, dict]:
        """``{attribute: {"score", "q", "rank", "low", "class"?, "auroc"?, "cohens_d"?, "rho"?}}`` of one
        feature; ``low``: the feature is lower in ``class`` than in the rest (AUROC < 0.5), or falls as the
        number rises (rho < 0); None when there is no direction (AUROC 0.5 or rho 0, e.g. a silent feature)."""
        out = {}
        for name, block in self.attributes.items():
            sel = block["selectivity"]
            row = {k: v[feature] for k, v in sel.items() if isinstance(v, list)}
            row["rank"] = int(block["rank"][feature])
            side, neutral = (row.get("auroc"), 0.5) if "class" in row else (row.get("rho"), 0.0)
            row["low"] = None if side is None or side == neutral else side < neutral
            out[name] = row
        return out

    @staticmethod
    def direction(row: dict) -> str | None:
        """'higher in CLASS' / 'lower in CLASS' for a class, 'higher' / 'lower' for a number (a row of ``of``)."""
        if row["low"] is None:
            return None
        word = "lower" if row["low"] else "higher"
        return f"{word} in {row['class']}" if "class" in row else word

    def top(self, n: int) -> list[int]:
        """The ``n`` most selective features of every attribute (attribute order, best first, no repeats)."""
        chosen: list[int] = []
        for block in self.attributes.values():
            order = np.argsort(block["rank"], kind="stable")[:n]
            chosen += [int(f) for f in order if int(f) not in chosen]
        return chosen

    def index_fields(self, feature: int) -> dict:
        """Flat fields for the index table: ``sel:ATTR`` (score), ``cls:ATTR`` (the class it separates, or
        higher/lower for numbers), ``low:ATTR`` (True when the feature is lower in that class) and ``q:ATTR``."""
        out = {}
        for name, row in self.of(feature).items():
            out[f"sel:{name}"], out[f"q:{name}"] = row.get("score"), row.get("q")
            if "class" in row:
                out[f"cls:{name}"], out[f"low:{name}"] = row["class"], bool(row["low"])
            elif row["low"] is not None:
                out[f"cls:{name}"] = self.direction(row)
        return out

    def filter_spec(self) -> list[dict]:
        """What the index's attribute filter offers: each attribute with its classes."""
        return [{"name": name, "kind": b["kind"],
                 "classes": b["classes"] if b["kind"] == "categorical" else ["higher", "lower"]}
                for name, b in self.attributes.items()]


def probe_json_path(path: str | Path) -> Path:
    """``path`` itself when it is a file, else ``path/probe.json``."""
    p = Path(path)
    return p / "probe.json" if p.is_dir() else p


def load_selectivity(paths, *, d_sae: int, hook: str | None) -> AttributeSelectivity:
    """Merge the attributes of the probe.json files at ``paths`` (files or probe folders), checking that
    each was made on an SAE of ``d_sae`` features at ``hook``. An attribute found twice is an error."""
    merged = AttributeSelectivity()
    for raw in paths:
        path = probe_json_path(raw)
        if not path.is_file():
            raise FileNotFoundError(f"no probe.json at {raw}; run `whisper-sae probe SAE_DIR --corpus ... --attribute ...` first")
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not str(doc.get("format", "")).startswith("whisper-sae-probe/"):
            raise ValueError(f"{path} is not a whisper-sae probe.json (format {doc.get('format')!r})")
        sae = doc.get("sae", {})
        if int(sae.get("d_sae", -1)) != d_sae:
            raise ValueError(f"{path} was made on an SAE of {sae.get('d_sae')} features; this dashboard's SAE has {d_sae}. "
                             "Pass the probe.json of this SAE")
        if hook and sae.get("hook") and sae["hook"] != hook:
            raise ValueError(f"{path} probed hook {sae['hook']!r}; this dashboard's SAE reads {hook!r}")
        for name, block in doc["attributes"].items():
            if name in merged.attributes:
                raise ValueError(f"attribute {name!r} is in both {merged.attributes[name]['source']} and {path}; pass one of them")
            sel = block["selectivity"]
            score = np.nan_to_num(np.asarray(sel["score"], dtype=float), nan=0.0)
            rank = np.empty(len(score), dtype=np.int64)
            rank[np.argsort(-score, kind="stable")] = np.arange(1, len(score) + 1)
            merged.attributes[name] = {"kind": block["kind"], "classes": block.get("classes") or [], "source": str(path),
                                       "n_utterances": doc.get("n_utterances"), "n_speakers": doc.get("n_speakers"),
                                       "corpus": doc.get("corpus"), "selectivity": sel, "rank": rank}
        logger.info("speaker attributes from %s: %s", path, ", ".join(doc["attributes"]))
    return merged


def default_probe_paths(sae_dir: Path | None) -> list[Path]:
    """``SAE_DIR/probe/probe.json`` when ``whisper-sae probe`` wrote one there (its default place)."""
    if sae_dir is None:
        return []
    path = Path(sae_dir) / "probe" / "probe.json"
    return [path] if path.is_file() else []
