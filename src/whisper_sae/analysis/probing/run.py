"""Do the SAE's features encode who speaks? ``probe`` measures per-feature selectivity for speaker
attributes (gender, accent, rate, pitch, the speaker id, any metadata column), trains probes scored on
held-out speakers, draws the usual pictures, and checks by ablation whether the most selective
features carry the information, writing ``probe.json``, ``probe.md`` and PNGs into one folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from whisper_sae.artifacts import open_corpus, open_model, open_sae, open_store, output_dir_for, record_path
from whisper_sae.audio.constants import WINDOW_SAMPLES

from ..checks import check_sae_analysis, check_sae_model, check_sae_store
from . import plots
from .ablate import ablation_transform, random_alive_features, transcribe_ablated, wer_rows
from .attributes import SPEAKER, AttributeLabels, apply_metadata, resolve
from .data import (
    FrameActivations,
    codes_and_means,
    encoder_frames,
    records_of,
    sample_frames,
    store_frames,
    stored_utterances,
)
from .derive import apply_derivations, parse_derivation
from .models import MODELS, ProbeSettings, run_probes
from .report import attach_labels, selectivity_block, top_features, write_markdown
from .schema import FORMAT, ProbeReport
from .selectivity import categorical_selectivity, continuous_selectivity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeOptions:
    """Knobs of ``probe``; the defaults keep a few minutes of audio to about a minute of CPU."""

    min_speakers: int = 3
    """A class needs at least this many distinct speakers, or it is dropped (and the drop is reported)."""
    merge_rare: str | None = None
    """Pool the classes short of min_speakers into one class of this name (e.g. other) instead of dropping them."""
    frames_per_utterance: int = 24
    """Frames per utterance used at frame level (evenly spread); utterance means use all frames."""
    max_frames: int = 6000
    """Cap on frame-level rows in all (fewer per utterance on large corpora)."""
    ks: tuple[int, ...] = (1, 4, 16)
    models: tuple[str, ...] = MODELS
    n_top: int = 10
    """Features listed per attribute in probe.md."""
    ablate: tuple[str, ...] = ("gender", "accent", "emotion")
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
    """What ``probe`` wrote: the folder, probe.json typed (``report``) and as a plain dict (``summary``,
    its paths resolved to the working directory), and the PNG paths."""

    out: Path
    report: ProbeReport
    summary: dict
    plots: list[Path]

    @property
    def attributes(self) -> dict:
        return self.summary["attributes"]

    def balanced_accuracy(self, attribute: str, level: str = "utterance", model: str = "logreg") -> dict[str, float]:
        """``{feature set: balanced accuracy}`` of one attribute, e.g. ``{"sae": .93, "raw": .95, "top1": .71}``
        (R² for a number)."""
        return self.report.attributes[attribute].scores(level, model)


@dataclass
class _ProbeRun:
    """One probe's data, as the ablation check needs it: the models, the frames and their sample, the
    resolved labels and which utterances carry one (``used``), and the codes (``arrays``)."""

    sae: object
    lw: object
    hook: str
    frames: FrameActivations
    sample: np.ndarray
    frame_utt: np.ndarray
    labels: dict[str, AttributeLabels]
    used: np.ndarray
    records: list[dict]
    """The records of the used utterances."""
    utts: list
    """All utterances (indexed by ``used``)."""
    arrays: dict[str, np.ndarray]
    blocks: dict[str, dict]
    options: ProbeOptions


def probe(
    sae_dir,
    corpus,
    attributes: Iterable[str] = ("gender",),
    *,
    metadata=None,
    derive=(),
    out=None,
    max_utterances: int | None = None,
    model=None,
    options: ProbeOptions = ProbeOptions(),
    analysis=None,
    store=None,
    test_corpus=None,
    test_store=None,
    sae=None,
    lw=None,
) -> ProbeResult:
    """Probe the SAE at ``sae_dir`` (its ``cfg.hook_name``, an encoder hook) for ``attributes`` over ``corpus``.

    ``corpus``: a spec for ``load_corpus`` or an iterable of ``Utterance``; ``metadata``: a CSV/TSV or
    ``SPEAKERS.TXT`` keyed by utterance or speaker id whose columns become attributes; ``model``: the
    Whisper spec (default: the SAE's ``model_name``). ``out``: the folder written (default
    ``SAE_DIR/probe``, where the dashboard looks). ``analysis``: an AnalysisResult or its folder
    (default ``SAE_DIR/analysis`` when present) whose phone/word labels annotate the top features.
    ``store``: an activation store (path or object) holding the SAE's hook; its frames are used instead of
    running Whisper again, and with ``corpus=None`` its utterance records (speaker, attributes, audio
    path) stand for the corpus.
    ``test_corpus``/``test_store``: a second corpus (spec, utterances, or a store of the SAE's hook whose
    records stand for it) for a cross-corpus check: per categorical attribute, probes trained on every
    labelled utterance of the main corpus and scored on this one, over the classes both have (the
    attribute block's ``transfer``).
    ``derive``: two-class attributes made from a comparison on a column (``"child=age<=12"``, see
    ``probing.derive``); each is probed too, whether or not it is named in ``attributes``.
    ``sae``/``lw`` pass already-loaded objects. Label problems are found before any model runs; see
    ``probing.attributes`` for what is an error.
    """
    attributes = list(dict.fromkeys(attributes))
    if not attributes:
        raise ValueError("probe needs at least one attribute, e.g. gender or accent")
    sae, _ = open_sae(sae if sae is not None else sae_dir)
    hook = sae.cfg.hook_name
    if not hook:
        raise ValueError(
            f"the SAE at {sae_dir} does not record its hook (cfg.hook_name); probe needs it to know where to read"
        )
    analysis = _analysis_for(analysis, sae, sae_dir, hook)
    store = open_store(store)
    if store is not None:
        check_sae_store(sae, sae_dir, store, hook)
    if corpus is None and store is None:
        raise ValueError("probe needs a corpus, or an activation store whose utterance records carry the attributes")
    spec, utts, records = (
        _read_corpus(corpus, max_utterances)
        if corpus is not None
        else (f"store {store.path}", *records_of(stored_utterances(store, max_utterances)))
    )
    notes = apply_metadata(records, metadata) if metadata is not None else []
    derive = [parse_derivation(d) if isinstance(d, str) else d for d in derive]
    derived = apply_derivations(records, derive)
    for n in derived:
        log.info("%s", n)
    notes += derived
    attributes += [d.name for d in derive if d.name not in attributes]
    labels = {
        a: resolve(records, a, min_speakers=options.min_speakers, merge_rare=options.merge_rare) for a in attributes
    }
    for lab in labels.values():
        for n in lab.notes:
            log.warning("%s", n)
    used = np.flatnonzero(np.any([lab.mask for lab in labels.values()], axis=0))

    lw = open_model(lw if lw is not None else model, sae=sae)
    check_sae_model(sae, sae_dir, lw, hook)
    if store is not None:
        frames = store_frames(store, hook, [utts[i].id for i in used])
    else:
        frames = encoder_frames(
            lw, hook, [utts[i] for i in used], batch_size=options.batch_size, progress=options.progress
        )
    sample = sample_frames(
        frames.utt, len(used), per_utterance=options.frames_per_utterance, max_frames=options.max_frames
    )
    arrays = codes_and_means(sae, frames.raw, frames.utt, len(used), sample)
    frame_utt = frames.utt[sample]
    sub_records = [records[i] for i in used]

    out = Path(out) if out is not None else (output_dir_for(sae_dir, "probe") if sae_dir is not None else Path("probe"))
    out.mkdir(parents=True, exist_ok=True)
    blocks, pictures = {}, []
    test = _test_set(test_corpus, test_store, sae, sae_dir, lw, hook, attributes, max_utterances, options)
    for name, lab in labels.items():
        values = [lab.values[i] for i in used]
        groups, group_note = _groups(name, sub_records)
        if group_note:
            lab.notes.append(group_note)
        blocks[name] = _attribute_block(lab, values, groups, arrays, frame_utt, options)
        if test is not None and lab.kind == "categorical":
            blocks[name]["transfer"] = _transfer_block(lab, values, arrays, frame_utt, test, options)
        if analysis is not None:
            attach_labels(blocks[name]["top_features"], analysis)
        pictures += _attribute_plots(lab, values, arrays, blocks[name], out, options)
    ablation = _ablation(
        _ProbeRun(
            sae=sae,
            lw=lw,
            hook=hook,
            frames=frames,
            sample=sample,
            frame_utt=frame_utt,
            labels=labels,
            used=used,
            records=sub_records,
            utts=utts,
            arrays=arrays,
            blocks=blocks,
            options=options,
        )
    )

    def rec(path):  # paths inside probe.json are relative to its folder
        return record_path(None if path is None else str(path), out)

    summary = {
        "format": FORMAT,
        "sae": {
            "path": rec(sae_dir),
            "hook": hook,
            "d_sae": sae.cfg.d_sae,
            "architecture": sae.cfg.architecture,
            "model_name": sae.cfg.model_name,
        },
        "model": getattr(lw, "name", None),
        "corpus": _record_spec(spec, out),
        "store": None if store is None else rec(store.path),
        **({} if test is None else {"test_corpus": _record_spec(test.spec, out)}),
        "metadata": rec(metadata),
        "analysis": None
        if analysis is None
        else {"path": rec(analysis.path), "corpus": _record_spec(analysis.meta.get("corpus"), out)},
        "n_utterances": int(len(used)),
        "n_frames": int(len(frames.raw)),
        "n_frames_sampled": int(len(sample)),
        "n_speakers": len({r["speaker"] or r["id"] for r in sub_records}),
        "notes": notes,
        "options": asdict(options),
        "attributes": blocks,
        "ablation": ablation,
    }
    report = ProbeReport.from_json(json.loads(json.dumps(_jsonable(summary))))
    report.write(out / "probe.json")
    report = ProbeReport.load(out / "probe.json")  # paths resolved from here, as every reader sees them
    write_markdown(report, out / "probe.md", [p.name for p in pictures])
    return ProbeResult(out=out, report=report, summary=report.to_json(), plots=pictures)


def _record_spec(spec: str | None, out: Path) -> str | None:
    """The corpus entry of probe.json: a path relative to the probe folder; ``store PATH`` likewise."""
    if spec is None:
        return None
    if spec.startswith("store "):
        return "store " + record_path(spec[len("store ") :], out)
    return spec if spec.startswith("<") else record_path(spec, out)


def _analysis_for(analysis, sae, sae_dir, hook: str):
    """The AnalysisResult whose labels annotate the top features, checked against the SAE; None if
    none was given and ``SAE_DIR/analysis`` does not exist."""
    from whisper_sae.analysis.features.result import AnalysisResult

    if analysis is None:
        default = output_dir_for(sae_dir, "analysis") if sae_dir is not None else None
        if default is None or not (default / "analysis.json").is_file():
            return None
        analysis = default
    result = analysis if isinstance(analysis, AnalysisResult) else AnalysisResult.load(analysis)
    check_sae_analysis(sae, sae_dir, result, hook)
    return result


@dataclass
class _TestSet:
    """The held-out corpus of a cross-corpus check: its spec, label records per attribute, and arrays."""

    spec: str
    labels: dict[str, AttributeLabels]
    used: np.ndarray
    arrays: dict[str, np.ndarray]
    frame_utt: np.ndarray
    n_speakers: int


def _test_set(corpus, store, sae, sae_dir, lw, hook, attributes, max_utterances, options) -> _TestSet | None:
    """Frames, codes and labels of the cross-corpus test set (None when neither is given)."""
    if corpus is None and store is None:
        return None
    store = open_store(store)
    if store is not None:
        check_sae_store(sae, sae_dir, store, hook)
    spec, utts, records = (
        _read_corpus(corpus, max_utterances)
        if corpus is not None
        else (f"store {store.path}", *records_of(stored_utterances(store, max_utterances)))
    )
    # The test corpus may have one or two speakers (TESS has two): it is never split, so keep every class.
    labels, problems = {}, []
    for a in attributes:
        try:
            labels[a] = resolve(records, a, min_speakers=1, categorical=True)
        except ValueError as err:
            problems.append(str(err))
            log.warning("cross-corpus test %s: %s; attribute %s skipped there", spec, err, a)
    if not labels:
        raise ValueError(f"cross-corpus test corpus {spec}: no attribute can be scored there ({'; '.join(problems)})")
    used = np.flatnonzero(np.any([lab.mask for lab in labels.values()], axis=0))
    ids = [utts[i].id for i in used]
    frames = (
        store_frames(store, hook, ids)
        if store is not None
        else encoder_frames(lw, hook, [utts[i] for i in used], batch_size=options.batch_size, progress=options.progress)
    )
    sample = sample_frames(
        frames.utt, len(used), per_utterance=options.frames_per_utterance, max_frames=options.max_frames
    )
    arrays = codes_and_means(sae, frames.raw, frames.utt, len(used), sample)
    speakers = {records[i]["speaker"] or records[i]["id"] for i in used}
    return _TestSet(spec, labels, used, arrays, frames.utt[sample], len(speakers))


def _transfer_block(lab: AttributeLabels, values: list, arrays: dict, frame_utt, test: _TestSet, options) -> dict:
    """Train on the whole main corpus, score on the test corpus, over the classes both hold."""
    other = test.labels.get(lab.name)
    if other is None:
        return {"test_corpus": test.spec, "classes": [], "note": "the test corpus has no such attribute"}
    test_values = [other.values[i] for i in test.used]
    shared = sorted(set(lab.classes) & {v for v in test_values if v is not None})
    block = {
        "test_corpus": test.spec,
        "classes": shared,
        "only_train": sorted(set(lab.classes) - set(shared)),
        "only_test": sorted({v for v in test_values if v is not None} - set(shared)),
        "n_test_speakers": test.n_speakers,
        "probes": {},
    }
    if len(shared) < 2:
        block["note"] = f"{len(shared)} class(es) in common; nothing to score"
        return block
    keep = lambda vs: [v if v in shared else None for v in vs]  # noqa: E731
    train = _levels(keep(values), np.zeros(len(values)), arrays, frame_utt, True)
    held = _levels(keep(test_values), np.zeros(len(test_values)), test.arrays, test.frame_utt, True)
    for level in train:
        codes, raw, y, _ = train[level]
        t_codes, t_raw, t_y, _ = held[level]
        n = len(y)
        folds = [(np.arange(n), np.arange(n, n + len(t_y)))]
        sets = {"sae": np.concatenate([codes, t_codes]), "raw": np.concatenate([raw, t_raw])}
        block["probes"][level] = run_probes(
            sets,
            np.concatenate([y, t_y]),
            None,
            categorical=True,
            ks=options.ks,
            models=options.models,
            settings=options.settings,
            folds=folds,
        )
        block[f"n_train_{level}"], block[f"n_test_{level}"] = int(n), int(len(t_y))
    return block


def _read_corpus(corpus, max_utterances: int | None) -> tuple[str, list, list[dict]]:
    utterances, spec = open_corpus(corpus, max_utterances)
    utts, records = records_of(utterances)
    if not utts:
        raise ValueError(f"corpus {spec} yielded no utterances; check the path or spec")
    return str(spec), utts, records


def _groups(name: str, records: list[dict]) -> tuple[np.ndarray, str | None]:
    """Cross-validation groups: the speaker, so no speaker is on both sides. For the speaker attribute
    itself the groups are the texts (a speaker's utterances of one text stay together) or utterances."""
    if name != SPEAKER:
        missing = sum(r["speaker"] is None for r in records)
        note = (
            (
                f"{missing} utterances have no speaker id; each is its own group, so held-out scores may "
                "include seen speakers"
            )
            if missing
            else None
        )
        return np.array([r["speaker"] or r["id"] for r in records], dtype=object), note
    if all(r.get("text") for r in records):
        return np.array(
            [r["text"] for r in records], dtype=object
        ), "speaker probe: folds hold out texts (not speakers), so it scores recognising known voices on unseen content"
    return np.array(
        [r["id"] for r in records], dtype=object
    ), "speaker probe: folds hold out utterances (no transcripts to hold out texts)"


def _levels(values: list, groups: np.ndarray, arrays: dict, frame_utt: np.ndarray, categorical: bool) -> dict:
    """``{level: (codes, raw, y, groups)}`` for the labelled rows at frame level and utterance level."""
    has = np.array([v is not None for v in values])
    y_all = np.array(
        [v if v is not None else ("" if categorical else np.nan) for v in values],
        dtype=object if categorical else np.float64,
    )
    rows_f = has[frame_utt]
    return {
        "frame": (
            arrays["codes_frames"][rows_f],
            arrays["raw_frames"][rows_f],
            y_all[frame_utt[rows_f]],
            groups[frame_utt[rows_f]],
        ),
        "utterance": (arrays["codes_pooled"][has], arrays["raw_pooled"][has], y_all[has], groups[has]),
    }


def _attribute_block(
    lab: AttributeLabels, values: list, groups: np.ndarray, arrays: dict, frame_utt: np.ndarray, options: ProbeOptions
) -> dict:
    categorical = lab.kind == "categorical"
    block = {
        "kind": lab.kind,
        "column": lab.column,
        "classes": lab.classes,
        "counts": lab.counts,
        "dropped": lab.dropped,
        "notes": lab.notes,
        "features": {},
        "probes": {},
    }
    for level, (codes, raw, y, g) in _levels(values, groups, arrays, frame_utt, categorical).items():
        stats = categorical_selectivity(codes, y, lab.classes) if categorical else continuous_selectivity(codes, y)
        block["features"][level] = selectivity_block(stats)
        block["probes"][level] = run_probes(
            {"sae": codes, "raw": raw},
            y,
            g,
            categorical=categorical,
            ks=options.ks,
            models=options.models,
            settings=options.settings,
        )
        block["n_rows_" + level] = int(len(y))
    block["selectivity"] = block["features"]["utterance"]["summary"]
    block["top_features"] = top_features(block, options.n_top)
    return block


def _attribute_plots(
    lab: AttributeLabels, values: list, arrays: dict, block: dict, out: Path, options: ProbeOptions
) -> list[Path]:
    has = np.array([v is not None for v in values])
    pooled = arrays["codes_pooled"][has]
    y = np.array([v for v in values if v is not None], dtype=object if lab.kind == "categorical" else np.float64)
    categorical = lab.kind == "categorical"
    made = [
        plots.projection(
            pooled,
            y,
            categorical=categorical,
            title=f"{lab.name}: utterance-mean SAE codes, PCA",
            out=out / f"{lab.name}_pca.png",
        )
    ]
    if options.tsne:
        made.append(
            plots.projection(
                pooled,
                y,
                categorical=categorical,
                title=f"{lab.name}: utterance-mean SAE codes, t-SNE",
                out=out / f"{lab.name}_tsne.png",
                method="tsne",
                seed=options.seed,
            )
        )
    if categorical:
        top = [t["feature"] for t in block["top_features"]][:20]
        made.append(
            plots.class_heatmap(
                pooled,
                y,
                lab.classes,
                top,
                title=f"{lab.name}: class means of the most selective features",
                out=out / f"{lab.name}_heatmap.png",
            )
        )
        made.append(
            plots.class_dendrogram(
                pooled,
                y,
                lab.classes,
                title=f"{lab.name}: classes clustered by mean codes",
                out=out / f"{lab.name}_dendrogram.png",
            )
        )
    return [p for p in made if p is not None]


def _ablation(run: _ProbeRun) -> dict:
    """Remove the top-k selective features of each ablated attribute (and, as a control, k random live
    features); re-train the linear probes on the edited activations and re-transcribe a few utterances."""
    options, blocks, used = run.options, run.blocks, run.used
    targets = [a for a in options.ablate if a in blocks and blocks[a]["kind"] == "categorical"]
    if not targets or options.ablate_k <= 0:
        return {}
    conditions = {"none": []}
    for a in targets:
        conditions[f"top{options.ablate_k} {a}"] = [t["feature"] for t in top_features(blocks[a], options.ablate_k)]
    chosen = {f for fs in conditions.values() for f in fs}
    conditions[f"random{options.ablate_k}"] = random_alive_features(
        run.arrays["codes_pooled"], options.ablate_k, chosen, options.seed
    )
    # Transcribe utterances spread over the corpus (every n-th), so several speakers are in the sample.
    step = max(1, len(used) // max(options.wer_utterances, 1))
    wer_idx = [int(used[i]) for i in range(0, len(used), step)][: options.wer_utterances]
    audios = [np.asarray(run.utts[i].audio, np.float32)[:WINDOW_SAMPLES] for i in wer_idx]
    refs = [run.utts[i].text for i in wer_idx]
    result, clean = {}, None
    for cond, feats in conditions.items():
        transform = ablation_transform(run.sae, feats) if feats else None
        edited = (
            run.arrays
            if transform is None
            else codes_and_means(run.sae, run.frames.raw, run.frames.utt, len(used), run.sample, transform=transform)
        )
        entry = {"features": feats, "probes": {}}
        for name in targets:
            lab = run.labels[name]
            values = [lab.values[i] for i in used]
            groups, _ = _groups(name, run.records)
            entry["probes"][name] = _probe_only(lab, values, groups, edited, run.frame_utt, options)
        if options.wer_utterances > 0:
            hyps = transcribe_ablated(run.lw, run.hook, audios, transform, batch_size=options.batch_size)
            clean = hyps if clean is None else clean
            entry.update(wer_rows(refs, clean, hyps))
            entry["examples"] = [
                {"id": run.utts[i].id, "reference": r, "hypothesis": h}
                for i, r, h in list(zip(wer_idx, refs, hyps))[:3]
            ]
        result[cond] = entry
    return {
        "k": options.ablate_k,
        "n_wer_utterances": len(wer_idx) if options.wer_utterances > 0 else 0,
        "conditions": result,
    }


def _probe_only(lab, values, groups, arrays, frame_utt, options) -> dict:
    """Linear-probe scores only (balanced accuracy or R²) on sae codes and raw activations, both levels."""
    categorical = lab.kind == "categorical"
    key = "balanced_accuracy" if categorical else "r2"
    out = {}
    for level, (codes, raw, y, g) in _levels(values, groups, arrays, frame_utt, categorical).items():
        scores = run_probes(
            {"sae": codes, "raw": raw},
            y,
            g,
            categorical=categorical,
            ks=(),
            models=("logreg",),
            settings=options.settings,
        )
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
