"""TopK SAE (OpenAI, Gao et al. 2024): the k largest pre-activations of each row survive (ReLU'd).

Training uses the sparse kernels of ``sae/kernels.py`` and OpenAI's AuxK loss as its dead-feature
handling: the ``k_aux`` most active dead features reconstruct the residual, which gives dead features a
gradient. There is no sparsity coefficient: k sets the sparsity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..kernels import ByFeature, sparse_decode, topk_encode
from .base import Architecture, Objective, StepOut, mse, positive, unit_norm_decoder, with_target


@dataclass(frozen=True)
class Options:
    auxk_alpha: float = 1 / 32
    """Weight of the AuxK loss (dead features reconstruct the residual); 0 turns it off."""

    def __post_init__(self) -> None:
        positive("topk auxk_alpha", self.auxk_alpha, allow_zero=True)


def aux_k(sae, dead: Tensor | None, auxk_alpha: float) -> int:
    """How many dead features take part in the AuxK loss: up to d_in / 2, none without dead features."""
    if dead is None or auxk_alpha == 0:
        return 0
    return min(int(dead.sum()), sae.cfg.d_in // 2)


class TopKAuxK(Objective):
    def step(self, x: Tensor, coef: float, dead: Tensor | None, target: Tensor | None = None) -> StepOut:
        sae = self.sae
        k_aux = aux_k(sae, dead, self.options.auxk_alpha)
        groups = ByFeature()  # the picks sorted by feature once, for both weight gradients
        values, indices, aux_values, aux_indices = topk_encode(
            x,
            sae.W_enc,
            sae.b_enc,
            sae.cfg.k,
            b_dec=sae.b_dec if sae.cfg.apply_b_dec_to_input else None,
            compute_dtype=self.compute_dtype,
            dead=dead,
            k_aux=k_aux,
            groups=groups,
        )
        x_hat = sparse_decode(values, indices, sae.W_dec, groups) + sae.b_dec
        x_hat, y = with_target(sae, x, x_hat, target)
        err = mse(x_hat, y)
        loss, parts = err, {"mse": err.detach()}
        if k_aux > 0:
            residual = (y - x_hat).detach()
            auxk = mse(sparse_decode(aux_values, aux_indices, sae.W_dec), residual)
            loss = loss + self.options.auxk_alpha * auxk
            parts["auxk"] = auxk.detach()
        fired = torch.bincount(indices[values > 0], minlength=sae.cfg.d_sae)
        return StepOut(loss, parts, fired, (values > 0).sum(-1).float().mean(), x_hat, err)

    def after_step(self) -> None:
        unit_norm_decoder(self.sae)


class TopK(Architecture):
    name = "topk"
    saelens_name = "topk"
    needs_k = True
    Options = Options

    def activate(self, sae, pre: Tensor) -> Tensor:
        values, indices = pre.topk(sae.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, indices, torch.relu(values))

    def saelens_fields(self, cfg) -> dict:
        return {"k": cfg.k, "rescale_acts_by_decoder_norm": False}

    def objective(self, sae, options, *, compute_dtype=torch.float32) -> Objective:
        return TopKAuxK(sae, options, compute_dtype=compute_dtype)


ARCHITECTURE = TopK()
