"""``analyze``: one streaming pass of a corpus through Whisper and an SAE, giving per-feature
statistics, top activating frames and alignment labels (an ``AnalysisResult`` saved beside the SAE).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from whisper_sae.artifacts import open_corpus, open_model, open_sae, open_store, output_dir_for
from whisper_sae.audio import Utterance
from whisper_sae.audio.constants import FRAME_SECONDS, WINDOW_SAMPLES
from whisper_sae.whisper import HookPoint

from ..checks import check_sae_model, check_sae_store
from .codes import store_codes, utterance_codes
from .labels import AlignmentIndex, AlignmentLabeler, f1_summary
from .result import AnalysisResult
from .stats import FeatureStats

logger = logging.getLogger(__name__)


def load_sae(sae):
    """(SAE in eval mode, its folder or None) from a folder or an SAE object (``artifacts.open_sae``)."""
    return open_sae(sae)


class _Aligner:
    """Where an utterance's alignment comes from: the utterance itself, an alignments folder, or
    (``whisper_words``) word times from Whisper's cross-attention."""

    def __init__(self, alignments_dir, whisper_words: bool, lw_loader):
        self.index = AlignmentIndex(alignments_dir) if alignments_dir is not None else None
        self.whisper_words, self.lw_loader = whisper_words, lw_loader

    def __call__(self, utt: Utterance) -> tuple[dict | None, str | None]:
        if utt.alignment:
            return utt.alignment, "corpus"
        found = self.index.get(utt.id) if self.index is not None else None
        if found is not None:
            return found, "alignments_dir"
        if self.whisper_words and len(utt.audio):
            from .word_times import word_timestamps

            # The reference transcript is forced when there is one; otherwise Whisper's own is used.
            texts = [utt.text] if utt.text else None
            return {"words": word_timestamps(self.lw_loader(), [utt.audio[:WINDOW_SAMPLES]], texts)[0]}, "whisper"
        return None, None


def _source(sae, sae_dir, corpus, store, model, hook, batch_size, max_utterances):
    """(stream of (record or None, UtteranceCodes), side, corpus spec, model name/spec, lazy Whisper, store path)."""
    cache: dict = {}

    def lw_loader():
        if "lw" not in cache:
            cache["lw"] = open_model(model, sae=sae)
        return cache["lw"]

    if store is not None:
        store = open_store(store)
        check_sae_store(sae, sae_dir, store, hook)
        idx = sorted(r["idx"] for r in store.utterances)[:max_utterances]
        side = "encoder" if hook.startswith("encoder") else "decoder"
        spec = str(corpus) if isinstance(corpus, (str, Path)) else str(store.corpus)
        model_meta = store.manifest.get("model", {})
        stream = store_codes(store, sae, hook, utterances=idx)
        return stream, side, str(spec), (model_meta.get("name"), model_meta.get("spec")), lw_loader, str(store.path)
    if corpus is None:
        raise ValueError("give a corpus (spec or utterances) or store= (an activation store of this hook)")
    lw = lw_loader()
    side = HookPoint.parse(hook, lw.config).side
    check_sae_model(sae, sae_dir, lw, hook)
    utterances, spec = open_corpus(corpus, max_utterances)
    stream = ((None, item) for item in utterance_codes(lw, sae, hook, utterances, batch_size=batch_size))
    return stream, side, spec, (lw.name, lw.spec), lw_loader, None


