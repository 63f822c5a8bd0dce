"""Transcoders and crosscoders spliced into Whisper, and their WER / CE on transcribed speech.

A transcoder reads one hook (``encoder.blocks.N.mlp_in``) and writes another (``.mlp_out``): spliced
in, it replaces the MLP. While a block runs, a forward hook keeps the MLP's input; the patch on fc2's
output then writes ``transcoder(mlp_in)`` on the real frames (``error=True`` adds the error term back,
``mlp_out - transcoder(mlp_in)``, which is Whisper itself up to rounding: the check of the splice).

A crosscoder reads several hooks side by side and reconstructs all of them from one code. Its
input needs every layer it reads, so it is spliced in two passes: a clean encoder pass captures the
layers, then every layer is patched with its slice of the reconstruction (computed from the clean
pass; the downstream layers see their own replaced activations, not a recomputation).

Both use the hooks' ``capture``/``patch`` and ``whisper.splice``'s real-frame masks, and the spliced
evaluation's batching, tokenisation and scoring (``evaluate.spliced``).
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from whisper_sae.artifacts import open_model, open_sae
from whisper_sae.evaluate.metrics import word_errors
from whisper_sae.evaluate.splice import condition_transform
from whisper_sae.evaluate.spliced import _collect, _logits, _prepare, _token_nll
from whisper_sae.whisper import HookPoint, capture, patch, run_encoder
from whisper_sae.whisper.splice import frame_mask, splice_fn

CONDITIONS = ("clean", "spliced", "spliced_error")


def _check(sae, lw) -> None:
    cfg = sae.cfg
    for h in (*cfg.input_hooks, *cfg.output_hooks):
        if HookPoint.parse(h, lw.config).side != "encoder":
            raise ValueError(f"transcoder and crosscoder splices read encoder hooks; {h!r} is not one")
    if cfg.d_in != lw.d_model * len(cfg.input_hooks) or cfg.out_dim != lw.d_model * len(cfg.output_hooks):
        raise ValueError(
            f"the dictionary reads width {cfg.d_in} and writes {cfg.out_dim}, but {lw.name}'s hooks are "
            f"{lw.d_model} wide; give the Whisper it was trained on ({cfg.model_name})"
        )


@contextlib.contextmanager
def spliced(sae, lw, features: Tensor, real: list[int], *, error: bool = False):
    """Whisper with ``sae`` (a transcoder, a crosscoder, or an SAE as ``evaluate`` splices it) spliced in for the batch ``features`` whose
    rows hold ``real`` frames of audio; inside, any forward pass or ``generate`` on that batch uses it."""
    cfg = sae.cfg
    _check(sae, lw)
    mask = frame_mask(real, lw.config.max_source_positions)
    if cfg.kind == "sae":  # the spliced evaluation's own transforms, for comparing the three kinds alike
        transform = condition_transform("spliced_error" if error else "spliced", sae)
        with patch(lw.model, cfg.hook_name, splice_fn(transform, mask)):
            yield
        return
    if cfg.kind == "transcoder":
        held: dict[str, Tensor] = {}

        def keep(acts: Tensor) -> Tensor:
            held["x"] = acts
            return acts

        def write(acts: Tensor) -> Tensor:
            m = mask[:, : acts.shape[1]].to(acts.device)
            out = acts.clone()
            x = held["x"][m].float()
            with torch.no_grad():
                recon = sae(x).x_hat
            target = acts[m].float()
            out[m] = (recon + (target - recon) if error else recon).to(acts.dtype)
            return out

        with patch(lw.model, cfg.hook_name, keep), patch(lw.model, cfg.hook_name_out, write):
            yield
        return
    if cfg.kind != "crosscoder":
        raise ValueError(
            f"{cfg.kind} is spliced by whisper_sae.evaluate (one hook); this splices transcoders and crosscoders"
        )
    hooks = cfg.input_hooks
    clean = run_encoder(lw, features, hooks, rows=max(real))
    width = lw.d_model
    rows = {}
    with torch.no_grad():
        for b, n in enumerate(real):
            x = torch.cat([clean[h][b, :n] for h in hooks], dim=-1)
            recon = sae(x).x_hat
            if error:
                recon = recon + (x - recon)
            for i, h in enumerate(hooks):
                rows[(h, b)] = recon[:, i * width : (i + 1) * width]

    def writer(hook: str):
        def write(acts: Tensor) -> Tensor:
            out = acts.clone()
            for b, n in enumerate(real):
                out[b, :n] = rows[(hook, b)].to(acts.dtype)
            return out

        return write

    with contextlib.ExitStack() as stack:
        for h in hooks:
            stack.enter_context(patch(lw.model, h, writer(h)))
        yield


@torch.no_grad()
def reconstruction(sae, lw, features: Tensor, real: list[int]) -> tuple[Tensor, Tensor, Tensor]:
    """(target rows, reconstruction, codes) of a batch's real frames: what the dictionary should write
    and what it writes from clean Whisper's inputs."""
    cfg = sae.cfg
    hooks = list(dict.fromkeys([*cfg.input_hooks, *cfg.output_hooks]))
    with capture(lw.model, hooks) as acts:
        lw.model.model.encoder(features.to(lw.model.dtype))
    x = torch.cat([torch.cat([acts[h][b, :n] for h in cfg.input_hooks], -1) for b, n in enumerate(real)])
    y = torch.cat([torch.cat([acts[h][b, :n] for h in cfg.output_hooks], -1) for b, n in enumerate(real)])
    codes, x_hat = sae(x.float())
    return y.float(), x_hat, codes


