"""Saving and loading SAEs in SAELens' folder layout, and converting the original ``.pth`` checkpoints.

A folder holds ``cfg.json`` and ``sae_weights.safetensors`` (``W_enc`` [d_in, d_sae], ``b_enc``, ``W_dec``
[d_sae, d_in], ``b_dec``, and ``threshold`` [d_sae] for threshold architectures), so
``sae_lens.SAE.load_from_disk`` reads what we write. Our own fields sit beside SAELens' keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from whisper_sae.runtime.files import honour_umask

from .architectures import from_saelens, get_architecture, saelens_names
from .config import SAEConfig
from .model import SparseAutoencoder

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
FORMAT = "whisper-sae-sae/1"

REQUIRED_KEYS = {"architecture", "d_in", "d_sae"}
KNOWN_KEYS = REQUIRED_KEYS | {
    "dtype",
    "device",
    "apply_b_dec_to_input",
    "normalize_activations",
    "reshape_activations",
    "metadata",
    "k",
    "rescale_acts_by_decoder_norm",
    "hook_name",
    "model_name",
    "whisper_sae",
    "d_out",
    "hook_name_out",
    "hook_names",
}
# SAELens' names of its ReLU transcoders (``sae_lens/saes/transcoder.py``): same tensors, W_skip [d_out, d_in].
SAELENS_TRANSCODERS = {False: "transcoder", True: "skip_transcoder"}


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    honour_umask(tmp)  # save_file creates 0600 files
    os.replace(tmp, path)


def save_pretrained(sae: SparseAutoencoder, path, **training) -> Path:
    """Write ``sae`` to the folder ``path``; ``training`` (JSON-able) lands in ``cfg.json`` under ``whisper_sae``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = sae.cfg
    tensors = {
        name: getattr(sae, name).detach().float().cpu().contiguous() for name in ("W_enc", "b_enc", "W_dec", "b_dec")
    }
    if sae.arch.has_threshold:
        tensors["threshold"] = sae.get_threshold().detach().float().cpu().contiguous()
    if cfg.skip:
        tensors["W_skip"] = sae.W_skip.detach().float().cpu().contiguous()
    meta = {"hook_name": cfg.hook_name, "model_name": cfg.model_name}
    doc = {
        "architecture": sae.arch.saelens_name,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": "none",  # our normalisation is folded into the weights
        "reshape_activations": "none",
        "hook_name": cfg.hook_name,
        "model_name": cfg.model_name,
        "metadata": meta,
        "whisper_sae": {
            "format": FORMAT,
            "architecture": cfg.architecture,
            "k": cfg.k,
            "activation_scale": cfg.activation_scale,
            "model_spec": cfg.model_spec,
            "window_mode": cfg.window_mode,
            **training,
        },
    }
    doc.update(sae.arch.saelens_fields(cfg))
    if cfg.kind == "transcoder":
        doc.update({"d_out": cfg.out_dim, "hook_name_out": cfg.hook_name_out})
        if cfg.architecture == "relu":  # SAELens has ReLU transcoders only
            doc["architecture"] = SAELENS_TRANSCODERS[cfg.skip]
        doc["whisper_sae"]["skip"] = cfg.skip
    if cfg.kind == "crosscoder":  # no SAELens counterpart: W_enc reads, W_dec writes the hooks side by side
        doc["hook_names"] = list(cfg.hook_names)
    _atomic_write_bytes(path / WEIGHTS_FILE, lambda tmp: save_file(tensors, str(tmp)))
    _atomic_write_bytes(path / CFG_FILE, lambda tmp: tmp.write_text(json.dumps(doc, indent=2) + "\n"))
    return path


def read_config(path) -> tuple[SAEConfig, dict]:
    """The ``SAEConfig`` of the folder ``path`` and its ``whisper_sae`` section; errors name the bad key."""
    path = Path(path)
    cfg_path = path / CFG_FILE
    if not cfg_path.is_file():
        raise FileNotFoundError(
            f"{path} is not an SAE folder: it has no {CFG_FILE} (expected {CFG_FILE} + {WEIGHTS_FILE})"
        )
    try:
        doc = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{cfg_path} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{cfg_path} must hold a JSON object, got {type(doc).__name__}")
    missing = sorted(REQUIRED_KEYS - doc.keys())
    if missing:
        raise ValueError(
            f"{cfg_path} lacks the required key(s) {missing}; an SAE cfg.json needs {sorted(REQUIRED_KEYS)}"
        )
    unknown = sorted(doc.keys() - KNOWN_KEYS)
    if unknown:
        raise ValueError(f"{cfg_path} has unknown key(s) {unknown}; known keys are {sorted(KNOWN_KEYS)}")
    ours = doc.get("whisper_sae") or {}
    transcoder = doc["architecture"] in SAELENS_TRANSCODERS.values()
    arch = ours.get("architecture") or ("relu" if transcoder else from_saelens(doc["architecture"]))
    if arch is None:
        raise ValueError(
            f"{cfg_path}: architecture {doc['architecture']!r} is not supported; supported SAELens architectures "
            f"are {saelens_names()}"
        )
    if doc.get("normalize_activations", "none") != "none":
        raise ValueError(
            f"{cfg_path}: normalize_activations={doc['normalize_activations']!r} is not supported; "
            "fold the normalisation into the weights and write 'none'"
        )
    if doc.get("rescale_acts_by_decoder_norm"):
        raise ValueError(f"{cfg_path}: rescale_acts_by_decoder_norm=true is not supported")
    meta = doc.get("metadata") or {}
    cfg = SAEConfig(
        d_in=doc["d_in"],
        d_sae=doc["d_sae"],
        architecture=arch,
        k=doc.get("k", ours.get("k")) if get_architecture(arch).needs_k else None,
        apply_b_dec_to_input=bool(doc.get("apply_b_dec_to_input", True)) and not doc.get("hook_name_out"),
        hook_name=doc.get("hook_name", meta.get("hook_name")),
        model_name=doc.get("model_name", meta.get("model_name")),
        activation_scale=float(ours.get("activation_scale", 1.0)),
        model_spec=ours.get("model_spec"),
        window_mode=ours.get("window_mode"),
        hook_name_out=doc.get("hook_name_out"),
        d_out=doc.get("d_out") if doc.get("hook_name_out") else None,
        skip=bool(ours.get("skip", doc["architecture"] == "skip_transcoder")),
        hook_names=doc.get("hook_names"),
    )
    return cfg, ours


