"""JumpReLU SAE (Rajamanoharan et al. 2024): learned per-feature thresholds, an L0 penalty, and
straight-through pseudo-derivatives (a rectangle kernel of width ``bandwidth``) for the thresholds.

The threshold is learned in log space so it stays positive, and saved as ``threshold``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd import Function

from .base import Architecture, Objective, StepOut, mse, positive, unit_norm_decoder, with_target


@dataclass(frozen=True)
class Options:
    bandwidth: float = 0.05
    """Width of the threshold's pseudo-derivative (rectangle kernel), in normalised units."""
    init_threshold: float = 0.5
    """Initial threshold in normalised units (pre-activations have std ~1 at init); with a slow threshold lr it largely sets L0."""
    threshold_lr: float = 1.0
    """The thresholds' learning rate as a multiple of lr (10 lets L0 follow the coefficient within short runs)."""

    def __post_init__(self) -> None:
        positive("jumprelu bandwidth", self.bandwidth)
        positive("jumprelu init_threshold", self.init_threshold)
        positive("jumprelu threshold_lr", self.threshold_lr, allow_zero=True)


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


class JumpReLUL0(Objective):
    def __init__(self, sae, options, *, compute_dtype=torch.float32):
        super().__init__(sae, options, compute_dtype=compute_dtype)
        # Adam moves log(threshold) by about lr per step, so a run of a few thousand steps only scales the
        # threshold by a few e; start it where pre-activations of normalised inputs live (std ~ 1 at init).
        with torch.no_grad():
            sae.log_threshold.fill_(math.log(options.init_threshold))

    def step(self, x: Tensor, coef: float, dead: Tensor | None, target: Tensor | None = None) -> StepOut:
        sae, bandwidth = self.sae, self.options.bandwidth
        pre = torch.relu(sae.training_pre_acts(x).float())
        threshold = sae.log_threshold.exp()
        codes = _JumpReLU.apply(pre, threshold, bandwidth)
        x_hat = codes @ sae.W_dec + sae.b_dec
        x_hat, y = with_target(sae, x, x_hat, target)
        err = mse(x_hat, y)
        l0_penalty = _Step.apply(pre, threshold, bandwidth).sum(-1).mean()
        active = codes > 0
        return StepOut(
            err + coef * l0_penalty,
            {"mse": err.detach(), "l0_penalty": l0_penalty.detach()},
            active.sum(0),
            active.sum(-1).float().mean(),
            x_hat,
            err,
        )

    def after_step(self) -> None:
        unit_norm_decoder(self.sae)


class JumpReLU(Architecture):
    name = "jumprelu"
    saelens_name = "jumprelu"
    has_threshold = True
    default_coef = 0.5
    coef_name = "l0"
    Options = Options

    def init_parameters(self, sae) -> None:
        sae.log_threshold = torch.nn.Parameter(torch.full((sae.cfg.d_sae,), math.log(0.01)))

    def activate(self, sae, pre: Tensor) -> Tensor:
        return pre * (pre > self.threshold(sae)).to(pre.dtype)

    def threshold(self, sae) -> Tensor:
        return sae.log_threshold.exp()

    def threshold_state(self, threshold: Tensor) -> dict:
        return {"log_threshold": threshold.float().clamp_min(1e-30).log()}

    def objective(self, sae, options, *, compute_dtype=torch.float32) -> Objective:
        return JumpReLUL0(sae, options, compute_dtype=compute_dtype)

    def param_groups(self, sae, options) -> list[dict]:
        # The thresholds may learn faster than the weights.
        weights = [p for n, p in sae.named_parameters() if n != "log_threshold"]
        return [
            {"params": weights, "lr_scale": 1.0},
            {"params": [sae.log_threshold], "lr_scale": float(options.threshold_lr)},
        ]


ARCHITECTURE = JumpReLU()
