"""What replaces a hook's activations in each evaluated condition, restricted to the real positions.

A condition is a row transform ``[n, d] -> [n, d]``; ``splice_fn`` (``whisper_sae.whisper.splice``,
re-exported here) lifts it to the ``[B, T, d]`` function that ``whisper_sae.whisper.hooks.patch`` calls,
applying it only where a mask says the position holds real audio (padding frames of the 30-s window
keep Whisper's own values).
"""

from __future__ import annotations

import torch
from torch import Tensor

# The splice itself sits below sae/ and evaluate/, which both use it (the spliced evaluation, the KL objective).
from whisper_sae.whisper.splice import RowTransform, frame_mask, splice_fn  # noqa: F401  (re-exported)

# Evaluated conditions, in report order. "clean" runs Whisper untouched.
CONDITIONS = ("clean", "spliced", "spliced_error", "zero", "mean")
CONDITION_LABELS = {
    "clean": "clean Whisper",
    "spliced": "SAE spliced",
    "spliced_error": "SAE spliced + error term",
    "zero": "zero ablation",
    "mean": "mean ablation",
}


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
