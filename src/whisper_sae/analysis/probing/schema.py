"""probe.json as typed dataclasses: the one place that knows its keys.

``probe`` writes the file through :meth:`ProbeReport.to_json`; the dashboard, the CLI's printout, the
markdown report and the demo's summary read it through :meth:`ProbeReport.load` instead of each
walking dict keys its own way. ``from_json(doc).to_json() == doc`` (same keys, same order, same
values), so files written before this module read and rewrite unchanged.

Layout (``format`` ``whisper-sae-probe/1``)::

    sae {path, hook, d_sae, architecture, model_name}, model, corpus, store, test_corpus?, metadata,
    analysis {path, corpus} | null, n_utterances, n_frames, n_frames_sampled, n_speakers, notes,
    options {ProbeOptions as a dict},
    attributes {NAME: AttributeBlock}, ablation {} | Ablation

Paths (``sae.path``, ``corpus``, ``store``, ``metadata``, ``analysis.path``) are written relative to
the probe folder (``artifacts.record_path``); :meth:`ProbeReport.load` resolves them against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "whisper-sae-probe/1"
LEVELS = ("frame", "utterance")
_LABEL_KINDS = ("phone", "word")


def _drop_none(pairs) -> dict:
    return {k: v for k, v in pairs if v is not None}


@dataclass
class SelectivitySummary:
    """One number per feature (lists of length d_sae): for a categorical attribute the class each
    feature separates best from the rest (``class_``) with its ``auroc``, ``cohens_d``, ``q`` (BH
    Mann–Whitney) and ``q_welch``; for a number ``rho`` (Spearman) and ``q``. ``score`` is
    |2·AUROC − 1| or |rho|. Values may be None (NaN on disk)."""

    score: list
    q: list
    class_: list | None = None
    auroc: list | None = None
    cohens_d: list | None = None
    q_welch: list | None = None
    rho: list | None = None

    @property
    def categorical(self) -> bool:
        return self.class_ is not None

    @classmethod
    def from_json(cls, d: dict) -> SelectivitySummary:
        return cls(
            score=d["score"],
            q=d["q"],
            class_=d.get("class"),
            auroc=d.get("auroc"),
            cohens_d=d.get("cohens_d"),
            q_welch=d.get("q_welch"),
            rho=d.get("rho"),
        )

    def to_json(self) -> dict:
        if self.categorical:
            return {
                "score": self.score,
                "class": self.class_,
                "auroc": self.auroc,
                "cohens_d": self.cohens_d,
                "q": self.q,
                "q_welch": self.q_welch,
            }
        return {"score": self.score, "rho": self.rho, "q": self.q}

    def row(self, feature: int) -> dict:
        """``{"score", "q", "class"?, "auroc"?, "cohens_d"?, "q_welch"?, "rho"?}`` of one feature."""
        return {k: v[feature] for k, v in self.to_json().items()}

    def __len__(self) -> int:
        return len(self.score)


@dataclass
class LevelSelectivity:
    """Selectivity at one level: the per-feature ``summary`` and, for classes, the full one-vs-rest
    tables ``per_class`` = ``{"auroc"|"cohens_d"|"q_mannwhitney"|"q_welch": {class: [F]}}``."""

    summary: SelectivitySummary
    per_class: dict | None

    @classmethod
    def from_json(cls, d: dict) -> LevelSelectivity:
        return cls(SelectivitySummary.from_json(d["summary"]), d["per_class"])

    def to_json(self) -> dict:
        return {"summary": self.summary.to_json(), "per_class": self.per_class}


@dataclass
class TopFeature:
    """One of an attribute's most selective features (utterance-level score), with both levels' numbers
    and, where an analysis of the SAE was given, its best phone/word label and F1 (``labels``)."""

    feature: int
    score: float | None
    q_utterance: float | None
    q_frame: float | None
    class_: str | None = None
    auroc_utterance: float | None = None
    cohens_d_utterance: float | None = None
    auroc_frame: float | None = None
    rho_utterance: float | None = None
    rho_frame: float | None = None
    labels: dict[str, tuple[str | None, float | None]] = field(default_factory=dict)
    """``{"phone": (label or None, F1), "word": ...}`` for the kinds the analysis has."""

    @classmethod
    def from_json(cls, d: dict) -> TopFeature:
        return cls(
            feature=d["feature"],
            score=d["score"],
            q_utterance=d["q_utterance"],
            q_frame=d["q_frame"],
            class_=d.get("class"),
            auroc_utterance=d.get("auroc_utterance"),
            cohens_d_utterance=d.get("cohens_d_utterance"),
            auroc_frame=d.get("auroc_frame"),
            rho_utterance=d.get("rho_utterance"),
            rho_frame=d.get("rho_frame"),
            labels={k: (d[k], d.get(f"{k}_f1")) for k in _LABEL_KINDS if k in d},
        )

    def to_json(self) -> dict:
        out: dict[str, Any] = {"feature": self.feature, "score": self.score}
        if self.class_ is not None:
            out.update(
                {
                    "class": self.class_,
                    "auroc_utterance": self.auroc_utterance,
                    "cohens_d_utterance": self.cohens_d_utterance,
                    "q_utterance": self.q_utterance,
                    "auroc_frame": self.auroc_frame,
                    "q_frame": self.q_frame,
                }
            )
        else:
            out.update(
                {
                    "rho_utterance": self.rho_utterance,
                    "q_utterance": self.q_utterance,
                    "rho_frame": self.rho_frame,
                    "q_frame": self.q_frame,
                }
            )
        for kind, (label, f1) in self.labels.items():
            out[kind], out[f"{kind}_f1"] = label, f1
        return out


@dataclass
class AttributeBlock:
    """Everything probe.json holds about one attribute.

    ``counts``/``dropped``: ``{class: {"utterances", "speakers"}}`` (for numbers ``counts`` has
    ``utterances``, ``speakers``, ``min``, ``max``). ``features``: selectivity per level; ``probes``:
    ``{level: {model: {feature set: metrics}}}`` with metrics ``balanced_accuracy``, ``recall``,
    ``macro_f1``, ``n_rows``… (``r2`` for numbers); ``n_rows``: rows per level."""

    kind: str
    column: str
    classes: list[str]
    counts: dict
    dropped: dict
    notes: list[str]
    features: dict[str, LevelSelectivity]
    probes: dict[str, dict[str, dict[str, dict]]]
    n_rows: dict[str, int]
    selectivity: SelectivitySummary
    top_features: list[TopFeature]
    transfer: dict | None = None
    """Cross-corpus check (``probe(..., test_corpus=)``): ``{"test_corpus", "classes" (shared),
    "only_train", "only_test", "n_test_speakers", "probes": {level: {model: {feature set: metrics}}},
    "n_train_LEVEL", "n_test_LEVEL"}``, trained on this corpus and scored on the other; None without one."""

    @property
    def categorical(self) -> bool:
        return self.kind == "categorical"

    @property
    def metric(self) -> str:
        """The probe metric of this attribute: ``balanced_accuracy`` for classes, ``r2`` for numbers."""
        return "balanced_accuracy" if self.categorical else "r2"

    def scores(self, level: str = "utterance", model: str = "logreg") -> dict[str, float | None]:
        """``{feature set: balanced accuracy (or R²)}``, e.g. ``{"sae": .93, "raw": .95, "top1": .71}``."""
        return {name: m[self.metric] for name, m in self.probes[level][model].items()}

    @classmethod
    def from_json(cls, d: dict) -> AttributeBlock:
        return cls(
            kind=d["kind"],
            column=d["column"],
            classes=d["classes"],
            counts=d["counts"],
            dropped=d["dropped"],
            notes=d["notes"],
            features={lvl: LevelSelectivity.from_json(v) for lvl, v in d["features"].items()},
            probes=d["probes"],
            n_rows={lvl: d[f"n_rows_{lvl}"] for lvl in LEVELS if f"n_rows_{lvl}" in d},
            selectivity=SelectivitySummary.from_json(d["selectivity"]),
            top_features=[TopFeature.from_json(t) for t in d["top_features"]],
            transfer=d.get("transfer"),
        )

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "column": self.column,
            "classes": self.classes,
            "counts": self.counts,
            "dropped": self.dropped,
            "notes": self.notes,
            "features": {lvl: v.to_json() for lvl, v in self.features.items()},
            "probes": self.probes,
            **{f"n_rows_{lvl}": n for lvl, n in self.n_rows.items()},
            "selectivity": self.selectivity.to_json(),
            "top_features": [t.to_json() for t in self.top_features],
            **({} if self.transfer is None else {"transfer": self.transfer}),
        }


@dataclass
class AblationCondition:
    """One ablation condition: the ``features`` removed, the linear probes re-trained on the edited
    activations (``probes[attribute][level][feature set]``), and, when transcripts were made, ``wer``
    (``{"wer_vs_clean_transcript", "wer"?}``) and a few ``examples``."""

    features: list[int]
    probes: dict[str, dict[str, dict[str, float | None]]]
    wer: dict[str, float | None] = field(default_factory=dict)
    examples: list[dict] | None = None

    @classmethod
    def from_json(cls, d: dict) -> AblationCondition:
        wer = {k: d[k] for k in ("wer_vs_clean_transcript", "wer") if k in d}
        return cls(features=d["features"], probes=d["probes"], wer=wer, examples=d.get("examples"))

    def to_json(self) -> dict:
        out = {"features": self.features, "probes": self.probes, **self.wer}
        if self.examples is not None:
            out["examples"] = self.examples
        return out


@dataclass
class Ablation:
    """The ablation check: the top-``k`` features of each ablated attribute (and k random live ones)."""

    k: int
    n_wer_utterances: int
    conditions: dict[str, AblationCondition]

    @classmethod
    def from_json(cls, d: dict) -> Ablation | None:
        if not d:
            return None
        return cls(
            k=d["k"],
            n_wer_utterances=d["n_wer_utterances"],
            conditions={c: AblationCondition.from_json(v) for c, v in d["conditions"].items()},
        )

    def to_json(self) -> dict:
        return {
            "k": self.k,
            "n_wer_utterances": self.n_wer_utterances,
            "conditions": {c: v.to_json() for c, v in self.conditions.items()},
        }


@dataclass
class ProbedSAE:
    """The SAE a probe ran on."""

    path: str | None
    hook: str
    d_sae: int
    architecture: str | None
    model_name: str | None

    @classmethod
    def from_json(cls, d: dict) -> ProbedSAE:
        return cls(
            path=d.get("path"),
            hook=d["hook"],
            d_sae=int(d["d_sae"]),
            architecture=d.get("architecture"),
            model_name=d.get("model_name"),
        )

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "hook": self.hook,
            "d_sae": self.d_sae,
            "architecture": self.architecture,
            "model_name": self.model_name,
        }


@dataclass
class ProbeReport:
    """The whole of probe.json."""

    sae: ProbedSAE
    model: str | None
    corpus: str
    store: str | None
    metadata: str | None
    analysis: dict | None
    """``{"path", "corpus"}`` of the analysis whose labels annotate the top features, or None."""
    n_utterances: int
    n_frames: int
    n_frames_sampled: int
    n_speakers: int
    notes: list[str]
    options: dict
    attributes: dict[str, AttributeBlock]
    ablation: Ablation | None = None
    test_corpus: str | None = None
    """The cross-corpus test set (spec, path or ``store PATH``), when one was given."""
    format: str = FORMAT
    path: Path | None = None
    """The file it was read from (not written)."""

    @classmethod
    def from_json(cls, d: dict, path: Path | None = None) -> ProbeReport:
        where = path if path is not None else "the probe report given"
        if not str(d.get("format", "")).startswith("whisper-sae-probe/"):
            raise ValueError(
                f"{where} is not a whisper-sae probe.json (format {d.get('format')!r}); "
                "pass the probe.json that `whisper-sae probe` wrote"
            )
        try:
            return cls(
                sae=ProbedSAE.from_json(d["sae"]),
                model=d.get("model"),
                corpus=d["corpus"],
                store=d.get("store"),
                metadata=d.get("metadata"),
                analysis=d.get("analysis"),
                n_utterances=d["n_utterances"],
                n_frames=d["n_frames"],
                n_frames_sampled=d["n_frames_sampled"],
                n_speakers=d["n_speakers"],
                notes=d["notes"],
                options=d["options"],
                attributes={a: AttributeBlock.from_json(b) for a, b in d["attributes"].items()},
                ablation=Ablation.from_json(d.get("ablation") or {}),
                test_corpus=d.get("test_corpus"),
                format=d["format"],
                path=path,
            )
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"{where} is not a complete probe.json (missing or malformed {err}); "
                "run `whisper-sae probe` again to rewrite it"
            ) from None

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "sae": self.sae.to_json(),
            "model": self.model,
            "corpus": self.corpus,
            "store": self.store,
            **({} if self.test_corpus is None else {"test_corpus": self.test_corpus}),
            "metadata": self.metadata,
            "analysis": self.analysis,
            "n_utterances": self.n_utterances,
            "n_frames": self.n_frames,
            "n_frames_sampled": self.n_frames_sampled,
            "n_speakers": self.n_speakers,
            "notes": self.notes,
            "options": self.options,
            "attributes": {a: b.to_json() for a, b in self.attributes.items()},
            "ablation": self.ablation.to_json() if self.ablation is not None else {},
        }

    def dumps(self) -> str:
        """The file's text (one line of JSON and a newline, as ``probe`` always wrote it)."""
        return json.dumps(self.to_json()) + "\n"

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.dumps(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProbeReport:
        """Read ``path`` (a probe.json, or the folder holding one); its recorded paths are resolved
        against its folder so they work from any working directory."""
        from whisper_sae.artifacts import resolve_path

        raw = Path(path)
        file = raw / "probe.json" if raw.is_dir() else raw
        if not file.is_file():
            raise FileNotFoundError(
                f"no probe.json at {raw}; run `whisper-sae probe SAE_DIR --corpus ... --attribute ...` first"
            )
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{file} is not valid JSON ({err}); run `whisper-sae probe` again to rewrite it") from None
        if not isinstance(doc, dict):
            raise ValueError(f"{file} is not a whisper-sae probe.json (it holds a {type(doc).__name__})")
        report = cls.from_json(doc, path=file)
        base = file.parent
        report.sae.path = resolve_path(report.sae.path, base)
        report.corpus = _resolve_spec(report.corpus, base)
        report.store, report.metadata = resolve_path(report.store, base), resolve_path(report.metadata, base)
        report.test_corpus = _resolve_spec(report.test_corpus, base)
        if report.analysis:
            report.analysis = {
                **report.analysis,
                "path": resolve_path(report.analysis.get("path"), base),
                "corpus": _resolve_spec(report.analysis.get("corpus"), base),
            }
        return report


def _resolve_spec(spec: str | None, base: Path) -> str | None:
    """A corpus entry is a path, a spec (``hf:``), ``store PATH`` (the probe read the store's records) or
    a placeholder (``<in-memory utterances>``)."""
    from whisper_sae.artifacts import resolve_path

    if spec is None or spec.startswith("<"):
        return spec
    if spec.startswith("store "):
        return "store " + resolve_path(spec[len("store ") :], base)
    return resolve_path(spec, base)
