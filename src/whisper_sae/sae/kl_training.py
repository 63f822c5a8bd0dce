"""Training an SAE on Whisper's logits (``sae/kl.py``): fine-tuning a trained SAE, or ``train --objective kl``.

``KLTrainer`` is the loop of ``sae/loop.py`` (schedule, records, safetensors checkpoints, resume, the
folder lock, the final SAE folder) with another step: a batch is a list of utterance indices, and the
step runs Whisper around the SAE (see ``sae/kl.py`` for what each step computes and costs). The batch
stream is a seeded permutation of the training utterances per epoch, so resuming skips the batches
already trained on without touching audio, and a resumed run equals an uninterrupted one.

The SAE is trained in normalised units like MSE training: a parent SAE's saved (folded) weights are
unfolded with its ``activation_scale``, and folded back when the result is saved. The result is a
normal SAE folder (SAELens layout) whose ``cfg.json`` records the loss (``whisper_sae.training.loss``)
and, for a fine-tune, the parent SAE; ``whisper-sae evaluate`` reads it like any other.

Utterances come from a corpus held in memory (each <= 30 s: one window, as the spliced evaluation
uses). With a store (``--store``) its utterance split is respected, so the utterances the parent
held out are not trained on, and its held-out rows give the EV / L0 records of ``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..activations.decoder_text import as_whisper_writes
from ..artifacts import SAEFolder, open_corpus, open_model, open_store, record_path
from ..audio.constants import WINDOW_SECONDS
from ..whisper import frames_for_duration
from .config import SAEConfig
from .io import read_config
from .kl import KLItem, SplicedWhisper, token_kl
from .loop import Trainer
from .model import SparseAutoencoder
from .train_config import KLConfig, StoreConfig, TrainConfig
from .trained_sae import SAESpec, TrainedSAE

# ------------------------------------------------------------------------------------ the data


def load_items(
    lw, corpus, kl: KLConfig, *, batch_size: int = 8, need_text: bool = True
) -> tuple[list[KLItem], list[dict], str]:
    """The corpus' utterances as ``KLItem`` (tokens ready), the skipped ones with the reason, the corpus spec.
    ``need_text=False`` (MSE at an encoder hook: the decoder never runs) skips transcribing utterances
    without a reference; they get the prompt and the end token only."""
    utts, spec = open_corpus(corpus, kl.max_utterances)
    items, skipped, untranscribed = [], [], []
    limit = lw.config.max_target_positions
    prompt = list(lw.prompt_ids)
    for u in utts:
        duration = u.duration
        if duration > WINDOW_SECONDS:
            skipped.append({"id": u.id, "reason": f"{duration:.1f} s is longer than one 30-s window"})
            continue
        item = KLItem(u.id, u.audio, [], len(prompt), int(frames_for_duration(duration)))
        if kl.decoder_text == "reference" and (u.text or "").strip():
            item.tokens = [*prompt, *lw.text_tokens(as_whisper_writes(u.text)), lw.eot_id]
        elif need_text:
            item.text_source = "model"
            untranscribed.append(item)
        else:
            item.tokens, item.text_source = [*prompt, lw.eot_id], "none"
        items.append(item)
    for start in range(0, len(untranscribed), batch_size):
        chunk = untranscribed[start : start + batch_size]
        for item, text in zip(chunk, lw.transcribe([it.audio for it in chunk], batch_size=len(chunk))):
            body = lw.text_tokens(text) if text.strip() else []
            item.tokens = [*prompt, *body, lw.eot_id]
    kept = []
    for item in items:
        if len(item.tokens) > limit:
            skipped.append({"id": item.id, "reason": f"{len(item.tokens)} tokens exceed the decoder's {limit}"})
        else:
            kept.append(item)
    if not kept:
        raise ValueError(
            f"corpus {spec} gave no utterance of at most {WINDOW_SECONDS:.0f} s to train on; KL training "
            "needs speech in 30-s windows (with transcripts, or Whisper transcribes it)"
        )
    skipped += [{"id": s.get("id"), "reason": s.get("reason")} for s in getattr(utts, "skipped", [])]
    return kept, skipped, spec


def utterance_batches(n: int, per_step: int, seed: int):
    """Endless lists of utterance indices: each epoch a fresh seeded permutation, cut into batches."""

    def order():
        for epoch in itertools.count():
            yield from np.random.default_rng([seed, epoch]).permutation(n).tolist()

    it = order()
    while True:
        yield list(itertools.islice(it, per_step))


# ------------------------------------------------------------------------------------ the loop


class KLTrainer(Trainer):
    """One SAE trained through Whisper (see the module docstring); the rest is ``sae.loop.Trainer``."""

    def __init__(
        self,
        spec: SAESpec,
        config: TrainConfig,
        out,
        *,
        runner: SplicedWhisper,
        items: list[KLItem],
        kl: KLConfig,
        parent: SparseAutoencoder | None = None,
        parent_dir=None,
        init_rows=None,
        val=None,
    ):
        super().__init__([spec], config, out, val=val)
        if self.parallel.size > 1:
            raise ValueError("KL training runs in one process; launch it without torchrun")
        self.runner, self.items, self.kl = runner, items, kl
        self.parent, self.parent_dir, self.init_rows = parent, parent_dir, init_rows
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.counters = {"utterances": 0, "tokens": 0, "prefix_s": 0.0, "seconds": 0.0, "kl": 0.0, "steps": 0}

    def _start(self, batches, resume: bool):
        ckpt = self.out / self.checkpoint
        member = self.members[0]
        if not (resume and Path(ckpt).is_file()):
            if self.parent is not None:
                load_parent(member, self.parent)
            else:
                rows = self.init_rows
                if rows is None:  # the first batch's activations
                    batch = self.runner.prepare(
                        [
                            self.items[i]
                            for i in next(
                                iter(utterance_batches(len(self.items), self.kl.utterances_per_step, self.config.seed))
                            )
                        ]
                    )
                    acts = self.runner.prefix(batch)
                    rows = acts[self.runner.mask(batch, acts)]
                member.init_from_data(rows.to(self.device).float(), self.config.b_dec_init, self.config.normalize)
        return self._resume_or_start(batches, resume)

    def _resume_or_start(self, batches, resume: bool):
        """The base class' start, minus its initialisation from the first batches (done in ``_start``)."""
        from . import checkpoint as ckpt_io
        from .report import METRICS_FILE, MetricsLog

        it = iter(batches)
        ckpt = self.out / self.checkpoint
        if resume and ckpt_io.exists(ckpt):
            self._load_checkpoint(ckpt)
            for _ in range(self.step):
                next(it)
        elif ckpt_io.exists(ckpt):
            raise FileExistsError(
                f"{self.out} already holds a training checkpoint; pass resume=True (--resume) to "
                "continue it, or choose another output folder"
            )
        for member in self.members:
            self.logs[member.name] = MetricsLog(
                self._folder(member) / METRICS_FILE, resume_step=self.step if resume else None
            )
        return it

    def _train_step(self, batch) -> None:
        cfg, kl = self.config, self.kl
        member = self.members[0]
        lr, sparsity = cfg.lr_at(self.step), cfg.sparsity_at(self.step)
        start = time.perf_counter()
        data = self.runner.prepare([self.items[i] for i in batch])
        with torch.no_grad():
            acts = self.runner.prefix(data)
            mask = self.runner.mask(data, acts)
            clean = self.runner.clean_logits(data, acts) if kl.objective != "mse" else None
        prefix_s = time.perf_counter() - start
        x_raw = acts[mask].float()
        if not bool(torch.isfinite(x_raw).all()):
            self._fail(f"step {self.step}: Whisper's activations at {self.runner.hook.name} contain NaN or Inf")
        x = x_raw * member.scale
        for group in member.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        dead = member.dead_mask(cfg.dead_after_tokens)
        with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
            out = member.objective.step(x, member.spec.coef * sparsity, dead)
        parts = dict(out.parts)
        if kl.objective == "mse":
            loss = out.loss
        else:
            logits = self.runner.spliced_logits(data, acts, mask, out.x_hat.float() / member.scale)
            divergence = token_kl(clean, logits)
            loss = divergence + (out.loss - out.mse)  # the sparsity / AuxK part of the architecture's loss
            parts["kl"] = divergence.detach()
            if kl.objective == "kl+mse":
                variance = (x - x.mean(0)).pow(2).sum(-1).mean().detach().clamp_min(1e-12)
                nmse = out.mse.float() / variance
                loss = loss + kl.mse_weight * nmse
                parts["nmse"] = nmse.detach()
        if not bool(torch.isfinite(loss)):
            self._fail(
                f"the loss of SAE {member.name or member.hook!r} became {float(loss.detach())} at step {self.step}"
            )
        member.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(member.optimizer)
        self.scaler.update()
        member.objective.after_step()
        seconds = time.perf_counter() - start
        member.record(out._replace(loss=loss.detach(), parts=parts), x, seconds)
        member.handle_dead(
            lambda: x,
            step=self.step,
            steps=cfg.steps,
            dead_after_tokens=cfg.dead_after_tokens,
            generator=self.generator,
        )
        c = self.counters
        c["utterances"] += len(batch)
        c["tokens"] += data.n_tokens
        c["prefix_s"] += prefix_s
        c["seconds"] += seconds
        c["kl"] += float(parts.get("kl", float("nan")))
        c["steps"] += 1
        self._last_batch = x_raw

    def _log_extra(self, member: TrainedSAE) -> dict:
        c = self.counters
        seconds = max(c["seconds"], 1e-9)
        extra = {
            "utterances_per_s": c["utterances"] / seconds,
            "text_tokens_per_s": c["tokens"] / seconds,
            "prefix_frac": c["prefix_s"] / seconds,
            "objective": self.kl.objective,
        }
        self._reset_counters()
        return extra

    def _training_extra(self, member: TrainedSAE) -> dict:
        extra = {"loss": self.kl.objective, "kl": dataclasses.asdict(self.kl)}
        if self.parent_dir is not None:
            extra["parent"] = {
                "path": str(Path(self.parent_dir).resolve()),
                "config": self.parent.cfg.to_dict() if self.parent is not None else None,
            }
        return extra


