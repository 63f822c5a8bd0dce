"""eSpeak NG driven through ctypes from the ``espeakng-loader`` wheel (library and data, no system package).

The library keeps global state (and its output depends slightly on what it synthesized before), so
one process holds one initialised engine and synthesizes sequentially; callers that want
reproducible audio give each speaker a fresh process (see ``synth.corpus``).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
OPTION_PHONEME_EVENTS = 0x1
OPTION_PHONEME_IPA = 0x2
PARAM_RATE, PARAM_PITCH = 1, 3
EVENT_WORD, EVENT_PHONEME = 1, 7


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class Event:
    """One eSpeak event: ``kind`` "word" (``text_position`` 1-based character index) or "phoneme"."""

    kind: str
    time: float  # seconds from the start of the synthesized text
    text_position: int
    name: str = ""  # phoneme name in IPA ("" for a pause and a few sounds IPA mode leaves unnamed)
    mnemonic: str = ""  # eSpeak's ASCII name ("_", "_:", "_!" are pauses; ";" and "@-" are sounds)


class Espeak:
    """One initialised eSpeak NG engine (the library allows one per process)."""

    def __init__(self):
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        self.lib.espeak_Info.restype = ctypes.c_char_p
        self.lib.espeak_ng_SetPhonemeEvents.argtypes = [ctypes.c_int, ctypes.c_int]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.sample_rate = self.lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            espeakng_loader.get_data_path().encode(),
            OPTION_PHONEME_EVENTS | OPTION_PHONEME_IPA,
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise (code {self.sample_rate}).")
        self._chunks: list[np.ndarray] = []
        self._events: list[Event] = []
        self._callback = _CALLBACK(self._on_audio)  # kept referenced: the library calls it later
        self.lib.espeak_SetSynthCallback(self._callback)

    @property
    def version(self) -> str:
        return self.lib.espeak_Info(None).decode()

    def voices(self) -> list[str]:
        """Names usable with ``synthesize(voice=...)`` (the language identifiers, e.g. en-gb-x-rp)."""
        listing = self.lib.espeak_ListVoices(None)
        names, i = set(), 0
        while listing[i]:
            voice = listing[i].contents
            names.add(voice.languages[1:].split(b"\0")[0].decode())  # first byte is a priority
            names.add(voice.identifier.decode().rsplit("/", 1)[-1].lower())  # "gmw/en" is voice "en"
            i += 1
        return sorted(names)

    def _on_audio(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != 0:
            e = events[i]
            if e.type == EVENT_WORD:
                self._events.append(Event("word", e.audio_position / 1000, e.text_position))
            elif e.type == EVENT_PHONEME:
                name = bytes(e.id.string).split(b"\0")[0].decode("utf-8", errors="replace")
                self._events.append(Event("phoneme", e.audio_position / 1000, e.text_position, name))
            i += 1
        return 0

    def synthesize(
        self, text: str, voice: str, *, rate: int = 175, pitch: int = 50, rand_seed: int = 0
    ) -> tuple[np.ndarray, list[Event]]:
        """Speak ``text``; return int16 samples at ``self.sample_rate`` and the word/phoneme events.

        IPA mode names pauses and a few real sounds alike with "", so the text is first run with
        ASCII names (audio discarded) and each phoneme event gets both names. ``rand_seed`` seeds
        the noise some variants add (breathiness of f2, f5…), which is otherwise seeded from the clock.
        """
        self.lib.espeak_ng_SetPhonemeEvents(1, 0)
        self.lib.espeak_ng_SetRandSeed(rand_seed)
        _, ascii_events = self._synthesize(text, voice, rate, pitch)
        self.lib.espeak_ng_SetPhonemeEvents(1, 1)
        self.lib.espeak_ng_SetRandSeed(rand_seed)
        audio, events = self._synthesize(text, voice, rate, pitch)
        phonemes = [e for e in events if e.kind == "phoneme"]
        mnemonics = [e.name for e in ascii_events if e.kind == "phoneme"]
        if len(mnemonics) == len(phonemes):  # same text and voice: the same phoneme sequence
            for event, mnemonic in zip(phonemes, mnemonics):
                event.mnemonic = mnemonic
        return audio, events

    def _synthesize(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, list[Event]]:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(
                f"eSpeak NG has no voice {voice!r}; voices are e.g. en-us, en-gb-x-rp, de, "
                f"with a variant as en-us+f3 (see Espeak().voices())."
            )
        self.lib.espeak_SetParameter(PARAM_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(data, len(data), 0, 0, 0, 0, None, None)
        if status != 0:
            raise RuntimeError(f"eSpeak NG failed on {text[:40]!r} with voice {voice!r} (status {status}).")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self._events


_ENGINE: Espeak | None = None


def engine() -> Espeak:
    """This process's engine, initialised on first use."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE
