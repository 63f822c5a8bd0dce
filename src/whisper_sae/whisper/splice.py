"""Splicing a replacement into a hook's activations on real positions only.

``splice_fn`` lifts a row transform ``[n, d] -> [n, d]`` to the ``[B, T, d]`` function that
``whisper_sae.whisper.hooks.patch`` calls, applying it only where a mask says the position holds real
audio (padding frames of the 30-s window keep Whisper's own values). It lives here, below ``sae`` and
``evaluate``, because both the spliced evaluation (``evaluate/spliced.py``) and the KL training
objective (``sae/kl.py``) splice the same way; it is differentiable, so the KL loss back-propagates
through it into the SAE.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

RowTransform = Callable[[Tensor], Tensor]  # [n, d] -> [n, d]


def splice_fn(transform: RowTransform, mask: Tensor | None = None) -> Callable[[Tensor], Tensor]:
    """Lift a row transform to hook activations ``[B, T, d]``.

    ``mask`` [B, T_max] marks real positions (True); ``None`` transforms every position, which is what
    decoder hooks need (each generated step arrives with T = 1 through the KV cache). Positions outside
    the mask are returned bit-for-bit unchanged.
    """

    def fn(acts: Tensor) -> Tensor:
        if mask is None:
            b, t, d = acts.shape
            return transform(acts.reshape(b * t, d)).to(acts.dtype).reshape(b, t, d)
        if acts.shape[0] != mask.shape[0] or acts.shape[1] > mask.shape[1]:
            raise RuntimeError(
                f"the hook saw activations of shape {tuple(acts.shape)} but the real-frame mask is "
                f"{tuple(mask.shape)}: the batch given to Whisper must be the batch the mask was built for"
            )
        real = mask[:, : acts.shape[1]].to(acts.device)
        out = acts.clone()
        out[real] = transform(acts[real]).to(acts.dtype)
        return out

    return fn


def frame_mask(n_real: list[int], n_frames: int) -> Tensor:
    """[B, n_frames] bool mask with the first ``n_real[i]`` positions of row ``i`` True."""
    positions = torch.arange(n_frames)
    return positions[None, :] < torch.tensor(n_real)[:, None]
