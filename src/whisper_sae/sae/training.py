"""Training SAEs from an activation store: the split by utterance, the batch streams, the held-out rows.

The loop itself is ``trainer.fit``; this layer only turns a store and a few knobs into its inputs.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from ..activations import ActivationStore
from ..runtime import init_distributed, plan_training, prefetch, rank_slice, resolve_device
from .config import SAEConfig
from .member import SAESpec
from .trainer import TrainConfig, fit

SWEEPABLE = ("k", "width", "coef", "arch")


def parse_sweep(text: str | None) -> dict[str, list]:
    """``"k=16,32,64"`` or ``"k=16,32;width=1152,4608"`` -> {"k": [16, 32, 64], ...}."""
    if not text:
        return {}
    sweep = {}
    for part in text.split(";"):
        name, _, values = part.partition("=")
        name = {"l1": "coef", "l0": "coef"}.get(name.strip(), name.strip())
        if name not in SWEEPABLE or not values:
            raise ValueError(f"sweep {part!r} should read NAME=V1,V2 with NAME one of k, width, coef (l1/l0), arch")
        cast = {"k": int, "width": int, "coef": float, "arch": str}[name]
        try:
            sweep[name] = [cast(v.strip()) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"sweep values {values!r} for {name} are not all {cast.__name__}s") from None
    return sweep


def build_specs(hooks: list[str], store: ActivationStore, *, arch: str, width: int, k: int | None,
                coef: float | None, sweep: dict, apply_b_dec_to_input: bool = True) -> list[SAESpec]:
    """One SAESpec per hook and per point of the sweep's grid, named after what differs."""
    model = store.manifest.get("model", {})
    names = list(sweep)
    specs = []
    for hook in hooks:
        for values in itertools.product(*(sweep[n] for n in names)) if names else [()]:
            point = {"arch": arch, "width": width, "k": k, "coef": coef, **dict(zip(names, values))}
            cfg = SAEConfig(
                d_in=store.d_model(hook), d_sae=point["width"], architecture=point["arch"],
                k=point["k"] if point["arch"] in ("topk", "batchtopk") else None,
                apply_b_dec_to_input=apply_b_dec_to_input, hook_name=hook, model_name=model.get("name"),
                model_spec=model.get("spec"), window_mode=store.settings.get("mode"),
            )
            label = [hook] if len(hooks) > 1 else []
            label += [f"{n}{point[n]}" if n != "arch" else str(point[n]) for n in names]
            specs.append(SAESpec(cfg, coef=point["coef"], name="-".join(label)))
    return specs


def _zip_hooks(store: ActivationStore, hooks: list[str], **kw):
    # Frame hooks share row order under one seed, so a dict batch holds the same frames at every hook.
    streams = [store.batches(hook, **kw) for hook in hooks]
    for batch in zip(*streams):
        yield dict(zip(hooks, batch))


def train(store, hook, *, out, arch: str = "topk", width: int = 1152, k: int | None = 32,
          coef: float | None = None, sweep: str | dict | None = None, steps: int | None = None,
          epochs: float | None = None, batch_size: int = 4096, holdout: float = 0.1, split_seed: int = 0,
          resume: bool = False, stop_after: int | None = None, apply_b_dec_to_input: bool = True,
          distribute: str = "data", **options) -> Path:
    """Train one SAE (or a sweep / several hooks in one pass) on ``hook`` of ``store``; returns ``out``.

    ``hook`` may be a list or "a,b"; ``sweep`` like ``"k=16,32,64"``; ``options`` go to ``TrainConfig``
    (lr, device, autocast, seed, log_every, ...). A single SAE is written into ``out``, several into
    ``out/<name>/``; each folder holds cfg.json, sae_weights.safetensors, metrics.jsonl, loss.png.
    Under ``torchrun``, ``distribute="data"`` splits each batch of ``batch_size`` rows over the ranks
    (same result as one process), ``"saes"`` gives each rank its own SAEs (see runtime.plan_training).
    """
    init_distributed(options.get("device", "auto"))
    store = store if isinstance(store, ActivationStore) else ActivationStore(store)
    hooks = [h.strip() for h in hook.split(",")] if isinstance(hook, str) else list(hook)
    sweep = parse_sweep(sweep) if isinstance(sweep, str) or sweep is None else dict(sweep)
    specs = build_specs(hooks, store, arch=arch, width=width, k=k, coef=coef, sweep=sweep,
                        apply_b_dec_to_input=apply_b_dec_to_input)
    train_specs(store, specs, out=out, steps=steps, epochs=epochs, batch_size=batch_size, holdout=holdout,
                split_seed=split_seed, resume=resume, stop_after=stop_after, distribute=distribute, **options)
    return Path(out)


