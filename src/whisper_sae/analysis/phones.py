"""One phone notation for people: ARPAbet, the notation of the LibriSpeech alignments, with eSpeak's IPA mapped to it.

Real-speech alignments (CMU dictionary + forced alignment) label phones in ARPAbet without stress digits
(``AA``, ``DH``, ``ER``...: 39 phones). The synthetic corpus labels them with the IPA names eSpeak NG gives
its phoneme events (``ð``, ``ˈaʊ``, ``ɔːɹ``...; ``_`` for a pause). :func:`to_arpabet` maps such a name
to ARPAbet so both read the same way in the dashboard; the analysis itself keeps eSpeak's own names.

How a name maps:

1. stress marks (``ˈ`` ``ˌ``) and combining diacritics (dental ``t̪``, syllabic ``n̩``) are dropped, and
   the length mark's ASCII stand-in ``:`` becomes ``ː``;
2. the whole name is looked up in :data:`IPA_TO_ARPABET`; failing that, it is split greedily into the
   longest names the table holds (``ɔːɹ`` = ``ɔː`` + ``ɹ`` = ``AO R``; ``aɪə`` = ``AY AH``), each part
   mapped, and the parts joined with a space;
3. a name with a symbol the table lacks (another language's sounds) has no ARPAbet form: None.

The table maps a symbol to the phone(s) the CMU dictionary writes for the words eSpeak's English voices
use it in. ARPAbet has one phone per English sound class, so accents collapse onto it: RP ``ɒ`` (lot)
and US ``ɑː`` are both ``AA``; the US flap ``ɾ`` is ``T`` (the CMU spelling of "water", "better"; it
writes ``D`` for "ladder"); a centring diphthong of a non-rhotic accent keeps the dictionary's ``R``
(RP ``iə`` in "near" is ``IH R``). eSpeak uses a few symbols for different vowels in different accents
(``ɔɪ`` is "price" in its Welsh voice, "choice" elsewhere); the table follows the commoner use.
eSpeak's ``;`` (a glide it inserts after ``i`` before a vowel, "the old") is ``Y``.
"""

from __future__ import annotations

import re
import unicodedata

ARPABET = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()
"""The 39 ARPAbet phones of the CMU dictionary (and of LibriSpeech forced alignments), without stress."""

SILENCE = "SIL"
"""ARPAbet-style name for a pause (eSpeak's ``_``)."""