def load_parent(member: TrainedSAE, parent: SparseAutoencoder) -> None:
    """Start ``member`` from a saved SAE: its weights, unfolded into normalised units with its activation_scale."""
    scale = float(parent.cfg.activation_scale)
    state = {
        key: value.detach().clone().float().to(member.sae.W_enc.device) for key, value in parent.state_dict().items()
    }
    state["W_enc"] = state["W_enc"] / scale
    state["W_dec"] = state["W_dec"] * scale
    state["b_dec"] = state["b_dec"] * scale
    member.sae.load_state_dict(state)
    # both: folded() gives W_dec and b_dec back with scale_out (a transcoder's output scale), which for an
    # SAE is its input scale; left at its default, the saved decoder came out multiplied by the scale
    member.scale = member.scale_out = scale


# ------------------------------------------------------------------------------------ entry points


def _train_options(options: dict) -> tuple[dict, dict]:
    kl_fields = {f.name for f in dataclasses.fields(KLConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"steps", "steps_per_epoch", "extra"}
    kl_kw, train_kw = {}, {}
    for key, value in options.items():
        if key in kl_fields:
            kl_kw[key] = value
        elif key in train_fields:
            train_kw[key] = value
        else:
            raise ValueError(f"unknown option {key!r} for KL training; options are {sorted(kl_fields | train_fields)}")
    return kl_kw, train_kw


def _split(items: list[KLItem], store, holdout: float, split_seed: int):
    """(training items, the store's held-out utterance indices): the store's split applied to the corpus by id."""
    _, val_idx = store.split_utterances(holdout, split_seed)
    held = {store.utterance(int(i))["id"] for i in val_idx}
    train = [it for it in items if it.id not in held]
    if not train:
        raise ValueError(
            f"every utterance of the corpus is held out by store {store.path}; give a corpus with "
            "other utterances or a smaller holdout"
        )
    return train, val_idx


def run_kl(
    spec: SAESpec,
    lw,
    corpus,
    *,
    out,
    store=None,
    parent=None,
    parent_dir=None,
    steps: int | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    holdout: float = 0.1,
    split_seed: int = 0,
    init_batch_size: int = 4096,
    **options,
) -> Path:
    """Train ``spec`` through Whisper ``lw`` on ``corpus``; the shared body of ``finetune`` and ``train``."""
    kl_kw, train_kw = _train_options(options)
    kl = KLConfig(**kl_kw)
    # A good SAE's KL is small; bf16 rounding of the reconstruction would be a large part of it.
    train_kw.setdefault("autocast", "none")
    hook = spec.config.hook_name
    store = open_store(store)
    if store is not None and hook not in store.hooks:
        raise ValueError(
            f"store {store.path} has no hook {hook!r} (it holds {', '.join(store.hooks)}); give a store "
            "of the SAE's hook, or none"
        )
    need_text = kl.objective != "mse" or not str(hook).startswith("encoder")
    items, skipped, corpus_spec = load_items(lw, corpus, kl, need_text=need_text)
    val = None
    if store is not None:
        items, val_idx = _split(items, store, holdout, split_seed)
        if len(val_idx):
            val = store.read(hook, utterances=val_idx)[0]
    steps_per_epoch = len(items) / kl.utterances_per_step
    if steps is None:
        steps = max(1, math.ceil(kl.epochs * steps_per_epoch))
    extra = {
        "objective": kl.objective,
        "mse_weight": kl.mse_weight,
        "utterances_per_step": kl.utterances_per_step,
        "decoder_text": kl.decoder_text,
        "model": lw.name,
        "hook": hook,
        "corpus": record_path(corpus_spec, out),
        "train_utterances": len(items),
        "skipped_utterances": len(skipped),
        "store": record_path(store.path, out) if store is not None else None,
        "holdout": holdout if store is not None else None,
        "split_seed": split_seed if store is not None else None,
        "parent": record_path(parent_dir, out) if parent_dir is not None else None,
    }
    config = TrainConfig(steps=steps, steps_per_epoch=steps_per_epoch, extra=extra, **train_kw)
    init_rows = None
    if parent is None and store is not None and not resume:
        train_idx, _ = store.split_utterances(holdout, split_seed)
        head = itertools.islice(
            store.batches(hook, batch_size=init_batch_size, seed=config.seed, utterances=train_idx, loop=True),
            config.init_batches,
        )
        init_rows = torch.cat(list(head))
    runner = SplicedWhisper(lw, hook)
    trainer = KLTrainer(
        spec,
        config,
        out,
        runner=runner,
        items=items,
        kl=kl,
        parent=parent,
        parent_dir=parent_dir,
        init_rows=init_rows,
        val=val,
    )
    trainer.run(
        utterance_batches(len(items), kl.utterances_per_step, config.seed), resume=resume, stop_after=stop_after
    )
    return Path(out)


def default_out(sae_dir, objective: str) -> Path:
    """Where ``finetune`` writes by default: beside the parent, ``<parent>-kl`` (``-klmse``, ``-mse``)."""
    sae_dir = Path(sae_dir)
    return sae_dir.with_name(f"{sae_dir.name}-{objective.replace('+', '')}")


def finetune(
    sae_dir,
    corpus=None,
    *,
    out=None,
    store=None,
    model=None,
    steps: int | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    coef: float | None = None,
    device: str = "auto",
    holdout: float | None = None,
    split_seed: int | None = None,
    **options,
) -> Path:
    """Fine-tune the SAE in ``sae_dir`` on Whisper's logits (``objective="kl"`` by default; see ``KLConfig``).

    ``corpus``: speech to train on (default: the corpus of ``store``). ``store``: an activation store of the
    SAE's hook, whose held-out utterances are kept out and give the held-out EV / L0 records. ``options``:
    ``KLConfig`` and ``TrainConfig`` fields (``lr``, ``log_every``...); ``holdout`` / ``split_seed`` as in
    ``StoreConfig`` (the store's split). ``sparsity_warmup_steps`` defaults to
    0 here (the parent is already sparse). Writes a normal SAE folder to ``out`` (default ``<sae_dir>-kl``)
    and returns it.
    """
    sae_dir = Path(sae_dir)
    kl_kw, train_kw = _train_options(dict(options))
    KLConfig(**kl_kw), TrainConfig(steps=1, **train_kw)  # refuse bad values before loading anything
    split = StoreConfig(**{k: v for k, v in (("holdout", holdout), ("split_seed", split_seed)) if v is not None})
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not SAEFolder(sae_dir).exists():
        raise FileNotFoundError(
            f"SAE folder {sae_dir} does not exist or lacks cfg.json / sae_weights.safetensors; "
            "give a folder written by `whisper-sae train`"
        )
    from ..runtime import resolve_device

    parent = SparseAutoencoder.from_pretrained(sae_dir, device="cpu").eval()
    _, ours = read_config(sae_dir)
    store = open_store(store)
    if corpus is None:
        corpus = store.corpus if store is not None else None
        if corpus is None:
            raise ValueError("give --corpus (speech to fine-tune on), or a --store whose corpus is recorded")
    if not parent.cfg.hook_name:
        raise ValueError(
            f"the SAE in {sae_dir} names no hook (hook_name is empty in its cfg.json); it cannot be spliced in"
        )
    if store is not None and parent.cfg.hook_name not in store.hooks:
        raise ValueError(
            f"store {store.path} has no hook {parent.cfg.hook_name!r} (it holds {', '.join(store.hooks)}); "
            "give a store of the SAE's hook, or none"
        )
    objective = options.get("objective", "kl")
    out = Path(out) if out is not None else default_out(sae_dir, objective)
    if out.resolve() == sae_dir.resolve():
        raise ValueError(f"--out {out} is the parent SAE's own folder; fine-tune into another folder")
    device = resolve_device(device)
    lw = open_model(model, sae=parent, device=device)
    parent.check_compatible(lw.d_model, parent.cfg.hook_name, lw.name)
    if coef is None:
        coef = (ours.get("training") or {}).get("coef")
    options.setdefault("sparsity_warmup_steps", 0)
    spec = SAESpec(SAEConfig(**parent.cfg.to_dict()), coef=coef)
    return run_kl(
        spec,
        lw,
        corpus,
        out=out,
        store=store,
        parent=parent,
        parent_dir=sae_dir,
        steps=steps,
        resume=resume,
        stop_after=stop_after,
        holdout=split.holdout,
        split_seed=split.split_seed,
        device=str(device),
        **options,
    )
