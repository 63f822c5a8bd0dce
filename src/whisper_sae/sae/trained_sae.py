"""One SAE being trained inside a pass (``TrainedSAE``), and what to train (``SAESpec``).

A ``TrainedSAE`` holds the model, its architecture's objective and the optimizer, the dead-feature
clock and the logging window, and gives the loop (``sae/loop.py``) the state a checkpoint needs to
continue it exactly (``checkpoint_state`` / ``load_checkpoint_state``). What differs between
architectures is asked of ``sae/architectures/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .architectures import get_architecture
from .config import SAEConfig
from .model import SparseAutoencoder


@dataclass
class SAESpec:
    """One SAE to train in a pass: its config, its sparsity coefficient and its name (its sub-folder)."""

    config: SAEConfig
    """Shape, architecture and source of the SAE."""
    coef: float | None = None
    """L1 coefficient (relu) or L0 coefficient (jumprelu); None takes the architecture's default."""
    name: str = ""
    """Sub-folder of the output folder; "" writes the SAE into the output folder itself."""

    def __post_init__(self) -> None:
        if self.coef is None:
            self.coef = get_architecture(self.config.architecture).default_coef
        if not (isinstance(self.coef, (int, float)) and math.isfinite(self.coef) and self.coef >= 0):
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


def _unit_scale(sample: Tensor) -> float:
    mean_norm = float(sample.norm(dim=1).mean())
    if not math.isfinite(mean_norm) or mean_norm <= 0:
        raise ValueError(f"cannot normalise activations whose mean norm is {mean_norm}")
    return math.sqrt(sample.shape[1]) / mean_norm


def _row_variance(x: Tensor) -> float:
    """sum_j var(x[:, j]) (population), the EV's denominator: E||x||^2 - ||E x||^2, two reads of x
    (a BLAS dot and a column mean) instead of three passes, the difference taken in float64."""
    flat = x.reshape(-1).float()
    mean = x.float().mean(0)
    return max(float(torch.dot(flat, flat)) / x.shape[0] - float(torch.dot(mean, mean)), 0.0)


