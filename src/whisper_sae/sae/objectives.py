"""Training objectives, one per architecture, all behind the same small interface.

Each objective computes a step's loss on normalised inputs x [B, d_in] and says which features fired;
``after_step`` applies what the method does after the optimizer (unit-norm decoder, threshold estimate).
Losses are in units of squared input norm (summed over d_in, averaged over rows), as in Anthropic's and
OpenAI's SAE papers, so a sparsity coefficient means the same thing at any width.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd import Function

from .kernels import sparse_decode, topk_encode
from .model import SparseAutoencoder


class StepOut(NamedTuple):
    """One training step's results for one SAE."""

    loss: Tensor
    """Scalar total loss (the one to back-propagate)."""
    parts: dict
    """Named scalar loss parts (mse, l1, l0_penalty, auxk), detached."""
    fired: Tensor
    """Per-feature count of rows it fired on in this batch [d_sae]."""
    l0: Tensor
    """Mean number of active features per row (scalar)."""


def _mse(x_hat: Tensor, x: Tensor) -> Tensor:
    return (x_hat.float() - x).pow(2).sum(-1).mean()


@torch.no_grad()
def _unit_norm_decoder(sae: SparseAutoencoder) -> None:
    sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))


class ReLUL1:
    """The original's ReLU SAE with an L1 penalty weighted by decoder row norms (so shrinking codes while
    growing the decoder does not cheat the penalty); dead features are resampled by the trainer."""

    default_coef = 5.0
    coef_name = "l1"

    def __init__(self, sae: SparseAutoencoder, **_):
        self.sae = sae

    def step(self, x: Tensor, coef: float, dead: Tensor | None) -> StepOut:
        sae = self.sae
        codes = torch.relu(sae.training_pre_acts(x))
        x_hat = torch.addmm(sae.b_dec, codes, sae.W_dec)
        mse = _mse(x_hat, x)
        # sum_b sum_i |f_bi| ||d_i|| / B, summed over rows first: one pass over [B, d_sae] instead of two.
        l1 = codes.float().sum(0) @ sae.W_dec.norm(dim=1) / x.shape[0]
        fired = (codes > 0).sum(0)
        return StepOut(mse + coef * l1, {"mse": mse.detach(), "l1": l1.detach()}, fired,
                       fired.sum() / x.shape[0])

    def after_step(self) -> None:
        pass


class TopKAuxK:
    """TopK with the sparse kernels, plus OpenAI's AuxK loss: the k_aux most active dead features
    reconstruct the residual, which gives dead features a gradient."""

    default_coef = 0.0
    coef_name = "none"

    def __init__(self, sae: SparseAutoencoder, *, compute_dtype=torch.float32, auxk_alpha: float = 1 / 32, **_):
        self.sae, self.compute_dtype, self.auxk_alpha = sae, compute_dtype, auxk_alpha

    def _aux(self, dead: Tensor | None) -> int:
        if dead is None or self.auxk_alpha == 0:
            return 0
        return min(int(dead.sum()), self.sae.cfg.d_in // 2)

    def step(self, x: Tensor, coef: float, dead: Tensor | None) -> StepOut:
        sae = self.sae
        k_aux = self._aux(dead)
        x_c = x - sae.b_dec if sae.cfg.apply_b_dec_to_input else x
        values, indices, aux_values, aux_indices = topk_encode(
            x_c, sae.W_enc, sae.b_enc, sae.cfg.k, compute_dtype=self.compute_dtype, dead=dead, k_aux=k_aux
        )
        x_hat = sparse_decode(values, indices, sae.W_dec) + sae.b_dec
        mse = _mse(x_hat, x)
        loss, parts = mse, {"mse": mse.detach()}
        if k_aux > 0:
            residual = (x - x_hat).detach()
            auxk = _mse(sparse_decode(aux_values, aux_indices, sae.W_dec), residual)
            loss = loss + self.auxk_alpha * auxk
            parts["auxk"] = auxk.detach()
        fired = torch.bincount(indices[values > 0], minlength=sae.cfg.d_sae)
        return StepOut(loss, parts, fired, (values > 0).sum(-1).float().mean())

    def after_step(self) -> None:
        _unit_norm_decoder(self.sae)


class BatchTopKAuxK(TopKAuxK):
    """BatchTopK: the k*B largest activations of the whole batch survive, so rows may use more or fewer
    than k. Inference uses a threshold: a running average of the smallest surviving activation."""

    def __init__(self, sae: SparseAutoencoder, *, threshold_decay: float = 0.99, **kw):
        super().__init__(sae, **kw)
        self.decay = threshold_decay
        self._min_kept: Tensor | None = None

    def step(self, x: Tensor, coef: float, dead: Tensor | None) -> StepOut:
        sae = self.sae
        pre = sae.training_pre_acts(x).float()
        act = torch.relu(pre)
        batch, n = act.shape
        kept_values, kept_flat = act.reshape(-1).topk(sae.cfg.k * batch, sorted=False)
        codes = torch.zeros_like(act).reshape(-1).scatter(0, kept_flat, kept_values).view(batch, n)
        x_hat = codes @ sae.W_dec + sae.b_dec
        mse = _mse(x_hat, x)
        loss, parts = mse, {"mse": mse.detach()}
        k_aux = self._aux(dead)
        if k_aux > 0:
            aux_values, aux_indices = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1, sorted=False)
            residual = (x - x_hat).detach()
            auxk = _mse(sparse_decode(torch.relu(aux_values), aux_indices, sae.W_dec), residual)
            loss = loss + self.auxk_alpha * auxk
            parts["auxk"] = auxk.detach()
        positive = kept_values > 0
        self._min_kept = kept_values[positive].min().detach() if positive.any() else None
        active = codes > 0
        return StepOut(loss, parts, active.sum(0), active.sum(-1).float().mean())

    @torch.no_grad()
    def after_step(self) -> None:
        _unit_norm_decoder(self.sae)
        if self._min_kept is None:
            return
        threshold = self.sae.threshold
        if bool((threshold == 0).all()):
            threshold.fill_(float(self._min_kept))
        else:
            threshold.mul_(self.decay).add_((1 - self.decay) * self._min_kept)


