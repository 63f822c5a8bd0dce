"""Packages whose public names are imported from their submodules on first use.

Importing ``whisper_sae.audio`` must not pull in ``transformers`` (the eSpeak worker process, the
store reader and the metrics are used without it), so the packages export lazily.
"""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for ``package``, where ``exports`` maps a name to its submodule."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(import_module(package))) | set(exports))

    return __getattr__, __dir__
