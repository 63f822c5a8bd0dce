"""Up-front checks that an SAE fits what it is applied to: a store's hook, a Whisper's width, an analysis.

Without them an SAE of another width fails deep inside a matrix product with a raw tensor-size error
that names neither the SAE nor the store; here the message names both, and the hook, before any
work starts. ``analyze``, ``probe``, ``intervene`` and ``dashboard`` call them.
"""

from __future__ import annotations

from pathlib import Path


def sae_name(sae, sae_dir: str | Path | None) -> str:
    """'SAE saes/x' for an SAE from a folder, 'the SAE' for an object."""
    return f"SAE {sae_dir}" if sae_dir is not None else "the SAE"


def check_sae_store(sae, sae_dir, store, hook: str) -> None:
    """The store holds ``hook`` and its width is the SAE's ``d_in``."""
    if hook not in store.hooks:
        raise ValueError(
            f"store {store.path} has no {hook!r} activations; it holds {', '.join(store.hooks)}. "
            f"Extract {hook} into it, or use an SAE trained on one of those hooks"
        )
    width = int(store.d_model(hook))
    if width != int(sae.cfg.d_in):
        raise ValueError(
            f"{sae_name(sae, sae_dir)} reads {hook} of width {sae.cfg.d_in} but store {store.path} holds "
            f"{hook} {width} wide; use the SAE trained on this store's model, or a store of the SAE's model"
        )


def check_sae_model(sae, sae_dir, lw, hook: str) -> None:
    """The Whisper's width at ``hook`` (its ``d_model``) is the SAE's ``d_in``; warns on another model/hook."""
    width = int(lw.d_model)
    if width != int(sae.cfg.d_in):
        model = getattr(lw, "name", None) or getattr(lw, "spec", None) or "the model given"
        raise ValueError(
            f"{sae_name(sae, sae_dir)} reads {hook} of width {sae.cfg.d_in} but Whisper {model} has "
            f"d_model {width}; pass --model with the Whisper the SAE was trained on "
            f"({sae.cfg.model_name or 'see its cfg.json'})"
        )
    sae.check_compatible(width, hook, getattr(lw, "name", None))


def check_sae_analysis(sae, sae_dir, analysis, hook: str | None = None) -> None:
    """The analysis was made of an SAE with as many features, at the same hook."""
    where = f"analysis {analysis.path}" if analysis.path is not None else "the analysis given"
    if analysis.d_sae != int(sae.cfg.d_sae):
        raise ValueError(
            f"{where} has {analysis.d_sae} features but {sae_name(sae, sae_dir)} has {sae.cfg.d_sae}; "
            "pass the analysis of this SAE (or run `whisper-sae analyze` on it)"
        )
    hook = hook or sae.cfg.hook_name
    if hook and analysis.meta.get("hook") not in (None, hook):
        raise ValueError(
            f"{where} is of hook {analysis.meta.get('hook')!r} but {sae_name(sae, sae_dir)} reads {hook!r}; "
            "pass the analysis of this SAE"
        )
