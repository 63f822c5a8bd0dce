"""Training checkpoints that load without running anything: tensors in safetensors, the rest in JSON.

A checkpoint used to be one ``torch.save`` pickle (``checkpoint/state.pt``) loaded with
``weights_only=False``: whoever could write into a shared SAE folder could make ``train --resume`` run
their code. Now a checkpoint is two files in ``checkpoint/``:

- ``state-<step>.safetensors``: every tensor (the SAEs' weights, Adam's moments and step counts, the
  dead-feature clocks, the RNG states), read by ``safetensors``, which parses a JSON header and raw
  bytes and never executes anything;
- ``state.json``: everything else (format, step = the data position, the run's config that fixes the
  lr schedule, the SAEs' configs and scales, the optimizer's hyper-parameters, the loss scaler) and the
  name of its tensor file.

``state.json`` is written last and atomically, so it is the commit point: a run killed while writing
keeps the previous checkpoint whole. A pickle ``state.pt`` left by an older version is never opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from whisper_sae.runtime.files import honour_umask

CHECKPOINT = Path("checkpoint") / "state.json"
"""The checkpoint's commit file, relative to the output folder."""
LEGACY_PICKLE = "state.pt"
"""The pickle checkpoint of earlier versions (refused, never unpickled)."""
FORMAT = "whisper-sae-checkpoint/2"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


def legacy_pickle(path: Path) -> Path | None:
    """The old pickle checkpoint beside ``path``, if one is there."""
    old = Path(path).parent / LEGACY_PICKLE
    return old if old.exists() else None


def exists(path: Path) -> bool:
    """Whether a checkpoint (this format or a refused old pickle) is at ``path``."""
    return Path(path).is_file() or legacy_pickle(path) is not None


def write(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``tensors`` and the JSON-able ``meta`` (which must hold ``step``) as the checkpoint ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    step = int(meta["step"])
    tensor_file = path.with_name(f"{path.stem}-{step:09d}.safetensors")
    tmp = tensor_file.with_name(tensor_file.name + ".tmp")
    save_file(
        {key: value.detach().cpu().contiguous() for key, value in tensors.items()},
        str(tmp),
        metadata={"format": FORMAT, "step": str(step)},
    )
    honour_umask(tmp)  # save_file creates 0600 files
    os.replace(tmp, tensor_file)
    doc = {"format": FORMAT, "tensors": tensor_file.name, **meta}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    for old in path.parent.glob(f"{path.stem}-*.safetensors"):  # earlier checkpoints' tensors
        if old.name != tensor_file.name:
            old.unlink(missing_ok=True)
    return path


def read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(meta, tensors) of the checkpoint ``path``; a CheckpointError names a missing, corrupt or old file."""
    path = Path(path)
    old = legacy_pickle(path)
    if old is not None and not path.is_file():
        raise CheckpointError(
            f"{old} is a pickle checkpoint of an older whisper-sae; it is not loaded, because unpickling a "
            f"file can run code; delete {path.parent} to train this folder from the start, or write to a new --out"
        )
    fix = f"delete {path.parent} to train from the start, or write to a new --out"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"training checkpoint {path} cannot be read ({err}); {fix}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("tensors"), str):
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"training checkpoint {path} is not a {FORMAT} checkpoint (found {found!r}); {fix}")
    tensor_file = path.parent / Path(doc["tensors"]).name
    try:
        tensors = load_file(str(tensor_file))
    except (OSError, SafetensorError, ValueError) as err:
        raise CheckpointError(f"training checkpoint tensors {tensor_file} cannot be read ({err}); {fix}") from None
    return doc, tensors


def rng_tensors(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The process's RNG states (CPU, CUDA devices) and ``generator``'s, as tensors."""
    tensors = {"rng/cpu": torch.get_rng_state(), "rng/generator": generator.get_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{index}"] = state
    return tensors


def restore_rng(tensors: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    torch.set_rng_state(tensors["rng/cpu"])
    generator.set_state(tensors["rng/generator"])
    cuda = [
        tensors[key]
        for key in sorted((k for k in tensors if k.startswith("rng/cuda/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    ]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
