"""Steering specs: a small JSON file naming SAE features and the activation each is set to.

A spec is applied through ``whisper_sae.analysis.interventions`` (the one splice of an edit into
Whisper: x' = x + decode(codes') - decode(codes), error term kept), by ``whisper-sae intervene
--steer-file``, by ``hallucination_rate(..., steering=)`` and by ``steered_wer``. The format::

    {
      "format": "whisper-sae-steering/1",
      "sae": "runs/sae-tiny",            # the SAE folder or shipped name the features belong to
      "hook": "encoder.out",             # the SAE's hook (checked against the SAE when applied)
      "model": "tiny.en",                # the Whisper the features were chosen on (informative)
      "edits": [{"feature": 12, "value": 0.0}, {"feature": 40, "value": -3.5}],
      "padding": false,                  # also edit the padding frames of the 30-s window
      "active_only": false,              # edit a feature only on frames where it fires (optional key)
      "gate": null,                      # edit only clips whose mean (over real frames) summed activation
                                         # of the edited features exceeds this (optional key)
      "note": "how it was chosen"
    }

A value of 0 ablates the feature; any other value clamps it there, on every edited frame (with
``active_only``: on the edited frames where the feature fires, so frames where it is silent keep 0).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from whisper_sae.analysis.interventions import Edit, check_edit, edit_for_batch, transcribe_edited
from whisper_sae.artifacts import open_corpus
from whisper_sae.audio.constants import SAMPLE_RATE
from whisper_sae.evaluate.metrics import corpus_wer, normalize_text

FORMAT = "whisper-sae-steering/1"


@dataclass
class SteeringSpec:
    """Features of one SAE and the activation each is set to (0 = ablate); see the module docstring."""

    edits: list[tuple[int, float]]
    sae: str | None = None
    hook: str | None = None
    model: str | None = None
    padding: bool = False
    active_only: bool = False
    gate: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        edits = []
        for i, edit in enumerate(self.edits):
            try:
                feature, value = edit
                feature, value = int(feature), float(value)
            except (TypeError, ValueError):
                raise ValueError(f"steering edit {i} ({edit!r}) must be a (feature id, value) pair") from None
            if feature < 0 or not math.isfinite(value):
                raise ValueError(f"steering edit {i}: feature {feature} must be >= 0 and value {value} finite")
            edits.append((feature, value))
        seen = [f for f, _ in edits]
        if len(set(seen)) != len(seen):
            raise ValueError(
                f"steering spec names a feature twice: {sorted(f for f in set(seen) if seen.count(f) > 1)}"
            )
        self.edits = edits

    @property
    def features(self) -> list[int]:
        return [f for f, _ in self.edits]

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.edits]

    def to_dict(self) -> dict:
        data = {
            "format": FORMAT,
            "sae": self.sae,
            "hook": self.hook,
            "model": self.model,
            "edits": [{"feature": f, "value": v} for f, v in self.edits],
            "padding": self.padding,
            "active_only": self.active_only,
            "gate": self.gate,
            "note": self.note,
        }
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "steering spec") -> SteeringSpec:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f'{source} is not a steering spec: it needs "format": "{FORMAT}"')
        edits = data.get("edits")
        if not isinstance(edits, list):
            raise ValueError(f'{source}: "edits" must be a list of {{"feature": id, "value": number}}')
        try:
            pairs = [(e["feature"], e["value"]) for e in edits]
        except (TypeError, KeyError):
            raise ValueError(
                f'{source}: every edit needs "feature" and "value", e.g. {{"feature": 3, "value": 0}}'
            ) from None
        known = {"format", "sae", "hook", "model", "edits", "padding", "active_only", "gate", "note"}
        gate = data.get("gate")
        if gate is not None and (isinstance(gate, bool) or not isinstance(gate, (int, float)) or gate < 0):
            raise ValueError(f'{source}: "gate" must be a non-negative number or null, got {gate!r}')
        return cls(
            edits=pairs,
            sae=data.get("sae"),
            hook=data.get("hook"),
            model=data.get("model"),
            padding=bool(data.get("padding", False)),
            active_only=bool(data.get("active_only", False)),
            gate=None if gate is None else float(gate),
            note=str(data.get("note", "")),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> SteeringSpec:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"steering file {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"steering file {path} is not JSON: {e}") from None
        return cls.from_dict(data, source=f"steering file {path}")

    def check(self, sae) -> None:
        """The spec fits ``sae``: same hook, feature ids in range."""
        if self.hook and sae.cfg.hook_name and self.hook != sae.cfg.hook_name:
            raise ValueError(f"the steering spec is for hook {self.hook!r} but the SAE reads {sae.cfg.hook_name!r}")
        bad = [f for f in self.features if f >= sae.cfg.d_sae]
        if bad:
            raise ValueError(f"steering spec features {bad} are out of range; the SAE has 0..{sae.cfg.d_sae - 1}")

    def edit_args(self) -> dict:
        """Keyword arguments of ``interventions.intervene`` / ``transcribe_edited`` for this edit."""
        return {
            "feature": self.features,
            "mode": "clamp",
            "value": self.values,
            "padding": self.padding,
            "active_only": self.active_only,
            "gate": self.gate,
        }


class Steerer:
    """A spec bound to its SAE and a Whisper: ``patch(durations)`` is the context that applies it to one
    batch of clips of those durations (seconds); ``edit(durations)`` is the edit function itself, which
    for an ``encoder.out`` spec can be applied to cached encoder outputs (the value the hook would give)."""

    def __init__(self, spec: SteeringSpec, lw, *, sae=None, device=None):
        from whisper_sae.analysis.checks import check_sae_model
        from whisper_sae.artifacts import open_sae

        if sae is None and spec.sae is None:
            raise ValueError("the steering spec names no SAE; pass sae= (the SAE whose features it edits)")
        self.sae, sae_dir = open_sae(sae if sae is not None else spec.sae, device)
        spec.check(self.sae)
        self.spec, self.lw = spec, lw
        self.hook = spec.hook or self.sae.cfg.hook_name
        check_sae_model(self.sae, sae_dir, lw, self.hook)

    @property
    def at_encoder_out(self) -> bool:
        return self.hook == "encoder.out"

    def edit(self, durations: list[float]):
        return edit_for_batch(self.sae, self.lw, durations, **self.spec.edit_args(), hook=self.hook, allow_empty=True)

    def patch(self, durations: list[float]):
        from whisper_sae.whisper import patch

        return patch(self.lw.model, self.hook, self.edit(durations))


def steered_transcripts(
    sae, lw, audios: list[np.ndarray], spec: SteeringSpec | None, *, batch_size: int = 8, max_new_tokens=None
) -> list[str]:
    """Transcripts of clips (<= 30 s) with ``spec`` applied; ``spec=None``: clean Whisper; a spec
    without edits: the SAE spliced in with its error term (the baseline a steering run is compared to)."""
    if spec is None:
        return lw.transcribe(list(audios), batch_size=batch_size, max_new_tokens=max_new_tokens)
    spec.check(sae)
    edit = check_edit(lw, Edit(sae, hook=spec.hook or sae.cfg.hook_name, **spec.edit_args()), audios, allow_empty=True)
    return transcribe_edited(lw, audios, [edit], batch_size=batch_size, max_new_tokens=max_new_tokens)


def _transcribe_cached(sae, lw, audios, spec, cache: dict, batch_size: int, max_new_tokens: int) -> list[str]:
    """``steered_transcripts`` of an ``encoder.out`` spec from clean encoder outputs kept in ``cache``
    (batch start -> [B, 1500, d]): the spec's edit function is applied to them, then greedy decoding."""
    from whisper_sae.whisper.hooks import _core

    steerer = Steerer(spec, lw, sae=sae) if spec is not None else None
    texts: list[str] = []
    for start in range(0, len(audios), batch_size):
        chunk = list(audios[start : start + batch_size])
        if start not in cache:
            with torch.no_grad():
                cache[start] = _core(lw).encoder(lw.log_mel(chunk).to(lw.model.dtype)).last_hidden_state
        hidden = cache[start]
        if steerer is not None:
            hidden = steerer.edit([len(a) / SAMPLE_RATE for a in chunk])(hidden)
        for seq in lw.greedy_from_encoder(hidden, list(lw.prompt_ids), max_new_tokens):
            texts.append(lw.tokenizer.decode(seq, skip_special_tokens=True).strip())
    return texts


