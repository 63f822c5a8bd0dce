"""The token sequence each window is teacher-forced with, for decoder hooks.

A window's sequence is the transcription prompt, the tokens of the text spoken in it, and the end
token. The text is the reference transcript when there is one (``decoder_text="reference"``), or
the model's own greedy transcription of the window otherwise. An utterance longer than 30 s has
several windows: its reference words are shared out by the word alignment when there is one
(a word goes to the window holding its midpoint); without an alignment each window gets the
model's own transcription, since there is no honest way to cut the reference text.
"""

from __future__ import annotations

import numpy as np

from whisper_sae.audio import Utterance
from whisper_sae.audio.constants import WINDOW_SAMPLES, WINDOW_SECONDS

from .windows import Window


def _prompt(lw, u: Utterance) -> list[int]:
    language = (u.attributes or {}).get("language")
    return lw.prompt_for(language) if getattr(lw, "is_multilingual", False) and language else list(lw.prompt_ids)


def as_whisper_writes(text: str) -> str:
    """Sentence case for an all-capitals transcript (LibriSpeech's convention), which Whisper never writes.

    Teacher-forcing "HE HOPED THERE" would make the decoder read token sequences it never produces;
    "He hoped there" is the same words in the form its activations are about. Mixed case is kept.
    """
    if not any(c.isalpha() for c in text) or any(c.islower() for c in text):
        return text
    words = text.strip().lower().split()
    words = ["I" if w == "i" else ("I" + w[1:] if w.startswith("i'") else w) for w in words]
    out = " ".join(words)
    return out[:1].upper() + out[1:]


def _tokens(lw, prompt: list[int], text: str) -> list[int]:
    body = lw.text_tokens(as_whisper_writes(text)) if text and text.strip() else []
    return [*prompt, *body, lw.eot_id]


def _aligned_text(u: Utterance, piece: int) -> str | None:
    words = (u.alignment or {}).get("words") or []
    if not words:
        return None
    lo, hi = piece * WINDOW_SECONDS, (piece + 1) * WINDOW_SECONDS
    return " ".join(w["word"] for w in words if lo <= (w["start"] + w["end"]) / 2 < hi)


def window_texts(utts: list[Utterance], windows: list[Window], decoder_text: str) -> tuple[list, list[str]]:
    """Per window the reference text, or None where the model must transcribe; per utterance the source."""
    n_pieces = [0] * len(utts)
    for w in windows:
        for seg in w.segments:
            n_pieces[seg.utt] += 1
    texts, source = [], []
    for i, u in enumerate(utts):
        if decoder_text == "model" or u.text is None:
            source.append("model")
        elif n_pieces[i] == 1:
            source.append("reference")
        else:
            source.append("alignment" if _aligned_text(u, 0) is not None else "model")
    for w in windows:
        seg = w.segments[0]
        u, kind = utts[seg.utt], source[seg.utt]
        if kind == "reference":
            texts.append(u.text)
        elif kind == "alignment":
            texts.append(_aligned_text(u, seg.src_start // WINDOW_SAMPLES))
        else:
            texts.append(None)
    return texts, source


def window_token_ids(
    lw, utts: list[Utterance], windows: list[Window], audios: list[np.ndarray], decoder_text: str, batch_size: int
) -> tuple[list[list[int]], list[str]]:
    """Teacher-forcing token ids for each window, and each utterance's text source."""
    if any(len(w.segments) != 1 for w in windows):
        raise ValueError("decoder hooks need one utterance per window (mode 'padded')")
    texts, source = window_texts(utts, windows, decoder_text)
    limit = lw.config.max_target_positions
    prompts = [_prompt(lw, utts[w.segments[0].utt]) for w in windows]
    ids: list[list[int] | None] = [None if t is None else _tokens(lw, p, t) for t, p in zip(texts, prompts)]
    for i, seq in enumerate(ids):
        if seq is not None and len(seq) > limit:  # a transcript Whisper could not have produced in one window
            ids[i] = None
            source[windows[i].segments[0].utt] = "model"
    todo = [i for i, seq in enumerate(ids) if seq is None]
    for language in sorted({(utts[windows[i].segments[0].utt].attributes or {}).get("language") or "en" for i in todo}):
        mine = [
            i for i in todo if ((utts[windows[i].segments[0].utt].attributes or {}).get("language") or "en") == language
        ]
        lang = language if getattr(lw, "is_multilingual", False) else None
        said = lw.transcribe([windows[i].audio(audios) for i in mine], batch_size=batch_size, language=lang)
        for i, text in zip(mine, said):
            ids[i] = _tokens(lw, prompts[i], text)[:limit]
    return ids, source
