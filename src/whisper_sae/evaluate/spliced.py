"""The spliced evaluation: Whisper transcribing and scoring references with an SAE in its residual stream.

Two passes over the held-out utterances. The first runs clean Whisper with teacher forcing, captures the
hook's activations over real positions and measures the reconstruction (and the mean activation that
mean ablation writes). The second runs every condition of ``splice.CONDITIONS`` on each batch: greedy
transcription under ``patch`` (so decoder hooks are replaced at every generated step) and the
teacher-forced cross-entropy of the reference tokens.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from whisper_sae.activations.decoder_text import as_whisper_writes
from whisper_sae.artifacts import open_corpus, open_model, open_sae, output_dir_for
from whisper_sae.audio.constants import WINDOW_SECONDS
from whisper_sae.evaluate.metrics import ReconstructionAccumulator, word_errors
from whisper_sae.evaluate.result import EvalResult, summarise
from whisper_sae.evaluate.splice import CONDITIONS, condition_transform, frame_mask, splice_fn
from whisper_sae.whisper import HookPoint, LoadedWhisper, capture, frames_for_duration, patch

log = logging.getLogger(__name__)


@dataclass
class _Item:
    """One evaluated utterance: its audio, its reference and its reference tokens."""

    id: str
    audio: np.ndarray
    text: str
    duration: float


@dataclass
class _Batch:
    items: list[_Item]
    features: Tensor  # [B, n_mels, 3000]
    ids: Tensor  # [B, L] prompt + reference tokens + end token, right-padded
    lengths: list[int]  # unpadded length of each row of ids
    n_prompt: int
    real_frames: list[int]  # encoder frames holding real audio, per item
    max_new_tokens: int  # generation budget: enough for twice the longest reference

    def transcribe(self, lw: LoadedWhisper) -> list[str]:
        # One generate call for the whole batch, so that hook masks line up with the batch rows.
        return lw.transcribe(
            [it.audio for it in self.items], batch_size=len(self.items), max_new_tokens=self.max_new_tokens
        )

    def hook_mask(self, hook: HookPoint, n_frames: int) -> Tensor:
        """[B, T] real positions at the hook: audio frames for the encoder, unpadded tokens for the decoder."""
        if hook.side == "encoder":
            return frame_mask(self.real_frames, n_frames)
        return frame_mask(self.lengths, self.ids.shape[1])


def evaluate(
    sae,
    corpus,
    *,
    model=None,
    max_utterances: int | None = None,
    batch_size: int = 8,
    out: str | Path | None = None,
    device: str | torch.device = "cpu",
    dense_threshold: float = 0.1,
    max_new_tokens: int | None = None,
    baseline: EvalResult | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate an SAE (a folder, a shipped name, ``hf://...`` or a ``SparseAutoencoder``) on a corpus (a spec or a ``Corpus``).

    The hook and, unless ``model`` (a spec or a ``LoadedWhisper``) is given, the Whisper model come from
    the SAE's config. Results are written to ``out`` (default: the SAE's folder, but ``./whisper-sae-out/NAME/``
    for a shipped or Hub SAE, see ``artifacts.output_dir_for``; nothing is written for an in-memory SAE
    without ``out``): ``eval.json``, ``eval.md``, ``eval_utterances.jsonl`` and
    ``feature_density.png``. Utterances without a reference transcript or longer than 30 s are skipped
    and listed in the result. Generation stops at twice the longest reference of a batch (plus 8 tokens),
    or at ``max_new_tokens`` if that is smaller.

    ``baseline``, an earlier result at the same hook of the same model on the same utterances, lends its
    clean, zero- and mean-ablation rows (they do not depend on the SAE), so that comparing several SAEs
    costs two conditions each instead of five.
    """
    given, (sae, sae_dir) = sae, open_sae(sae, device)
    lw = open_model(model, sae=sae, device=device)
    hook = _hook_for(sae, lw)
    items, skipped = _collect(corpus, max_utterances)
    if not items:
        raise ValueError(
            f"corpus {getattr(corpus, 'spec', corpus)!s} gave no utterance with a reference transcript of at "
            f"most {WINDOW_SECONDS:.0f} s; the evaluation needs transcribed speech"
        )
    window_mode = _window_mode(sae)
    # Batches are prepared (features, tokens) when used, so that a large held-out set is never all in memory.
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    prepare = lambda chunk: _prepare(lw, chunk, max_new_tokens)  # noqa: E731
    known = _known_rows(baseline, hook, lw, items) if baseline is not None else {}
    with torch.inference_mode():
        acc, mean, clean = _reference_pass(
            lw, sae, hook, map(prepare, batches), dense_threshold, progress, len(batches), known.get("clean")
        )
        known["clean"] = clean
        rows, check = _condition_pass(lw, sae, hook, map(prepare, batches), mean, known, progress, len(batches))
    result = summarise(
        rows=rows,
        reconstruction=acc.result(),
        check=check,
        meta={
            "sae": str(sae_dir) if sae_dir else None,
            "model": lw.name,
            "model_spec": lw.spec,
            "hook": hook.name,
            "architecture": sae.cfg.architecture,
            "d_sae": sae.cfg.d_sae,
            "k": sae.cfg.k,
            "corpus": str(getattr(corpus, "spec", corpus)),
            "window_mode": window_mode,
        },
        skipped=skipped,
    )
    out = Path(out) if out is not None else output_dir_for(given)  # never into a shipped or downloaded SAE
    if out is not None:
        result.write(out, acc.firing_frequency)
    return result


