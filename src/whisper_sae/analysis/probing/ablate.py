"""Intervention check: remove a set of SAE features from the hook's activations and see whether a
probe can still find the attribute, and what Whisper's transcripts lose.

The edit keeps the SAE's error term: x' = x − Σ_{f∈S} code_f(x) · W_dec[f], i.e. x minus the
difference between the SAE's reconstruction and its reconstruction with the features of S zeroed.
Everything the SAE does not explain stays in place, so a change is caused by those features alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from whisper_sae.evaluate.metrics import corpus_wer
from whisper_sae.whisper import patch


def ablation_transform(sae, features: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn(x [..., d]) -> x'`` with the decoder contribution of ``features`` removed (see module doc)."""
    idx = torch.as_tensor(sorted(set(int(f) for f in features)), dtype=torch.long)

    @torch.no_grad()
    def fn(x: torch.Tensor) -> torch.Tensor:
        if len(idx) == 0:
            return x
        flat = x.reshape(-1, x.shape[-1]).float()
        w = sae.W_dec[idx.to(sae.W_dec.device)].float()  # [k, d]
        codes = sae.encode(flat.to(w.device))[:, idx.to(w.device)].float()
        return (flat - (codes @ w).to(flat.device)).reshape(x.shape).to(x.dtype)

    return fn


def random_alive_features(codes_pooled: np.ndarray, k: int, exclude: set[int], seed: int = 0) -> list[int]:
    """``k`` random features that fire somewhere in the data (a dead feature removes nothing, which
    would make a control look cheaper than it is), none of them in ``exclude``."""
    alive = np.flatnonzero(codes_pooled.max(0) > 0)
    pool = np.array([f for f in alive if int(f) not in exclude])
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(pool, size=min(k, len(pool)), replace=False).tolist()) if len(pool) else []


def transcribe_ablated(lw, hook: str, audios: list[np.ndarray], transform=None, *, batch_size: int = 8) -> list[str]:
    """Whisper's greedy transcripts with ``transform`` applied at ``hook`` on every forward pass
    (all 1500 positions of the window: the padding frames are part of what the decoder attends to)."""
    ctx = patch(lw.model, hook, transform) if transform is not None else contextlib.nullcontext()
    with ctx:
        return lw.transcribe(audios, batch_size=batch_size)


def wer_rows(references: list[str | None], clean: list[str], ablated: list[str]) -> dict:
    """WER against the reference transcripts and against Whisper's own unablated transcripts."""
    has_ref = [r is not None and r.strip() != "" for r in references]
    refs = [r for r, h in zip(references, has_ref) if h]
    out = {"wer_vs_clean_transcript": _nan_none(corpus_wer(clean, ablated))}
    if refs:
        out["wer"] = _nan_none(corpus_wer(refs, [a for a, h in zip(ablated, has_ref) if h]))
    return out


def _nan_none(x: float) -> float | None:
    return None if x != x else float(x)
