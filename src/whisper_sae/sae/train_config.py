"""The settings of a training run, as plain dataclasses with one default each and their validation.

Torch-free on purpose: the ``train`` command builds its flags from these fields, their defaults and the
docstring under each field (``whisper_sae.cli.dataclass_flags``), so ``whisper-sae --help`` stays quick
and a default written here is the only copy of it. ``__post_init__`` checks every value, so the library
and the CLI refuse the same bad input with the same sentence.

- :class:`TrainConfig`: what the loop (``sae.loop.fit``) needs, shared by every SAE of a pass.
- :class:`StoreConfig`: what ``train`` adds on top when it reads an activation store: the SAE to build
  and how the store is cut into batches.

Training knobs of one architecture (JumpReLU's bandwidth, TopK's AuxK weight...) live with that
architecture in ``sae/architectures/``; ``TrainConfig.architectures`` carries the values chosen for a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal, get_args, get_type_hints


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _need_int(owner, name: str, low: int, *, optional: bool = False) -> None:
    value = getattr(owner, name)
    if value is None and optional:
        return
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _need_number(
    owner,
    name: str,
    low: float,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    optional: bool = False,
) -> None:
    value = getattr(owner, name)
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low)
    if high is not None:
        ok = ok and (value < high if open_high else value <= high)
    if not ok:
        lo = f"{'(' if open_low else '['}{low:g}"
        hi = f"{high:g}{')' if open_high else ']'}" if high is not None else "inf)"
        raise ValueError(f"{name} must be a finite number in {lo}, {hi}, got {value!r}")


def _check_literals(owner) -> None:
    """Values of ``Literal[...]`` fields must be one of their choices."""
    hints = get_type_hints(type(owner))
    for f in fields(owner):
        if getattr(hints[f.name], "__origin__", None) is Literal:
            choices = get_args(hints[f.name])
            if getattr(owner, f.name) not in choices:
                raise ValueError(f"{f.name} {getattr(owner, f.name)!r} is not one of {', '.join(choices)}")


@dataclass
class TrainConfig:
    """Settings shared by every SAE of a pass; each has a default here and nowhere else."""

    steps: int
    """Optimizer steps in the whole run."""
    lr: float = 5e-4
    """Peak learning rate (Adam)."""
    lr_warmup_steps: int | None = None
    """Linear lr warm-up in steps; default: 2 % of the steps."""
    lr_decay_start: float = 0.8
    """Fraction of the run after which the lr decays linearly to lr * lr_end_factor."""
    lr_end_factor: float = 0.0
    """Learning rate at the end of the run, as a fraction of lr."""
    betas: tuple[float, ...] = (0.9, 0.999)
    """Adam's two decay rates, comma-separated."""
    sparsity_warmup_steps: int | None = None
    """Linear warm-up of the L1 / L0 coefficient in steps; default: 5 % of the steps."""
    b_dec_init: Literal["geometric_median", "mean", "zeros"] = "geometric_median"
    """Starting decoder bias: the geometric median or mean of the first batches, or zeros."""
    normalize: bool = True
    """Scale inputs so their mean norm is sqrt(d_in) while training (folded into the saved weights)."""
    init_batches: int = 4
    """Batches read at the start to choose the scale and b_dec (they are then trained on as usual)."""
    dead_after_tokens: int = 500_000
    """A feature that fired on none of the last this-many tokens is dead."""
    dense_frequency: float = 0.1
    """A feature firing on more than this fraction of tokens counts as dense."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    autocast: Literal["auto", "bf16", "fp16", "none"] = "auto"
    """Mixed precision: auto (bf16 on CPU, and on CUDA where supported), bf16, fp16 (CUDA) or none."""
    cpu_heap: Literal["keep", "default"] = "keep"
    """On CPU: keep freed memory in the heap (glibc), so each step's large temporaries are not page-faulted in
    afresh every step (runtime/allocator.py); default: leave the C allocator as it is."""
    seed: int = 0
    """Seed of the initialisation and of the batch order."""
    log_every: int = 50
    """Write training metrics (metrics.jsonl) every this many steps."""
    eval_every: int = 500
    """Evaluate on the held-out rows every this many steps."""
    checkpoint_every: int = 500
    """Write a resumable checkpoint every this many steps."""
    eval_rows: int = 65536
    """Held-out rows used per evaluation."""
    steps_per_epoch: float | None = None
    """Only for the epoch axis of the plots."""
    architectures: dict = field(default_factory=dict)
    """Training options per architecture, e.g. {"jumprelu": {"threshold_lr": 10}}; unset ones take the
    defaults of the architecture's Options (sae/architectures/)."""
    extra: dict = field(default_factory=dict)
    """Facts about the data (store, model, hook) recorded in checkpoints and cfg.json, checked on resume."""

    def __post_init__(self) -> None:
        _need_int(self, "steps", 1)
        _need_number(self, "lr", 0.0, open_low=True)
        _need_int(self, "lr_warmup_steps", 1, optional=True)
        _need_number(self, "lr_decay_start", 0.0, 1.0)
        _need_number(self, "lr_end_factor", 0.0, 1.0)
        _need_int(self, "sparsity_warmup_steps", 0, optional=True)
        self.betas = tuple(self.betas)
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        _check_literals(self)
        for name in ("init_batches", "log_every", "eval_every", "checkpoint_every", "eval_rows"):
            _need_int(self, name, 1)
        _need_int(self, "dead_after_tokens", 0)
        _need_number(self, "dense_frequency", 0.0, 1.0, open_low=True)
        _need_int(self, "seed", 0)
        _need_number(self, "steps_per_epoch", 0.0, open_low=True, optional=True)
        if not isinstance(self.normalize, bool):
            raise ValueError(f"normalize must be True or False, got {self.normalize!r}")
        if not isinstance(self.architectures, dict):
            raise ValueError(f"architectures must map an architecture to its options, got {self.architectures!r}")
        from dataclasses import asdict

        from .architectures import get_architecture

        self.architectures = {
            name: asdict(get_architecture(name).options(values)) for name, values in self.architectures.items()
        }

    def options_for(self, architecture: str):
        """The training options of ``architecture`` for this run (its defaults where none were given)."""
        from .architectures import get_architecture

        return get_architecture(architecture).options(self.architectures.get(architecture))

    def warmup(self) -> int:
        return self.lr_warmup_steps if self.lr_warmup_steps is not None else max(1, self.steps // 50)

    def lr_at(self, step: int) -> float:
        """Learning rate for the step numbered ``step`` (0-based)."""
        factor = min(1.0, (step + 1) / self.warmup())
        decay_from = int(self.lr_decay_start * self.steps)
        if step >= decay_from and self.steps > decay_from:
            progress = (step - decay_from) / (self.steps - decay_from)
            factor *= 1.0 - (1.0 - self.lr_end_factor) * progress
        return self.lr * factor

    def sparsity_at(self, step: int) -> float:
        warm = self.sparsity_warmup_steps if self.sparsity_warmup_steps is not None else max(1, self.steps // 20)
        return min(1.0, (step + 1) / max(1, warm))


@dataclass
class StoreConfig:
    """What ``train`` builds and reads from an activation store, beyond ``TrainConfig``."""

    arch: str = "topk"
    """SAE architecture (one of the registry's, sae/architectures/)."""
    width: int = 1152
    """Number of features (d_sae)."""
    k: int | None = 32
    """Active features per frame, for the architectures that need it (topk, batchtopk); ignored by the others."""
    coef: float | None = None
    """Sparsity coefficient: L1 for relu, L0 for jumprelu; default: the architecture's (relu 5, jumprelu 0.5)."""
    batch_size: int = 4096
    """Rows per optimizer step (under torchrun's data parallelism: over all ranks together)."""
    holdout: float = 0.1
    """Fraction of utterances held out for validation."""
    split_seed: int = 0
    """Seed of the train / held-out split of the utterances."""
    epochs: float = 10.0
    """Passes over the training utterances, when steps are not given."""
    buffer_rows: int = 262_144
    """Rows of the shuffle buffer the store streams through (the store is never loaded whole): memory about
    rows x d_model x 2 bytes for an fp16 store, 0.2 GB at d_model 384; a batch mixes the shards it holds."""

    def __post_init__(self) -> None:
        from .architectures import check_name

        check_name(self.arch)
        _need_int(self, "width", 1)
        _need_int(self, "k", 1, optional=True)
        _need_number(self, "coef", 0.0, optional=True)
        _need_int(self, "batch_size", 1)
        _need_number(self, "holdout", 0.0, 1.0, open_high=True)
        _need_int(self, "split_seed", 0)
        _need_number(self, "epochs", 0.0, open_low=True)
        _need_int(self, "buffer_rows", 1)


OBJECTIVES = ("mse", "kl", "kl+mse")
"""Training losses: the SAE's own reconstruction error, or what Whisper's decoder makes of it (``sae/kl.py``)."""


@dataclass
class KLConfig:
    """What training on Whisper's logits adds (``sae/kl_training.py``): the loss and the utterance batches."""

    objective: Literal["mse", "kl", "kl+mse"] = "kl"
    """kl: KL(clean || spliced logits) over the transcript tokens, plus the architecture's sparsity term;
    kl+mse: that plus mse_weight x normalised MSE; mse: the reconstruction loss alone, on the same utterances
    (a control for what the data, not the loss, changes)."""
    mse_weight: float = 1.0
    """Weight of the normalised MSE (squared error over the activations' variance, i.e. 1 - EV) in kl+mse."""
    utterances_per_step: int = 4
    """Utterances per optimizer step; their real frames (tokens for decoder hooks) are the SAE's rows."""
    epochs: float = 1.0
    """Passes over the training utterances, when --steps is not given."""
    max_utterances: int | None = None
    """Read at most this many utterances of the corpus (before the held-out ones are set aside)."""
    decoder_text: Literal["reference", "model"] = "reference"
    """What the decoder is teacher-forced with: the reference transcript (Whisper's own transcript for an
    utterance without one), or always Whisper's own transcript."""

    def __post_init__(self) -> None:
        _check_literals(self)
        _need_number(self, "mse_weight", 0.0)
        _need_int(self, "utterances_per_step", 1)
        _need_number(self, "epochs", 0.0, open_low=True)
        _need_int(self, "max_utterances", 1, optional=True)
