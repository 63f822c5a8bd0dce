"""Derived two-class attributes: ``child=age<=12`` or ``native=native_language==english`` make a new
attribute from one comparison on an existing column, so the probe can ask "child or adult?" of a corpus
that only records ages.

A record whose column is missing keeps no value for the derived attribute (the probe skips it). The
classes are ``NAME`` (the comparison holds) and ``not NAME``. Numbers compare as numbers when both
sides parse as numbers; anything else compares as text, case and surrounding spaces ignored (only
``==`` and ``!=`` are allowed on text).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

_OPERATORS = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_SPEC = re.compile(
    r"^\s*(?P<name>[A-Za-z_][\w-]*)\s*=\s*(?P<column>[^<>=!]+?)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>[^<>=!\s].*?)\s*$"
)
SPEC_HELP = (
    "NAME=COLUMN OP VALUE with OP one of <=, >=, <, >, ==, != (e.g. child=age<=12, native=native_language==english)"
)


@dataclass(frozen=True)
class Derivation:
    """``name`` is ``column op value``: a two-class attribute (``name`` / ``not name``)."""

    name: str
    column: str
    op: str
    value: str

    @property
    def classes(self) -> tuple[str, str]:
        return self.name, f"not {self.name}"

    def describe(self) -> str:
        return f"{self.name} = {self.column} {self.op} {self.value}"

    def label(self, raw) -> str | None:
        """The class of one cell (``None`` for a missing cell)."""
        if _missing(raw):
            return None
        left, right = _number(raw), _number(self.value)
        if left is None or right is None:
            if self.op not in ("==", "!="):
                raise ValueError(
                    f"derived attribute {self.describe()!r}: {self.column!r} value {raw!r} is not a number; "
                    f"{self.op} needs numbers (only == and != compare text)"
                )
            left, right = _text(raw), _text(self.value)
        return self.classes[0] if _OPERATORS[self.op](left, right) else self.classes[1]


def parse_derivation(spec: str) -> Derivation:
    """Parse ``NAME=COLUMN OP VALUE`` (see ``SPEC_HELP``); a malformed spec is an error naming it."""
    m = _SPEC.match(spec or "")
    if m is None:
        raise ValueError(f"--derive {spec!r}: expected {SPEC_HELP}")
    return Derivation(m["name"], m["column"].strip(), m["op"], m["value"].strip())


def apply_derivations(records: list[dict], derivations) -> list[str]:
    """Add each derived attribute to every record's ``attributes``; return one note per derivation
    (its definition and counts). The column is looked up case-insensitively; a column no record has
    is an error listing the columns there are."""
    notes = []
    for d in derivations:
        d = parse_derivation(d) if isinstance(d, str) else d
        columns = {k.strip().lower(): k for r in records for k in (r.get("attributes") or {})}
        if d.column.lower() not in columns:
            raise ValueError(
                f"derived attribute {d.describe()!r}: no column {d.column!r}; columns here: "
                f"{', '.join(sorted(columns.values())) or 'none'}"
            )
        col = columns[d.column.lower()]
        counts = {c: 0 for c in d.classes} | {None: 0}
        for r in records:
            attrs = r.setdefault("attributes", {}) if r.get("attributes") is not None else {}
            label = d.label(attrs.get(col))
            attrs[d.name] = label
            r["attributes"] = attrs
            counts[label] += 1
        notes.append(
            f"derived attribute {d.describe()}: {counts[d.classes[0]]} utterances {d.classes[0]!r}, "
            f"{counts[d.classes[1]]} {d.classes[1]!r}, {counts[None]} without {col!r}"
        )
    return notes


def _missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip().lower() in ("", "nan", "none", "na", "n/a")


def _number(v) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _text(v) -> str:
    return re.sub(r"\s+", " ", str(v)).strip().lower()
