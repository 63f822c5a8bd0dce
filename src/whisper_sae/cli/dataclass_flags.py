"""Command-line flags built from config dataclasses, so a default and its help are written once.

A flag's type, default, choices and help all come from one dataclass field: its annotation (``int``,
``float``, ``str``, ``bool`` as ``--x/--no-x``, ``X | None``, ``tuple[X, ...]`` as a comma-separated
list, ``Literal[...]`` as choices), its default, and the string literal written right under it, the
field's docstring, read from the source with ``ast`` as simple_parsing and sparsify do::

    lr: float = 5e-4
    \"\"\"Peak learning rate (Adam).\"\"\"          ->   --lr LR   Peak learning rate (Adam). (default: 0.0005)

So the CLI cannot drift from the library: change the default in the dataclass and ``--help`` and the
parsed value follow. Every flag must have help text: a field without a docstring needs a ``help=``
entry, or building the parser fails.

A class may be given as ``"package.module:Class"``: its source is then read without importing the
module (defaults must be literals, arithmetic on literals, ``field(default_factory=dict)`` or names
assigned or imported in the module, resolved the same way), so ``whisper-sae --help`` does not import
torch or scikit-learn to show the architectures' and the probe's options. A default that cannot be
read statically makes the module be imported after all.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
import inspect
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MISSING = dataclasses.MISSING


@dataclass(frozen=True)
class FieldInfo:
    """One dataclass field as the CLI sees it."""

    name: str
    annotation: str
    """The annotation's source text, e.g. ``int | None``."""
    default: Any
    """The default value (``MISSING`` for a required field)."""
    doc: str | None
    """The docstring under the field, on one line."""


# ----------------------------------------------------------------------------------- reading a class


class _Unresolved(Exception):
    """A default that cannot be read from the source alone."""


def _module_source(module: str) -> tuple[ast.Module, str]:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ImportError(f"cannot find the source of module {module!r}")
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8")), module


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_package(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    return bool(spec and spec.submodule_search_locations is not None)


def _lookup(module: str, name: str, depth: int = 0):
    """(module, node) where ``name`` is defined: a ClassDef, or the value of a top-level assignment."""
    if depth > 8:
        raise _Unresolved(name)
    tree, _ = _module_source(module)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return module, node
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return module, node.value
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and node.value
        ):
            return module, node.value
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _lookup(_absolute(module, node, _is_package(module)), alias.name, depth + 1)
    raise _Unresolved(f"{module}.{name}")


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FACTORIES = {"dict": dict, "list": list, "tuple": tuple, "set": set}