class TrainedSAE:
    """Training state of one SAE inside a pass."""

    def __init__(self, spec: SAESpec, *, device, compute_dtype, lr: float, betas, options=None, scale: float = 1.0):
        self.spec, self.name, self.scale = spec, spec.name, float(scale)
        self.scale_out = float(scale)  # a transcoder's target scale (its output hook's); = scale otherwise
        self.arch = get_architecture(spec.config.architecture)
        self.options = self.arch.options(options)
        self.sae = SparseAutoencoder(spec.config).to(device)
        self.objective = self.arch.objective(self.sae, self.options, compute_dtype=compute_dtype)
        # Fused Adam on CUDA; on CPU the default (foreach) step was faster in benchmarks/train.py (ReLU 1152).
        fused = device.type == "cuda"
        groups = self.arch.param_groups(self.sae, self.options)
        self.optimizer = torch.optim.Adam(groups, lr=lr, betas=tuple(betas), fused=fused or None)
        self.tokens_since_fired = torch.zeros(spec.config.d_sae, dtype=torch.long, device=device)
        self.reset_window()

    @property
    def hook(self) -> str | None:
        return self.spec.config.hook_name

    def reset_window(self) -> None:
        self.window = {
            "steps": 0,
            "tokens": 0,
            "seconds": 0.0,
            "fired": 0,
            "l0": 0.0,
            "loss": 0.0,
            "ev": 0.0,
            "parts": {},
            "resampled": 0,
        }

    @torch.no_grad()
    def init_from_data(self, sample: Tensor, b_dec_init: str, normalize: bool, target: Tensor | None = None) -> None:
        """Pick the normalisation scale (mean row norm -> sqrt(d_in)) and b_dec from a data sample [N, d];
        a transcoder's ``target`` sample (its output hook's rows) gets its own scale and gives b_dec."""
        sample = sample.float()
        if normalize:
            self.scale = _unit_scale(sample)
            self.scale_out = _unit_scale(target.float()) if target is not None else self.scale
        else:
            self.scale_out = self.scale
        sample = sample * self.scale if target is None else target.float() * self.scale_out
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
        variance = _row_variance(x)
        w["ev"] += 1.0 - float(out.parts["mse"]) / max(variance, 1e-12)
        for key, value in out.parts.items():
            w["parts"][key] = w["parts"].get(key, 0.0) + float(value)

    def handle_dead(self, rows, *, step: int, steps: int, dead_after_tokens: int, generator) -> None:
        """The architecture's dead-feature handling after the optimizer step ``step`` (e.g. ReLU resampling)."""
        self.window["resampled"] += self.arch.handle_dead(
            self,
            rows,
            step=step,
            steps=steps,
            dead_after_tokens=dead_after_tokens,
            options=self.options,
            generator=generator,
        )

    # -- checkpoints: tensors (safetensors) and plain values (JSON) kept apart, nothing pickled ---------
    def checkpoint_state(self) -> tuple[dict, dict]:
        """(JSON-able description, flat dict of tensors) of everything needed to continue exactly."""
        tensors = {f"model/{key}": value for key, value in self.sae.state_dict().items()}
        optim = self.optimizer.state_dict()
        for index, slots in optim["state"].items():
            for slot, value in slots.items():
                if not isinstance(value, torch.Tensor):
                    raise TypeError(f"optimizer state {slot!r} is a {type(value).__name__}, not a tensor")
                tensors[f"optim/{index}/{slot}"] = value
        tensors["tokens_since_fired"] = self.tokens_since_fired
        meta = {
            "name": self.name,
            "config": self.spec.config.to_dict(),
            "coef": self.spec.coef,
            "scale": self.scale,
            "scale_out": self.scale_out,
            "param_groups": optim["param_groups"],
        }
        return meta, tensors

    def check_checkpoint(self, meta: dict, where) -> None:
        """Raise a ValueError naming what differs when a checkpoint's SAE is not this one."""
        mine = self.spec.config.to_dict()
        theirs = meta.get("config") or {}
        diff = [f"{key} {theirs.get(key)!r} (now {mine[key]!r})" for key in mine if theirs.get(key) != mine[key]]
        if meta.get("name") != self.name:
            diff.insert(0, f"name {meta.get('name')!r} (now {self.name!r})")
        if diff:
            raise ValueError(
                f"cannot resume {where}: its SAE {meta.get('name')!r} was trained with {', '.join(diff)}; "
                "resume with the same settings (width, k, architecture, hook) or write to a new --out"
            )

    def load_checkpoint_state(self, meta: dict, tensors: dict, where) -> None:
        self.check_checkpoint(meta, where)
        self.scale = float(meta["scale"])
        self.scale_out = float(meta.get("scale_out", self.scale))
        model = {key[len("model/") :]: value for key, value in tensors.items() if key.startswith("model/")}
        self.sae.load_state_dict(model)
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, index, slot = key.split("/", 2)
                state.setdefault(int(index), {})[slot] = value
        groups = [
            {**group, "betas": tuple(group["betas"])} if "betas" in group else group for group in meta["param_groups"]
        ]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.tokens_since_fired.copy_(tensors["tokens_since_fired"])

    def folded(self) -> SparseAutoencoder:
        """A copy of the SAE that takes raw activations: the normalisation scale folded into the weights."""
        cfg = SAEConfig(**{**self.spec.config.to_dict(), "activation_scale": self.scale})
        sae = SparseAutoencoder(cfg)
        state = {key: value.detach().cpu().clone() for key, value in self.sae.state_dict().items()}
        # codes are unchanged when W_enc absorbs the scale and W_dec, b_dec give it back.
        # A transcoder's output has its own scale: W_dec, b_dec give back scale_out, W_skip maps between them.
        state["W_enc"] = state["W_enc"] * self.scale
        state["W_dec"] = state["W_dec"] / self.scale_out
        state["b_dec"] = state["b_dec"] / self.scale_out
        if "W_skip" in state:
            state["W_skip"] = state["W_skip"] * (self.scale / self.scale_out)
        sae.load_state_dict(state)
        return sae.eval()