IPA_TO_ARPABET: dict[str, str] = {
    # consonants
    "p": "P",
    "b": "B",
    "t": "T",
    "d": "D",
    "k": "K",
    "ɡ": "G",
    "g": "G",
    "ʔ": "T",  # glottal stop for /t/ ("bottle" in some accents)
    "ɾ": "T",  # US flap: CMU writes T ("water", "better"), or D ("ladder")
    "f": "F",
    "v": "V",
    "θ": "TH",
    "ð": "DH",
    "s": "S",
    "z": "Z",
    "ʃ": "SH",
    "ʒ": "ZH",
    "h": "HH",
    "x": "K",  # Scottish "loch": CMU has K
    "tʃ": "CH",
    "dʒ": "JH",
    "m": "M",
    "n": "N",
    "ŋ": "NG",
    "l": "L",
    "ɫ": "L",
    "ɹ": "R",
    "r": "R",  # Scottish trill/tap
    "w": "W",
    "ʍ": "W",  # Scottish "which": CMU has W
    "j": "Y",
    "ʲ": "Y",
    ";": "Y",  # eSpeak's glide after i before a vowel ("the old"); IPA mode leaves it unnamed
    # monophthongs
    "i": "IY",
    "iː": "IY",
    "ɪ": "IH",
    "ᵻ": "IH",  # reduced vowel of "roses", "wanted"
    "e": "EH",
    "eː": "EY",  # Scottish and northern English "face"
    "ɛ": "EH",
    "æ": "AE",
    "a": "AE",  # British "trap"
    "aː": "AA",
    "aa": "AA",  # Caribbean "bath"
    "ɑ": "AA",
    "ɑː": "AA",
    "ɒ": "AA",  # British "lot"
    "ɔ": "AO",
    "ɔː": "AO",
    "o": "OW",
    "oː": "OW",  # Scottish and northern English "goat"
    "ʊ": "UH",
    "u": "UW",
    "uː": "UW",
    "ʉ": "UW",
    "ʉː": "UW",  # Scottish "goose"
    "ʌ": "AH",
    "ə": "AH",
    "ɐ": "AH",
    "ɜ": "ER",
    "ɜː": "ER",
    "ɚ": "ER",
    "ɝ": "ER",
    # diphthongs
    "eɪ": "EY",
    "ei": "EY",
    "aɪ": "AY",
    "ɑɪ": "AY",
    "əɪ": "AY",  # Scottish "price"
    "ɔɪ": "OY",
    "oɪ": "OY",
    "aʊ": "AW",
    "æʊ": "AW",  # northern English and Welsh "mouth"
    "ʌʉ": "AW",  # Scottish "mouth"
    "oʊ": "OW",
    "əʊ": "OW",
    "ʌʊ": "OW",  # Welsh "goat"
    "əu": "UW",  # Welsh "goose"
    "ɛə": "AE",  # New York "bath" (tensed "trap")
    "eə": "EH R",  # non-rhotic "square" ("hair")
    "iə": "IH R",  # non-rhotic "near"
    "ɪə": "IH R",
    "ʊə": "UH R",  # non-rhotic "cure"
    "ɔə": "AO R",
    "oə": "AO R",
    "ɑə": "AA R",
}
"""eSpeak NG's IPA phone names (English voices) → ARPAbet (one phone, or several joined by a space)."""

_STRESS = str.maketrans({"ˈ": None, "ˌ": None, ":": "ː"})
_LONGEST = max(map(len, IPA_TO_ARPABET))


def _bare(name: str) -> str:
    """``name`` without stress marks and combining diacritics (``t̪`` → ``t``), ``:`` written ``ː``."""
    decomposed = unicodedata.normalize("NFD", name.translate(_STRESS))
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def is_arpabet(label: str) -> bool:
    """True for an ARPAbet phone, with or without a stress digit (``AH``, ``AH0``), or ``SIL``."""
    return label == SILENCE or re.sub(r"[012]$", "", label) in ARPABET


def to_arpabet(label: str) -> str | None:
    """The ARPAbet of a phone label: itself when it already is ARPAbet, ``SIL`` for eSpeak's pause ``_``,
    eSpeak's IPA mapped by :data:`IPA_TO_ARPABET` (see the module docstring), None when a symbol has no
    ARPAbet counterpart."""
    label = str(label)
    if is_arpabet(label):
        return label
    if label == "" or label.startswith("_"):  # eSpeak pauses: _ and _:
        return SILENCE
    bare = _bare(label)
    if bare in IPA_TO_ARPABET:
        return IPA_TO_ARPABET[bare]
    parts, i = [], 0
    while i < len(bare):
        for size in range(min(_LONGEST, len(bare) - i), 0, -1):
            piece = bare[i : i + size]
            if piece in IPA_TO_ARPABET:
                parts.append(IPA_TO_ARPABET[piece])
                i += size
                break
        else:
            return None
    return " ".join(parts) if parts else None


def display_phone(label) -> tuple[str, str | None]:
    """``(shown, ipa)`` for a phone label: its ARPAbet and, when that came from IPA, the IPA it was
    mapped from (for a tooltip); an unmappable label is shown as it is, with ipa None."""
    if label is None:
        return "", None
    label = str(label)
    arpabet = to_arpabet(label)
    if arpabet is None:
        return label, None
    return arpabet, (None if arpabet == label else label)
