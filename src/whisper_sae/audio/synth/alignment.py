"""Word and phone alignments from eSpeak's own events, and the transcript normalisation they share."""

from __future__ import annotations

import re

from whisper_sae.audio.synth.espeak import Event

PAUSE = "_"
_NOT_WORD = re.compile(r"[^\w']+")


def normalise_transcript(text: str) -> str:
    """LibriSpeech-style transcript: upper case, words and inner apostrophes only, single spaces."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    words = []
    for raw in _NOT_WORD.sub(" ", text).split():
        word = raw.strip("'_").replace("_", "")
        if word:
            words.append(word.upper())
    return " ".join(words)


def _tokens(text: str) -> list[tuple[int, int, list[str]]]:
    """Whitespace tokens of the spoken text as (start, end) character spans with their normalised words."""
    out = []
    for m in re.finditer(r"\S+", text):
        words = normalise_transcript(m.group()).split()
        if words:
            out.append((m.start(), m.end(), words))
    return out


def phone_name(event: Event) -> str:
    """IPA name; "_" for any pause; eSpeak's ASCII name for the few sounds without an IPA symbol."""
    if event.mnemonic.startswith("_") or not (event.name or event.mnemonic):
        return PAUSE
    return event.name or event.mnemonic


def _phone_marks(events: list[Event]) -> list[tuple[float, str, int]]:
    # "(en)"-style names mark a switch of language inside the text, not a sound.
    return [
        (e.time, phone_name(e), e.text_position) for e in events if e.kind == "phoneme" and not e.name.startswith("(")
    ]


def phones_from_events(events: list[Event], duration: float) -> list[dict]:
    """Phones tiling [0, duration]: each runs to the next one's start; pauses (unnamed) become "_"."""
    phones = []
    for start, end, name, _ in _timed_phones(events, duration):
        if phones and name == PAUSE and phones[-1]["phone"] == PAUSE:
            phones[-1]["end"] = round(end, 3)  # consecutive pauses are one pause
            continue
        phones.append({"phone": name, "start": round(start, 3), "end": round(end, 3)})
    return phones


def _timed_phones(events: list[Event], duration: float) -> list[tuple[float, float, str, int]]:
    marks = _phone_marks(events)
    if not marks or marks[0][0] > 0:
        marks.insert(0, (0.0, PAUSE, 0))
    timed = []
    for i, (start, name, position) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else duration
        start = min(start, duration)
        timed.append((start, min(max(end, start), duration), name, position))
    return timed


def words_from_events(text: str, events: list[Event], duration: float) -> list[dict]:
    """One entry per transcript word, timed by the phones eSpeak spoke for it.

    Phone events carry the text position of their word, so a word runs from its first sounding phone
    to its last (trailing pauses are not part of it, and words never overlap). eSpeak sometimes
    speaks two tokens as one word ("of the"); the tokens without phones of their own then share the
    span of the token before them, split evenly, as does a token holding several transcript words.
    """
    tokens = _tokens(text)
    spans: dict[int, list[float]] = {}
    for start, end, name, position in _timed_phones(events, duration):
        k = _token_at(tokens, position - 1)  # eSpeak counts characters from 1
        if k is not None and name != PAUSE:
            span = spans.setdefault(k, [start, end])
            span[1] = max(span[1], end)
    groups: list[tuple[list[float], list[str]]] = []
    for k, (_, _, token_words) in enumerate(tokens):
        if k in spans or not groups:
            groups.append((spans.get(k, [0.0, duration]), list(token_words)))
        else:
            groups[-1][1].extend(token_words)
    words = []
    for (start, end), group_words in groups:
        step = (end - start) / len(group_words)
        for j, word in enumerate(group_words):
            words.append({"word": word, "start": round(start + j * step, 3), "end": round(start + (j + 1) * step, 3)})
    return words


def _token_at(tokens: list[tuple[int, int, list[str]]], position: int) -> int | None:
    for k, (a, b, _) in enumerate(tokens):
        if a <= position < b:
            return k
    return None


def alignment_from_events(utt_id: str, text: str, events: list[Event], duration: float) -> dict:
    return {
        "id": utt_id,
        "words": words_from_events(text, events, duration),
        "phones": phones_from_events(events, duration),
    }
