"""One SAE being trained: the model, its objective and optimizer, its dead-feature bookkeeping, and
the state a checkpoint needs to continue it exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import SAEConfig
from .model import SparseAutoencoder
from .objectives import OBJECTIVES


@dataclass
class SAESpec:
    """One SAE to train in a pass: its config, its sparsity coefficient and its name (its sub-folder)."""

    config: SAEConfig
    """Shape, architecture and source of the SAE."""
    coef: float | None = None
    """L1 coefficient (relu) or L0 coefficient (jumprelu); None takes the objective's default."""
    name: str = ""
    """Sub-folder of the output folder; "" writes the SAE into the output folder itself."""

    def __post_init__(self) -> None:
        if self.coef is None:
            self.coef = OBJECTIVES[self.config.architecture].default_coef
        if not self.coef >= 0:
            raise ValueError(f"sparsity coefficient must be >= 0, got {self.coef!r}")
        if "/" in self.name or self.name in (".", ".."):
            raise ValueError(f"SAE name {self.name!r} must be a plain folder name")


def geometric_median(x: Tensor, iters: int = 50, eps: float = 1e-6) -> Tensor:
    """Weiszfeld's iteration: the point minimising the summed distances to the rows of x [N, d]."""
    point = x.mean(0)
    for _ in range(iters):
        weights = 1.0 / (x - point).norm(dim=1).clamp_min(eps)
        new = (weights[:, None] * x).sum(0) / weights.sum()
        if (new - point).norm() < eps * max(1.0, float(point.norm())):
            return new
        point = new
    return point


class Member:
    """Training state of one SAE inside a pass."""

    def __init__(self, spec: SAESpec, *, device, compute_dtype, lr: float, betas, auxk_alpha: float,
                 bandwidth: float, init_threshold: float = 0.5, scale: float = 1.0, threshold_lr_scale: float = 1.0):
        self.spec, self.name, self.scale = spec, spec.name, float(scale)
        self.sae = SparseAutoencoder(spec.config).to(device)
        self.objective = OBJECTIVES[spec.config.architecture](
            self.sae, compute_dtype=compute_dtype, auxk_alpha=auxk_alpha, bandwidth=bandwidth,
            init_threshold=init_threshold,
        )
        # Fused Adam on CUDA; on CPU the default (foreach) step was faster in benchmarks/train.py (ReLU 1152).
        fused = device.type == "cuda"
        params = [p for n, p in self.sae.named_parameters() if n != "log_threshold"]
        groups = [{"params": params, "lr_scale": 1.0}]
        if hasattr(self.sae, "log_threshold"):  # JumpReLU: its thresholds may learn faster than the weights
            groups.append({"params": [self.sae.log_threshold], "lr_scale": float(threshold_lr_scale)})
        self.optimizer = torch.optim.Adam(groups, lr=lr, betas=tuple(betas), fused=fused or None)
        self.tokens_since_fired = torch.zeros(spec.config.d_sae, dtype=torch.long, device=device)
        self.reset_window()

    @property
    def hook(self) -> str | None:
        return self.spec.config.hook_name

    def reset_window(self) -> None:
        self.window = {"steps": 0, "tokens": 0, "seconds": 0.0, "fired": 0, "l0": 0.0, "loss": 0.0,
                       "ev": 0.0, "parts": {}, "resampled": 0}

    @torch.no_grad()
    def init_from_data(self, sample: Tensor, b_dec_init: str, normalize: bool) -> None:
        """Pick the normalisation scale (mean row norm -> sqrt(d_in)) and b_dec from a data sample [N, d]."""
        sample = sample.float()
        if normalize:
            mean_norm = float(sample.norm(dim=1).mean())
            if not math.isfinite(mean_norm) or mean_norm <= 0:
                raise ValueError(f"cannot normalise activations whose mean norm is {mean_norm}")
            self.scale = math.sqrt(sample.shape[1]) / mean_norm
        sample = sample * self.scale
        if b_dec_init == "geometric_median":
            self.sae.b_dec.copy_(geometric_median(sample))
        elif b_dec_init == "mean":
            self.sae.b_dec.copy_(sample.mean(0))

    def dead_mask(self, dead_after_tokens: int) -> Tensor | None:
        dead = self.tokens_since_fired > dead_after_tokens
        return dead if bool(dead.any()) else None

    def record(self, out, x: Tensor, seconds: float, rows: int | None = None) -> None:
        """Fold one step's results into the dead-feature clock and the logging window; ``rows``: the
        global batch when ``out.fired`` was summed over data-parallel ranks (default: ``x``'s rows)."""
        batch = x.shape[0] if rows is None else rows
        fired = out.fired > 0
        self.tokens_since_fired += batch
        self.tokens_since_fired[fired] = 0
        w = self.window
        w["steps"] += 1
        w["tokens"] += batch
        w["seconds"] += seconds
        w["fired"] = w["fired"] + out.fired.to(torch.long)
        w["l0"] += float(out.l0)
        w["loss"] += float(out.loss.detach())
        variance = float((x - x.mean(0)).pow(2).sum(-1).mean())
        w["ev"] += 1.0 - float(out.parts["mse"]) / max(variance, 1e-12)
        for key, value in out.parts.items():
            w["parts"][key] = w["parts"].get(key, 0.0) + float(value)

    @torch.no_grad()
    def resample_dead(self, x: Tensor, dead_after_tokens: int, generator: torch.Generator) -> int:
        """Give dead ReLU features new directions toward rows the SAE reconstructs worst (Anthropic, 2023)."""
        dead = self.tokens_since_fired > dead_after_tokens
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        sae = self.sae
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
                if key in self.optimizer.state.get(param, {}):
                    self.optimizer.state[param][key][rows] = 0.0
        for key in ("exp_avg", "exp_avg_sq"):
            if key in self.optimizer.state.get(sae.W_enc, {}):
                self.optimizer.state[sae.W_enc][key][:, dead] = 0.0
        self.tokens_since_fired[dead] = 0
        self.window["resampled"] += n_dead
        return n_dead

    def state_dict(self) -> dict:
        return {"name": self.name, "config": self.spec.config.to_dict(), "coef": self.spec.coef,
                "scale": self.scale, "model": self.sae.state_dict(), "optimizer": self.optimizer.state_dict(),
                "tokens_since_fired": self.tokens_since_fired.cpu()}

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != self.spec.config.to_dict() or state["name"] != self.name:
            raise ValueError(
                f"the checkpoint's SAE {state['name']!r} ({state['config']}) differs from the requested "
                f"{self.name!r} ({self.spec.config.to_dict()}); resume with the same settings or use a new --out"
            )
        self.scale = state["scale"]
        self.sae.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.tokens_since_fired.copy_(state["tokens_since_fired"])

    def folded(self) -> SparseAutoencoder:
        """A copy of the SAE that takes raw activations: the normalisation scale folded into the weights."""
        cfg = SAEConfig(**{**self.spec.config.to_dict(), "activation_scale": self.scale})
        sae = SparseAutoencoder(cfg)
        state = {key: value.detach().cpu().clone() for key, value in self.sae.state_dict().items()}
        # codes are unchanged when W_enc absorbs the scale and W_dec, b_dec give it back.
        state["W_enc"] = state["W_enc"] * self.scale
        state["W_dec"] = state["W_dec"] / self.scale
        state["b_dec"] = state["b_dec"] / self.scale
        sae.load_state_dict(state)
        return sae.eval()