def analyze(
    sae,
    corpus=None,
    *,
    store=None,
    top_n: int = 20,
    model=None,
    hook: str | None = None,
    batch_size: int = 8,
    max_utterances: int | None = None,
    alignments_dir: str | Path | None = None,
    whisper_words: bool = False,
    distinct_clips: bool = True,
    out: str | Path | None = None,
    progress: bool = True,
) -> AnalysisResult:
    """Statistics and labels of every feature of ``sae`` (folder or object) over a corpus.

    Activations come from running Whisper on ``corpus`` (a ``load_corpus`` spec, a Corpus or any
    iterable of Utterances), or, much faster, from ``store`` (an activation store holding the SAE's
    hook). Labels use each utterance's alignment, else ``alignments_dir`` (``<id>.json`` anywhere
    below it; for a store, the store's corpus folder by default), else (``whisper_words``) word times
    from Whisper's cross-attention. Saved to ``out`` (default ``SAE_DIR/analysis``) when there is a place.
    """
    sae, sae_dir = open_sae(sae)
    hook = hook or sae.cfg.hook_name
    if hook is None:
        raise ValueError("the SAE's cfg.json names no hook_name; pass hook= (e.g. 'encoder.out')")
    stream, side, spec, (model_name, model_spec), lw_loader, store_path = _source(
        sae, sae_dir, corpus, store, model, hook, batch_size, max_utterances
    )
    if alignments_dir is None and store_path is not None and Path(spec).is_dir():
        alignments_dir = spec  # the synthetic corpus keeps <id>.json beside the audio
    aligner = _Aligner(alignments_dir, whisper_words, lw_loader)
    d_sae = sae.cfg.d_sae
    stats = FeatureStats(d_sae, top_n, distinct_clips=distinct_clips)
    labeler = AlignmentLabeler(d_sae)
    rows: list[dict] = []
    for rec, item in tqdm(stream, desc="analyze", unit="utt", disable=not progress):
        utt, index = item.utterance, len(rows)
        row = {
            "id": utt.id,
            "duration": float(rec["duration"] if rec else utt.duration),
            "text": utt.text,
            "path": utt.path,
            "speaker": utt.speaker,
            "n_positions": int(len(item.codes)),
        }
        if rec is not None:
            row["store_idx"] = int(rec["idx"])
        stats.update(item.codes, index)
        if side == "decoder":
            row["tokens"] = [int(t) for t in item.tokens]
            tokenizer = lw_loader().tokenizer
            labeler.update_tokens(item.codes, [tokenizer.decode([t]) for t in item.tokens])
        else:
            alignment, source = aligner(utt)
            row["alignment_source"] = source
            if alignment is not None:
                labeler.update(item.codes, item.times, alignment)
        rows.append(row)
    if not rows:
        raise ValueError(f"corpus {spec!r} yielded no utterances to analyse")
    meta = {
        "sae_dir": str(sae_dir) if sae_dir else None,
        "hook": hook,
        "side": side,
        "model": model_name,
        "model_spec": model_spec,
        "corpus": spec,
        "store": store_path,
        "d_sae": d_sae,
        "architecture": sae.cfg.architecture,
        "frame_seconds": FRAME_SECONDS,
        "alignments_dir": str(alignments_dir) if alignments_dir is not None else None,
    }
    result = _assemble(stats, labeler, rows, side, meta)
    target = out if out is not None else (output_dir_for(sae_dir, "analysis") if sae_dir is not None else None)
    if target is not None:
        result.save(target)
    return result


def _assemble(stats, labeler, rows, side: str, meta: dict) -> AnalysisResult:
    arrays = stats.result()
    pos = arrays["top_pos"]
    if side == "encoder":
        arrays["top_time"] = np.where(pos >= 0, (pos + 0.5) * FRAME_SECONDS, np.nan).astype(np.float32)
    else:
        arrays["top_time"] = np.full(pos.shape, np.nan, np.float32)
        token = np.full(pos.shape, -1, np.int64)
        for f, j in zip(*np.nonzero(pos >= 0)):
            token[f, j] = rows[arrays["top_utt"][f, j]]["tokens"][pos[f, j]]
        arrays["top_token"] = token
    labels = labeler.result()
    summary: dict = {
        "n_utterances": len(rows),
        "n_positions": stats.n_frames,
        "n_labelled_positions": labels["label_frames"],
        "n_dead": int((arrays["fire_count"] == 0).sum()),
    }
    alive = labeler.active > 0
    for kind in ("phone", "word"):
        if labels[f"{kind}_vocab"]:
            for name in ("label", "precision", "recall", "f1"):
                arrays[f"{kind}_{name}"] = labels[f"{kind}_{name}"]
            summary[f"{kind}_labels"] = f1_summary(labels[f"{kind}_f1"], alive)
    return AnalysisResult(
        meta=meta,
        utterances=rows,
        arrays=arrays,
        phone_vocab=labels["phone_vocab"],
        word_vocab=labels["word_vocab"],
        summary=summary,
    )
