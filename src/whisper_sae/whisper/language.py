"""Spoken-language detection as Whisper does it: the language tokens' probabilities at the first decoder step.

After ``<|startoftranscript|>`` a multilingual Whisper predicts a language token (``<|en|>``, ``<|de|>``, …);
the softmax over those tokens alone is its language identification. ``language_probabilities`` runs the
encoder on each clip's padded 30-s window, or takes given encoder outputs (e.g. edited ones, to see what a
feature does to the detection), and runs one decoder step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

_LANGUAGE_TOKEN = re.compile(r"^<\|([a-z]{2,3}(?:_[a-z]+)?|haw|yue)\|>$")


@dataclass
class LanguageProbabilities:
    """Per clip, the probability of every language Whisper knows (rows sum to 1)."""

    codes: list[str]
    """Language codes, in the order of ``probs``' columns (Whisper's token order)."""
    probs: np.ndarray
    """[n_clips, n_languages] probabilities."""

    def top(self) -> list[str]:
        """The detected language of each clip."""
        return [self.codes[i] for i in self.probs.argmax(1)]

    def of(self, code: str) -> np.ndarray:
        """[n_clips] probability of ``code``; an unknown code is an error listing some known ones."""
        if code not in self.codes:
            raise ValueError(f"language {code!r} is not one of Whisper's ({', '.join(self.codes[:10])}, …)")
        return self.probs[:, self.codes.index(code)]


def language_tokens(lw) -> dict[str, int]:
    """Language code -> token id of a multilingual Whisper (``<|en|>`` … up to ``<|translate|>``)."""
    if not lw.is_multilingual:
        raise ValueError(f"{lw.name} is an English-only model; language detection needs a multilingual one (base)")
    sot = lw.prompt_ids[0]
    out: dict[str, int] = {}
    for token_id in range(sot + 1, lw.config.vocab_size):
        name = lw.tokenizer.convert_ids_to_tokens(token_id)
        match = _LANGUAGE_TOKEN.match(name or "")
        if match is None:
            break  # <|translate|> ends the run of language tokens
        out[match.group(1)] = token_id
    if not out:
        raise ValueError(f"{lw.name}'s tokenizer has no language tokens after <|startoftranscript|>")
    return out


@torch.inference_mode()
def language_probabilities_from_encoder(lw, encoder_hidden: torch.Tensor) -> LanguageProbabilities:
    """Language probabilities from encoder outputs [B, 1500, d] (one decoder step on ``<|startoftranscript|>``)."""
    tokens = language_tokens(lw)
    encoder_hidden = encoder_hidden.to(lw.device, lw.model.dtype)
    inputs = torch.full((encoder_hidden.shape[0], 1), lw.prompt_ids[0], device=lw.device)
    hidden = lw.model.model.decoder(input_ids=inputs, encoder_hidden_states=encoder_hidden).last_hidden_state
    logits = lw.model.proj_out(hidden[:, -1]).float()
    ids = torch.tensor(list(tokens.values()), device=logits.device)
    probs = torch.softmax(logits[:, ids], dim=-1).cpu().numpy()
    return LanguageProbabilities(list(tokens), probs)


@torch.inference_mode()
def language_probabilities(lw, audios: list[np.ndarray], *, batch_size: int = 8) -> LanguageProbabilities:
    """Whisper's language probabilities for clips of at most 30 s (16 kHz mono), each on its padded window.

    Runs under any ``whisper.patch`` active on ``lw.model`` (so an SAE edit at an encoder or decoder hook
    shows in the result)."""
    if not audios:
        raise ValueError("no clips given to detect the language of")
    parts = []
    for start in range(0, len(audios), batch_size):
        features = lw.log_mel(list(audios[start : start + batch_size]))
        hidden = lw.model.model.encoder(features.to(lw.model.dtype)).last_hidden_state
        parts.append(language_probabilities_from_encoder(lw, hidden))
    return LanguageProbabilities(parts[0].codes, np.concatenate([p.probs for p in parts]))


def detect_language(lw, audios: list[np.ndarray], *, batch_size: int = 8) -> list[str]:
    """The most probable language code of each clip (Whisper's own language identification)."""
    return language_probabilities(lw, audios, batch_size=batch_size).top()
