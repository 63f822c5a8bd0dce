"""Synthetic speakers: an eSpeak voice (language/accent) + variant (gender, voice quality) + rate + pitch."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

# eSpeak NG 1.52 voice names (espeak_ListVoices), one per accent of English.
ENGLISH_ACCENTS = (
    "en-us",
    "en-us-nyc",
    "en",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
)
LANGUAGE_VOICES = {
    "en": ENGLISH_ACCENTS,
    "de": ("de",),
    "fr": ("fr", "fr-be", "fr-ch"),
    "es": ("es", "es-419"),
    "it": ("it",),
    "nl": ("nl",),
    "pt": ("pt", "pt-br"),
}
MALE_VARIANTS = tuple(f"m{i}" for i in range(1, 9))
FEMALE_VARIANTS = tuple(f"f{i}" for i in range(1, 6))
WHISPER_VARIANTS = {"male": "whisper", "female": "whisperf"}
RATE_RANGE = (140, 195)  # words per minute; eSpeak's default is 175
PITCH_RANGE = (30, 70)  # eSpeak's 0–100 scale; default 50


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker; ``id`` is the LibriSpeech-style numeric speaker id."""

    id: int
    language: str
    voice: str  # eSpeak voice name, which is also the accent
    variant: str
    gender: str  # "male" | "female"
    quality: str  # "modal" | "whisper"
    rate: int
    pitch: int

    @property
    def espeak_name(self) -> str:
        return f"{self.voice}+{self.variant}"

    @property
    def accent(self) -> str:
        return self.voice

    def row(self) -> dict:
        return {**asdict(self), "speaker": str(self.id), "accent": self.accent}


def check_languages(languages) -> tuple[str, ...]:
    languages = tuple(languages)
    unknown = [lang for lang in languages if lang not in LANGUAGE_VOICES]
    if unknown or not languages:
        raise ValueError(
            f"languages {list(unknown) or languages} are not available for synthesis; "
            f"choose from {sorted(LANGUAGE_VOICES)}."
        )
    return languages


def design_speakers(
    n: int, language: str, rng: random.Random, *, first_id: int = 1000, whispered: float = 0.0, accents=None
) -> list[Speaker]:
    """``n`` speakers alternating female/male, cycling through the language's accents; from ``2 L``
    speakers on (L accents) every accent is spoken by both genders.

    Accents and variants are drawn without replacement until exhausted, so a small design still
    spans as many accents and voices as it can; ``whispered`` is the fraction of whispering speakers;
    ``accents`` restricts the voices to some of the language's accents.
    """
    if n < 1:
        raise ValueError(f"n_speakers must be at least 1, not {n}.")
    own = LANGUAGE_VOICES[language]
    wrong = [a for a in accents or () if a not in own]
    if wrong:
        raise ValueError(f"accents {wrong} are not {language} voices; choose from {list(own)}.")
    accents = [a for a in own if a in accents] if accents else list(own)
    rng.shuffle(accents)
    pools = {"male": [], "female": []}
    n_whisper = round(whispered * n)
    first_gender = rng.choice(["female", "male"])
    speakers = []
    # Speaker i takes accent i mod L. With an even L, plain alternation would give each accent one
    # gender only (accent and gender confounded), so the alternation flips on every round of accents.
    flip_per_round = len(accents) % 2 == 0
    for i in range(n):
        parity = (i + (i // len(accents) if flip_per_round else 0)) % 2
        gender = first_gender if parity == 0 else ("male" if first_gender == "female" else "female")
        if not pools[gender]:
            pools[gender] = list(MALE_VARIANTS if gender == "male" else FEMALE_VARIANTS)
            rng.shuffle(pools[gender])
        variant = pools[gender].pop()
        quality = "whisper" if i >= n - n_whisper else "modal"
        if quality == "whisper":
            variant = WHISPER_VARIANTS[gender]
        speakers.append(
            Speaker(
                id=first_id + i,
                language=language,
                voice=accents[i % len(accents)],
                variant=variant,
                gender=gender,
                quality=quality,
                rate=rng.randint(*RATE_RANGE),
                pitch=rng.randint(*PITCH_RANGE),
            )
        )
    return speakers
