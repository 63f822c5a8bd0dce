"""Reading the text files of a corpus (transcripts, metadata tables, Kaldi lists) without losing or
garbling anything silently.

Found by trying: ``trans.txt`` with a UTF-8 byte-order mark lost its first utterance's text (the BOM
became part of the id), UTF-16 lost every line, and Latin-1 came out garbled, all without a word.
Here a BOM decides the encoding (UTF-8, UTF-16 LE/BE, UTF-32), BOM-less UTF-16 is recognised by its
zero bytes, and anything else must be valid UTF-8: otherwise the error names the file and says how to
convert it. Text that already holds U+FFFD replacement characters (a past lossy conversion) is read,
with a warning naming the file and the count.
"""

from __future__ import annotations

import codecs
import logging
from pathlib import Path

log = logging.getLogger(__name__)

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class TextEncodingError(ValueError):
    """A corpus text file that is not UTF-8 / UTF-16 / UTF-32."""


def detect_encoding(data: bytes) -> tuple[str, int]:
    """(codec name, length of the BOM to skip) for the bytes of a text file."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, len(bom)
    head = data[:4096]
    if len(head) >= 4 and head.count(0) >= len(head) // 4:
        # BOM-less UTF-16: every other byte of ASCII text is zero; the zero's side gives the byte order.
        even_zeros = head[0::2].count(0)
        odd_zeros = head[1::2].count(0)
        return ("utf-16-be" if even_zeros > odd_zeros else "utf-16-le"), 0
    return "utf-8", 0


def read_text(path: str | Path) -> str:
    """The text of ``path``, decoded as its BOM (or zero-byte pattern) says, else strict UTF-8.

    Raises :class:`TextEncodingError` naming the file, the byte offset and the fix when it is not valid
    in that encoding (e.g. Latin-1); warns when the text holds U+FFFD replacement characters.
    """
    path = Path(path)
    data = path.read_bytes()
    encoding, skip = detect_encoding(data)
    try:
        text = data[skip:].decode(encoding)
    except UnicodeDecodeError as err:
        raise TextEncodingError(
            f"{path} is not valid {encoding.upper()} (byte {err.start + skip}: {data[err.start + skip : err.start + skip + 1]!r}); "
            f"convert it, e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`, and use that"
        ) from None
    bad = text.count("\ufffd")
    if bad:
        log.warning(
            "%s holds %d U+FFFD replacement characters (a lossy conversion before it was written); "
            "the affected words will not match",
            path,
            bad,
        )
    return text


def read_lines(path: str | Path) -> list[str]:
    """``read_text(path)`` split into lines (any line ending)."""
    return read_text(path).splitlines()