# ------------------------------------------------------------------------------------ set-up


def _hook_for(sae, lw: LoadedWhisper) -> HookPoint:
    if not sae.cfg.hook_name:
        raise ValueError("the SAE's config names no hook point (hook_name is empty); it cannot be spliced in")
    hook = HookPoint.parse(sae.cfg.hook_name, lw.config)
    # Every named hook point carries the residual stream, d_model wide.
    if hasattr(sae, "check_compatible"):
        sae.check_compatible(lw.d_model, hook.name, lw.name)
    elif sae.cfg.d_in != lw.d_model:
        raise ValueError(f"the SAE reads d_in={sae.cfg.d_in} but {hook.name} of {lw.name} is {lw.d_model} wide")
    return hook


def _window_mode(sae) -> str:
    mode = getattr(sae.cfg, "window_mode", None) or "padded"
    if mode != "padded":
        # Packed windows hold several utterances, which would need one reference per window; the
        # per-utterance evaluation here always pads, and says so.
        log.warning("the SAE was trained on %r windows; evaluating with padded 30-s windows", mode)
    return "padded"


def _collect(corpus, max_utterances: int | None) -> tuple[list[_Item], list[dict]]:
    specs = isinstance(corpus, (str, Path)) or (
        isinstance(corpus, (list, tuple)) and all(isinstance(c, (str, Path)) for c in corpus)
    )
    if specs:  # one spec or several; utterances given in memory are cut to max_utterances below
        corpus, _ = open_corpus(corpus, max_utterances)
    items: list[_Item] = []
    skipped: list[dict] = []
    for utt in corpus:
        if max_utterances is not None and len(items) >= max_utterances:
            break
        if not (utt.text or "").strip():
            skipped.append({"id": utt.id, "reason": "no reference transcript"})
        elif utt.duration > WINDOW_SECONDS:
            skipped.append({"id": utt.id, "reason": f"{utt.duration:.1f} s is longer than one 30-s window"})
        else:
            items.append(_Item(utt.id, utt.audio, utt.text, utt.duration))
    skipped += [{"id": s.get("id"), "reason": s.get("reason")} for s in getattr(corpus, "skipped", [])]
    return items, skipped