def _evaluate(node: ast.AST, module: str):
    """The value of a default's expression, from the source alone (or _Unresolved)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_evaluate(item, module) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left, module), _evaluate(node.right, module))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand, module))
    if isinstance(node, ast.Name):
        where, value = _lookup(module, node.id)
        if isinstance(value, ast.ClassDef):
            raise _Unresolved(node.id)
        return _evaluate(value, where)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "field":
        keywords = {k.arg: k.value for k in node.keywords}
        if "default" in keywords:
            return _evaluate(keywords["default"], module)
        factory = keywords.get("default_factory")
        if isinstance(factory, ast.Name) and factory.id in _FACTORIES:
            return _FACTORIES[factory.id]()
    raise _Unresolved(ast.unparse(node))


def _docstring(body: list, index: int) -> str | None:
    if index + 1 < len(body):
        nxt = body[index + 1]
        if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            return " ".join(inspect.cleandoc(nxt.value.value).split())
    return None


def _class_fields(module: str, node: ast.ClassDef) -> list[tuple[str, str, ast.AST | None, str | None]]:
    found = []
    for index, stmt in enumerate(node.body):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            annotation = ast.unparse(stmt.annotation)
            if annotation.startswith(("ClassVar", "typing.ClassVar")):
                continue
            found.append((stmt.target.id, annotation, stmt.value, _docstring(node.body, index)))
    return found


def read_fields(cls, only: Iterable[str] | None = None) -> list[FieldInfo]:
    """The fields of a dataclass (a class, or ``"module:Class"`` read without importing the module);
    ``only``: the fields whose defaults are needed (the others' defaults are left as MISSING)."""
    if isinstance(cls, str):
        module, _, name = cls.partition(":")
        try:
            where, node = _lookup(module, name)
        except _Unresolved:  # e.g. a package that exports its names lazily: import it after all
            return read_fields(getattr(importlib.import_module(module), name))
        if not isinstance(node, ast.ClassDef):
            raise TypeError(f"{cls} is not a class")
        raw = _class_fields(where, node)
        wanted = set(only) if only is not None else {n for n, _, _, _ in raw}
        try:
            return [
                FieldInfo(n, a, MISSING if v is None or n not in wanted else _evaluate(v, where), d)
                for n, a, v, d in raw
            ]
        except _Unresolved:
            real = getattr(importlib.import_module(where), name)  # a default only the running code knows
            defaults = _real_defaults(real)
            return [FieldInfo(n, a, defaults[n], d) for n, a, _, d in raw]
    source = inspect.getsourcefile(cls)
    tree = ast.parse(Path(source).read_text(encoding="utf-8"))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    defaults = _real_defaults(cls)
    return [FieldInfo(n, a, defaults[n], d) for n, a, _, d in _class_fields(cls.__module__, node)]


def _real_defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = MISSING
    return out


# ----------------------------------------------------------------------------------- building flags


def _split_optional(annotation: str) -> tuple[str, bool]:
    parts = [p.strip() for p in annotation.split("|")]
    if len(parts) > 1 and "None" in parts:
        rest = [p for p in parts if p != "None"]
        return " | ".join(rest), True
    if annotation.startswith("Optional[") and annotation.endswith("]"):
        return annotation[len("Optional[") : -1], True
    return annotation, False


_SCALARS = {"int": int, "float": float, "str": str}


def _convert(kind, nullable: bool, flag: str):
    def parse(text: str):
        if nullable and text.strip().lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} wants {'an' if kind is int else 'a'} {kind.__name__}, got {text!r}"
            ) from None

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def _list_of(kind, flag: str):
    def parse(text: str):
        try:
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} wants comma-separated {kind.__name__}s, got {text!r}") from None

    parse.__name__ = f"list of {kind.__name__}"
    return parse


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _flag_kwargs(info: FieldInfo, flag: str, choices) -> dict:
    annotation, nullable = _split_optional(info.annotation)
    kwargs: dict = {}
    if annotation.startswith("Literal["):
        options = _literal_choices(annotation)
        kwargs["choices"] = options
        kwargs["type"] = _convert(type(options[0]), nullable, flag)
    elif annotation == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    elif annotation in _SCALARS:
        kwargs["type"] = _convert(_SCALARS[annotation], nullable, flag)
    elif annotation == "tuple" or annotation.startswith("tuple["):
        inner = annotation[len("tuple[") : -1].split(",")[0].strip() if annotation.startswith("tuple[") else "str"
        kwargs["type"] = _list_of(_SCALARS.get(inner, str), flag)
        kwargs["metavar"] = "A,B"
    else:
        raise TypeError(f"field {info.name!r} has type {info.annotation}, which has no command-line form; skip it")
    if choices is not None:
        kwargs["choices"] = tuple(choices)
    return kwargs


def _literal_choices(annotation: str) -> tuple:
    node = ast.parse(annotation, mode="eval").body
    items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    return tuple(ast.literal_eval(item) for item in items)


def add_flags(
    parser,
    cls,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    prefix: str = "",
    dest_prefix: str = "",
    choices: dict | None = None,
    help: dict | None = None,
    flag_names: dict | None = None,
) -> dict[str, str]:
    """Add one flag per field of the dataclass ``cls`` to ``parser`` (a parser or argument group).

    ``only`` / ``skip`` pick fields; ``prefix`` goes before each flag name (``--jumprelu-bandwidth``) and
    ``dest_prefix`` before each destination; ``choices`` (field -> values) for fields whose choices are
    not a ``Literal`` (e.g. a registry); ``help`` (field -> text) for fields without a docstring;
    ``flag_names`` (field -> list of option strings) to keep an established spelling or alias.
    Returns {field name: argparse dest} for :func:`picked`.
    """
    infos = read_fields(cls, only)
    known = {info.name for info in infos}
    wanted = list(only) if only is not None else [info.name for info in infos]
    unknown = sorted((set(wanted) | set(skip) | set(choices or {}) | set(help or {}) | set(flag_names or {})) - known)
    if unknown:
        raise ValueError(f"{cls} has no field(s) {unknown}")
    by_name = {info.name: info for info in infos}
    dests = {}
    for name in wanted:
        if name in set(skip):
            continue
        info = by_name[name]
        flags = (flag_names or {}).get(name) or [f"--{prefix}{name.replace('_', '-')}"]
        text = (help or {}).get(name) or info.doc
        if not text:
            raise ValueError(
                f"field {name!r} of {cls} has no docstring; write one under the field (it is the flag's help)"
            )
        kwargs = _flag_kwargs(info, flags[0], (choices or {}).get(name))
        if info.default is MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = info.default
            if not (info.default is None and "default" in text.lower()):
                text = f"{text} (default: {_shown(info.default)})"
        dest = f"{dest_prefix}{name}"
        parser.add_argument(*flags, dest=dest, help=text.replace("%", "%%"), **kwargs)
        dests[name] = dest
    return dests


def picked(args: argparse.Namespace, dests: dict[str, str]) -> dict:
    """{field name: parsed value} for the flags :func:`add_flags` added."""
    return {name: getattr(args, dest) for name, dest in dests.items()}
