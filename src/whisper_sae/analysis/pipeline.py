"""``analyze``: one streaming pass of a corpus through Whisper and an SAE, giving per-feature
statistics, top activating frames and alignment labels (an ``AnalysisResult`` saved beside the SAE).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from whisper_sae.audio import Utterance, load_corpus
from whisper_sae.sae import SparseAutoencoder
from whisper_sae.whisper import HookPoint, load_whisper

from .codes import FRAME_SECONDS, utterance_codes
from .labels import AlignmentLabeler, f1_summary, read_alignment
from .result import AnalysisResult
from .stats import FeatureStats

logger = logging.getLogger(__name__)


def load_sae(sae) -> tuple[SparseAutoencoder, Path | None]:
    """An SAE object as given, or loaded from its folder (with the folder)."""
    if isinstance(sae, SparseAutoencoder):
        return sae.eval(), None
    path = Path(sae)
    if not path.exists():
        raise FileNotFoundError(f"SAE folder {path} does not exist; give a folder with cfg.json and "
                                "sae_weights.safetensors (as written by `whisper-sae train`)")
    return SparseAutoencoder.from_pretrained(path).eval(), path


def load_model_for(sae: SparseAutoencoder, model=None):
    """The Whisper to run: ``model`` (a LoadedWhisper or spec) or the one named in the SAE's config."""
    if model is not None and not isinstance(model, (str, Path)):
        return model
    return load_whisper(str(model) if model is not None else sae.cfg.model_name)


def _utterances(corpus, max_utterances: int | None):
    if isinstance(corpus, (str, Path)):
        return load_corpus(str(corpus), max_utterances=max_utterances), str(corpus)
    items = corpus if max_utterances is None else _take(corpus, max_utterances)
    return items, str(getattr(corpus, "spec", "<in-memory utterances>"))


def _take(items: Iterable, n: int):
    for i, item in enumerate(items):
        if i >= n:
            return
        yield item


def _alignment_for(utt: Utterance, alignments_dir, lw, whisper_words: bool) -> tuple[dict | None, str | None]:
    if utt.alignment:
        return utt.alignment, "corpus"
    if alignments_dir is not None:
        found = read_alignment(alignments_dir, utt.id)
        if found is not None:
            return found, "alignments_dir"
    if whisper_words:
        from .word_times import word_timestamps

        return {"words": word_timestamps(lw, [utt.audio])[0]}, "whisper"
    return None, None


def analyze(sae, corpus, *, top_n: int = 20, model=None, hook: str | None = None, batch_size: int = 8,
            max_utterances: int | None = None, alignments_dir: str | Path | None = None,
            whisper_words: bool = False, distinct_clips: bool = True, out: str | Path | None = None,
            progress: bool = True) -> AnalysisResult:
    """Statistics and labels of every feature of ``sae`` (folder or object) over ``corpus``.

    ``corpus`` is a ``load_corpus`` spec, a Corpus or any iterable of Utterances. Labels use each
    utterance's alignment, else ``alignments_dir/<id>.json``, else (``whisper_words``) word times from
    Whisper's cross-attention. Saved to ``out`` (default ``SAE_DIR/analysis``) when there is a place.
    """
    sae, sae_dir = load_sae(sae)
    lw = load_model_for(sae, model)
    hook = hook or sae.cfg.hook_name
    if hook is None:
        raise ValueError("the SAE's cfg.json names no hook_name; pass hook= (e.g. 'encoder.out')")
    point = HookPoint.parse(hook, lw.config)
    sae.check_compatible(lw.d_model, hook, None)
    d_sae = sae.cfg.d_sae
    stats = FeatureStats(d_sae, top_n, distinct_clips=distinct_clips)
    labeler = AlignmentLabeler(d_sae)
    utterances, spec = _utterances(corpus, max_utterances)
    rows: list[dict] = []
    stream = utterance_codes(lw, sae, hook, utterances, batch_size=batch_size)
    for item in tqdm(stream, desc="analyze", unit="utt", disable=not progress):
        utt, index = item.utterance, len(rows)
        row = {"id": utt.id, "duration": float(utt.duration), "text": utt.text, "path": utt.path,
               "speaker": utt.speaker, "n_positions": int(len(item.codes))}
        stats.update(item.codes, index)
        if point.side == "decoder":
            row["tokens"] = [int(t) for t in item.tokens]
            labeler.update_tokens(item.codes, [lw.tokenizer.decode([t]) for t in item.tokens])
        else:
            alignment, source = _alignment_for(utt, alignments_dir, lw, whisper_words)
            row["alignment_source"] = source
            if alignment is not None:
                labeler.update(item.codes, item.times, alignment)
        rows.append(row)
    if not rows:
        raise ValueError(f"corpus {spec!r} yielded no utterances to analyse")
    result = _assemble(stats, labeler, rows, point, sae, lw, spec, sae_dir)
    target = out if out is not None else (sae_dir / "analysis" if sae_dir is not None else None)
    if target is not None:
        result.save(target)
    return result


def _assemble(stats, labeler, rows, point, sae, lw, spec, sae_dir) -> AnalysisResult:
    arrays = stats.result()
    pos = arrays["top_pos"]
    if point.side == "encoder":
        arrays["top_time"] = np.where(pos >= 0, (pos + 0.5) * FRAME_SECONDS, np.nan).astype(np.float32)
    else:
        arrays["top_time"] = np.full(pos.shape, np.nan, np.float32)
        token = np.full(pos.shape, -1, np.int64)
        for (f, j) in zip(*np.nonzero(pos >= 0)):
            token[f, j] = rows[arrays["top_utt"][f, j]]["tokens"][pos[f, j]]
        arrays["top_token"] = token
    labels = labeler.result()
    summary: dict = {"n_utterances": len(rows), "n_positions": stats.n_frames,
                     "n_labelled_positions": labels["label_frames"],
                     "n_dead": int((arrays["fire_count"] == 0).sum())}
    alive = labeler.active > 0
    for kind in ("phone", "word"):
        if labels[f"{kind}_vocab"]:
            for name in ("label", "precision", "recall", "f1"):
                arrays[f"{kind}_{name}"] = labels[f"{kind}_{name}"]
            summary[f"{kind}_labels"] = f1_summary(labels[f"{kind}_f1"], alive)
    meta = {"sae_dir": str(sae_dir) if sae_dir else None, "hook": point.name, "side": point.side,
            "model": lw.name, "model_spec": lw.spec, "corpus": spec, "d_sae": sae.cfg.d_sae,
            "architecture": sae.cfg.architecture, "frame_seconds": FRAME_SECONDS}
    return AnalysisResult(meta=meta, utterances=rows, arrays=arrays, phone_vocab=labels["phone_vocab"],
                          word_vocab=labels["word_vocab"], summary=summary)
