"""Speaker-attribute selectivity for the dashboard, read from one or more ``probe.json`` files.

``whisper-sae probe`` scores every feature per attribute (utterance level: ``score`` = max over classes
of |2·AUROC − 1|, or |Spearman rho| for numbers, with a Benjamini–Hochberg ``q``). The dashboard
shows those numbers on each feature page, adds one sortable column per attribute to the index with a
filter on it, and gives the most selective features a page even when their phone/word labels are weak.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from whisper_sae.artifacts import output_dir_for

from ..probing.schema import AttributeBlock, ProbeReport

logger = logging.getLogger(__name__)
SIGNIFICANT_Q = 0.05
"""Features with a BH-corrected q below this count as selective in the index filter."""


@dataclass
class ProbedAttribute:
    """One attribute of a probe.json, with where it came from and each feature's rank (1 = most selective)."""

    block: AttributeBlock
    report: ProbeReport
    source: str
    rank: np.ndarray

    @property
    def kind(self) -> str:
        return self.block.kind

    @property
    def classes(self) -> list[str]:
        return self.block.classes or []

    @property
    def n_utterances(self) -> int:
        return self.report.n_utterances

    @property
    def n_speakers(self) -> int:
        return self.report.n_speakers


@dataclass
class AttributeSelectivity:
    """Per-feature selectivity of several attributes, merged from probe.json files."""

    attributes: dict[str, ProbedAttribute] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.attributes)

    def of(self, feature: int) -> dict[str, dict]:
        """``{attribute: {"score", "q", "rank", "low", "class"?, "auroc"?, "cohens_d"?, "rho"?}}`` of one
        feature; ``low``: the feature is lower in ``class`` than in the rest (AUROC < 0.5), or falls as the
        number rises (rho < 0); None when there is no direction (AUROC 0.5 or rho 0, e.g. a silent feature)."""
        out = {}
        for name, attr in self.attributes.items():
            row = attr.block.selectivity.row(feature)
            row["rank"] = int(attr.rank[feature])
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
        for attr in self.attributes.values():
            order = np.argsort(attr.rank, kind="stable")[:n]
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
        return [
            {"name": name, "kind": a.kind, "classes": a.classes if a.kind == "categorical" else ["higher", "lower"]}
            for name, a in self.attributes.items()
        ]


def load_selectivity(paths, *, d_sae: int, hook: str | None) -> AttributeSelectivity:
    """Merge the attributes of the probe.json files at ``paths`` (files or probe folders), checking that
    each was made on an SAE of ``d_sae`` features at ``hook``. An attribute found twice is an error."""
    merged = AttributeSelectivity()
    for raw in paths:
        report = ProbeReport.load(raw)
        path = report.path
        if report.sae.d_sae != d_sae:
            raise ValueError(
                f"{path} was made on an SAE of {report.sae.d_sae} features; this dashboard's SAE has {d_sae}. "
                "Pass the probe.json of this SAE"
            )
        if hook and report.sae.hook and report.sae.hook != hook:
            raise ValueError(f"{path} probed hook {report.sae.hook!r}; this dashboard's SAE reads {hook!r}")
        for name, block in report.attributes.items():
            if name in merged.attributes:
                raise ValueError(
                    f"attribute {name!r} is in both {merged.attributes[name].source} and {path}; pass one of them"
                )
            if len(block.selectivity) != d_sae:
                raise ValueError(
                    f"{path} holds {len(block.selectivity)} selectivity scores for {name!r} but says its SAE has "
                    f"{d_sae} features; run `whisper-sae probe` again to rewrite it"
                )
            score = np.nan_to_num(np.asarray(block.selectivity.score, dtype=float), nan=0.0)
            rank = np.empty(len(score), dtype=np.int64)
            rank[np.argsort(-score, kind="stable")] = np.arange(1, len(score) + 1)
            merged.attributes[name] = ProbedAttribute(block=block, report=report, source=str(path), rank=rank)
        logger.info("speaker attributes from %s: %s", path, ", ".join(report.attributes))
    return merged


def default_probe_paths(sae_dir: Path | None) -> list[Path]:
    """``SAE_DIR/probe/probe.json`` when ``whisper-sae probe`` wrote one there (its default place)."""
    if sae_dir is None:
        return []
    path = output_dir_for(sae_dir, "probe") / "probe.json"
    return [path] if path.is_file() else []
