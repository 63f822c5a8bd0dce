"""Adding an SAE to the shipped set: fp16 weights, a model card, the index entry, the size budget.

Used by ``scripts/ship_pretrained.py`` (developers, on a source checkout); users never write into the
installed package. The folder written is checked before anything in the package changes: the weights
must survive fp16 (finite, within ±65504), the SAE must load, and the whole shipped set with it must stay
within ``BUDGET_BYTES``; only then is the folder moved into place and ``index.json`` rewritten (atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from whisper_sae.pretrained import (
    BUDGET_BYTES,
    CARD_FILE,
    INDEX_FILE,
    INDEX_FORMAT,
    LICENSE_FILE,
    PACKAGE_DIR,
    load_index,
    shipped_size,
)
from whisper_sae.pretrained.cards import entry_from, read_json, render_card

# MODEL/HOOK[-VARIANT]: the model as whisper-sae names it, the hook as HookPoint spells it.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]*/[a-z][a-z0-9._-]*$")
FP16_MAX = 65504.0


def folder_for(name: str) -> str:
    """The folder a name is shipped in: ``tiny/encoder.out-original`` → ``tiny--encoder.out-original``
    (one level, and not a Python identifier, so setuptools never mistakes it for a package)."""
    return name.replace("/", "--")


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise ValueError(
            f"shipped SAE name {name!r} is not of the form MODEL/HOOK[-VARIANT] in lower case, "
            "e.g. tiny.en/encoder.out or tiny.en/encoder.out-4608"
        )
    return name


def add(
    sae_dir: str | Path,
    name: str,
    *,
    eval_json: str | Path | None = None,
    headline: dict | None = None,
    training_data: dict | None = None,
    licence: str = "MIT",
    licence_file: str | Path | None = None,
    notes: str | None = None,
    recommended: bool = True,
    source: str | None = None,
    replace: bool = False,
    root: str | Path | None = None,
    budget: int = BUDGET_BYTES,
) -> Path:
    """Ship the SAE folder ``sae_dir`` as ``name`` into ``root`` (default: this package); returns its folder.

    ``eval_json`` (an ``eval.json`` or its folder) gives the card's numbers, ``headline`` overrides or
    supplies them (keys of ``cards.HEADLINE`` plus ``measured_on``); ``training_data`` is
    ``{"corpus", "hours", "speakers", "licence"}``; ``notes`` (markdown) ends the card; ``licence_file``
    travels with the weights when their licence asks for it (MIT does)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from whisper_sae.runtime.files import honour_umask
    from whisper_sae.sae.io import CFG_FILE, WEIGHTS_FILE, load_pretrained

    check_name(name)
    root = Path(root or PACKAGE_DIR)
    sae_dir = Path(sae_dir)
    index = load_index(root)
    if name in index and not replace:
        raise ValueError(f"{name!r} is already shipped; pass --replace to ship {sae_dir} in its place")
    cfg_doc = read_json(sae_dir, CFG_FILE)
    load_pretrained(sae_dir)  # the folder must load as it is before it is converted
    with safe_open(str(sae_dir / WEIGHTS_FILE), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    half = {}
    for key, tensor in tensors.items():
        if tensor.is_floating_point():
            if not torch.isfinite(tensor).all() or tensor.abs().max() > FP16_MAX:
                raise ValueError(
                    f"{sae_dir / WEIGHTS_FILE}: {key} has values that fp16 cannot hold (non-finite or "
                    f"beyond ±{FP16_MAX:g}); this SAE cannot be shipped in fp16"
                )
            tensor = tensor.half()
        half[key] = tensor.contiguous()
    cfg_doc = json.loads(json.dumps(cfg_doc))
    ours = cfg_doc.setdefault("whisper_sae", {})
    ours.update(storage_dtype="float16", shipped_as=name)
    ((ours.get("training") or {}).get("data") or {}).pop("store", None)  # a path on the machine that trained it

    folder = folder_for(name)
    staging = root / f".staging-{folder}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        save_file(half, str(staging / WEIGHTS_FILE))
        honour_umask(staging / WEIGHTS_FILE)  # save_file creates 0600 files
        (staging / CFG_FILE).write_text(json.dumps(cfg_doc, indent=2) + "\n", encoding="utf-8")
        if licence_file is not None:
            shutil.copyfile(licence_file, staging / LICENSE_FILE)
        load_pretrained(staging)  # and it must load after
        weights = (staging / WEIGHTS_FILE).read_bytes()
        entry = entry_from(
            cfg_doc,
            folder=folder,
            eval_doc=read_json(eval_json, "eval.json") if eval_json else None,
            headline=headline,
            training_data=training_data,
            licence=licence,
            recommended=recommended,
            **({"source": source} if source else {}),
            weights_sha256=hashlib.sha256(weights).hexdigest(),
            storage_dtype="float16",
        )
        (staging / CARD_FILE).write_text(render_card(name, entry, notes=notes), encoding="utf-8")
        for file in staging.iterdir():
            file.chmod(0o644)  # safetensors writes 0600; an installed package is read by every user
        new_size = sum(p.stat().st_size for p in staging.iterdir())
        old_size = sum(p.stat().st_size for p in (root / folder).rglob("*") if p.is_file()) if name in index else 0
        total = shipped_size(root) - old_size + new_size + 1024  # the index grows by about an entry
        if total > budget:
            raise ValueError(
                f"shipping {name!r} ({new_size / 1e6:.1f} MB) would make the shipped SAEs {total / 1e6:.1f} MB, "
                f"over the {budget / 1e6:.0f} MB budget; ship a narrower SAE or remove one from {root / INDEX_FILE}"
            )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(root / folder, ignore_errors=True)
    os.replace(staging, root / folder)
    index[name] = entry
    write_index(index, root)
    return root / folder


def remove(name: str, root: str | Path | None = None) -> None:
    """Take ``name`` out of the shipped set (its folder and its index entry)."""
    root = Path(root or PACKAGE_DIR)
    index = load_index(root)
    if name not in index:
        raise ValueError(f"{name!r} is not shipped; shipped: {', '.join(sorted(index)) or 'none'}")
    shutil.rmtree(root / index.pop(name)["folder"], ignore_errors=True)
    write_index(index, root)


def write_index(index: dict, root: Path) -> None:
    doc = {"format": INDEX_FORMAT, "budget_bytes": BUDGET_BYTES, "saes": dict(sorted(index.items()))}
    tmp = root / (INDEX_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / INDEX_FILE)
