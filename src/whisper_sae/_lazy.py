"""Packages whose public names are imported from their submodules on first use.

Importing ``whisper_sae.audio`` must not pull in ``transformers`` (the eSpeak worker process, the
store reader and the metrics are used without it), and ``import whisper_sae`` must not pull in torch,
so the packages export lazily.
"""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str | None]):
    """``__getattr__`` and ``__dir__`` for ``package``, where ``exports`` maps a name to its submodule.

    A name mapped to None is the submodule of that name itself (``whisper_sae.evaluate``, a package that
    is also callable as its main function).

    Names are looked up on every use (a monkeypatched submodule attribute is seen). Keep a function out of
    a submodule of its own name: importing that submodule would bind the module over the function on the
    package (why the probe lives in ``analysis.probing``).
    """

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if exports[name] is None:
            return import_module(f"{package}.{name}")  # the import binds it on the package
        return getattr(import_module(f"{package}.{exports[name]}"), name)

    def __dir__():
        return sorted(set(vars(import_module(package))) | set(exports))

    return __getattr__, __dir__
