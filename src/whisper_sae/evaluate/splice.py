"""What replaces a hook's activations in each evaluated condition, restricted to the real positions.

A condition is a row transform ``[n, d] -> [n, d]``; ``splice_fn`` lifts it to the ``[B, T, d]``
function that ``whisper_sae.whisper.hooks.patch`` calls, applying it only where a mask says the
position holds real audio (padding frames of the 30-s window keep Whisper's own values).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

# Evaluated conditions, in report order. "clean" runs Whisper untouched.
CONDITIONS = ("clean", "spliced", "spliced_error", "zero", "mean")
CONDITION_LABELS = {
    "clean": "clean Whisper",
    "spliced": "SAE spliced",
    "spliced_error": "SAE spliced + error term",
    "zero": "zero ablation",
    "mean": "mean ablation",
}

RowTransform = Callable[[Tensor], Tensor]  # [n, d] -> [n, d]


def sae_reconstruct(sae, x: Tensor) -> Tensor:
    """The SAE's reconstruction of rows ``x`` [n, d_in], computed in float32 whatever ``x``'s dtype."""
    return sae.decode(sae.encode(x.float()))


def condition_transform(condition: str, sae, mean: Tensor | None = None) -> RowTransform | None:
    """The row transform of one condition; ``None`` for ``clean`` (nothing to patch).

    ``spliced_error`` adds back the SAE's error ``x - x_hat``: the result equals ``x`` up to float
    rounding, so it checks that the splice itself (masking, batching, the KV cache) changes nothing.
    """
    if condition == "clean":
        return None
    if condition == "spliced":
        return lambda x: sae_reconstruct(sae, x)
    if condition == "spliced_error":

        def with_error(x: Tensor) -> Tensor:
            x32 = x.float()
            x_hat = sae_reconstruct(sae, x32)
            return x_hat + (x32 - x_hat)

        return with_error
    if condition == "zero":
        return torch.zeros_like
    if condition == "mean":
        if mean is None:
            raise ValueError("mean ablation needs the mean activation over the evaluated rows; got mean=None")
        return lambda x: mean.to(device=x.device, dtype=torch.float32).expand(x.shape[0], -1)
    raise ValueError(f"condition {condition!r} is not known; valid conditions are {', '.join(CONDITIONS)}")


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
