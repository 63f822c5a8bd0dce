"""BatchTopK SAE (Bussmann et al. 2024): while training, the k*B largest activations of the whole batch
survive, so a row may use more or fewer than k features; at inference a per-feature threshold (a running
average of the smallest surviving activation) replaces the batch, so SAELens reads it as a JumpReLU.
Dead features get TopK's AuxK loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..kernels import sparse_decode
from .base import Architecture, Objective, StepOut, mse, positive, unit_norm_decoder, with_target
from .topk import aux_k


@dataclass(frozen=True)
class Options:
    auxk_alpha: float = 1 / 32
    """Weight of the AuxK loss (dead features reconstruct the residual); 0 turns it off."""
    threshold_decay: float = 0.99
    """Decay of the running average that estimates the inference threshold."""

    def __post_init__(self) -> None:
        positive("batchtopk auxk_alpha", self.auxk_alpha, allow_zero=True)
        if not 0 <= self.threshold_decay < 1:
            raise ValueError(f"batchtopk threshold_decay must be in [0, 1), got {self.threshold_decay!r}")


class BatchTopKAuxK(Objective):
    def __init__(self, sae, options, *, compute_dtype=torch.float32):
        super().__init__(sae, options, compute_dtype=compute_dtype)
        self._min_kept: Tensor | None = None

    def step(self, x: Tensor, coef: float, dead: Tensor | None, target: Tensor | None = None) -> StepOut:
        sae = self.sae
        pre = sae.training_pre_acts(x).float()
        act = torch.relu(pre)
        batch, n = act.shape
        kept_values, kept_flat = act.reshape(-1).topk(sae.cfg.k * batch, sorted=False)
        codes = torch.zeros_like(act).reshape(-1).scatter(0, kept_flat, kept_values).view(batch, n)
        x_hat = codes @ sae.W_dec + sae.b_dec
        x_hat, y = with_target(sae, x, x_hat, target)
        err = mse(x_hat, y)
        loss, parts = err, {"mse": err.detach()}
        k_aux = aux_k(sae, dead, self.options.auxk_alpha)
        if k_aux > 0:
            aux_values, aux_indices = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1, sorted=False)
            residual = (y - x_hat).detach()
            auxk = mse(sparse_decode(torch.relu(aux_values), aux_indices, sae.W_dec), residual)
            loss = loss + self.options.auxk_alpha * auxk
            parts["auxk"] = auxk.detach()
        positive_kept = kept_values > 0
        self._min_kept = kept_values[positive_kept].min().detach() if positive_kept.any() else None
        active = codes > 0
        return StepOut(loss, parts, active.sum(0), active.sum(-1).float().mean(), x_hat, err)

    @torch.no_grad()
    def after_step(self) -> None:
        unit_norm_decoder(self.sae)
        if self._min_kept is None:
            return
        threshold, decay = self.sae.threshold, self.options.threshold_decay
        if bool((threshold == 0).all()):
            threshold.fill_(float(self._min_kept))
        else:
            threshold.mul_(decay).add_((1 - decay) * self._min_kept)


class BatchTopK(Architecture):
    name = "batchtopk"
    saelens_name = "jumprelu"
    reads_saelens = False  # a SAELens jumprelu folder is a JumpReLU
    needs_k = True
    has_threshold = True
    Options = Options

    def init_parameters(self, sae) -> None:
        # Estimated while training (not learned): the inference-time cut that keeps about k per row.
        sae.register_buffer("threshold", torch.zeros(sae.cfg.d_sae))

    def activate(self, sae, pre: Tensor) -> Tensor:
        return pre * (pre > sae.threshold).to(pre.dtype)

    def threshold(self, sae) -> Tensor:
        return sae.threshold

    def threshold_state(self, threshold: Tensor) -> dict:
        return {"threshold": threshold.float()}

    def objective(self, sae, options, *, compute_dtype=torch.float32) -> Objective:
        return BatchTopKAuxK(sae, options, compute_dtype=compute_dtype)


ARCHITECTURE = BatchTopK()
