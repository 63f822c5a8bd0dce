"""SAEs that come with the package, so a user can open one without training, and the names that find them.

Training an SAE that says something about Whisper takes a store of real speech and an hour of GPU; many
users only want to look at features. So a few SAEs ship inside the wheel, as ordinary SAE folders
(``cfg.json`` + fp16 ``sae_weights.safetensors`` + ``MODEL_CARD.md``, SAELens layout) listed in
``index.json`` (name → folder, model, hook, architecture, width, k, training data, licence, measured
numbers). fp16 halves the size (a tiny-width-4608 SAE is 7 MB instead of 14) and loading upcasts to fp32;
the whole set is kept under ``BUDGET_BYTES`` so the wheel stays small.

A **name** is ``MODEL/HOOK[-VARIANT]`` (``tiny/encoder.out-original``); ``locate`` turns what a user
typed into a folder on disk, in this order: a path that exists, a shipped name, ``hf://ORG/REPO[/SUBDIR]``
(downloaded into the Hugging Face cache, ``hub.py``). ``SparseAutoencoder.from_pretrained`` and
``artifacts.open_sae`` go through it, so every command that takes an SAE folder takes a name too.

Shipped folders sit inside the installed package, which is not the user's to write into (and may be
read-only); ``artifacts.output_dir_for`` sends the default outputs of ``evaluate``/``analyze``/``probe``
for them to ``./whisper-sae-out/NAME/``. ``export`` copies one to a normal folder.

New entries are added with ``scripts/ship_pretrained.py`` (``ship.add``): fp16 conversion, a model card
written from ``cfg.json`` and ``eval.json``, the index entry, and the size budget check.

This module reads JSON and copies files only; it imports neither torch nor ``huggingface_hub``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
INDEX_FILE = "index.json"
INDEX_FORMAT = "whisper-sae-pretrained/1"
CARD_FILE = "MODEL_CARD.md"
LICENSE_FILE = "LICENSE"
# The files of a shipped SAE folder (LICENSE only where the weights' licence asks for its text to travel).
SHIPPED_FILES = ("cfg.json", "sae_weights.safetensors", CARD_FILE, LICENSE_FILE)
BUDGET_BYTES = 20_000_000
HUB_PREFIX = "hf://"
# Where default outputs of commands go for an SAE whose folder is not the user's (shipped or from the Hub).
OUT_ROOT = "whisper-sae-out"


class UnknownSAEError(FileNotFoundError):
    """Neither a folder nor a shipped name; the message lists the shipped names."""


def load_index(root: str | Path | None = None) -> dict[str, dict]:
    """The shipped SAEs: name → index entry (``folder``, ``model``, ``hook``, ``architecture``, ...)."""
    path = Path(root or PACKAGE_DIR) / INDEX_FILE
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("format") != INDEX_FORMAT:
        raise ValueError(
            f"{path} is not a pretrained-SAE index (format {doc.get('format')!r}, expected {INDEX_FORMAT!r})"
        )
    return dict(doc.get("saes", {}))


def names(root: str | Path | None = None) -> list[str]:
    """The names of the shipped SAEs, sorted."""
    return sorted(load_index(root))


def recommended(model: str, hook: str, root: str | Path | None = None) -> str | None:
    """The shipped SAE to use for ``hook`` of ``model`` (a model name such as ``tiny.en``), or None: among
    the entries marked recommended, the one with the largest width, then the smallest L0."""

    def short(name: str) -> str:  # "openai/whisper-tiny.en" and "tiny.en" are one model
        return name.split("/")[-1].removeprefix("whisper-")

    found = [
        (-e["width"], e["headline"].get("l0") or 0, name)
        for name, e in load_index(root).items()
        if e["recommended"] and e["hook"] == hook and short(e["model"]) == short(model)
    ]
    return min(found)[2] if found else None


def _unknown(name: str, root) -> UnknownSAEError:
    shipped = ", ".join(names(root)) or "none"
    return UnknownSAEError(f"no shipped SAE is named {name!r}; shipped SAEs: {shipped} (`whisper-sae pretrained list`)")


def folder(name: str, root: str | Path | None = None) -> Path:
    """The folder of the shipped SAE ``name``; an ``UnknownSAEError`` lists the shipped names."""
    entry = load_index(root).get(str(name))
    if entry is None:
        raise _unknown(str(name), root)
    return Path(root or PACKAGE_DIR) / entry["folder"]


def card(name: str, root: str | Path | None = None) -> str:
    """The model card (markdown) of the shipped SAE ``name``."""
    return (folder(name, root) / CARD_FILE).read_text(encoding="utf-8")


def export(name: str, out: str | Path, root: str | Path | None = None) -> Path:
    """Copy the shipped SAE ``name`` into the folder ``out`` (created), where results can be written beside it."""
    source = folder(name, root)
    out = Path(out)
    if (out / "cfg.json").exists():
        raise ValueError(
            f"{out} already holds an SAE (cfg.json); choose an empty or new folder to export {name!r} into"
        )
    out.mkdir(parents=True, exist_ok=True)
    for file in SHIPPED_FILES:
        if (source / file).is_file():
            shutil.copyfile(source / file, out / file)
    return out


def shipped_size(root: str | Path | None = None) -> int:
    """Bytes of every shipped SAE folder plus the index: what the budget counts."""
    base = Path(root or PACKAGE_DIR)
    total = (base / INDEX_FILE).stat().st_size if (base / INDEX_FILE).is_file() else 0
    for entry in load_index(root).values():
        total += sum(p.stat().st_size for p in (base / entry["folder"]).rglob("*") if p.is_file())
    return total


def shipped_name_of(path: str | Path, root: str | Path | None = None) -> str | None:
    """The name of the shipped SAE whose folder holds ``path``; None for any path outside them."""
    base = Path(root or PACKAGE_DIR)
    try:
        rel = Path(path).resolve().relative_to(base.resolve())
    except ValueError:
        return None
    if not rel.parts:
        return None
    for name, entry in load_index(root).items():
        if rel.parts[0] == entry["folder"]:
            return name
    return rel.parts[0]


def locate(spec: str | Path) -> Path:
    """The SAE folder ``spec`` means: a path that exists, else a shipped name, else ``hf://ORG/REPO[/SUBDIR]``
    (downloaded, or found in the Hugging Face cache). Anything else is an ``UnknownSAEError`` that says
    what would have been accepted."""
    text = str(spec)
    if text.startswith(HUB_PREFIX):
        from .hub import download

        return download(text)
    path = Path(text)
    if path.exists():
        return path
    index = load_index()
    if text in index:
        return PACKAGE_DIR / index[text]["folder"]
    shipped = ", ".join(sorted(index)) or "none"
    raise UnknownSAEError(
        f"no SAE folder at {text!r} and no shipped SAE of that name; give a folder holding cfg.json and "
        f"sae_weights.safetensors (as `whisper-sae train` writes), a shipped name ({shipped}; "
        f"`whisper-sae pretrained list`) or hf://ORG/REPO[/SUBDIR]"
    )


def user_output_name(spec: str | Path) -> str | None:
    """For an SAE whose folder is not the user's to write into, the folder under ``OUT_ROOT`` where its
    outputs go (``tiny/encoder.out-original``, ``hf/ORG/REPO/SUBDIR``); None for a user's own folder."""
    text = str(spec)
    if text.startswith(HUB_PREFIX):
        from .hub import parse

        hub = parse(text)
        return "/".join(["hf", hub.repo_id] + ([hub.subdir] if hub.subdir else []))
    path = Path(text)
    if not path.exists():
        return text if text in load_index() else None
    name = shipped_name_of(path)
    if name is not None:
        return name
    parts = path.resolve().parts  # a folder inside a Hugging Face cache snapshot: models--ORG--REPO/snapshots/SHA/...
    for i, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[i + 1] == "snapshots":
            return "/".join(["hf", *part.removeprefix("models--").split("--"), *parts[i + 3 :]])
    return None


def out_root() -> Path:
    """``./whisper-sae-out``, or ``$WHISPER_SAE_OUT`` when set."""
    return Path(os.environ.get("WHISPER_SAE_OUT") or OUT_ROOT)
