"""The training loop: several SAEs fitted in one pass over a stream of activation batches.

``fit`` takes any iterable of batches (Tensor [B, d_in], or dict hook -> Tensor when the SAEs read
different hooks) plus held-out rows, so it runs on synthetic tensors as well as on a store
(``sae/store_training.py`` is the layer that reads a store). Each SAE's per-step work is its
architecture's (``sae/architectures/``); this module owns the schedule, the records, the checkpoints
(``sae/checkpoint.py``: safetensors + JSON, nothing unpickled) and the output folder's lock.

A checkpoint is only written for a state that is good: every weight finite and not absurdly large, and
a finite loss when evaluated on the last batch. Training that meets NaN or Inf stops and keeps the last
such checkpoint rather than writing the broken state over it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from whisper_sae.runtime import DataParallel, current_world, grad_scaler, resolve_autocast, resolve_device
from whisper_sae.runtime.allocator import keep_freed_memory
from whisper_sae.runtime.locks import exclusive

from . import checkpoint as ckpt_io
from .checkpoint import CHECKPOINT, CheckpointError
from .io import save_pretrained
from .report import METRICS_FILE, MetricsLog, plot_training
from .train_config import TrainConfig
from .trained_sae import SAESpec, TrainedSAE

WEIGHT_LIMIT = 1e6
"""A weight beyond this (in normalised units, where inputs have norm sqrt(d_in)) marks a state as broken."""


class TrainingError(RuntimeError):
    """Training stopped on bad numbers; the message names the step and the checkpoint kept."""


class _NoLog:
    """The metrics log of ranks other than 0, which write nothing."""

    def write(self, record: dict) -> None:
        pass


def _hook_rows(batch, hooks: list[str], member: TrainedSAE) -> Tensor:
    if not isinstance(batch, dict):
        if len(hooks) > 1:
            raise ValueError(f"SAE {member.name!r} reads hooks {hooks}; give batches as dicts hook -> rows")
        return batch
    missing = [h for h in hooks if h not in batch]
    if missing:
        raise ValueError(f"SAE {member.name!r} reads hook(s) {missing}, which the batches lack ({sorted(batch)})")
    # A crosscoder reads its hooks' rows (the same frames) side by side.
    return batch[hooks[0]] if len(hooks) == 1 else torch.cat([batch[h] for h in hooks], dim=-1)


def _select(batch, member: TrainedSAE) -> Tensor:
    """The rows a dictionary reads: its hook's, or its hooks' concatenated (a crosscoder)."""
    return _hook_rows(batch, member.spec.config.input_hooks, member)


def _target(batch, member: TrainedSAE) -> Tensor | None:
    """The rows a transcoder must produce (its output hook's); None when it reconstructs its input."""
    cfg = member.spec.config
    return _hook_rows(batch, cfg.output_hooks, member) if cfg.kind == "transcoder" else None


class Trainer:
    """One pass of training for a list of SAEs sharing the batches. Read ``run`` top to bottom."""

    def __init__(
        self,
        specs: list[SAESpec],
        config: TrainConfig,
        out,
        *,
        val=None,
        parallel: DataParallel | None = None,
        checkpoint: Path = CHECKPOINT,
    ):
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
        if self.device.type == "cpu" and config.cpu_heap == "keep":
            keep_freed_memory()  # same arithmetic, no fresh page faults per step (runtime/allocator.py)
        self.scaler = grad_scaler(self.device, self.amp)  # loss scaling for fp16; a no-op otherwise
        # Data parallel over torchrun's ranks (a no-op for one process); rank 0 alone writes files.
        self.parallel = parallel or DataParallel()
        self.checkpoint = Path(checkpoint)
        self.generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.members = [
            TrainedSAE(
                spec,
                device=self.device,
                compute_dtype=self.amp or torch.float32,
                lr=config.lr,
                betas=config.betas,
                options=config.options_for(spec.config.architecture),
            )
            for spec in specs
        ]
        self.step = 0
        self.logs: dict[str, MetricsLog] = {}
        self.last_good: int | None = None  # step of the last checkpoint written (or resumed from)
        self._last_batch = None  # the latest training batch, on which a state is checked before it is kept

    # -- start -------------------------------------------------------------------------------------
    def _folder(self, member: TrainedSAE) -> Path:
        return self.out / member.name if member.name else self.out

    def _start(self, batches, resume: bool):
        it = iter(batches)
        ckpt = self.out / self.checkpoint
        if resume and ckpt_io.exists(ckpt):
            self._load_checkpoint(ckpt)
            # Same seed, same stream: skipping the batches already trained on puts the data where it was.
            for _ in tqdm(
                range(self.step), desc="skipping to the checkpoint's data position", leave=False, disable=self.step < 50
            ):
                next(it)
        else:
            if ckpt_io.exists(ckpt):
                raise FileExistsError(
                    f"{self.out} already holds a training checkpoint; pass resume=True "
                    "(--resume) to continue it, or choose another output folder"
                )
            head = list(itertools.islice(it, self.config.init_batches))
            if not head:
                raise ValueError("the batch stream is empty: no activations to train on")
            for member in self.members:
                # Every rank sees the global batches, so every rank picks the same scale and b_dec.
                sample = torch.cat(
                    [self.parallel.gather_rows(_select(b, member).to(self.device)) for b in head]
                ).float()
                target = None
                if member.spec.config.kind == "transcoder":
                    target = torch.cat(
                        [self.parallel.gather_rows(_target(b, member).to(self.device)) for b in head]
                    ).float()
                member.init_from_data(sample, self.config.b_dec_init, self.config.normalize, target=target)
            it = itertools.chain(head, it)
        for member in self.members:
            folder = self._folder(member)
            self.logs[member.name] = (
                MetricsLog(folder / METRICS_FILE, resume_step=self.step if resume else None)
                if self.parallel.is_main
                else _NoLog()
            )
        return it

    # -- one step ----------------------------------------------------------------------------------
    def _train_step(self, batch) -> None:
        cfg = self.config
        lr, sparsity = cfg.lr_at(self.step), cfg.sparsity_at(self.step)
        for member in self.members:
            raw = _select(batch, member).to(self.device, non_blocking=True)
            x = raw.float() * member.scale
            target = _target(batch, member)
            if target is not None:
                target = target.to(self.device, non_blocking=True).float() * member.scale_out
            start = time.perf_counter()
            for group in member.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            dead = member.dead_mask(cfg.dead_after_tokens)
            with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
                out = member.objective.step(x, member.spec.coef * sparsity, dead, target)
            if not bool(torch.isfinite(out.loss)):
                # A NaN or Inf in the batch always reaches the loss (its squared error); only then is it looked for.
                if not bool(torch.isfinite(raw).all()):
                    self._fail(
                        f"batch {self.step} for SAE {member.name or member.hook!r} contains NaN or Inf activations"
                    )
                self._fail(
                    f"the loss of SAE {member.name or member.hook!r} became {float(out.loss.detach())} at step {self.step}"
                )
            member.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(out.loss).backward()
            self.parallel.reduce_gradients(member.sae)
            self.scaler.step(member.optimizer)
            self.scaler.update()
            member.objective.after_step()
            self.parallel.average_buffers(member.sae)
            out = out._replace(fired=self.parallel.sum(out.fired))  # dead-feature clocks agree across ranks
            member.record(
                out,
                x if target is None else target,
                time.perf_counter() - start,
                rows=self.parallel.global_rows(x.shape[0]),
            )
            # Dead features (e.g. ReLU resampling); every rank gathers the global batch at the same steps.
            member.handle_dead(
                lambda x=x: self.parallel.gather_rows(x),
                step=self.step,
                steps=cfg.steps,
                dead_after_tokens=cfg.dead_after_tokens,
                generator=self.generator,
            )
        self._last_batch = batch

    def _fail(self, what: str):
        # The state now is broken (or unchecked): keep the last checkpoint that was good, do not overwrite it.
        path = self.out / self.checkpoint
        if self.last_good is None:
            kept = "no good state had been checkpointed yet, so none is kept"
        else:
            kept = f"the last good state (step {self.last_good}) is kept in {path}"
        raise TrainingError(f"{what}; training stopped, {kept}; lower --lr or check the activations")

    # -- records -----------------------------------------------------------------------------------
    def _log_train(self) -> None:
        cfg = self.config
        for member in self.members:
            w = member.window
            if w["steps"] == 0:
                continue
            n = w["steps"]
            frequency = w["fired"].float() / max(1, w["tokens"])
            record = {
                "step": self.step,
                "split": "train",
                "sae": member.name,
                "tokens": self.step * (w["tokens"] // n),
                "loss": w["loss"] / n,
                **{key: value / n for key, value in w["parts"].items()},
                "ev": w["ev"] / n,
                "l0": w["l0"] / n,
                "dead_frac": float((member.tokens_since_fired > cfg.dead_after_tokens).float().mean()),
                "dense_frac": float((frequency > cfg.dense_frequency).float().mean()),
                "lr": cfg.lr_at(self.step - 1),
                "coef": member.spec.coef * cfg.sparsity_at(self.step - 1),
                "tokens_per_s": w["tokens"] / max(w["seconds"], 1e-9),
                "resampled": w["resampled"],
                "steps_per_epoch": cfg.steps_per_epoch,
                **self._log_extra(member),
            }
            self.logs[member.name].write(record)
            member.reset_window()

    def _log_extra(self, member: TrainedSAE) -> dict:
        """More fields for a training record (a subclass's own counters, e.g. the KL trainer's utterances/s)."""
        return {}

    def _training_extra(self, member: TrainedSAE) -> dict:
        """More fields for cfg.json's ``whisper_sae.training`` (the loss, a parent SAE)."""
        return {"loss": "mse"}

    @torch.no_grad()
    def evaluate(self, member: TrainedSAE, val: Tensor, target: Tensor | None = None) -> dict:
        """Held-out metrics in the SAE's inference mode: EV, MSE (normalised units), L0, never-fired fraction.
        ``target``: a transcoder's output rows (EV and MSE are then of the output it must produce)."""
        rows = val[: self.config.eval_rows]
        targets = target[: self.config.eval_rows] if target is not None else rows
        sse = sq = l0 = 0.0
        fired = torch.zeros(member.spec.config.d_sae, dtype=torch.bool, device=self.device)
        sums = torch.zeros(member.spec.config.out_dim, dtype=torch.float64, device=self.device)
        member.sae.eval()
        scale_out = member.scale if target is None else member.scale_out
        for chunk, goal in zip(rows.split(8192), targets.split(8192)):
            x = chunk.to(self.device).float() * member.scale
            y = goal.to(self.device).float() * scale_out
            with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
                codes, x_hat = member.sae(x)
            sse += float((x_hat.float() - y).pow(2).sum())
            sq += float(y.double().pow(2).sum())
            sums += y.double().sum(0)
            l0 += float((codes > 0).sum())
            fired |= (codes > 0).any(0)
        member.sae.train()
        n = rows.shape[0]
        variance = sq - float(sums.pow(2).sum()) / n
        return {
            "ev": 1.0 - sse / max(variance, 1e-12),
            "mse": sse / n,
            "l0": l0 / n,
            "dead_frac": float((~fired).float().mean()),
            "rows": n,
        }

    def _log_val(self) -> dict:
        results = {}
        if self.val is None:
            return results
        for member in self.members:
            val = _select(self.val, member)
            if val.shape[0] == 0:
                continue
            results[member.name] = metrics = self.evaluate(member, val, _target(self.val, member))
            self.logs[member.name].write({"step": self.step, "split": "val", "sae": member.name, **metrics})
        return results

    # -- checkpoints -------------------------------------------------------------------------------
    @torch.no_grad()
    def _broken(self) -> str | None:
        """Why the current state must not be kept (non-finite or huge weights, or a non-finite loss on the
        last batch), or None when it is good. Every rank agrees on the verdict."""
        reason = None
        for member in self.members:
            label = member.name or member.hook
            for name, tensor in itertools.chain(member.sae.named_parameters(), member.sae.named_buffers()):
                if not tensor.is_floating_point():
                    continue
                if not bool(torch.isfinite(tensor).all()):
                    reason = f"SAE {label!r} has NaN or Inf in {name} at step {self.step}"
                elif float(tensor.abs().max()) > WEIGHT_LIMIT:
                    reason = (
                        f"SAE {label!r} has {name} as large as {float(tensor.abs().max()):.3g} at step "
                        f"{self.step} (beyond {WEIGHT_LIMIT:g}): the optimizer diverged"
                    )
                if reason:
                    break
            if reason is None and self._last_batch is not None:
                x = _select(self._last_batch, member).to(self.device).float() * member.scale
                target = _target(self._last_batch, member)
                target = None if target is None else target.to(self.device).float() * member.scale_out
                coef = member.spec.coef * self.config.sparsity_at(self.step)
                dead = member.dead_mask(self.config.dead_after_tokens)
                with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
                    loss = member.objective.step(x, coef, dead, target).loss
                if not bool(torch.isfinite(loss)):
                    reason = f"the loss of SAE {label!r} became {float(loss)} at step {self.step}"
            if reason:
                break
        votes = self.parallel.sum(torch.tensor([1.0 if reason else 0.0], device=self.device))
        if reason is None and float(votes.sum()) > 0:
            reason = f"another rank found a broken state at step {self.step}"
        return reason

    def _save_checkpoint(self) -> Path:
        path = self.out / self.checkpoint
        reason = self._broken()
        if reason:
            self._fail(reason)
        if self.parallel.is_main:  # the ranks hold identical state; rank 0 keeps it
            meta = {
                "step": self.step,
                "config": asdict(self.config),
                "scaler": self.scaler.state_dict(),  # fp16 loss scale and its growth tracker ({} when disabled)
                "saes": [],
            }
            tensors = ckpt_io.rng_tensors(self.generator)
            for index, member in enumerate(self.members):
                member_meta, member_tensors = member.checkpoint_state()
                meta["saes"].append(member_meta)
                tensors.update({f"sae/{index}/{key}": value for key, value in member_tensors.items()})
            ckpt_io.write(path, meta, tensors)
        self.last_good = self.step
        return path

    def _load_checkpoint(self, path: Path) -> None:
        meta, tensors = ckpt_io.read(path)
        try:
            self._restore(path, meta, tensors)
        except (KeyError, TypeError, RuntimeError) as err:
            raise CheckpointError(
                f"training checkpoint {path} is incomplete or damaged ({type(err).__name__}: "
                f"{err}); delete {path.parent} to train from the start, or write to a new --out"
            ) from None

    def _restore(self, path: Path, meta: dict, tensors: dict) -> None:
        saved = meta["config"]
        now = json.loads(json.dumps(asdict(self.config)))  # as it would read back from JSON
        before, current = saved.get("extra", {}).get("model"), now["extra"].get("model")
        if before != current:
            raise ValueError(
                f"cannot resume {path}: it was trained on activations with model {before!r}, but "
                f"these have model {current!r}; resume with the same store or use a new --out"
            )
        if len(meta["saes"]) != len(self.members):
            names = [m.get("name") for m in meta["saes"]]
            raise ValueError(
                f"cannot resume {path}: it trains {len(meta['saes'])} SAE(s) {names}, this run "
                f"{len(self.members)} {[m.name for m in self.members]}; use the same settings or a new --out"
            )
        for member, member_meta in zip(self.members, meta["saes"]):
            member.check_checkpoint(member_meta, path)
        for key in ("steps", "seed", "extra"):
            if saved.get(key) != now.get(key):
                before, after = saved.get(key), now.get(key)
                if key == "extra" and isinstance(before, dict) and isinstance(after, dict):  # name what differs
                    diff = ", ".join(
                        f"{name}={before.get(name)!r} (now {after.get(name)!r})"
                        for name in sorted(set(before) | set(after))
                        if before.get(name) != after.get(name)
                    )
                    raise ValueError(
                        f"cannot resume {path}: it was started with {diff}; use the same settings or a new --out"
                    )
                raise ValueError(
                    f"cannot resume {path}: it was started with {key}={before!r} but this run "
                    f"asks for {key}={after!r}; use the same settings or a new --out"
                )
        for index, (member, member_meta) in enumerate(zip(self.members, meta["saes"])):
            prefix = f"sae/{index}/"
            member.load_checkpoint_state(
                member_meta, {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, path
            )
        self.step = int(meta["step"])
        ckpt_io.restore_rng(tensors, self.generator)
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        self.last_good = self.step

    def _lock(self):
        """The output folder's write lock. Rank 0 holds it for the run; with one process per group of
        SAEs (``distribute="saes"``) every other rank writes too and holds its own per-rank lock."""
        rank = current_world().rank
        if rank == 0:
            return exclusive(self.out, "SAE folder")
        if self.parallel.size == 1:
            return exclusive(self.out, "SAE folder", suffix=f".rank{rank:05d}")
        return contextlib.nullcontext(self.out)

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, batches, *, resume: bool = False, stop_after: int | None = None) -> list[Path]:
        """Train to ``config.steps`` (or stop after ``stop_after`` more steps with a checkpoint written) and
        return the SAE folders (written only once the run is complete)."""
        with self._lock():
            return self._run(batches, resume, stop_after)

    def _run(self, batches, resume: bool, stop_after: int | None) -> list[Path]:
        cfg = self.config
        it = self._start(batches, resume)
        stop_at = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        bar = tqdm(
            total=cfg.steps, initial=self.step, desc="training SAEs", unit="step", disable=not self.parallel.is_main
        )
        while self.step < stop_at:
            try:
                batch = next(it)
            except StopIteration:
                raise ValueError(
                    f"the batches ran out at step {self.step} of {cfg.steps}; loop over the data "
                    "(loop=True) or ask for fewer steps"
                ) from None
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
            training = {
                "steps": self.config.steps,
                "lr": self.config.lr,
                "coef": member.spec.coef,
                "objective": type(member.objective).__name__,
                "options": asdict(member.options),
                "seed": self.config.seed,
                "data": self.config.extra,
                "held_out": final.get(member.name),
                **self._training_extra(member),
            }
            if self.parallel.is_main:
                save_pretrained(member.folded(), folder, training=training)
                plot_training(folder, title=f"SAE {member.name or member.hook or ''} training loss")
            folders.append(folder)
        return folders


def fit(
    specs: list[SAESpec],
    batches,
    config: TrainConfig,
    out,
    *,
    val=None,
    resume: bool = False,
    stop_after: int | None = None,
    parallel: DataParallel | None = None,
    checkpoint: Path = CHECKPOINT,
) -> list[Path]:
    """Train ``specs`` on ``batches`` (Tensor [B, d_in] or dict hook -> Tensor) with held-out ``val``
    (Tensor [N, d_in] or dict hook -> Tensor); returns the SAE folders (empty if stopped early).

    ``out`` is locked while training: a second run into it fails at once with a FolderBusyError naming
    the holder."""
    return Trainer(list(specs), config, out, val=val, parallel=parallel, checkpoint=checkpoint).run(
        batches, resume=resume, stop_after=stop_after
    )
