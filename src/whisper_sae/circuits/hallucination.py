"""How often Whisper writes words for audio without speech.

A clip counts as a hallucination when Whisper's greedy transcript (as ``LoadedWhisper.transcribe``
makes it: no timestamps, the first token may not be the end token) still holds a letter or digit after
Whisper's English normaliser: "...", "♪" or "(music)" is not a hallucination, "Thank you." is. Plain greedy decoding has no
no-speech gate; openai-whisper's ``transcribe`` skips a window when the probability of its no-speech
token is above 0.6 *and* the transcript's mean log-probability is below -1. The probability of that
token (read at the start-of-transcript position, as openai-whisper does) is reported per clip and per
kind, so the effect of such a gate can be read off, but the rate itself is the ungated one.

Clips longer than one 30-s window are cut into windows, transcribed one by one and joined; the
no-speech probability is the first window's. Rates are per value of an attribute (``kind`` for the
corpus of ``audio.nonspeech``) and overall.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from whisper_sae.artifacts import open_corpus, open_model
from whisper_sae.audio.constants import SAMPLE_RATE
from whisper_sae.audio.windows import split_windows
from whisper_sae.evaluate.metrics import normalize_text
from whisper_sae.whisper.hooks import _core, run_decoder_teacher_forced

DEFAULT_MAX_NEW_TOKENS = 96  # whether a transcript is empty shows in its first tokens; a loop need not run to 445


@dataclass
class HallucinationResult:
    """``groups[value]`` and ``overall``: clips, hallucinated, rate, mean no-speech probability;
    ``clips``: one row per clip (id, group, duration, transcript, hallucinated, no_speech_prob)."""

    meta: dict
    groups: dict[str, dict]
    overall: dict
    clips: list[dict] = field(repr=False)
    skipped: list[dict] = field(default_factory=list)

    def to_dict(self, *, with_clips: bool = True) -> dict:
        data = asdict(self)
        if not with_clips:
            del data["clips"]
        return data

    def table(self) -> str:
        attribute = self.meta["attribute"]
        lines = [
            f"| {attribute} | clips | hallucinated | rate | mean P(no speech) | example |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for name, g in [*sorted(self.groups.items()), ("overall", self.overall)]:
            example = next(
                (
                    c["transcript"]
                    for c in self.clips
                    if c["hallucinated"] and (name == "overall" or c["group"] == name)
                ),
                "",
            )
            example = (example[:60] + "…") if len(example) > 60 else example
            prob = "n/a" if g["no_speech_prob"] is None else f"{g['no_speech_prob']:.2f}"
            lines.append(
                f"| {name} | {g['clips']} | {g['hallucinated']} | {g['rate']:.0%} | {prob} | "
                f"{example.replace('|', '/')} |"
            )
        return "\n".join(lines)


def holds_words(transcript: str) -> bool:
    """Whether a transcript says anything: a letter or digit left after Whisper's English normaliser
    (which drops "♪", "(music)" and "[BLANK_AUDIO]" but turns "..." into ".")."""
    return any(ch.isalnum() for ch in normalize_text(transcript))


def _no_speech_token(lw) -> int | None:
    for name in ("<|nospeech|>", "<|nocaptions|>"):
        token = lw.tokenizer.convert_tokens_to_ids(name)
        if token is not None and lw.tokenizer.convert_ids_to_tokens(token) == name:
            return token
    return None


def _steering(steering, sae, lw, device):
    """A ``Steerer`` for ``steering`` (a spec or its file), or None."""
    if steering is None:
        return None
    from whisper_sae.circuits.steering import Steerer, SteeringSpec

    spec = steering if isinstance(steering, SteeringSpec) else SteeringSpec.load(steering)
    return Steerer(spec, lw, sae=sae, device=device)


def _summary(rows: list[dict]) -> dict:
    probs = [r["no_speech_prob"] for r in rows if r["no_speech_prob"] is not None]
    hallucinated = sum(r["hallucinated"] for r in rows)
    return {
        "clips": len(rows),
        "hallucinated": hallucinated,
        "rate": hallucinated / len(rows) if rows else math.nan,
        "no_speech_prob": float(np.mean(probs)) if probs else None,
    }


def hallucination_rate(
    model,
    corpus,
    *,
    attribute: str = "kind",
    batch_size: int = 8,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_utterances: int | None = None,
    device=None,
    progress: bool = False,
    steering=None,
    sae=None,
    encoder_cache: dict | None = None,
) -> HallucinationResult:
    """The share of clips of ``corpus`` (a spec or utterances; meant for audio without speech) that
    ``model`` transcribes with at least one word, per value of ``attribute`` and overall.

    ``steering`` (a ``SteeringSpec`` or the path of its JSON file) edits SAE features in every window,
    through the same splice as ``whisper-sae intervene``; ``sae`` (a folder, shipped name or
    ``SparseAutoencoder``) defaults to the SAE the spec names. ``encoder_cache``, a dict kept between
    calls on the same corpus, model and ``batch_size``, holds the clean encoder outputs so that a sweep of
    specs at ``encoder.out`` runs the encoder once: the spec's edit function is then applied to the
    cached output (the value ``patch`` would give the decoder) instead of through a hook."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    utterances, spec = open_corpus(corpus, max_utterances)
    lw = open_model(model, device=device)
    clips, windows = [], []  # windows: (clip index, audio)
    for utt in utterances:
        if len(utt.audio) == 0:
            continue
        clips.append(
            {
                "id": utt.id,
                "group": str((utt.attributes or {}).get(attribute, "(none)")),
                "duration": round(utt.duration, 3),
            }
        )
        windows += [(len(clips) - 1, chunk) for _, chunk in split_windows(np.asarray(utt.audio, dtype=np.float32))]
    skipped = [{"id": s.get("id"), "reason": s.get("reason")} for s in getattr(utterances, "skipped", [])]
    if not clips:
        raise ValueError(
            f"corpus {spec} holds no readable audio clip; make one with `whisper-sae corpus nonspeech --out DIR`"
        )
    steer = _steering(steering, sae, lw, device)
    if encoder_cache is not None and steer is not None and not steer.at_encoder_out:
        raise ValueError(f"encoder_cache holds encoder outputs; a spec at {steer.hook} cannot be applied to them")
    prompt, no_speech = list(lw.prompt_ids), _no_speech_token(lw)
    budget = min(max_new_tokens, lw.config.max_target_positions - len(prompt))
    texts: list[list[str]] = [[] for _ in clips]
    first_prob: dict[int, float] = {}
    for start in tqdm(range(0, len(windows), batch_size), desc="hallucination", unit="batch", disable=not progress):
        batch = windows[start : start + batch_size]
        durations = [len(audio) / SAMPLE_RATE for _, audio in batch]
        context = steer.patch(durations) if steer is not None and encoder_cache is None else contextlib.nullcontext()
        with context:
            if encoder_cache is not None and start in encoder_cache:
                hidden = encoder_cache[start]
            else:
                features = lw.log_mel([audio for _, audio in batch])
                with torch.no_grad():
                    hidden = _core(lw).encoder(features.to(lw.model.dtype)).last_hidden_state
                if encoder_cache is not None:
                    encoder_cache[start] = hidden
            if encoder_cache is not None and steer is not None:
                hidden = steer.edit(durations)(hidden)  # what patch at encoder.out would return
            for (clip, _), seq in zip(batch, lw.greedy_from_encoder(hidden, prompt, budget)):
                texts[clip].append(lw.tokenizer.decode(seq, skip_special_tokens=True).strip())
            if no_speech is not None:
                logits = run_decoder_teacher_forced(lw, hidden, [prompt] * len(batch), [], return_logits=True)["logits"]
                probs = logits[:, 0].float().softmax(-1)[:, no_speech]  # at <|startoftranscript|>, as openai-whisper
                for (clip, _), p in zip(batch, probs.tolist()):
                    first_prob.setdefault(clip, p)
    for i, row in enumerate(clips):
        row["transcript"] = " ".join(t for t in texts[i] if t)
        row["hallucinated"] = holds_words(row["transcript"])
        row["no_speech_prob"] = first_prob.get(i)
    groups = {}
    for name in dict.fromkeys(r["group"] for r in clips):
        groups[name] = _summary([r for r in clips if r["group"] == name])
    meta = {
        "model": lw.name,
        "spec": lw.spec,
        "corpus": spec,
        "attribute": attribute,
        "max_new_tokens": budget,
        "seconds": round(sum(r["duration"] for r in clips), 2),
        "device": str(lw.device),
        "no_speech_token": no_speech,
        "steering": None if steer is None else steer.spec.to_dict(),
    }
    return HallucinationResult(meta=meta, groups=groups, overall=_summary(clips), clips=clips, skipped=skipped)
