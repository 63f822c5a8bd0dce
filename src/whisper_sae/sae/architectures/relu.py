"""ReLU SAE with an L1 penalty, as the original whisper-sae trained it, plus dead-feature resampling.

The L1 penalty is weighted by the decoder rows' norms, so shrinking codes while growing the decoder
does not cheat it. Dead features are resampled (Anthropic, 2023): given new directions toward the rows
the SAE reconstructs worst, on a schedule, until 80 % of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..relu_step import relu_l1
from .base import Architecture, Objective, StepOut, mse, with_target


@dataclass(frozen=True)
class Options:
    resample_every: int | None = None
    """Resample dead ReLU features every this many steps (until 80 % of the run); default: steps // 6; 0: off."""

    def __post_init__(self) -> None:
        if self.resample_every is not None and (not isinstance(self.resample_every, int) or self.resample_every < 0):
            raise ValueError(f"relu resample_every must be an integer >= 0 (0: off), got {self.resample_every!r}")


class ReLUL1(Objective):
    def step(self, x: Tensor, coef: float, dead: Tensor | None, target: Tensor | None = None) -> StepOut:
        sae = self.sae
        if target is None and not sae.cfg.skip:
            # One autograd Function for encoder, ReLU, decoder and the decoder-norm-weighted L1 (sae/relu_step.py).
            x_hat, err, l1, fired = relu_l1(
                x,
                sae.W_enc,
                sae.b_enc,
                sae.W_dec,
                sae.b_dec,
                centre_input=sae.cfg.apply_b_dec_to_input,
                compute_dtype=self.compute_dtype,
            )
        else:  # a transcoder (another hook's rows as target) or a skip transcoder: plain autograd
            codes = torch.relu(sae.training_pre_acts(x))
            x_hat = torch.addmm(sae.b_dec, codes, sae.W_dec)
            x_hat, y = with_target(sae, x, x_hat, target)
            err = mse(x_hat, y)
            l1 = codes.float().sum(0) @ sae.W_dec.norm(dim=1) / x.shape[0]
            fired = (codes > 0).sum(0)
        return StepOut(
            err + coef * l1, {"mse": err.detach(), "l1": l1.detach()}, fired, fired.sum() / x.shape[0], x_hat, err
        )


class ReLU(Architecture):
    name = "relu"
    saelens_name = "standard"
    default_coef = 5.0
    coef_name = "l1"
    Options = Options

    def activate(self, sae, pre: Tensor) -> Tensor:
        return torch.relu(pre)

    def objective(self, sae, options, *, compute_dtype=torch.float32) -> Objective:
        return ReLUL1(sae, options, compute_dtype=compute_dtype)

    def handle_dead(self, trained, rows, *, step, steps, dead_after_tokens, options, generator) -> int:
        if trained.sae.cfg.kind == "transcoder":  # resampling aims at badly reconstructed inputs: SAEs only
            return 0
        every = options.resample_every if options.resample_every is not None else max(1, steps // 6)
        if not every or (step + 1) % every or step + 1 >= 0.8 * steps:
            return 0
        return resample_dead(trained, rows(), dead_after_tokens, generator)


@torch.no_grad()
def resample_dead(trained, x: Tensor, dead_after_tokens: int, generator: torch.Generator) -> int:
    """Give dead features new directions toward rows x the SAE reconstructs worst; their Adam state is reset."""
    dead = trained.tokens_since_fired > dead_after_tokens
    n_dead = int(dead.sum())
    if n_dead == 0:
        return 0
    sae, optimizer = trained.sae, trained.optimizer
    errors = (sae(x).x_hat.float() - x).pow(2).sum(-1)
    picks = torch.multinomial(errors.pow(2).cpu() + 1e-12, n_dead, replacement=True, generator=generator)
    centred = x[picks.to(x.device)] - (sae.b_dec if sae.cfg.apply_b_dec_to_input else 0)
    directions = centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-8)
    alive = ~dead
    enc_norm = float(sae.W_enc[:, alive].norm(dim=0).mean()) if bool(alive.any()) else 1.0
    sae.W_dec[dead] = directions
    sae.W_enc[:, dead] = directions.T * (0.2 * enc_norm)
    sae.b_enc[dead] = 0.0
    for param, rows in ((sae.W_dec, dead), (sae.b_enc, dead)):
        for key in ("exp_avg", "exp_avg_sq"):
            if key in optimizer.state.get(param, {}):
                optimizer.state[param][key][rows] = 0.0
    for key in ("exp_avg", "exp_avg_sq"):
        if key in optimizer.state.get(sae.W_enc, {}):
            optimizer.state[sae.W_enc][key][:, dead] = 0.0
    trained.tokens_since_fired[dead] = 0
    return n_dead


ARCHITECTURE = ReLU()