def load_pretrained(path, *, device="cpu") -> SparseAutoencoder:
    """Load the SAE folder ``path`` (written by us or by SAELens for standard/topk/jumprelu), a shipped
    name (``tiny/encoder.out-original``; a path that exists wins) or ``hf://ORG/REPO[/SUBDIR]``.
    Weights stored in fp16 or bf16 are upcast to fp32."""
    from whisper_sae.pretrained import locate

    path = locate(path)
    cfg, _ = read_config(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{path} has {CFG_FILE} but no {WEIGHTS_FILE}")
    with safe_open(str(weights), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    d_out = cfg.out_dim
    want = {"W_enc": (cfg.d_in, cfg.d_sae), "b_enc": (cfg.d_sae,), "W_dec": (cfg.d_sae, d_out), "b_dec": (d_out,)}
    arch = get_architecture(cfg.architecture)
    if arch.has_threshold:
        want["threshold"] = (cfg.d_sae,)
    if cfg.skip:
        want["W_skip"] = (d_out, cfg.d_in)
    for name, shape in want.items():
        if name not in tensors:
            raise ValueError(f"{weights} lacks tensor {name!r}; a {cfg.architecture} SAE needs {sorted(want)}")
        if tuple(tensors[name].shape) != shape:
            raise ValueError(
                f"{weights}: {name} has shape {list(tensors[name].shape)} but cfg.json (d_in={cfg.d_in}, "
                f"d_sae={cfg.d_sae}) needs {list(shape)}"
            )
    sae = SparseAutoencoder(cfg)
    state = {name: tensors[name].float() for name in ("W_enc", "b_enc", "W_dec", "b_dec", "W_skip") if name in want}
    if arch.has_threshold:
        state.update(arch.threshold_state(tensors["threshold"]))
    sae.load_state_dict(state)
    return sae.to(device).eval()


ORIGINAL_HOOK = "encoder.out"
ORIGINAL_MODEL = "openai/whisper-tiny"


def model_config(model: str):
    """The ``WhisperConfig`` of a model name (``tiny.en``, ``openai/whisper-small``...) or a model folder
    holding ``config.json``, without loading weights; a ValueError lists the known names."""
    from whisper_sae.runtime.models import model_names, whisper_config

    text = str(model)
    folder = Path(text)
    if (folder / "config.json").is_file():
        from transformers import WhisperConfig

        return WhisperConfig.from_pretrained(str(folder))
    name = text.rstrip("/").split("/")[-1].removeprefix("whisper-")
    if name in model_names():
        return whisper_config(name)
    raise ValueError(
        f"Whisper model {text!r} is not known; give one of {', '.join(model_names())} (optionally as "
        "openai/whisper-NAME) or a model folder holding config.json"
    )


def check_hook(hook_name: str, model_name: str, d_in: int, *, what: str = "this SAE") -> str:
    """``hook_name`` in canonical form if the model has it and its width is ``d_in``; else a ValueError
    that lists the model's hooks or names the widths."""
    from whisper_sae.whisper.hooks import HookPoint

    config = model_config(model_name)
    point = HookPoint.parse(hook_name, config)  # UnknownHookError (a ValueError) lists the valid names
    if int(config.d_model) != int(d_in):
        raise ValueError(
            f"{what} reads activations of width d_in={d_in}, but {model_name} has d_model="
            f"{config.d_model}; name the model it was trained on with --model (the original "
            "checkpoints, d_in 384, are of tiny / tiny.en)"
        )
    return point.name


def convert_original(pth, out, *, hook_name: str = ORIGINAL_HOOK, model_name: str = ORIGINAL_MODEL) -> Path:
    """Write an original whisper-sae ``.pth`` state dict (ReLU, nn.Linear keys) as an SAE folder ``out``.

    ``hook_name`` is checked against ``model_name`` (a hook the model has, of the checkpoint's width), so the
    folder never names a hook that later stages cannot find."""
    pth = Path(pth)
    if not pth.is_file():
        raise FileNotFoundError(f"no checkpoint at {pth}")
    try:
        state = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle with code in it, or not a torch file at all
        raise ValueError(
            f"{pth} is not a plain state dict of tensors ({type(err).__name__}); it was not loaded"
        ) from None
    if not isinstance(state, dict) or "encoder.weight" not in state:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{pth} is not an original whisper-sae state dict (encoder.weight, ...); it holds {keys}")
    hidden_dim, input_dim = state["encoder.weight"].shape
    hook_name = check_hook(hook_name, model_name, int(input_dim), what=f"{pth}")
    sae = SparseAutoencoder(input_dim=int(input_dim), hidden_dim=int(hidden_dim))
    sae.cfg.hook_name, sae.cfg.model_name = hook_name, model_name
    sae.load_state_dict(state)
    return save_pretrained(sae, out, converted_from=pth.name)
