"""``build_dashboard``: a static HTML site of an SAE's features that opens from disk (no server).

``index.html`` lists every feature (sortable, searchable; its data is a JSON literal in the page), and
for one without a page says why (dead, beyond ``--max-features``...); ``features/fN.html`` shows a
feature's labels (phones in ARPAbet, see ``analysis.phones``) and scores, its activation-density
histogram and its top clips (an Ogg/Opus excerpt, its WebP spectrogram with kHz and seconds axes, the
activation drawn over time and a playhead that follows the audio, the transcript with the active words
highlighted). Every link is relative, so the folder can be moved or published as it is. Per-frame activations are recomputed here for the top clips only. Where a
speaker-attribute probe was run (probe.json), pages show each feature's selectivity and the index
can sort and filter by it.

The output folder is the dashboard's own: ``.whisper-sae-dashboard.json`` lists every file a build
wrote, and a rebuild removes only those. A non-empty folder without that manifest is refused rather
than cleaned (``--out ~/Documents`` must never delete anything), and the folder is locked while written.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from whisper_sae.artifacts import open_model, open_sae, open_store, output_dir_for, record_path
from whisper_sae.audio import AudioError, Utterance, load_audio, load_corpus
from whisper_sae.audio.constants import WINDOW_SAMPLES
from whisper_sae.runtime.locks import exclusive, is_lock_file

from ..checks import check_sae_analysis, check_sae_model, check_sae_store
from ..features.codes import store_codes, utterance_codes
from ..features.labels import AlignmentIndex
from ..features.result import AnalysisResult, _map_paths
from . import media, render
from .selectivity import default_probe_paths, load_selectivity

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
    order = _ranked_alive(result)
    pages = [int(f) for f in (order if max_features is None else order[:max_features])]
    chosen = set(pages)
    return pages + [int(f) for f in extra if result.arrays["fire_count"][f] > 0 and f not in chosen]


def _ranked_alive(result: AnalysisResult) -> np.ndarray:
    """The features that fired, best phone/word label F1 first, then most frequent."""
    a = result.arrays
    f1 = np.zeros(result.d_sae)
    for kind in ("phone", "word"):
        if f"{kind}_f1" in a:
            f1 = np.maximum(f1, a[f"{kind}_f1"])
    alive = np.nonzero(a["fire_count"] > 0)[0]
    return alive[np.lexsort((-a["freq"][alive], -f1[alive]))]


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
        found[i] = Utterance(
            id=row["id"], audio=audio, text=row.get("text"), speaker=row.get("speaker"), path=path, alignment=alignment
        )
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
        raise ValueError(
            "the analysis was made from in-memory utterances; pass corpus= (the same utterances "
            "or a corpus spec) so the dashboard can play its clips"
        )
    items = load_corpus(str(source)) if isinstance(source, (str, Path)) else source
    for utt in items:
        if utt.id in wanted:
            if utt.alignment is None and alignments is not None:
                utt.alignment = alignments.get(utt.id)
            found[wanted.pop(utt.id)] = utt
            if not wanted:
                break
    if wanted:
        logger.warning(
            "%d utterances of the analysis are not in corpus %s (e.g. %s); their clips are left out",
            len(wanted),
            source,
            next(iter(wanted)),
        )
    return found


def _clip_plan(result, pages, n_clips) -> dict[int, list[dict]]:
    """Per page feature, its first ``n_clips`` top frames."""
    return {f: result.top_frames(f)[:n_clips] for f in pages}


def _recompute(
    lw, sae, sae_dir, result: AnalysisResult, utts: dict, plan: dict, batch_size: int, progress: bool
) -> dict:
    """{(utterance index, feature): (times, acts [T], tokens)} for every shown clip, read from the
    analysis' activation store when it has one, else computed with Whisper."""
    wanted: dict[int, set[int]] = {}
    for f, clips in plan.items():
        for clip in clips:
            wanted.setdefault(clip["utt"], set()).add(f)
    order = [i for i in sorted(utts) if i in wanted]
    hook, store_path = result.meta["hook"], result.meta.get("store")
    if store_path and Path(store_path).is_dir() and all("store_idx" in result.utterances[i] for i in order):
        store = open_store(store_path)
        check_sae_store(sae, sae_dir, store, hook)
        ids = [result.utterances[i]["store_idx"] for i in order]
        stream = (item for _, item in store_codes(store, sae, hook, utterances=ids))
    else:
        if order:
            check_sae_model(sae, sae_dir, lw(), hook)
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
        from ..features.word_times import word_timestamps

        audios = [utts[i].audio[:WINDOW_SAMPLES] for i in missing]
        texts = [utts[i].text for i in missing]
        found = word_timestamps(lw(), audios, texts if all(texts) else None)
        out.update(dict(zip(missing, found)))
    return out


