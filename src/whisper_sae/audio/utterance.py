"""The unit every corpus yields: one utterance of 16 kHz mono float audio and what is known about it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from whisper_sae.audio.constants import SAMPLE_RATE


class AudioError(ValueError):
    """Audio that cannot be used as it is; the message names the file or utterance."""


@dataclass
class Utterance:
    """One utterance.

    ``audio`` is float32, mono, at ``sample_rate`` (always 16 kHz once it leaves a corpus reader).
    ``alignment`` (when known) is ``{"words": [{"word", "start", "end"}], "phones": [{"phone",
    "start", "end"}]}`` with times in seconds from the start of ``audio``.
    ``attributes`` holds speaker/recording attributes (gender, accent, voice, rate, pitch, ...).
    """

    id: str
    audio: np.ndarray  # [n_samples] float32
    sample_rate: int = SAMPLE_RATE
    text: str | None = None
    alignment: dict | None = None
    speaker: str | None = None
    path: str | None = None
    attributes: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate
