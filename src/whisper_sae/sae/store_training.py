"""Training SAEs from an activation store: the split by utterance, the batch streams, the held-out rows.

The loop itself is ``loop.fit``; this layer only turns a store and a few knobs into its inputs. The
knobs and their defaults are the fields of ``StoreConfig`` and ``TrainConfig`` (``train_config.py``)
plus the architectures' options, passed as ``<architecture>_<option>`` (e.g. ``jumprelu_bandwidth``).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from pathlib import Path

from ..activations import ActivationStore
from ..artifacts import record_path
from ..runtime import current_world, init_distributed, plan_training, prefetch, rank_slice, resolve_device
from .architectures import ARCHITECTURES, get_architecture
from .checkpoint import CHECKPOINT
from .config import SAEConfig
from .loop import fit
from .train_config import StoreConfig, TrainConfig
from .trained_sae import SAESpec

log = logging.getLogger(__name__)

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


def build_specs(
    hooks: list[str],
    store: ActivationStore,
    *,
    arch: str,
    width: int,
    k: int | None,
    coef: float | None,
    sweep: dict,
    apply_b_dec_to_input: bool = True,
) -> list[SAESpec]:
    """One SAESpec per hook and per point of the sweep's grid, named after what differs."""
    model = store.manifest.get("model", {})
    names = list(sweep)
    specs = []
    for hook in hooks:
        for values in itertools.product(*(sweep[n] for n in names)) if names else [()]:
            point = {"arch": arch, "width": width, "k": k, "coef": coef, **dict(zip(names, values))}
            cfg = SAEConfig(
                d_in=store.d_model(hook),
                d_sae=point["width"],
                architecture=point["arch"],
                k=point["k"] if get_architecture(point["arch"]).needs_k else None,
                apply_b_dec_to_input=apply_b_dec_to_input,
                hook_name=hook,
                model_name=model.get("name"),
                model_spec=model.get("spec"),
                window_mode=store.settings.get("mode"),
            )
            label = [hook] if len(hooks) > 1 else []
            label += [f"{n}{point[n]}" if n != "arch" else str(point[n]) for n in names]
            specs.append(SAESpec(cfg, coef=point["coef"], name="-".join(label)))
    return specs


def circuit_specs(
    hooks: list[str],
    store: ActivationStore,
    *,
    hook_out: str | None,
    skip: bool,
    crosscoder: bool,
    arch: str,
    width: int,
    k: int | None,
    coef: float | None,
) -> list[SAESpec]:
    """One transcoder (``hook_out``: each hook of ``hooks`` read, ``hook_out`` written) or one crosscoder
    (``crosscoder``: every hook of ``hooks`` read and written, side by side)."""
    model = store.manifest.get("model", {})
    common = dict(
        d_sae=width,
        architecture=arch,
        k=k if get_architecture(arch).needs_k else None,
        model_name=model.get("name"),
        model_spec=model.get("spec"),
        window_mode=store.settings.get("mode"),
    )
    if crosscoder:
        if hook_out is not None or skip:
            raise ValueError("--crosscoder reads and writes its --hooks; --hook-out and --skip are for transcoders")
        if len(hooks) < 2:
            raise ValueError(f"a crosscoder reads two or more hooks (--hooks a,b); got {hooks}")
        cfg = SAEConfig(d_in=sum(store.d_model(h) for h in hooks), hook_names=hooks, hook_name=hooks[0], **common)
        return [SAESpec(cfg, coef=coef)]
    if len(hooks) != 1:
        raise ValueError(f"a transcoder reads one hook (--hook X --hook-out Y); got {hooks}")
    cfg = SAEConfig(
        d_in=store.d_model(hooks[0]),
        d_out=store.d_model(hook_out),
        hook_name=hooks[0],
        hook_name_out=hook_out,
        skip=skip,
        apply_b_dec_to_input=False,
        **common,
    )
    return [SAESpec(cfg, coef=coef)]


