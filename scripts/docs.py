"""Build the API reference from the docstrings with pdoc, failing on any warning pdoc gives.

pdoc reports what it cannot document (a module that fails to import, a broken cross-reference, a
signature it cannot read) as warnings and carries on; CI wants those to fail the build instead.
Usage: python scripts/docs.py [OUT]  (default site/api).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path


def _prepare_packages() -> None:
    """Make pdoc see the whole package, in this process only.

    pdoc reads a package's names from its ``__dict__`` (ours are exported lazily, so they are bound here
    first), and where a package has ``__all__`` it documents only the submodules listed there (so the
    public submodules are added to it).
    """
    import importlib
    import pkgutil

    import whisper_sae

    names = ["whisper_sae"] + [m.name for m in pkgutil.walk_packages(whisper_sae.__path__, "whisper_sae.") if m.ispkg]
    for name in names:
        package = importlib.import_module(name)
        if not hasattr(package, "__all__"):
            continue
        for export in package.__all__:
            if export not in vars(package):
                setattr(package, export, getattr(package, export))
        submodules = [m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
        package.__all__ = [*package.__all__, *(m for m in submodules if m not in package.__all__)]


def build(out: Path) -> list[str]:
    """Write the HTML reference of ``whisper_sae`` into ``out``; return pdoc's warnings."""
    try:
        import pdoc
        import pdoc.render
    except ImportError:
        raise SystemExit("pdoc is not installed: bash scripts/setup.sh test (or pip install -e '.[docs]')") from None
    pdoc.render.configure(
        docformat="restructuredtext", footer_text="whisper-sae API reference", search=True, show_source=False
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _prepare_packages()
        # whisper_sae.__main__ would run the command line on import; everything else is documented.
        pdoc.pdoc("whisper_sae", "!whisper_sae.__main__", output_directory=out)
    return [f"{w.category.__name__}: {w.message}" for w in caught if not _generated_init_annotation(str(w.message))]


def _generated_init_annotation(message: str) -> bool:
    """pdoc's warning about the generated ``__init__`` of a dataclass or NamedTuple, whose string annotations
    it cannot resolve.

    With ``from __future__ import annotations`` the ``__init__`` that ``dataclasses`` (or NamedTuple) writes keeps the
    annotations as strings but does not share the module's globals, so pdoc cannot evaluate ``'Tensor'``
    there (it shows the string); the class's own fields are documented with the types resolved.
    """
    import dataclasses
    import importlib
    import re

    found = re.match(r"Error parsing type annotation .* for ([\w.]+)\.(\w+)\.__init__\. Import of \w+ failed", message)
    if not found:
        return False
    try:
        cls = getattr(importlib.import_module(found[1]), found[2])
    except (ImportError, AttributeError):
        return False
    return dataclasses.is_dataclass(cls) or (
        isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")
    )


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "site/api")
    found = build(out)
    for line in found:
        print(f"docs: {line}", file=sys.stderr)
    if found:
        print(f"docs: {len(found)} warning(s); the reference in {out} is incomplete", file=sys.stderr)
        return 1
    print(f"API reference: {(out / 'index.html').resolve().as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