def _rectangle(z: Tensor) -> Tensor:
    return ((z > -0.5) & (z < 0.5)).to(z.dtype)


class _JumpReLU(Function):
    """pre * H(pre - theta); d/dtheta through a rectangle-kernel estimate of the Dirac delta."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth: float):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):
        pre, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_pre = g * (pre > threshold).to(g.dtype)
        grad_thr = (-(threshold / bw) * _rectangle((pre - threshold) / bw) * g).sum(0)
        return grad_pre, grad_thr, None


class _Step(Function):
    """H(pre - theta), with the same pseudo-derivative for theta (and none for pre)."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth: float):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):
        pre, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        return None, (-(1.0 / bw) * _rectangle((pre - threshold) / bw) * g).sum(0), None


class JumpReLUL0:
    """JumpReLU (Rajamanoharan et al. 2024): learned per-feature thresholds, an L0 penalty, and
    straight-through pseudo-derivatives for the thresholds."""

    default_coef = 0.5
    coef_name = "l0"

    def __init__(self, sae: SparseAutoencoder, *, bandwidth: float = 0.05, init_threshold: float = 0.5, **_):
        self.sae, self.bandwidth = sae, bandwidth
        # Adam moves log(threshold) by about lr per step, so a run of a few thousand steps only scales the
        # threshold by a few e; start it where pre-activations of normalised inputs live (std ~ 1 at init).
        with torch.no_grad():
            sae.log_threshold.fill_(math.log(init_threshold))

    def step(self, x: Tensor, coef: float, dead: Tensor | None) -> StepOut:
        sae = self.sae
        pre = torch.relu(sae.training_pre_acts(x).float())
        threshold = sae.log_threshold.exp()
        codes = _JumpReLU.apply(pre, threshold, self.bandwidth)
        x_hat = codes @ sae.W_dec + sae.b_dec
        mse = _mse(x_hat, x)
        l0_penalty = _Step.apply(pre, threshold, self.bandwidth).sum(-1).mean()
        active = codes > 0
        return StepOut(mse + coef * l0_penalty, {"mse": mse.detach(), "l0_penalty": l0_penalty.detach()},
                       active.sum(0), active.sum(-1).float().mean())

    def after_step(self) -> None:
        _unit_norm_decoder(self.sae)


OBJECTIVES = {"relu": ReLUL1, "topk": TopKAuxK, "batchtopk": BatchTopKAuxK, "jumprelu": JumpReLUL0}