def evaluate_replacement(
    sae,
    corpus,
    *,
    model=None,
    max_utterances: int | None = None,
    batch_size: int = 8,
    out=None,
    device="cpu",
    progress: bool = True,
    clean_texts: list[str] | None = None,
    transcribe_error_term: bool = True,
) -> dict:
    """WER and CE of clean Whisper, Whisper with the transcoder / crosscoder spliced in, and with its
    error term added back (which must be Whisper: ``max_abs_logit_diff``), plus the held-out EV and L0.

    ``clean_texts``: clean Whisper's transcripts of these utterances from an earlier run (they do not
    depend on the dictionary), saving one decoding pass. ``transcribe_error_term=False`` checks the
    error-term splice by its teacher-forced logits and CE only, and reports clean's transcripts for it."""
    sae, sae_dir = open_sae(sae, device)
    lw = open_model(model, sae=sae, device=device)
    _check(sae, lw)
    items, skipped = _collect(corpus, max_utterances)
    if not items:
        raise ValueError(f"corpus {corpus} gave no utterance with a reference transcript of at most 30 s")
    totals = {c: {"errors": 0, "words": 0, "nll": 0.0, "tokens": 0} for c in CONDITIONS}
    sse = sq = 0.0
    sums = None
    n_rows = l0 = 0
    max_diff = 0.0
    utterances = []
    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    for chunk in tqdm(chunks, desc=f"{sae.cfg.kind} spliced", unit="batch", disable=not progress):
        batch = _prepare(lw, chunk)
        with torch.inference_mode():
            y, y_hat, codes = reconstruction(sae, lw, batch.features, batch.real_frames)
            sse += float((y_hat - y).pow(2).sum())
            sq += float(y.double().pow(2).sum())
            sums = y.double().sum(0) if sums is None else sums + y.double().sum(0)
            n_rows += y.shape[0]
            l0 += int((codes > 0).sum())
            results = {}
            clean_logits = _logits(lw, batch)
            done = len(utterances)
            clean = clean_texts[done : done + len(chunk)] if clean_texts is not None else batch.transcribe(lw)
            results["clean"] = (clean_logits, clean)
            for condition, err in (("spliced", False), ("spliced_error", True)):
                with spliced(sae, lw, batch.features, batch.real_frames, error=err):
                    logits = _logits(lw, batch)
                    texts = batch.transcribe(lw) if (transcribe_error_term or not err) else clean
                results[condition] = (logits, texts)
                if err:
                    for row, length in enumerate(batch.lengths):
                        diff = (logits[row, :length] - clean_logits[row, :length]).abs().max()
                        max_diff = max(max_diff, float(diff))
        per = {c: (_token_nll(results[c][0], batch), results[c][1]) for c in CONDITIONS}
        for i, item in enumerate(chunk):
            row = {"id": item.id, "reference": item.text}
            for c in CONDITIONS:
                (nll, n_tok), text = per[c][0][i], per[c][1][i]
                e = word_errors(item.text, text)
                totals[c]["errors"] += e.errors
                totals[c]["words"] += e.ref_words
                totals[c]["nll"] += nll
                totals[c]["tokens"] += n_tok
                row[c] = {"text": text, "errors": e.errors, "ce": nll / max(n_tok, 1)}
            utterances.append(row)
    variance = sq - float(sums.pow(2).sum()) / max(n_rows, 1)
    cfg = sae.cfg
    summary = {
        "sae": str(sae_dir) if sae_dir else None,
        "kind": cfg.kind,
        "model": lw.name,
        "hooks_in": cfg.input_hooks,
        "hooks_out": cfg.output_hooks,
        "architecture": cfg.architecture,
        "d_sae": cfg.d_sae,
        "k": cfg.k,
        "skip": cfg.skip,
        "corpus": str(corpus),
        "n_utterances": len(items),
        "ev": 1.0 - sse / max(variance, 1e-12),
        "l0": l0 / max(n_rows, 1),
        "frames": n_rows,
        "max_abs_logit_diff_error_term": max_diff,
        "error_term_transcribed": transcribe_error_term,
        **{
            c: {
                "wer": t["errors"] / max(t["words"], 1),
                "errors": t["errors"],
                "ref_words": t["words"],
                "ce": t["nll"] / max(t["tokens"], 1),
            }
            for c, t in totals.items()
        },
        "skipped": skipped,
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps({**summary, "utterances": utterances}, indent=1, default=_num))
    return summary


def _num(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(type(value).__name__)
