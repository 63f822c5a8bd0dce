"""Do the SAE's features encode who speaks? ``probe`` measures per-feature selectivity for speaker
attributes (gender, accent, rate, pitch, the speaker id, any metadata column), trains probes scored on
held-out speakers, draws the usual pictures, and checks by ablation whether the most selective
features carry the information, writing ``probe.json``, ``probe.md`` and PNGs into one folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from whisper_sae.analysis import probe_plots as plots
from whisper_sae.analysis.probe_ablate import ablation_transform, random_alive_features, transcribe_ablated, wer_rows
from whisper_sae.analysis.probe_data import (codes_and_means, encoder_frames, records_of, sample_frames, store_frames,
                                             stored_utterances)
from whisper_sae.analysis.probe_labels import SPEAKER, AttributeLabels, apply_metadata, resolve
from whisper_sae.analysis.probe_models import MODELS, ProbeSettings, run_probes
from whisper_sae.analysis.probe_report import attach_labels, selectivity_block, top_features, write_markdown
from whisper_sae.analysis.probe_stats import categorical_selectivity, continuous_selectivity

log = logging.getLogger(__name__)
FORMAT = "whisper-sae-probe/1"


@dataclass(frozen=True)
class ProbeOptions:
    """Knobs of ``probe``; the defaults keep a few minutes of audio to about a minute of CPU."""

    min_speakers: int = 3
    """A class needs at least this many distinct speakers, or it is dropped (and the drop is reported)."""
    frames_per_utterance: int = 24
    """Frames per utterance used at frame level (evenly spread); utterance means use all frames."""
    max_frames: int = 6000
    """Cap on frame-level rows in all (fewer per utterance on large corpora)."""
    ks: tuple[int, ...] = (1, 4, 16)
    models: tuple[str, ...] = MODELS
    n_top: int = 10
    """Features listed per attribute in probe.md."""
    ablate: tuple[str, ...] = ("gender", "accent")
    """Attributes whose top features are ablated (those present and categorical)."""
    ablate_k: int = 10
    wer_utterances: int = 24
    """Utterances transcribed per ablation condition (0 skips the WER part)."""
    tsne: bool = True
    batch_size: int = 8
    seed: int = 0
    progress: bool = True
    settings: ProbeSettings = field(default_factory=ProbeSettings)


@dataclass
class ProbeResult:
    """What ``probe`` wrote: the folder, the parsed ``probe.json`` and the PNG paths."""

    out: Path
    summary: dict
    plots: list[Path]

    @property
    def attributes(self) -> dict:
        return self.summary["attributes"]

    def balanced_accuracy(self, attribute: str, level: str = "utterance", model: str = "logreg") -> dict[str, float]:
        """``{feature set: balanced accuracy}`` of one attribute, e.g. ``{"sae": .93, "raw": .95, "top1": .71}``."""
        block = self.attributes[attribute]["probes"][level][model]
        key = "balanced_accuracy" if self.attributes[attribute]["kind"] == "categorical" else "r2"
        return {name: m[key] for name, m in block.items()}


def probe(sae_dir, corpus, attributes: Iterable[str] = ("gender",), *, metadata=None, out=None,
          max_utterances: int | None = None, model=None, options: ProbeOptions = ProbeOptions(),
          analysis=None, store=None, sae=None, lw=None) -> ProbeResult:
    """Probe the SAE at ``sae_dir`` (its ``cfg.hook_name``, an encoder hook) for ``attributes`` over ``corpus``.

    ``corpus``: a spec for ``load_corpus`` or an iterable of ``Utterance``; ``metadata``: a CSV/TSV or
    ``SPEAKERS.TXT`` keyed by utterance or speaker id whose columns become attributes; ``model``: the
    Whisper spec (default: the SAE's ``model_name``). ``out``: the folder written (default
    ``SAE_DIR/probe``, where the dashboard looks). ``analysis``: an AnalysisResult or its folder
    (default ``SAE_DIR/analysis`` when present) whose phone/word labels annotate the top features.
    ``store``: an activation store (path or object) holding the SAE's hook; its frames are used instead of
    running Whisper again, and with ``corpus=None`` its utterance records (speaker, attributes, audio
    path) stand for the corpus.
    ``sae``/``lw`` pass already-loaded objects. Label problems are found before any model runs; see
    ``probe_labels`` for what is an error.
    """
    from whisper_sae.sae import SparseAutoencoder
    from whisper_sae.whisper import load_whisper

    attributes = list(dict.fromkeys(attributes))
    if not attributes:
        raise ValueError("probe needs at least one attribute, e.g. gender or accent")
    sae = sae if sae is not None else SparseAutoencoder.from_pretrained(sae_dir)
    sae.eval()
    hook = sae.cfg.hook_name
    if not hook:
        raise ValueError(f"the SAE at {sae_dir} does not record its hook (cfg.hook_name); probe needs it to know where to read")
    analysis = _analysis_for(analysis, sae_dir, sae.cfg.d_sae, hook)
    store = _open_store(store)
    if corpus is None and store is None:
        raise ValueError("probe needs a corpus, or an activation store whose utterance records carry the attributes")
    spec, utts, records = (_read_corpus(corpus, max_utterances) if corpus is not None
                           else (f"store {store.path}", *records_of(stored_utterances(store, max_utterances))))
    notes = apply_metadata(records, metadata) if metadata is not None else []
    labels = {a: resolve(records, a, min_speakers=options.min_speakers) for a in attributes}
    for lab in labels.values():
        for n in lab.notes:
            log.warning("%s", n)
    used = np.flatnonzero(np.any([lab.mask for lab in labels.values()], axis=0))

    lw = lw if lw is not None else load_whisper(model or sae.cfg.model_name)
    sae.check_compatible(lw.d_model, hook, getattr(lw, "name", None))
    if store is not None:
        frames = store_frames(store, hook, [utts[i].id for i in used])
    else:
        frames = encoder_frames(lw, hook, [utts[i] for i in used], batch_size=options.batch_size, progress=options.progress)
    sample = sample_frames(frames.utt, len(used), per_utterance=options.frames_per_utterance, max_frames=options.max_frames)
    arrays = codes_and_means(sae, frames.raw, frames.utt, len(used), sample)
    frame_utt = frames.utt[sample]
    sub_records = [records[i] for i in used]

    out = Path(out) if out is not None else (Path(sae_dir) / "probe" if sae_dir is not None else Path("probe"))
    out.mkdir(parents=True, exist_ok=True)
    blocks, pictures = {}, []
    for name, lab in labels.items():
        values = [lab.values[i] for i in used]
        groups, group_note = _groups(name, sub_records)
        if group_note:
            lab.notes.append(group_note)
        blocks[name] = _attribute_block(lab, values, groups, arrays, frame_utt, options)
        if analysis is not None:
            attach_labels(blocks[name]["top_features"], analysis)
        pictures += _attribute_plots(lab, values, arrays, blocks[name], out, options)
    ablation = _ablation(sae, lw, hook, frames, sample, frame_utt, labels, used, sub_records, utts, blocks, arrays, options)

    summary = {
        "format": FORMAT,
        "sae": {"path": None if sae_dir is None else str(sae_dir), "hook": hook, "d_sae": sae.cfg.d_sae,
                "architecture": sae.cfg.architecture, "model_name": sae.cfg.model_name},
        "model": getattr(lw, "name", None), "corpus": str(spec), "store": None if store is None else str(store.path), "metadata": None if metadata is None else str(metadata),
        "analysis": None if analysis is None else {"path": None if analysis.path is None else str(analysis.path),
                                                   "corpus": analysis.meta.get("corpus")},
        "n_utterances": int(len(used)), "n_frames": int(len(frames.raw)), "n_frames_sampled": int(len(sample)),
        "n_speakers": len({r["speaker"] or r["id"] for r in sub_records}),
        "notes": notes, "options": asdict(options), "attributes": blocks, "ablation": ablation,
    }
    text = json.dumps(_jsonable(summary))
    (out / "probe.json").write_text(text + "\n", encoding="utf-8")
    summary = json.loads(text)
    write_markdown(summary, out / "probe.md", [p.name for p in pictures])
    return ProbeResult(out=out, summary=summary, plots=pictures)


def _analysis_for(analysis, sae_dir, d_sae: int, hook: str):
    """The AnalysisResult whose labels annotate the top features, checked against the SAE; None if
    none was given and ``SAE_DIR/analysis`` does not exist."""
    from whisper_sae.analysis.result import AnalysisResult

    if analysis is None:
        default = Path(sae_dir) / "analysis" if sae_dir is not None else None
        if default is None or not (default / "analysis.json").is_file():
            return None
        analysis = default
    result = analysis if isinstance(analysis, AnalysisResult) else AnalysisResult.load(analysis)
    where = result.path or "the analysis given"
    if result.d_sae != d_sae:
        raise ValueError(f"analysis {where} has {result.d_sae} features but the SAE has {d_sae}; pass the analysis of this SAE")
    if result.meta.get("hook") not in (None, hook):
        raise ValueError(f"analysis {where} is of hook {result.meta.get('hook')!r} but the SAE reads {hook!r}")
    return result


def _open_store(store):
    if store is None or not isinstance(store, (str, Path)):
        return store
    from whisper_sae.activations import ActivationStore

    return ActivationStore(store)


def _read_corpus(corpus, max_utterances: int | None) -> tuple[str, list, list[dict]]:
    from whisper_sae.audio import load_corpus

    spec = corpus if isinstance(corpus, (str, Path)) else getattr(corpus, "spec", "<in-memory utterances>")
    if isinstance(corpus, (str, Path)):
        corpus = load_corpus(str(corpus), max_utterances=max_utterances)
    elif max_utterances is not None:
        corpus = (u for _, u in zip(range(max_utterances), corpus))
    utts, records = records_of(corpus)
    if not utts:
        raise ValueError(f"corpus {spec} yielded no utterances; check the path or spec")
    return str(spec), utts, records


def _groups(name: str, records: list[dict]) -> tuple[np.ndarray, str | None]:
    """Cross-validation groups: the speaker, so no speaker is on both sides. For the speaker attribute
    itself the groups are the texts (a speaker's utterances of one text stay together) or utterances."""
    if name != SPEAKER:
        missing = sum(r["speaker"] is None for r in records)
        note = (f"{missing} utterances have no speaker id; each is its own group, so held-out scores may "
                "include seen speakers") if missing else None
        return np.array([r["speaker"] or r["id"] for r in records], dtype=object), note
    if all(r.get("text") for r in records):
        return np.array([r["text"] for r in records], dtype=object), "speaker probe: folds hold out texts (not speakers), so it scores recognising known voices on unseen content"
    return np.array([r["id"] for r in records], dtype=object), "speaker probe: folds hold out utterances (no transcripts to hold out texts)"


def _levels(values: list, groups: np.ndarray, arrays: dict, frame_utt: np.ndarray, categorical: bool) -> dict:
    """``{level: (codes, raw, y, groups)}`` for the labelled rows at frame level and utterance level."""
    has = np.array([v is not None for v in values])
    y_all = np.array([v if v is not None else ("" if categorical else np.nan) for v in values],
                     dtype=object if categorical else np.float64)
    rows_f = has[frame_utt]
    return {
        "frame": (arrays["codes_frames"][rows_f], arrays["raw_frames"][rows_f], y_all[frame_utt[rows_f]], groups[frame_utt[rows_f]]),
        "utterance": (arrays["codes_pooled"][has], arrays["raw_pooled"][has], y_all[has], groups[has]),
    }


def _attribute_block(lab: AttributeLabels, values: list, groups: np.ndarray, arrays: dict, frame_utt: np.ndarray, options: ProbeOptions) -> dict:
    categorical = lab.kind == "categorical"
    block = {"kind": lab.kind, "column": lab.column, "classes": lab.classes, "counts": lab.counts,
             "dropped": lab.dropped, "notes": lab.notes, "features": {}, "probes": {}}
    for level, (codes, raw, y, g) in _levels(values, groups, arrays, frame_utt, categorical).items():
        stats = categorical_selectivity(codes, y, lab.classes) if categorical else continuous_selectivity(codes, y)
        block["features"][level] = selectivity_block(stats)
        block["probes"][level] = run_probes({"sae": codes, "raw": raw}, y, g, categorical=categorical,
                                            ks=options.ks, models=options.models, settings=options.settings)
        block["n_rows_" + level] = int(len(y))
    block["selectivity"] = block["features"]["utterance"]["summary"]
    block["top_features"] = top_features(block, options.n_top)
    return block


def _attribute_plots(lab: AttributeLabels, values: list, arrays: dict, block: dict, out: Path, options: ProbeOptions) -> list[Path]:
    has = np.array([v is not None for v in values])
    pooled = arrays["codes_pooled"][has]
    y = np.array([v for v in values if v is not None], dtype=object if lab.kind == "categorical" else np.float64)
    categorical = lab.kind == "categorical"
    made = [plots.projection(pooled, y, categorical=categorical, title=f"{lab.name}: utterance-mean SAE codes, PCA", out=out / f"{lab.name}_pca.png")]
    if options.tsne:
        made.append(plots.projection(pooled, y, categorical=categorical, title=f"{lab.name}: utterance-mean SAE codes, t-SNE",
                                     out=out / f"{lab.name}_tsne.png", method="tsne", seed=options.seed))
    if categorical:
        top = [t["feature"] for t in block["top_features"]][:20]
        made.append(plots.class_heatmap(pooled, y, lab.classes, top, title=f"{lab.name}: class means of the most selective features",
                                        out=out / f"{lab.name}_heatmap.png"))
        made.append(plots.class_dendrogram(pooled, y, lab.classes, title=f"{lab.name}: classes clustered by mean codes",
                                           out=out / f"{lab.name}_dendrogram.png"))
    return [p for p in made if p is not None]


def _ablation(sae, lw, hook, frames, sample, frame_utt, labels, used, sub_records, utts, blocks, arrays, options) -> dict:
    """Remove the top-k selective features of each ablated attribute (and, as a control, k random live
    features); re-train the linear probes on the edited activations and re-transcribe a few utterances."""
    targets = [a for a in options.ablate if a in blocks and blocks[a]["kind"] == "categorical"]
    if not targets or options.ablate_k <= 0:
        return {}
    conditions = {"none": []}
    for a in targets:
        conditions[f"top{options.ablate_k} {a}"] = [t["feature"] for t in top_features(blocks[a], options.ablate_k)]
    chosen = {f for fs in conditions.values() for f in fs}
    conditions[f"random{options.ablate_k}"] = random_alive_features(arrays["codes_pooled"], options.ablate_k, chosen, options.seed)
    # Transcribe utterances spread over the corpus (every n-th), so several speakers are in the sample.
    step = max(1, len(used) // max(options.wer_utterances, 1))
    wer_idx = [int(used[i]) for i in range(0, len(used), step)][: options.wer_utterances]
    audios = [np.asarray(utts[i].audio, np.float32)[: 30 * 16000] for i in wer_idx]
    refs = [utts[i].text for i in wer_idx]
    result, clean = {}, None
    for cond, feats in conditions.items():
        transform = ablation_transform(sae, feats) if feats else None
        edited = arrays if transform is None else codes_and_means(sae, frames.raw, frames.utt, len(used), sample, transform=transform)
        entry = {"features": feats, "probes": {}}
        for name in targets:
            lab = labels[name]
            values = [lab.values[i] for i in used]
            groups, _ = _groups(name, sub_records)
            entry["probes"][name] = _probe_only(lab, values, groups, edited, frame_utt, options)
        if options.wer_utterances > 0:
            hyps = transcribe_ablated(lw, hook, audios, transform, batch_size=options.batch_size)
            clean = hyps if clean is None else clean
            entry.update(wer_rows(refs, clean, hyps))
            entry["examples"] = [{"id": utts[i].id, "reference": r, "hypothesis": h} for i, r, h in list(zip(wer_idx, refs, hyps))[:3]]
        result[cond] = entry
    return {"k": options.ablate_k, "n_wer_utterances": len(wer_idx) if options.wer_utterances > 0 else 0, "conditions": result}


def _probe_only(lab, values, groups, arrays, frame_utt, options) -> dict:
    """Linear-probe scores only (balanced accuracy or R²) on sae codes and raw activations, both levels."""
    categorical = lab.kind == "categorical"
    key = "balanced_accuracy" if categorical else "r2"
    out = {}
    for level, (codes, raw, y, g) in _levels(values, groups, arrays, frame_utt, categorical).items():
        scores = run_probes({"sae": codes, "raw": raw}, y, g, categorical=categorical, ks=(), models=("logreg",), settings=options.settings)
        out[level] = {name: m[key] for name, m in scores["logreg"].items()}
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return None if v != v else float(f"{v:.5g}")  # 5 significant digits: tiny q-values stay readable
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x
