"""The prose the synthetic corpus speaks: one sentence per line in ``texts/<language>.txt``.

The English bank is original prose written for this package (plain sentences without digits,
abbreviations or hyphens, so that the transcript is exactly what is said and what Whisper writes).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

TEXT_DIR = Path(__file__).with_name("texts")


def available_languages() -> list[str]:
    return sorted(p.stem for p in TEXT_DIR.glob("*.txt"))


@cache
def text_bank(language: str) -> tuple[str, ...]:
    """Distinct sentences for ``language`` in file order; ``#`` lines are comments."""
    path = TEXT_DIR / f"{language}.txt"
    if not path.is_file():
        raise ValueError(f"no text bank for language {language!r}; available: {available_languages()}.")
    seen, out = set(), []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = " ".join(line.split())
        if line and not line.startswith("#") and line not in seen:
            seen.add(line)
            out.append(line)
    return tuple(out)
