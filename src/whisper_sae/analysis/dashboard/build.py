"""``build_dashboard``: a static HTML site of an SAE's features that opens from disk (no server).

``index.html`` lists every feature (sortable, searchable; its data is a JSON literal in the page);
``features/fN.html`` shows a feature's labels and scores, its activation-density histogram and its
top clips (WAV excerpt, spectrogram with the activation drawn over time, transcript with the active
words highlighted). Per-frame activations are recomputed here for the top clips only. Where a
speaker-attribute probe was run (probe.json), pages show each feature's selectivity and the index
can sort and filter by it.
"""

from __future__ import annotations

import json
import logging
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from whisper_sae.activations import ActivationStore
from whisper_sae.audio import AudioError, Utterance, load_audio, load_corpus

from . import render
from .codes import store_codes, utterance_codes
from .dashboard_probe import default_probe_paths, load_selectivity
from .labels import AlignmentIndex
from .pipeline import load_model_for, load_sae
from .result import AnalysisResult

logger = logging.getLogger(__name__)


def page_features(result: AnalysisResult, features=None, max_features: int | None = 200, extra=()) -> list[int]:
    """Features that get a page: those given, else the alive ones, best label F1 first, then most
    frequent, at most ``max_features`` (None: all alive), followed by the alive ones of ``extra``
    (e.g. the most attribute-selective features) not already there."""
    if features is not None:
        bad = [f for f in features if not 0 <= int(f) < result.d_sae]
        if bad:
            raise ValueError(f"features {bad} are out of range; this SAE has features 0..{result.d_sae - 1}")
        return [int(f) for f in features]
    a = result.arrays
    f1 = np.zeros(result.d_sae)
    for kind in ("phone", "word"):
        if f"{kind}_f1" in a:
            f1 = np.maximum(f1, a[f"{kind}_f1"])
    alive = np.nonzero(a["fire_count"] > 0)[0]
    order = alive[np.lexsort((-a["freq"][alive], -f1[alive]))]
    pages = [int(f) for f in (order if max_features is None else order[:max_features])]
    chosen = set(pages)
    return pages + [int(f) for f in extra if a["fire_count"][f] > 0 and f not in chosen]


def _from_paths(result: AnalysisResult, needed: set[int], alignments) -> dict:
    """Utterances rebuilt from the analysis' own records (audio read from each record's path)."""
    found = {}
    for i in needed:
        row = result.utterances[i]
        path = row.get("path")
        if not path or not Path(path).is_file():
            continue
        try:
            audio = load_audio(path)
        except (AudioError, OSError) as err:
            logger.warning("cannot read %s for the dashboard: %s", path, err)
            continue
        beside = Path(path).with_suffix(".json")
        alignment = alignments.get(row["id"]) if alignments is not None else None
        if alignment is None and beside.is_file():
            doc = json.loads(beside.read_text())
            alignment = doc if isinstance(doc, dict) and ("words" in doc or "phones" in doc) else None
        found[i] = Utterance(id=row["id"], audio=audio, text=row.get("text"), speaker=row.get("speaker"),
                             path=path, alignment=alignment)
    return found


def _load_utterances(result: AnalysisResult, needed: set[int], corpus, alignments_dir) -> dict:
    """The utterances (by index into ``result.utterances``) whose clips are shown: from their audio
    paths when those exist, else by reading the corpus again."""
    alignments_dir = alignments_dir or result.meta.get("alignments_dir")
    alignments = AlignmentIndex(alignments_dir) if alignments_dir and Path(alignments_dir).is_dir() else None
    found = _from_paths(result, needed, alignments) if corpus is None else {}
    wanted = {result.utterances[i]["id"]: i for i in needed if i not in found}
    if not wanted:
        return found
    source = corpus if corpus is not None else result.meta.get("corpus")
    if source is None or source == "<in-memory utterances>":
        raise ValueError("the analysis was made from in-memory utterances; pass corpus= (the same utterances "
                         "or a corpus spec) so the dashboard can play its clips")
    items = load_corpus(str(source)) if isinstance(source, (str, Path)) else source
    for utt in items:
        if utt.id in wanted:
            if utt.alignment is None and alignments is not None:
                utt.alignment = alignments.get(utt.id)
            found[wanted.pop(utt.id)] = utt
            if not wanted:
                break
    if wanted:
        logger.warning("%d utterances of the analysis are not in corpus %s (e.g. %s); their clips are left out",
                       len(wanted), source, next(iter(wanted)))
    return found


def _clip_plan(result, pages, n_clips) -> dict[int, list[dict]]:
    """Per page feature, its first ``n_clips`` top frames."""
    return {f: result.top_frames(f)[:n_clips] for f in pages}


def _recompute(lw, sae, result: AnalysisResult, utts: dict, plan: dict, batch_size: int, progress: bool) -> dict:
    """{(utterance index, feature): (times, acts [T], tokens)} for every shown clip, read from the
    analysis' activation store when it has one, else computed with Whisper."""
    wanted: dict[int, set[int]] = {}
    for f, clips in plan.items():
        for clip in clips:
            wanted.setdefault(clip["utt"], set()).add(f)
    order = [i for i in sorted(utts) if i in wanted]
    hook, store_path = result.meta["hook"], result.meta.get("store")
    if store_path and Path(store_path).is_dir() and all("store_idx" in result.utterances[i] for i in order):
        store = ActivationStore(store_path)
        ids = [result.utterances[i]["store_idx"] for i in order]
        stream = (item for _, item in store_codes(store, sae, hook, utterances=ids))
    else:
        stream = utterance_codes(lw(), sae, hook, [utts[i] for i in order], batch_size=batch_size)
    series = {}
    for i, item in zip(order, tqdm(stream, total=len(order), desc="dashboard clips", disable=not progress)):
        for f in wanted[i]:
            series[(i, f)] = (item.times, item.codes[:, f].copy(), item.tokens)
    return series


