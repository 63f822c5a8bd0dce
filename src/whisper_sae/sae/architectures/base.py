"""What an architecture is: the interface each module of ``sae/architectures/`` fills in.

An :class:`Architecture` is a stateless description (one instance per architecture, ``ARCHITECTURE``
in its module); the state lives in the ``SparseAutoencoder`` and the objective it builds. Losses are
in units of squared input norm (summed over d_in, averaged over rows), as in Anthropic's and OpenAI's
SAE papers, so a sparsity coefficient means the same thing at any width.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..config import SAEConfig
    from ..model import SparseAutoencoder
    from ..trained_sae import TrainedSAE


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
    x_hat: Tensor | None = None
    """The training-mode reconstruction [B, d_in] (with autograd), for losses computed downstream of the SAE
    (``sae/kl.py`` splices it into Whisper)."""
    mse: Tensor | None = None
    """The reconstruction term of ``loss`` itself (not detached): ``loss - mse`` is the sparsity and
    dead-feature part, with an exactly zero gradient from the reconstruction."""


def mse(x_hat: Tensor, x: Tensor) -> Tensor:
    """Squared error summed over features, averaged over rows."""
    # torch.sub widens a bf16 x_hat to fp32 while subtracting: the values of x_hat.float() - x, one pass less.
    return torch.sub(x_hat, x.float()).pow(2).sum(-1).mean()


def with_target(sae: SparseAutoencoder, x: Tensor, x_hat: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
    """(the reconstruction with a skip transcoder's linear path added, what it is compared with): the
    input ``x`` for an SAE or a crosscoder, ``target`` (the other hook's rows) for a transcoder."""
    if sae.cfg.skip:
        x_hat = x_hat + sae.skip_out(x)
    return x_hat, (x if target is None else target)


@torch.no_grad()
def unit_norm_decoder(sae: SparseAutoencoder) -> None:
    sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))


@dataclass(frozen=True)
class NoOptions:
    """This architecture has no training options."""


class Objective:
    """The training step of one SAE: ``step`` computes the loss on normalised rows x [B, d_in];
    ``after_step`` runs after the optimizer (unit-norm decoder, threshold estimate)."""

    def __init__(self, sae: SparseAutoencoder, options, *, compute_dtype=torch.float32):
        self.sae, self.options, self.compute_dtype = sae, options, compute_dtype

    def step(self, x: Tensor, coef: float, dead: Tensor | None, target: Tensor | None = None) -> StepOut:
        """``target``: the rows a transcoder must produce from ``x`` (None: reconstruct ``x``)."""
        raise NotImplementedError

    def after_step(self) -> None:
        pass


class Architecture:
    """One SAE architecture. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    """Registry name, written to cfg.json's ``whisper_sae.architecture``."""
    saelens_name: ClassVar[str]
    """SAELens' name for the same inference-time forward pass (cfg.json ``architecture``)."""
    reads_saelens: ClassVar[bool] = True
    """Whether a folder SAELens wrote with ``saelens_name`` is read as this architecture."""
    needs_k: ClassVar[bool] = False
    """Whether SAEConfig.k (active features per row) is required (else it must be None)."""
    has_threshold: ClassVar[bool] = False
    """Whether inference uses a per-feature threshold, saved as ``threshold`` [d_sae]."""
    default_coef: ClassVar[float] = 0.0
    """Default sparsity coefficient (what ``--coef`` weighs: ``coef_name``)."""
    coef_name: ClassVar[str | None] = None
    """What the sparsity coefficient weighs (``l1``, ``l0``), None if the architecture has none."""
    Options: ClassVar[type] = NoOptions
    """Dataclass of training knobs shared by the SAEs of this architecture in a pass."""

    # -- the module's parameters ------------------------------------------------------------------
    def init_parameters(self, sae: SparseAutoencoder) -> None:
        """Add parameters or buffers beyond W_enc, b_enc, W_dec, b_dec."""

    def check_config(self, cfg: SAEConfig) -> None:
        """Raise a ValueError for settings this architecture cannot use."""
        if self.needs_k:
            if not isinstance(cfg.k, int) or isinstance(cfg.k, bool) or not 0 < cfg.k <= cfg.d_sae:
                raise ValueError(
                    f"architecture {self.name!r} needs k, an integer in 1..d_sae={cfg.d_sae} "
                    f"(the width); got k={cfg.k!r}"
                )
        elif cfg.k is not None:
            raise ValueError(
                f"k={cfg.k} is only meaningful for an architecture that keeps k features per row, "
                f"not {self.name!r}; leave k unset"
            )

    # -- inference --------------------------------------------------------------------------------
    def activate(self, sae: SparseAutoencoder, pre: Tensor) -> Tensor:
        """The non-linearity at inference: feature activations from pre-activations [..., d_sae]."""
        raise NotImplementedError

    def threshold(self, sae: SparseAutoencoder) -> Tensor:
        """Per-feature inference threshold [d_sae] (architectures with ``has_threshold``)."""
        raise AttributeError(f"architecture {self.name!r} has no threshold")

    def threshold_state(self, threshold: Tensor) -> dict:
        """State-dict entries that restore a saved ``threshold`` tensor."""
        return {}

    def saelens_fields(self, cfg: SAEConfig) -> dict:
        """Extra top-level cfg.json keys SAELens needs for this architecture."""
        return {}

    # -- training ---------------------------------------------------------------------------------
    def options(self, values=None):
        """The ``Options`` from a dict (or an Options), with an error naming an unknown option."""
        if isinstance(values, self.Options):
            return values
        values = dict(values or {})
        known = [f.name for f in dataclasses.fields(self.Options)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"{self.name} has no training option(s) {unknown}; its options are {', '.join(known) or 'none'}"
            )
        return self.Options(**values)

    def objective(self, sae: SparseAutoencoder, options, *, compute_dtype=torch.float32) -> Objective:
        raise NotImplementedError

    def param_groups(self, sae: SparseAutoencoder, options) -> list[dict]:
        """Optimizer parameter groups; ``lr_scale`` multiplies the scheduled learning rate."""
        return [{"params": list(sae.parameters()), "lr_scale": 1.0}]

    def handle_dead(
        self,
        trained: TrainedSAE,
        rows: Callable[[], Tensor],
        *,
        step: int,
        steps: int,
        dead_after_tokens: int,
        options,
        generator: torch.Generator,
    ) -> int:
        """After the optimizer step numbered ``step``: revive dead features if the architecture does it
        here (rather than in its loss); ``rows()`` gives the global batch. Returns how many were revived."""
        return 0


def positive(name: str, value, *, allow_zero: bool = False) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a finite positive (or >= 0) number."""
    import math

    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        need = "a finite number >= 0" if allow_zero else "a finite positive number"
        raise ValueError(f"{name} must be {need}, got {value!r}")
