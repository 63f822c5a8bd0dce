"""Each artifact's layout, and opening one from whatever a user passes.

One place for what lives where and how a stage gets hold of another stage's output:

- :class:`SAEFolder`: the files inside an SAE folder (``cfg.json``, weights, training checkpoint and
  metrics, ``eval.json``, ``analysis/``, ``probe/probe.json``). Every stage that reads or writes one of
  them takes the name from here.
- ``open_sae``, ``open_model``, ``open_corpus``, ``open_store``: a path, a spec string or an object
  already loaded, turned into the object a stage works on, with the same error for the same mistake.
  An SAE may also be a shipped name or ``hf://ORG/REPO[/SUBDIR]`` (``whisper_sae/pretrained/``).
- ``output_dir_for``: where a stage's default output for an SAE goes; inside the user's SAE folder, but
  never inside a shipped or downloaded one (those go to ``./whisper-sae-out/NAME/``).
- ``record_path`` / ``resolve_path``: paths stored inside an artifact (a store's corpus, an analysis'
  store, an SAE's store) are written relative to the artifact, so a folder can be moved or used from
  any working directory.

Imports of the stages happen inside the functions, so this module sits beside the flow
(``audio → whisper → activations → sae → evaluate → analysis``) without pulling it in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from whisper_sae.activations import ActivationStore
    from whisper_sae.sae import SparseAutoencoder
    from whisper_sae.whisper import LoadedWhisper


@dataclass(frozen=True)
class SAEFolder:
    """The layout of an SAE folder as ``train`` writes it and later stages add to it."""

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    # Written by `train` (SAELens layout + training record).
    @property
    def cfg(self) -> Path:
        return self.path / "cfg.json"

    @property
    def weights(self) -> Path:
        return self.path / "sae_weights.safetensors"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    # Written by `evaluate`.
    @property
    def eval_json(self) -> Path:
        return self.path / "eval.json"

    # Written by `analyze` (read by `probe` for labels and by `dashboard`).
    @property
    def analysis(self) -> Path:
        return self.path / "analysis"

    @property
    def analysis_json(self) -> Path:
        return self.analysis / "analysis.json"

    # Written by `probe` (read by `dashboard`).
    @property
    def probe(self) -> Path:
        return self.path / "probe"

    @property
    def probe_json(self) -> Path:
        return self.probe / "probe.json"

    def exists(self) -> bool:
        return self.cfg.is_file() and self.weights.is_file()


# ------------------------------------------------------------------------------------------ paths


def _is_path_spec(spec: str) -> bool:
    """Corpus and model specs may be hub ids or ``hf:...`` streams; only real paths are rewritten."""
    return not spec.startswith(("hf:", "hf://")) and "://" not in spec


def _is_prefixed_spec(text: str) -> bool:
    """A corpus spec with a format prefix, a name or options (``ravdess:DIR``, ``so=kaldi:DIR?every=10``): kept
    as written, never joined to an artifact's folder (``record_path`` writes such a spec as given)."""
    from whisper_sae.audio.formats import parse_spec

    if Path(text).exists():
        return False
    try:
        spec = parse_spec(text)
    except ValueError:
        return False
    return bool(spec.format or spec.name or spec.options)


def record_path(path: str | Path | None, base: str | Path) -> str | None:
    """``path`` as it should be written inside the artifact folder ``base``: relative to ``base`` when
    it is a filesystem path (so moving the artifact together with its inputs keeps it valid), as given
    for hub ids and ``hf:`` specs. None stays None."""
    if path is None:
        return None
    text = str(path)
    if not _is_path_spec(text) or not Path(text).exists():
        return text
    return Path(os.path.relpath(Path(text).resolve(), Path(base).resolve())).as_posix()


def resolve_path(recorded: str | None, base: str | Path) -> str | None:
    """The path a recorded value means, read from the artifact folder ``base``: absolute paths and
    specs as they are; relative ones from ``base``. Artifacts written before paths were recorded
    relative to themselves held paths relative to the working directory: those are still found when
    they exist there and not beside the artifact."""
    if recorded is None:
        return None
    if not _is_path_spec(recorded) or Path(recorded).is_absolute() or _is_prefixed_spec(recorded):
        return recorded
    beside = Path(base) / recorded
    if beside.exists() or not Path(recorded).exists():
        return os.path.normpath(beside)
    return recorded


# ------------------------------------------------------------------------------------------ opening