def _word_times(lw, utts: dict, whisper_words: bool) -> dict[int, list[dict]]:  # lw: a loader
    """Words with times per shown utterance: its alignment, else Whisper's (cross-attention DTW)."""
    out, missing = {}, []
    for i, utt in utts.items():
        if utt.alignment and utt.alignment.get("words"):
            out[i] = utt.alignment["words"]
        else:
            missing.append(i)
    if missing and whisper_words:
        from .word_times import word_timestamps

        audios = [utts[i].audio[: 30 * 16000] for i in missing]
        texts = [utts[i].text for i in missing]
        found = word_timestamps(lw(), audios, texts if all(texts) else None)
        out.update(dict(zip(missing, found)))
    return out


def _copy_assets(out: Path) -> None:
    assets = resources.files("whisper_sae.analysis") / "dashboard_assets"
    for name in ("style.css", "index.js"):
        (out / name).write_text((assets / name).read_text())


def build_dashboard(sae, out_dir, analysis=None, *, corpus=None, model=None, features=None,
                    max_features: int | None = 200, clips_per_feature: int = 5, excerpt_seconds: float = 3.0,
                    alignments_dir=None, whisper_words: bool = True, batch_size: int = 8,
                    probe=None, attribute_pages: int = 10, progress: bool = True) -> Path:
    """Write the dashboard of ``sae`` (folder or object) to ``out_dir``; returns the index.html path.

    ``analysis`` is an AnalysisResult or its folder (default: ``SAE_DIR/analysis``). The clips' audio
    is read again from ``corpus`` (default: the corpus the analysis ran on). ``probe``: probe.json
    files or folders (one or a list; default ``SAE_DIR/probe`` when it exists) whose speaker-attribute
    selectivity the pages and index show; the ``attribute_pages`` most selective features of each
    attribute get a page too.
    """
    sae_obj, sae_dir = load_sae(sae)
    if analysis is None:
        if sae_dir is None:
            raise ValueError("pass analysis= (an AnalysisResult or its folder) when the SAE is given as an object")
        analysis = sae_dir / "analysis"
    result = analysis if isinstance(analysis, AnalysisResult) else AnalysisResult.load(analysis)
    cache: dict = {}

    def lw():  # Whisper is loaded only if something needs it (no store, or no word times)
        if "lw" not in cache:
            cache["lw"] = load_model_for(sae_obj, model or result.meta.get("model_spec"))
        return cache["lw"]

    side = result.meta.get("side", "encoder")
    if probe is None:
        probe_paths = default_probe_paths(sae_dir)
    else:
        probe_paths = [probe] if isinstance(probe, (str, Path)) else list(probe)
    attributes = load_selectivity(probe_paths, d_sae=result.d_sae, hook=result.meta.get("hook"))
    extra = attributes.top(attribute_pages) if attributes and features is None else ()
    pages = page_features(result, features, max_features, extra)
    plan = _clip_plan(result, pages, clips_per_feature)
    needed = {clip["utt"] for clips in plan.values() for clip in clips}
    utts = _load_utterances(result, needed, corpus, alignments_dir) if needed else {}
    series = _recompute(lw, sae_obj, result, utts, plan, batch_size, progress)
    words = _word_times(lw, utts, whisper_words) if side == "encoder" else {}
    out = Path(out_dir)
    clean(out)  # pages and clips of an earlier build would otherwise linger beside the new ones
    (out / "features").mkdir(parents=True, exist_ok=True)
    (out / "clips").mkdir(exist_ok=True)
    _copy_assets(out)
    tokenizer = lw().tokenizer if side == "decoder" else None
    ctx = render.PageContext(result=result, tokenizer=tokenizer, utts=utts, series=series, words=words,
                             excerpt_seconds=excerpt_seconds, side=side, out=out, attributes=attributes)
    for n, f in enumerate(tqdm(pages, desc="dashboard pages", disable=not progress)):
        neighbours = (pages[n - 1] if n > 0 else None, pages[n + 1] if n + 1 < len(pages) else None)
        page = render.feature_page(ctx, f, plan[f], neighbours)
        (out / "features" / f"f{f}.html").write_text(page, encoding="utf-8")
    index = out / "index.html"
    index.write_text(render.index_page(result, set(pages), attributes), encoding="utf-8")
    doc = {"features": pages, "meta": result.meta, "probe": [str(p) for p in probe_paths]}
    (out / "dashboard.json").write_text(json.dumps(doc, indent=1))
    return index


def serve(out_dir, port: int = 8000) -> None:
    """Serve the dashboard folder on http://127.0.0.1:PORT until interrupted."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out_dir))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {out_dir} at http://127.0.0.1:{port}/index.html (Ctrl-C stops)")
        server.serve_forever()


def clean(out_dir) -> None:
    """Remove a previous dashboard's generated pages and clips (keeps anything else in the folder)."""
    out = Path(out_dir)
    for sub in ("features", "clips"):
        shutil.rmtree(out / sub, ignore_errors=True)
