"""SAEs on the Hugging Face Hub: ``hf://ORG/REPO[@REVISION][/SUBDIR]`` to load one, ``push`` to publish one.

Loading goes through ``huggingface_hub.snapshot_download`` with ``allow_patterns`` naming the SAE's own
files, so a repository holding many SAEs (one per SUBDIR, as SAELens releases are laid out) costs one
SAE's download; the files land in the ordinary Hub cache and later loads, and offline ones
(``HF_HUB_OFFLINE=1``), read them from there. ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` are read when the
SAE is loaded, not when ``huggingface_hub`` was imported, so setting them in a running program works.

``push`` uploads exactly what a loader needs, ``cfg.json``, ``sae_weights.safetensors``, the licence file
if any, and a ``README.md`` model card (the folder's ``MODEL_CARD.md`` or ``README.md``, else one written
from ``cfg.json`` and ``eval.json``): never checkpoints, metrics or analysis outputs.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from whisper_sae.pretrained import CARD_FILE, HUB_PREFIX, LICENSE_FILE, locate

CFG_FILE, WEIGHTS_FILE, HUB_CARD = "cfg.json", "sae_weights.safetensors", "README.md"
# What is fetched of an SAE folder on the Hub.
DOWNLOADED = (CFG_FILE, WEIGHTS_FILE, HUB_CARD, CARD_FILE, LICENSE_FILE)
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class HubError(RuntimeError):
    """The Hub could not be reached or refused a request; the message names the repository."""


@dataclass(frozen=True)
class HubSpec:
    repo_id: str
    revision: str | None = None
    subdir: str = ""

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{HUB_PREFIX}{self.repo_id}{rev}" + (f"/{self.subdir}" if self.subdir else "")


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id or "") or ".." in repo_id:
        raise ValueError(f"Hub repository {repo_id!r} is not of the form ORG/REPO (letters, digits, '.', '_', '-')")
    return repo_id


def check_subdir(subdir: str | None, what: str) -> str:
    subdir = (subdir or "").strip("/")
    parts = subdir.split("/") if subdir else []
    if any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ValueError(f"{what}: subfolder {subdir!r} must be a relative path without '.', '..' or empty parts")
    return subdir


def parse(spec: str) -> HubSpec:
    """``hf://ORG/REPO[@REVISION][/SUBDIR]`` → ``HubSpec``; a ValueError says which part is wrong."""
    if not spec.startswith(HUB_PREFIX):
        raise ValueError(f"{spec!r} is not a Hub SAE; write hf://ORG/REPO[/SUBDIR]")
    parts = spec[len(HUB_PREFIX) :].strip("/").split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(
            f"{spec!r} names no repository; write hf://ORG/REPO[/SUBDIR], e.g. hf://my-org/whisper-saes/tiny.en"
        )
    repo, _, revision = parts[1].partition("@")
    if "@" in parts[1] and not revision:
        raise ValueError(
            f"{spec!r} has an empty revision after '@'; write hf://ORG/REPO@REVISION[/SUBDIR] or drop the '@'"
        )
    repo_id = check_repo_id(f"{parts[0]}/{repo}")
    return HubSpec(repo_id, revision or None, check_subdir("/".join(parts[2:]), spec))


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def download(spec: str) -> Path:
    """The local folder of the Hub SAE ``spec``: its files fetched into the Hub cache (or found there)."""
    from huggingface_hub import snapshot_download

    hub = parse(spec)
    prefix = f"{hub.subdir}/" if hub.subdir else ""
    offline = _env_true("HF_HUB_OFFLINE")
    try:
        snapshot = snapshot_download(
            hub.repo_id,
            revision=hub.revision,
            allow_patterns=[prefix + f for f in DOWNLOADED],
            cache_dir=os.environ.get("HF_HUB_CACHE") or None,
            local_files_only=offline,
        )
    except Exception as err:  # network, authentication, a missing repo or revision: one sentence, the cause kept
        how = (
            "HF_HUB_OFFLINE is set and the SAE is not in the Hugging Face cache; unset it to download"
            if offline
            else "check the repository name and revision, your network and your Hub login"
        )
        raise HubError(
            f"could not get {spec} from the Hugging Face Hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); {how}"
        ) from err
    folder = Path(snapshot) / hub.subdir
    if not (folder / CFG_FILE).is_file():
        where = f"in {hub.subdir}/" if hub.subdir else "at its top level"
        raise FileNotFoundError(
            f"{spec}: the repository holds no {CFG_FILE} {where}; name the subfolder of the SAE, hf://ORG/REPO/SUBDIR"
        )
    return folder


def model_card_for(folder: Path, load_as: str) -> str:
    """The folder's own card, else one written from its ``cfg.json`` (and ``eval.json`` when present)."""
    for name in (CARD_FILE, HUB_CARD):
        if (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    from whisper_sae.pretrained.cards import entry_from, read_json, render_card

    eval_doc = read_json(folder, "eval.json") if (folder / "eval.json").is_file() else None
    cfg_doc = read_json(folder, CFG_FILE)
    entry = entry_from(cfg_doc, folder=folder.name, eval_doc=eval_doc, licence="unknown")
    return render_card(load_as.removeprefix(HUB_PREFIX), entry, load_as=load_as)


def push(
    sae: str | Path,
    repo_id: str,
    *,
    subdir: str | None = None,
    private: bool = False,
    token: str | None = None,
    message: str | None = None,
) -> str:
    """Upload the SAE ``sae`` (a folder, a shipped name or another ``hf://`` SAE) to ``repo_id`` (created if
    needed; ``private`` only applies to a new repository) under ``subdir``; returns the ``hf://`` spec
    that loads it back."""
    from whisper_sae.sae.io import read_config

    check_repo_id(repo_id)
    subdir = check_subdir(subdir, "--subdir")
    folder = locate(sae)
    read_config(folder)  # refuse to publish a folder that does not load
    if not (folder / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{folder} has {CFG_FILE} but no {WEIGHTS_FILE}; nothing to push")
    spec = f"{HUB_PREFIX}{repo_id}" + (f"/{subdir}" if subdir else "")
    with tempfile.TemporaryDirectory(prefix="whisper-sae-push-") as tmp:
        stage = Path(tmp)
        for name in (CFG_FILE, WEIGHTS_FILE, LICENSE_FILE):
            if (folder / name).is_file():
                shutil.copyfile(folder / name, stage / name)
        (stage / HUB_CARD).write_text(model_card_for(folder, spec), encoding="utf-8")
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(
                repo_id=repo_id,
                folder_path=str(stage),
                path_in_repo=subdir or None,
                repo_type="model",
                commit_message=message or f"Upload SAE {Path(str(sae)).name}" + (f" to {subdir}" if subdir else ""),
            )
        except Exception as err:
            raise HubError(
                f"could not upload {folder} to {repo_id} ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); log in with `hf auth login` or set HF_TOKEN, "
                "and check that you may write to the repository"
            ) from err
    return spec