def steered_wer(
    sae,
    lw,
    corpus,
    specs: dict[str, SteeringSpec | None],
    *,
    batch_size: int = 8,
    max_utterances=None,
    encoder_cache: dict | None = None,
) -> dict[str, dict]:
    """Word error rate on transcribed speech (clips of at most 30 s) for each named spec (None = clean
    Whisper): {name: {"wer", "words", "utterances", "changed", "transcripts"}}, where ``changed`` counts
    utterances whose transcript differs from the first spec's. Generation stops at twice the longest
    reference's tokens + 8. With ``encoder_cache`` (a dict; specs at ``encoder.out`` only) the encoder
    runs once for all specs and each edit is applied to its cached output."""
    utterances, spec_name = open_corpus(corpus, max_utterances)
    items = [u for u in utterances if (u.text or "").strip() and 0 < u.duration <= 30.0]
    if not items:
        raise ValueError(f"corpus {spec_name} holds no transcribed utterance of at most 30 s to measure WER on")
    refs = [u.text for u in items]
    budget = min(2 * max(len(lw.text_tokens(r)) for r in refs) + 8, 440)
    out: dict[str, dict] = {}
    first = None
    for name, spec in specs.items():
        hyps = steered_transcripts(
            sae, lw, [u.audio for u in items], spec, batch_size=batch_size, max_new_tokens=budget
        )
        first = hyps if first is None else first
        words = sum(len(normalize_text(r).split()) for r in refs)
        wer = corpus_wer(refs, hyps)
        out[name] = {
            "wer": wer,
            "words": words,
            "utterances": len(items),
            "changed": sum(a != b for a, b in zip(hyps, first)),
            "transcripts": hyps,
        }
    return out
