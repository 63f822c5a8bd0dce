"""The training loop: several SAEs fitted in one pass over a stream of activation batches.

``fit`` takes any iterable of batches (Tensor [B, d_in], or dict hook -> Tensor when the SAEs read
different hooks) plus held-out rows, so it runs on synthetic tensors as well as on a store
(``whisper_sae.sae.train`` is the layer that reads a store).
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from whisper_sae.runtime import DataParallel, grad_scaler, resolve_autocast, resolve_device

from .io import save_pretrained
from .member import Member, SAESpec
from .report import METRICS_FILE, MetricsLog, plot_training

CHECKPOINT = Path("checkpoint") / "state.pt"


class TrainingError(RuntimeError):
    """Training stopped on bad numbers; the message names the step and the checkpoint kept."""


@dataclass
class TrainConfig:
    """Settings shared by every SAE of a pass; each has a default here and nowhere else."""

    steps: int
    """Optimizer steps in the whole run."""
    lr: float = 5e-4
    lr_warmup_steps: int | None = None
    """Linear lr warm-up; None: 2 % of the steps."""
    lr_decay_start: float = 0.8
    """Fraction of the run after which the lr decays linearly to ``lr * lr_end_factor``."""
    lr_end_factor: float = 0.0
    betas: tuple = (0.9, 0.999)
    sparsity_warmup_steps: int | None = None
    """Linear warm-up of the L1 / L0 coefficient; None: 5 % of the steps."""
    b_dec_init: str = "geometric_median"
    """``geometric_median``, ``mean`` or ``zeros``."""
    normalize: bool = True
    """Scale inputs so their mean norm is sqrt(d_in) while training (folded into the saved weights)."""
    init_batches: int = 4
    """Batches read at the start to choose the scale and b_dec (they are then trained on as usual)."""
    dead_after_tokens: int = 500_000
    """A feature that fired on none of the last this-many tokens is dead."""
    dense_frequency: float = 0.1
    """A feature firing on more than this fraction of tokens counts as dense."""
    auxk_alpha: float = 1 / 32
    jumprelu_bandwidth: float = 0.05
    jumprelu_init_threshold: float = 0.5
    """Initial JumpReLU threshold in normalised units (pre-activations have std ~1 at init)."""
    jumprelu_threshold_lr: float = 1.0
    """The JumpReLU thresholds' learning rate as a multiple of ``lr``."""
    resample_every: int | None = None
    """ReLU only: resample dead features every this many steps (until 80 % of the run); None: steps // 6; 0: off."""
    device: str = "auto"
    autocast: str = "auto"
    """``auto`` (bf16 on CPU, and on CUDA where supported), ``bf16``, ``fp16`` (CUDA) or ``none``."""
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 500
    eval_rows: int = 65536
    steps_per_epoch: float | None = None
    """Only for the epoch axis of the plots."""
    extra: dict = field(default_factory=dict)
    """Facts about the data (store, model, hook) recorded in checkpoints and cfg.json, checked on resume."""

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.b_dec_init not in ("geometric_median", "mean", "zeros"):
            raise ValueError(f"b_dec_init {self.b_dec_init!r} is not one of geometric_median, mean, zeros")
        if self.autocast not in ("auto", "bf16", "fp16", "none"):
            raise ValueError(f"autocast {self.autocast!r} is not one of auto, bf16, fp16, none")
        if not 0 <= self.lr_decay_start <= 1:
            raise ValueError(f"lr_decay_start is a fraction of the run in [0, 1], got {self.lr_decay_start!r}")
        for name in ("log_every", "eval_every", "checkpoint_every", "init_batches"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        self.betas = tuple(self.betas)

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


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class _NoLog:
    """The metrics log of ranks other than 0, which write nothing."""

    def write(self, record: dict) -> None:
        pass


def _select(batch, member: Member) -> Tensor:
    if isinstance(batch, dict):
        if member.hook not in batch:
            raise ValueError(f"SAE {member.name!r} reads hook {member.hook!r}, which the batches lack ({sorted(batch)})")
        return batch[member.hook]
    return batch


class Trainer:
    """One pass of training for a list of SAEs sharing the batches. Read ``run`` top to bottom."""

    def __init__(self, specs: list[SAESpec], config: TrainConfig, out, *, val=None,
                 parallel: DataParallel | None = None, checkpoint: Path = CHECKPOINT):
        if not specs:
            raise ValueError("give at least one SAE to train")
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"SAE names must differ within a pass (they are folder names), got {names}")
        if len(specs) > 1 and "" in names:
            raise ValueError("when training several SAEs, each needs a non-empty name (its sub-folder)")
        self.specs, self.config, self.out = specs, config, Path(out)
        self.val = val
        self.device = resolve_device(config.device)
        self.amp = resolve_autocast(config.autocast, self.device)
        self.scaler = grad_scaler(self.device, self.amp)  # loss scaling for fp16; a no-op otherwise
        # Data parallel over torchrun's ranks (a no-op for one process); rank 0 alone writes files.
        self.parallel = parallel or DataParallel()
        self.checkpoint = Path(checkpoint)
        self.generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.members = [
            Member(spec, device=self.device, compute_dtype=self.amp or torch.float32, lr=config.lr,
                   betas=config.betas, auxk_alpha=config.auxk_alpha, bandwidth=config.jumprelu_bandwidth,
                   init_threshold=config.jumprelu_init_threshold, threshold_lr_scale=config.jumprelu_threshold_lr)
            for spec in specs
        ]
        self.step = 0
        self.logs: dict[str, MetricsLog] = {}

    # -- start -------------------------------------------------------------------------------------
    def _folder(self, member: Member) -> Path:
        return self.out / member.name if member.name else self.out

    def _start(self, batches, resume: bool):
        it = iter(batches)
        ckpt = self.out / self.checkpoint
        if resume and ckpt.is_file():
            self._load_checkpoint(ckpt)
            # Same seed, same stream: skipping the batches already trained on puts the data where it was.
            for _ in tqdm(range(self.step), desc="skipping to the checkpoint's data position", leave=False,
                          disable=self.step < 50):
                next(it)
        else:
            if ckpt.is_file():
                raise FileExistsError(f"{self.out} already holds a training checkpoint; pass resume=True "
                                      "(--resume) to continue it, or choose another output folder")
            head = list(itertools.islice(it, self.config.init_batches))
            if not head:
                raise ValueError("the batch stream is empty: no activations to train on")
            for member in self.members:
                # Every rank sees the global batches, so every rank picks the same scale and b_dec.
                sample = torch.cat([self.parallel.gather_rows(_select(b, member).to(self.device)) for b in head]).float()
                member.init_from_data(sample, self.config.b_dec_init, self.config.normalize)
            it = itertools.chain(head, it)
        for member in self.members:
            folder = self._folder(member)
            self.logs[member.name] = (MetricsLog(folder / METRICS_FILE, resume_step=self.step if resume else None)
                                      if self.parallel.is_main else _NoLog())
        return it

    # -- one step ----------------------------------------------------------------------------------
    def _train_step(self, batch) -> None:
        cfg = self.config
        lr, sparsity = cfg.lr_at(self.step), cfg.sparsity_at(self.step)
        for member in self.members:
            x = _select(batch, member).to(self.device, non_blocking=True).float()
            if not bool(torch.isfinite(x).all()):
                self._fail(f"batch {self.step} for SAE {member.name or member.hook!r} contains NaN or Inf activations")
            x = x * member.scale
            start = time.perf_counter()
            for group in member.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            dead = member.dead_mask(cfg.dead_after_tokens)
            with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
                out = member.objective.step(x, member.spec.coef * sparsity, dead)
            if not bool(torch.isfinite(out.loss)):
                self._fail(f"the loss of SAE {member.name or member.hook!r} became {float(out.loss.detach())} at step {self.step}")
            member.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(out.loss).backward()
            self.parallel.reduce_gradients(member.sae)
            self.scaler.step(member.optimizer)
            self.scaler.update()
            member.objective.after_step()
            self.parallel.average_buffers(member.sae)
            out = out._replace(fired=self.parallel.sum(out.fired))  # dead-feature clocks agree across ranks
            member.record(out, x, time.perf_counter() - start, rows=self.parallel.global_rows(x.shape[0]))
            every = cfg.resample_every if cfg.resample_every is not None else max(1, cfg.steps // 6)
            if (member.spec.config.architecture == "relu" and every and (self.step + 1) % every == 0
                    and self.step + 1 < 0.8 * cfg.steps):
                member.resample_dead(self.parallel.gather_rows(x), cfg.dead_after_tokens, self.generator)

    def _fail(self, what: str):
        # The weights are still those before this step: keep them as the last good checkpoint.
        path = self._save_checkpoint()
        raise TrainingError(f"{what}; training stopped, the last good state (step {self.step}) is kept in {path}")

    # -- records -----------------------------------------------------------------------------------
    def _log_train(self) -> None:
        cfg = self.config
        for member in self.members:
            w = member.window
            if w["steps"] == 0:
                continue
            n = w["steps"]
            frequency = w["fired"].float() / max(1, w["tokens"])
            record = {"step": self.step, "split": "train", "sae": member.name, "tokens": self.step * (w["tokens"] // n),
                      "loss": w["loss"] / n, **{key: value / n for key, value in w["parts"].items()},
                      "ev": w["ev"] / n, "l0": w["l0"] / n,
                      "dead_frac": float((member.tokens_since_fired > cfg.dead_after_tokens).float().mean()),
                      "dense_frac": float((frequency > cfg.dense_frequency).float().mean()),
                      "lr": cfg.lr_at(self.step - 1), "coef": member.spec.coef * cfg.sparsity_at(self.step - 1),
                      "tokens_per_s": w["tokens"] / max(w["seconds"], 1e-9), "resampled": w["resampled"],
                      "steps_per_epoch": cfg.steps_per_epoch}
            self.logs[member.name].write(record)
            member.reset_window()

    @torch.no_grad()
    def evaluate(self, member: Member, val: Tensor) -> dict:
        """Held-out metrics in the SAE's inference mode: EV, MSE (normalised units), L0, never-fired fraction."""
        rows = val[: self.config.eval_rows]
        sse = sq = l0 = 0.0
        fired = torch.zeros(member.spec.config.d_sae, dtype=torch.bool, device=self.device)
        sums = torch.zeros(member.spec.config.d_in, dtype=torch.float64, device=self.device)
        member.sae.eval()
        for chunk in rows.split(8192):
            x = chunk.to(self.device).float() * member.scale
            with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
                codes, x_hat = member.sae(x)
            sse += float((x_hat.float() - x).pow(2).sum())
            sq += float(x.double().pow(2).sum())
            sums += x.double().sum(0)
            l0 += float((codes > 0).sum())
            fired |= (codes > 0).any(0)
        member.sae.train()
        n = rows.shape[0]
        variance = sq - float(sums.pow(2).sum()) / n
        return {"ev": 1.0 - sse / max(variance, 1e-12), "mse": sse / n, "l0": l0 / n,
                "dead_frac": float((~fired).float().mean()), "rows": n}

    def _log_val(self) -> dict:
        results = {}
        if self.val is None:
            return results
        for member in self.members:
            val = _select(self.val, member)
            if val.shape[0] == 0:
                continue
            results[member.name] = metrics = self.evaluate(member, val)
            self.logs[member.name].write({"step": self.step, "split": "val", "sae": member.name, **metrics})
        return results

    # -- checkpoints -------------------------------------------------------------------------------
    def _save_checkpoint(self) -> Path:
        state = {"format": 1, "step": self.step, "config": asdict(self.config),
                 "rng": torch.get_rng_state(), "generator": self.generator.get_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                 "scaler": self.scaler.state_dict(),  # fp16 loss scale and its growth tracker ({} when disabled)
                 "members": [member.state_dict() for member in self.members]}
        path = self.out / self.checkpoint
        if not self.parallel.is_main:  # the ranks hold identical state; rank 0 keeps it
            return path
        _atomic_save(state, path)
        return path

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)
        saved = state["config"]
        for key in ("model", "d_model"):
            before, now = saved.get("extra", {}).get(key), self.config.extra.get(key)
            if before != now:
                raise ValueError(f"cannot resume {path}: it was trained on activations with {key} {before!r}, but "
                                 f"these have {key} {now!r}; resume with the same store or use a new --out")
        for key in ("steps", "seed", "extra"):
            if saved.get(key) != asdict(self.config).get(key):
                raise ValueError(f"cannot resume {path}: it was started with {key}={saved.get(key)!r} but this run "
                                 f"asks for {key}={asdict(self.config).get(key)!r}; use the same settings or a new --out")
        if len(state["members"]) != len(self.members):
            raise ValueError(f"cannot resume {path}: it trains {len(state['members'])} SAEs, this run {len(self.members)}")
        for member, member_state in zip(self.members, state["members"]):
            member.load_state_dict(member_state)
        self.step = state["step"]
        torch.set_rng_state(state["rng"])
        self.generator.set_state(state["generator"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if state.get("scaler") and self.scaler.is_enabled():  # older checkpoints have none
            self.scaler.load_state_dict(state["scaler"])

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, batches, *, resume: bool = False, stop_after: int | None = None) -> list[Path]:
        """Train to ``config.steps`` (or stop after ``stop_after`` more steps with a checkpoint written) and
        return the SAE folders (written only once the run is complete)."""
        cfg = self.config
        it = self._start(batches, resume)
        stop_at = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        bar = tqdm(total=cfg.steps, initial=self.step, desc="training SAEs", unit="step",
                   disable=not self.parallel.is_main)
        while self.step < stop_at:
            try:
                batch = next(it)
            except StopIteration:
                raise ValueError(f"the batches ran out at step {self.step} of {cfg.steps}; loop over the data "
                                 "(loop=True) or ask for fewer steps") from None
            self._train_step(batch)
            self.step += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                self._log_train()
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                self.last_val = self._log_val()
            if self.step % cfg.checkpoint_every == 0 or self.step == stop_at:
                self._save_checkpoint()
        bar.close()
        if self.step < cfg.steps:
            return []
        return self._finish()

    def _finish(self) -> list[Path]:
        final = getattr(self, "last_val", None) or self._log_val()
        folders = []
        for member in self.members:
            folder = self._folder(member)
            training = {"steps": self.config.steps, "lr": self.config.lr, "coef": member.spec.coef,
                        "objective": type(member.objective).__name__, "seed": self.config.seed,
                        "data": self.config.extra, "held_out": final.get(member.name)}
            if self.parallel.is_main:
                save_pretrained(member.folded(), folder, training=training)
                plot_training(folder, title=f"SAE {member.name or member.hook or ''} training loss")
            folders.append(folder)
        return folders


def fit(specs: list[SAESpec], batches, config: TrainConfig, out, *, val=None, resume: bool = False,
        stop_after: int | None = None, parallel: DataParallel | None = None,
        checkpoint: Path = CHECKPOINT) -> list[Path]:
    """Train ``specs`` on ``batches`` (Tensor [B, d_in] or dict hook -> Tensor) with held-out ``val``
    (Tensor [N, d_in] or dict hook -> Tensor); returns the SAE folders (empty if stopped early)."""
    return Trainer(list(specs), config, out, val=val, parallel=parallel, checkpoint=checkpoint).run(
        batches, resume=resume, stop_after=stop_after)