def _zip_hooks(store: ActivationStore, hooks: list[str], **kw):
    # Frame hooks share row order under one seed, so a dict batch holds the same frames at every hook.
    streams = [store.batches(hook, **kw) for hook in hooks]
    for batch in zip(*streams):
        yield dict(zip(hooks, batch))


def split_options(options: dict) -> tuple[dict, dict, dict]:
    """Keyword options -> (StoreConfig fields, TrainConfig fields, per-architecture options): a key
    ``<architecture>_<option>`` (e.g. ``jumprelu_bandwidth``) is that architecture's option."""
    store_fields = {f.name for f in dataclasses.fields(StoreConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"steps", "steps_per_epoch", "extra"}
    store_kw, train_kw = {}, {}
    architectures: dict = {name: dict(values) for name, values in (options.pop("architectures", None) or {}).items()}
    for key, value in options.items():
        if key in store_fields:
            store_kw[key] = value
        elif key in train_fields:
            train_kw[key] = value
        else:
            arch = next((a for a in ARCHITECTURES if key.startswith(a + "_")), None)
            if arch is None:
                raise ValueError(
                    f"unknown training option {key!r}; options are {sorted(store_fields | train_fields)} "
                    f"and <architecture>_<option> for the architectures {', '.join(ARCHITECTURES)}"
                )
            architectures.setdefault(arch, {})[key[len(arch) + 1 :]] = value
    return store_kw, train_kw, architectures


def train(
    store,
    hook,
    *,
    out,
    sweep: str | dict | None = None,
    steps: int | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    apply_b_dec_to_input: bool = True,
    distribute: str = "data",
    objective: str = "mse",
    corpus=None,
    kl_options: dict | None = None,
    hook_out: str | None = None,
    skip: bool = False,
    crosscoder: bool = False,
    **options,
) -> Path:
    """Train one SAE (or a sweep / several hooks in one pass) on ``hook`` of ``store``; returns ``out``.

    ``hook`` may be a list or "a,b"; ``sweep`` like ``"k=16,32,64"``. ``options``: the SAE and the data
    (``StoreConfig``: arch, width, k, coef, batch_size, holdout, split_seed, epochs), the loop
    (``TrainConfig``: lr, device, autocast, seed, log_every, ...) and architecture options such as
    ``jumprelu_bandwidth``; each default is the dataclass field's. ``steps`` replaces ``epochs``.
    A single SAE is written into ``out``, several into ``out/<name>/``; each folder holds cfg.json,
    sae_weights.safetensors, metrics.jsonl, loss.png.
    Under ``torchrun``, ``distribute="data"`` splits each batch of ``batch_size`` rows over the ranks
    (same result as one process), ``"saes"`` gives each rank its own SAEs (see runtime.plan_training).

    ``objective="kl"`` or ``"kl+mse"`` trains one SAE through Whisper on the utterances of ``corpus``
    (default: the store's corpus) instead of on the store's rows (``sae/kl_training.py``); the store then
    gives the initialisation (scale, b_dec), the utterance split and the held-out rows. ``kl_options``:
    ``KLConfig`` fields (mse_weight, utterances_per_step, decoder_text, max_utterances).

    ``hook_out`` trains a transcoder instead: it reads ``hook`` and learns to write ``hook_out`` (e.g.
    ``encoder.blocks.2.mlp_in`` -> ``encoder.blocks.2.mlp_out``), with a linear skip path if ``skip``.
    ``crosscoder`` trains one dictionary that reads and reconstructs all of ``hook`` (several hooks)
    side by side. Both read the same frames at every hook from the store, with the MSE objective.
    """
    from .train_config import OBJECTIVES

    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    store_kw, train_kw, architectures = split_options(dict(options))
    plan = StoreConfig(**store_kw)
    init_distributed(train_kw.get("device", "auto"))
    store = store if isinstance(store, ActivationStore) else ActivationStore(store)
    hooks = [h.strip() for h in hook.split(",")] if isinstance(hook, str) else list(hook)
    sweep = parse_sweep(sweep) if isinstance(sweep, str) or sweep is None else dict(sweep)
    if hook_out is not None or crosscoder or skip:
        if objective != "mse" or sweep:
            raise ValueError("transcoders and crosscoders train with --objective mse and without --sweep")
        specs = circuit_specs(
            hooks,
            store,
            hook_out=hook_out,
            skip=skip,
            crosscoder=crosscoder,
            arch=plan.arch,
            width=plan.width,
            k=plan.k,
            coef=plan.coef,
        )
    else:
        specs = build_specs(
            hooks,
            store,
            arch=plan.arch,
            width=plan.width,
            k=plan.k,
            coef=plan.coef,
            sweep=sweep,
            apply_b_dec_to_input=apply_b_dec_to_input,
        )
    data_kw = {key: value for key, value in store_kw.items() if key not in ("arch", "width", "k", "coef")}
    if objective != "mse":
        return _train_through_whisper(
            store,
            specs,
            out=out,
            steps=steps,
            resume=resume,
            stop_after=stop_after,
            objective=objective,
            corpus=corpus,
            kl_options=kl_options or {},
            data=StoreConfig(**store_kw),
            architectures=architectures,
            train_kw=train_kw,
        )
    if kl_options or corpus is not None:
        raise ValueError(
            "corpus and the KL options only apply to --objective kl or kl+mse; the MSE objective trains "
            "on the store's rows"
        )
    train_specs(
        store,
        specs,
        out=out,
        steps=steps,
        resume=resume,
        stop_after=stop_after,
        distribute=distribute,
        architectures=architectures,
        **data_kw,
        **train_kw,
    )
    return Path(out)


def train_specs(
    store,
    specs: list[SAESpec],
    *,
    out,
    steps: int | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    distribute: str = "data",
    **options,
) -> list[Path]:
    """Train any list of SAEs (mixed architectures, hooks of ``store``) in one pass; returns their folders.

    ``options`` as for ``train`` except the SAE's own (arch, width, k, coef: the specs say them).
    Under ``torchrun`` see ``train`` for ``distribute``; a rank with no SAE to train returns [].
    """
    store_kw, train_kw, architectures = split_options(dict(options))
    own = sorted(set(store_kw) & {"arch", "width", "k", "coef"})
    if own:
        raise ValueError(f"train_specs takes the SAEs from its specs; {own} belong in the SAEConfig / SAESpec")
    if steps is not None and "epochs" in store_kw:
        raise ValueError("give steps or epochs, not both")
    data = StoreConfig(**store_kw)
    world = init_distributed(train_kw.get("device", "auto"))
    store = store if isinstance(store, ActivationStore) else ActivationStore(store)
    hooks = _hooks_of(specs)
    for spec in specs:
        cfg = spec.config
        for what, width, read in (("d_in", cfg.d_in, cfg.input_hooks), ("output width", cfg.out_dim, cfg.output_hooks)):
            if width != sum(store.d_model(h) for h in read):
                raise ValueError(
                    f"SAE {spec.name!r} has {what}={width} but hook(s) {read} of {store.path} are "
                    f"{sum(store.d_model(h) for h in read)} wide"
                )
    train_idx, val_idx = store.split_utterances(data.holdout, data.split_seed)
    n_utts = max(1, len(store.utterances))
    # Rows per utterance vary little at this scale; the epoch count only sets the step budget. Every hook's
    # stream loops on its own, so with hooks of different row counts (frames and decoder tokens) an epoch is
    # one pass over the largest: the smaller hooks are seen more often, never the larger ones less.
    rows = {h: store.n_rows(h) * len(train_idx) / n_utts for h in hooks}
    steps_per_epoch = max(rows.values()) / data.batch_size
    if min(rows.values()) * 2 < max(rows.values()):
        few = min(rows, key=rows.get)
        log.warning(
            "hooks %s have %.0f to %.0f training rows; an epoch is a pass over the largest, so %s is passed "
            "over %.0fx as often (train it on its own with its own --steps to avoid that)",
            ", ".join(hooks),
            min(rows.values()),
            max(rows.values()),
            few,
            max(rows.values()) / rows[few],
        )
    if steps is None:
        steps = max(1, math.ceil(data.epochs * steps_per_epoch))
    extra = {
        "store": record_path(store.path, out),
        "model": store.manifest.get("model", {}).get("name"),
        "d_model": {h: store.d_model(h) for h in hooks},
        "holdout": data.holdout,
        "split_seed": data.split_seed,
        "batch_size": data.batch_size,
        "train_utterances": len(train_idx),
        "val_utterances": len(val_idx),
        "epochs": {h: steps * data.batch_size / max(1.0, n) for h, n in rows.items()},
    }
    config = TrainConfig(
        steps=steps, steps_per_epoch=steps_per_epoch, extra=extra, architectures=architectures, **train_kw
    )
    plan = plan_training(specs, world, distribute, checkpoint=CHECKPOINT)
    specs = plan.specs
    if not specs:  # more ranks than SAEs with distribute="saes"
        return []
    hooks = _hooks_of(specs)  # only the hooks this rank trains
    stream_kw = dict(
        batch_size=data.batch_size, seed=config.seed, utterances=train_idx, loop=True, buffer_rows=data.buffer_rows
    )
    batches = store.batches(hooks[0], **stream_kw) if len(hooks) == 1 else _zip_hooks(store, hooks, **stream_kw)
    val = None
    if len(val_idx):
        reads = {h: store.read(h, utterances=val_idx, max_rows=config.eval_rows)[0] for h in hooks}
        val = reads[hooks[0]] if len(hooks) == 1 else reads
    if plan.split_batches:  # every rank reads the same global batches and trains on its slice
        batches = rank_slice(batches, world)
    batches = prefetch(batches, resolve_device(config.device))  # a reader thread on CUDA
    return fit(
        specs,
        batches,
        config,
        out,
        val=val,
        resume=resume,
        stop_after=stop_after,
        parallel=plan.parallel,
        checkpoint=plan.checkpoint,
    )


def _hooks_of(specs: list[SAESpec]) -> list[str]:
    """Every hook the specs read or write (a transcoder's two, a crosscoder's several), in first-seen order."""
    return list(dict.fromkeys(h for s in specs for h in (*s.config.input_hooks, *s.config.output_hooks)))


def _train_through_whisper(
    store: ActivationStore,
    specs: list[SAESpec],
    *,
    out,
    steps,
    resume,
    stop_after,
    objective,
    corpus,
    kl_options: dict,
    data: StoreConfig,
    architectures: dict,
    train_kw: dict,
) -> Path:
    """``train --objective kl``: one fresh SAE trained on Whisper's logits (``sae/kl_training.py``)."""
    from ..artifacts import open_model
    from .kl_training import run_kl

    if len(specs) != 1:
        raise ValueError(
            f"--objective {objective} trains one SAE at a time (one hook, no --sweep); this run asks for {len(specs)}"
        )
    if current_world().size > 1:
        raise ValueError(f"--objective {objective} runs in one process; launch it without torchrun")
    corpus = corpus if corpus is not None else store.corpus
    if not corpus:
        raise ValueError(
            f"store {store.path} records no corpus; give --corpus (the speech the store was extracted from)"
        )
    model = store.manifest.get("model", {})
    lw = open_model(model.get("spec") or model.get("name"), device=resolve_device(train_kw.get("device", "auto")))
    run_kl(
        specs[0],
        lw,
        corpus,
        out=out,
        store=store,
        steps=steps,
        resume=resume,
        stop_after=stop_after,
        holdout=data.holdout,
        split_seed=data.split_seed,
        init_batch_size=data.batch_size,
        objective=objective,
        epochs=data.epochs,
        architectures=architectures,
        **kl_options,
        **train_kw,
    )
    return Path(out)