def train_specs(store, specs: list[SAESpec], *, out, steps: int | None = None, epochs: float | None = None,
                batch_size: int = 4096, holdout: float = 0.1, split_seed: int = 0, resume: bool = False,
                stop_after: int | None = None, distribute: str = "data", **options) -> list[Path]:
    """Train any list of SAEs (mixed architectures, hooks of ``store``) in one pass; returns their folders.

    Under ``torchrun`` see ``train`` for ``distribute``; a rank with no SAE to train returns [].
    """
    world = init_distributed(options.get("device", "auto"))
    store = store if isinstance(store, ActivationStore) else ActivationStore(store)
    hooks = list(dict.fromkeys(spec.config.hook_name for spec in specs))
    for spec in specs:
        if spec.config.d_in != store.d_model(spec.config.hook_name):
            raise ValueError(f"SAE {spec.name!r} has d_in={spec.config.d_in} but hook {spec.config.hook_name!r} "
                             f"of {store.path} is {store.d_model(spec.config.hook_name)} wide")
    train_idx, val_idx = store.split_utterances(holdout, split_seed)
    n_utts = max(1, len(store.utterances))
    # Rows per utterance vary little at this scale; the epoch count only sets the step budget.
    train_rows = min(store.n_rows(h) for h in hooks) * len(train_idx) / n_utts
    steps_per_epoch = train_rows / batch_size
    if steps is None:
        if epochs is None:
            raise ValueError("give steps or epochs")
        steps = max(1, math.ceil(epochs * steps_per_epoch))
    seed = options.get("seed", 0)
    extra = {"store": str(store.path.resolve()), "model": store.manifest.get("model", {}).get("name"),
             "d_model": {h: store.d_model(h) for h in hooks}, "holdout": holdout, "split_seed": split_seed,
             "batch_size": batch_size, "train_utterances": len(train_idx), "val_utterances": len(val_idx)}
    config = TrainConfig(steps=steps, steps_per_epoch=steps_per_epoch, extra=extra, **options)
    plan = plan_training(specs, world, distribute)
    specs = plan.specs
    if not specs:  # more ranks than SAEs with distribute="saes"
        return []
    hooks = list(dict.fromkeys(s.config.hook_name for s in specs))  # only the hooks this rank trains
    stream_kw = dict(batch_size=batch_size, seed=seed, utterances=train_idx, loop=True)
    batches = store.batches(hooks[0], **stream_kw) if len(hooks) == 1 else _zip_hooks(store, hooks, **stream_kw)
    val = None
    if len(val_idx):
        reads = {h: store.read(h, utterances=val_idx)[0][: config.eval_rows] for h in hooks}
        val = reads[hooks[0]] if len(hooks) == 1 else reads
    if plan.split_batches:  # every rank reads the same global batches and trains on its slice
        batches = rank_slice(batches, world)
    batches = prefetch(batches, resolve_device(config.device))  # a reader thread on CUDA
    return fit(specs, batches, config, out, val=val, resume=resume, stop_after=stop_after,
               parallel=plan.parallel, checkpoint=plan.checkpoint)