MANIFEST = ".whisper-sae-dashboard.json"
"""The file in a dashboard folder that marks it as ours and lists what the last build wrote."""
MANIFEST_FORMAT = "whisper-sae-dashboard/1"
ASSETS = ("style.css", "index.js", "feature.js")


class DashboardFolderError(RuntimeError):
    """The output folder holds files this project did not write."""


def _assets_dir():
    return resources.files("whisper_sae.analysis.dashboard") / "assets"


def _copy_assets(out: Path) -> None:
    assets = _assets_dir()
    for name in ASSETS:
        (out / name).write_text((assets / name).read_text(encoding="utf-8"), encoding="utf-8")


def owned_files(out_dir) -> list[str]:
    """The files (relative paths) an earlier build wrote into ``out_dir``, from its manifest; [] for a
    missing or empty folder. Raises :class:`DashboardFolderError` for a non-empty folder without one."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DashboardFolderError(
            f"dashboard output {out} is a file, not a folder; give a new or empty folder for --out"
        )
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
            files = doc["files"] if doc.get("format") == MANIFEST_FORMAT else None
        except (ValueError, KeyError, TypeError, AttributeError):
            files = None
        if not isinstance(files, list):
            raise DashboardFolderError(
                f"{manifest} is not a whisper-sae dashboard manifest; remove the folder {out} "
                "yourself or give another --out"
            )
        return [str(f) for f in files]
    others = sorted(p.name for p in out.iterdir() if not is_lock_file(p.name)) if out.is_dir() else []
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise DashboardFolderError(
            f"dashboard folder {out} is not empty ({shown}) and was not written by `whisper-sae dashboard` "
            f"(no {MANIFEST}); nothing was changed. Give a new or empty folder for --out, or remove its contents yourself"
        )
    return []


def _remove_owned(out: Path, files: list[str]) -> None:
    """Delete the files a previous build listed (only those, and only inside ``out``), then its emptied
    ``features/`` and ``clips/`` folders."""
    root = out.resolve()
    for name in files:
        path = (out / name).resolve()
        if root in path.parents and path.is_file():
            path.unlink()
    for sub in ("features", "clips"):
        folder = out / sub
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _write_manifest(out: Path, files: list[str]) -> None:
    doc = {"format": MANIFEST_FORMAT, "files": sorted(set(files))}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out / MANIFEST)


def _planned_files(pages: list[int], plan: dict, audio_ext: str = "wav", image_ext: str = "png") -> list[str]:
    """Every file this build may write (clips without audio are listed but not written)."""
    files = ["index.html", "dashboard.json", *ASSETS] + [f"features/f{f}.html" for f in pages]
    for f in pages:
        for j in range(len(plan[f])):
            files += [f"clips/f{f}_{j}.{audio_ext}", f"clips/f{f}_{j}.{image_ext}"]
    return files


def no_page_reasons(result: AnalysisResult, pages: list[int], features=None, max_features: int | None = 200) -> dict:
    """Why each feature without a page has none: {feature: reason}, following :func:`page_features` (live
    features are ranked by best phone/word label F1, then firing frequency)."""
    a = result.arrays
    alive = int((a["fire_count"] > 0).sum())
    chosen = set(pages)
    rank = {int(f): r for r, f in enumerate(_ranked_alive(result), start=1)}
    reasons = {}
    for f in range(result.d_sae):
        if f in chosen:
            continue
        if a["fire_count"][f] == 0:
            reasons[f] = "dead: never fired"
        elif features is not None:
            reasons[f] = "not in --features"
        elif max_features is not None:
            reasons[f] = f"rank {rank[f]} of {alive} live > --max-features {max_features}"
        else:
            reasons[f] = "not selected"
    return reasons


def build_dashboard(
    sae,
    out_dir,
    analysis=None,
    *,
    corpus=None,
    model=None,
    features=None,
    max_features: int | None = 200,
    clips_per_feature: int = 5,
    excerpt_seconds: float = 3.0,
    alignments_dir=None,
    whisper_words: bool = True,
    batch_size: int = 8,
    probe=None,
    attribute_pages: int = 10,
    progress: bool = True,
) -> Path:
    """Write the dashboard of ``sae`` (folder or object) to ``out_dir``; returns the index.html path.

    ``analysis`` is an AnalysisResult or its folder (default: ``SAE_DIR/analysis``). The clips' audio
    is read again from ``corpus`` (default: the corpus the analysis ran on). ``probe``: probe.json
    files or folders (one or a list; default ``SAE_DIR/probe`` when it exists) whose speaker-attribute
    selectivity the pages and index show; the ``attribute_pages`` most selective features of each
    attribute get a page too. ``out_dir`` must be new, empty, or a dashboard folder written before
    (whose files alone are replaced); it is locked while written.
    """
    sae_obj, sae_dir = open_sae(sae)
    if analysis is None:
        if sae_dir is None:
            raise ValueError("pass analysis= (an AnalysisResult or its folder) when the SAE is given as an object")
        analysis = output_dir_for(sae_dir, "analysis")
    result = analysis if isinstance(analysis, AnalysisResult) else AnalysisResult.load(analysis)
    check_sae_analysis(sae_obj, sae_dir, result, result.meta.get("hook"))
    out = Path(out_dir)
    owned_files(out)  # refuse a foreign folder before any work
    cache: dict = {}

    def lw():  # Whisper is loaded only if something needs it (no store, or no word times)
        if "lw" not in cache:
            cache["lw"] = open_model(model or result.meta.get("model_spec"), sae=sae_obj)
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
    with exclusive(out, "dashboard folder"):
        previous = owned_files(out)
        needed = {clip["utt"] for clips in plan.values() for clip in clips}
        utts = _load_utterances(result, needed, corpus, alignments_dir) if needed else {}
        series = _recompute(lw, sae_obj, sae_dir, result, utts, plan, batch_size, progress)
        words = _word_times(lw, utts, whisper_words) if side == "encoder" else {}
        tokenizer = lw().tokenizer if side == "decoder" else None
        # Pages and clips of an earlier build would otherwise linger beside the new ones.
        _remove_owned(out, previous)
        audio_ext, image_ext = media.audio_format()[0], media.image_format()
        _write_manifest(out, _planned_files(pages, plan, audio_ext, image_ext))
        (out / "features").mkdir(parents=True, exist_ok=True)
        (out / "clips").mkdir(exist_ok=True)
        _copy_assets(out)
        ctx = render.PageContext(
            result=result,
            tokenizer=tokenizer,
            utts=utts,
            series=series,
            words=words,
            excerpt_seconds=excerpt_seconds,
            side=side,
            out=out,
            attributes=attributes,
            audio_ext=audio_ext,
            image_ext=image_ext,
        )
        for n, f in enumerate(tqdm(pages, desc="dashboard pages", disable=not progress)):
            neighbours = (pages[n - 1] if n > 0 else None, pages[n + 1] if n + 1 < len(pages) else None)
            page = render.feature_page(ctx, f, plan[f], neighbours)
            (out / "features" / f"f{f}.html").write_text(page, encoding="utf-8")
        index = out / "index.html"
        reasons = no_page_reasons(result, pages, features, max_features)
        index.write_text(render.index_page(result, set(pages), attributes, reasons), encoding="utf-8")
        # Paths recorded relative to the dashboard folder, as analysis.json and probe.json do.
        meta, _ = _map_paths(result.meta, [], lambda p: record_path(p, out))
        doc = {"features": pages, "meta": meta, "probe": [record_path(str(p), out) for p in probe_paths]}
        (out / "dashboard.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return index


class PortBusyError(RuntimeError):
    """The dashboard's port cannot be bound."""


def bind_server(out_dir, port: int = 8000, host: str = "127.0.0.1"):
    """An HTTP server for ``out_dir`` bound to ``host:port`` (not yet serving), so a busy port is found
    before a long build rather than after it."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out_dir))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise PortBusyError(
            f"cannot serve the dashboard on {host}:{port}: {err.strerror or err}; pass --port with a "
            "free port, or stop what is using it"
        ) from None


def serve(out_dir, port: int = 8000, *, server=None) -> None:
    """Serve the dashboard folder on http://127.0.0.1:PORT until interrupted (``server``: one from
    :func:`bind_server`, bound before the build)."""
    server = server if server is not None else bind_server(out_dir, port)
    host, port = server.server_address[:2]
    with server:
        print(f"serving {out_dir} at http://{host}:{port}/index.html (Ctrl-C stops)")
        server.serve_forever()