def open_sae(sae: Any, device=None) -> tuple[SparseAutoencoder, Path | None]:
    """(the SAE in eval mode, its folder or None): from a folder path, a shipped name
    (``tiny/encoder.out-original``, ``whisper-sae pretrained list``), ``hf://ORG/REPO[/SUBDIR]`` or a
    ``SparseAutoencoder``. The folder returned is where the SAE was read from, which for a shipped or Hub
    SAE is not the user's: write outputs where ``output_dir_for`` says, not into it."""
    from whisper_sae.pretrained import locate
    from whisper_sae.sae import SparseAutoencoder

    if isinstance(sae, (str, Path)):
        path = locate(sae)  # an UnknownSAEError (FileNotFoundError) lists the shipped names
        if not SAEFolder(path).cfg.is_file():
            raise FileNotFoundError(
                f"SAE folder {path} has no cfg.json; give a folder holding cfg.json and "
                "sae_weights.safetensors (as `whisper-sae train` writes)"
            )
        return SparseAutoencoder.from_pretrained(path, device=device).eval(), path
    if not hasattr(sae, "encode") or not hasattr(sae, "cfg"):
        raise TypeError(
            f"sae must be an SAE folder, a shipped SAE name or a SparseAutoencoder, got {type(sae).__name__}"
        )
    return (sae.to(device) if device is not None else sae).eval(), None


def locate_sae(sae: str | Path) -> Path:
    """The folder an SAE argument means (a path, a shipped name, ``hf://...``), for code that passes folders on."""
    from whisper_sae.pretrained import locate

    return locate(sae)


def output_dir_for(sae: Any, subdir: str | None = None) -> Path | None:
    """Where a command writes its default output for the SAE ``sae`` (what the user passed), e.g.
    ``output_dir_for(spec, "analysis")``. The one rule:

    - the user's own SAE folder: inside it, ``SAE_DIR/subdir`` (as ``evaluate``, ``analyze``, ``probe``
      always did);
    - a shipped SAE (its name, or a path inside the installed package) or a Hub SAE (``hf://...`` or a
      path in the Hugging Face cache): never its folder, but ``./whisper-sae-out/NAME/subdir``
      (``$WHISPER_SAE_OUT`` replaces ``./whisper-sae-out``);
    - an SAE object: None (nothing is written unless an output folder is given).
    """
    if not isinstance(sae, (str, Path)):
        return None
    from whisper_sae.pretrained import out_root, user_output_name

    name = user_output_name(sae)
    base = Path(sae) if name is None else out_root() / name
    return base / subdir if subdir else base


def open_model(model: Any = None, *, sae: Any = None, device=None) -> LoadedWhisper:
    """A loaded Whisper: ``model`` when already loaded, else loaded from its spec, else the model the
    SAE's config names (its ``model_spec``, then ``model_name``)."""
    from whisper_sae.whisper import LoadedWhisper, load_whisper

    if isinstance(model, LoadedWhisper) or (
        model is not None and hasattr(model, "log_mel") and hasattr(model, "model")
    ):
        return model
    spec = model
    if spec is None and sae is not None:
        spec = getattr(sae.cfg, "model_spec", None) or sae.cfg.model_name
        if not spec:
            raise ValueError(
                "the SAE's config names no Whisper model (model_name is empty); pass model=, e.g. 'tiny.en'"
            )
    return load_whisper(None if spec is None else str(spec), device=device if device is not None else "cpu")


def open_corpus(corpus: Any, max_utterances: int | None = None) -> tuple[Iterable, str]:
    """(utterances, spec): a corpus spec is loaded with ``load_corpus``; an iterable of ``Utterance``
    is used as it is (cut to ``max_utterances``)."""
    if corpus is None:
        raise ValueError("no corpus given; pass a corpus spec (folder, audio file, hf:NAME:SPLIT) or utterances")
    several = isinstance(corpus, (list, tuple)) and corpus and all(isinstance(c, (str, Path)) for c in corpus)
    if isinstance(corpus, (str, Path)) or several:
        from whisper_sae.audio import load_corpus

        loaded = load_corpus([str(c) for c in corpus] if several else str(corpus), max_utterances=max_utterances)
        return loaded, str(getattr(loaded, "spec", corpus))
    spec = str(getattr(corpus, "spec", "<in-memory utterances>"))
    if max_utterances is None:
        return corpus, spec
    return (u for _, u in zip(range(max_utterances), corpus)), spec


def open_store(store: Any) -> ActivationStore | None:
    """An ``ActivationStore`` from a folder path; a store object (or None) as given."""
    if store is None or not isinstance(store, (str, Path)):
        return store
    from whisper_sae.activations import ActivationStore

    return ActivationStore(store)