def _prepare(lw: LoadedWhisper, items: list[_Item], max_new_tokens: int | None = None) -> _Batch:
    prompt = list(lw.prompt_ids)
    seqs = [prompt + lw.text_tokens(as_whisper_writes(it.text)) + [lw.eot_id] for it in items]
    lengths = [len(s) for s in seqs]
    ids = torch.full((len(seqs), max(lengths)), lw.eot_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
    features = lw.log_mel([it.audio for it in items])
    frames = [int(frames_for_duration(it.duration)) for it in items]
    # An ablated model often repeats itself until the token limit; past twice the reference length a
    # hypothesis is already wrong on every word, so generating further only costs time.
    longest_text = max(lengths) - len(prompt)
    budget = min(2 * longest_text + 8, lw.config.max_target_positions - len(prompt), max_new_tokens or 10**9)
    return _Batch(items, features, ids.to(lw.device), lengths, len(prompt), frames, budget)


# ------------------------------------------------------------------------------------ running


def _logits(lw: LoadedWhisper, batch: _Batch) -> Tensor:
    model = lw.model
    out = model(input_features=batch.features.to(model.dtype), decoder_input_ids=batch.ids, use_cache=False)
    return out.logits.float()


def _token_nll(logits: Tensor, batch: _Batch) -> list[tuple[float, int]]:
    """Per item: summed negative log-likelihood of its reference tokens and end token, and their count."""
    result = []
    for row, length in enumerate(batch.lengths):
        # position p predicts token p + 1; the first predicted token follows the prompt
        pred = logits[row, batch.n_prompt - 1 : length - 1]
        target = batch.ids[row, batch.n_prompt : length]
        nll = torch.nn.functional.cross_entropy(pred, target, reduction="sum")
        result.append((float(nll), int(target.numel())))
    return result


def _known_rows(baseline: EvalResult, hook: HookPoint, lw: LoadedWhisper, items: list[_Item]) -> dict:
    """The SAE-independent condition results of ``baseline``, per item, after checking it fits."""
    meta = baseline.meta
    if meta["hook"] != hook.name or meta["model"] != lw.name:
        raise ValueError(
            f"the baseline was measured at {meta['hook']} of {meta['model']}, not at {hook.name} of "
            f"{lw.name}; give a baseline from the same hook and model"
        )
    if [r["id"] for r in baseline.utterances] != [it.id for it in items]:
        raise ValueError(
            "the baseline was measured on other utterances; give one from the same corpus and max_utterances"
        )
    return {
        c: [{k: r[c][k] for k in ("nll", "n_tokens", "text")} for r in baseline.utterances]
        for c in ("clean", "zero", "mean")
    }


def _reference_pass(lw, sae, hook, batches, dense_threshold, progress, n_batches=None, known_clean=None):
    """Clean teacher-forced runs: reconstruction metrics, the mean activation, clean CE and transcripts."""
    acc = ReconstructionAccumulator(sae.cfg.d_sae, dense_threshold=dense_threshold)
    total = torch.zeros(lw.d_model, dtype=torch.float64)
    clean: list[dict] = []
    for batch in tqdm(batches, desc=f"reconstruct {hook.name}", unit="batch", total=n_batches, disable=not progress):
        with capture(lw.model, [hook.name]) as acts:
            logits = _logits(lw, batch)
        hidden = acts[hook.name]
        x = hidden[batch.hook_mask(hook, hidden.shape[1]).to(hidden.device)].float()
        codes = sae.encode(x)
        acc.update(x.cpu(), sae.decode(codes).cpu(), codes.cpu())
        total += x.double().sum(0).cpu()
        if known_clean is None:
            texts = batch.transcribe(lw)
            for nll, text in zip(_token_nll(logits, batch), texts):
                clean.append({"nll": nll[0], "n_tokens": nll[1], "text": text})
    return acc, (total / acc.n).float(), clean if known_clean is None else known_clean


def _condition_pass(lw, sae, hook, batches, mean, known, progress, n_batches=None):
    """Every condition not already ``known``, per batch; returns per-utterance rows and the error-term check."""
    rows: list[dict] = []
    max_logit_diff = 0.0
    start = 0
    for batch in tqdm(batches, desc="spliced conditions", unit="batch", total=n_batches, disable=not progress):
        items = batch.items
        clean_logits = _logits(lw, batch)
        results = {c: known[c][start : start + len(items)] for c in CONDITIONS if c in known}
        start += len(items)
        for condition in [c for c in CONDITIONS if c not in known]:
            transform = condition_transform(condition, sae, mean)
            mask = batch.hook_mask(hook, lw.config.max_source_positions) if hook.side == "encoder" else None
            with patch(lw.model, hook.name, splice_fn(transform, mask)):
                logits = _logits(lw, batch)
                texts = batch.transcribe(lw)
            if condition == "spliced_error":
                for row, length in enumerate(batch.lengths):
                    diff = (logits[row, :length] - clean_logits[row, :length]).abs().max()
                    max_logit_diff = max(max_logit_diff, float(diff))
            nlls = _token_nll(logits, batch)
            results[condition] = [{"nll": n, "n_tokens": c, "text": t} for (n, c), t in zip(nlls, texts)]
        rows += [_utterance_row(it, i, results) for i, it in enumerate(items)]
    return rows, {"max_abs_logit_diff": max_logit_diff}


def _utterance_row(item: _Item, i: int, results: dict[str, list[dict]]) -> dict:
    row = {"id": item.id, "duration": round(item.duration, 3), "reference": item.text}
    for condition in CONDITIONS:
        per_item = results[condition]
        r = per_item[i]
        errors = word_errors(item.text, r["text"])
        row[condition] = {
            "text": r["text"],
            "errors": errors.errors,
            "ref_words": errors.ref_words,
            "wer": errors.wer if math.isfinite(errors.wer) else None,
            "nll": r["nll"],
            "n_tokens": r["n_tokens"],
            "ce": r["nll"] / max(r["n_tokens"], 1),
        }
    return row
