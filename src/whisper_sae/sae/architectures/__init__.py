"""SAE architectures: one module each, listed in one registry.

**To add an architecture, add one file in ``sae/architectures/`` and register it** with one line in
``_MODULES`` below. The file defines a subclass of :class:`~.base.Architecture` named ``ARCHITECTURE``
and, in that one place, everything the architecture is:

- its parameters beyond ``W_enc``/``b_enc``/``W_dec``/``b_dec`` (e.g. JumpReLU's learned threshold)
  and whether it needs ``k``;
- its activation (the sparsifying non-linearity ``encode`` applies) and its inference threshold;
- its training objective (loss and what happens after each optimizer step);
- its dead-feature handling (ReLU resampling, TopK's AuxK loss);
- its sparsity coefficient's default, and its training knobs as an ``Options`` dataclass whose field
  docstrings become the ``train`` command's ``--<architecture>-<option>`` flags;
- its SAELens architecture name for ``cfg.json``.

``SparseAutoencoder``, the SAE folder format, the training loop and the CLI ask the registry and never
name an architecture themselves. The registry imports an architecture's module (and torch) only when
it is asked for, so the CLI can list the names and read the options' docstrings without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Architecture

# name -> module of this package that defines ARCHITECTURE
_MODULES = {
    "relu": "relu",
    "topk": "topk",
    "batchtopk": "batchtopk",
    "jumprelu": "jumprelu",
}
ARCHITECTURES: tuple[str, ...] = tuple(_MODULES)


class UnknownArchitectureError(ValueError):
    """An architecture name that is not registered; the message lists the valid ones."""


def check_name(name) -> str:
    """``name`` if it is a registered architecture, else an error listing the valid names."""
    if name not in _MODULES:
        raise UnknownArchitectureError(
            f"architecture {name!r} is not known; valid architectures are {', '.join(ARCHITECTURES)}"
        )
    return name


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name`` (its module is imported on first use)."""
    return import_module(f"{__name__}.{_MODULES[check_name(name)]}").ARCHITECTURE


def options_path(name: str) -> str:
    """``"module:Options"`` of an architecture's training options, for reading their docstrings without
    importing the module (see ``whisper_sae.cli.dataclass_flags``)."""
    return f"{__name__}.{_MODULES[check_name(name)]}:Options"


def all_architectures() -> list[Architecture]:
    return [get_architecture(name) for name in ARCHITECTURES]


def from_saelens(saelens_name: str) -> str | None:
    """Our architecture for a folder SAELens wrote with ``architecture: saelens_name`` (None if unsupported)."""
    for arch in all_architectures():
        if arch.saelens_name == saelens_name and arch.reads_saelens:
            return arch.name
    return None


def saelens_names() -> list[str]:
    return sorted({arch.saelens_name for arch in all_architectures() if arch.reads_saelens})


__all__ = [
    "ARCHITECTURES",
    "UnknownArchitectureError",
    "all_architectures",
    "check_name",
    "from_saelens",
    "get_architecture",
    "options_path",
    "saelens_names",
]
