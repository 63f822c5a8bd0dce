"""Planning Whisper's 30-s windows over utterances, and mapping each window's frames back to them.

Whisper always encodes 30 s (3000 mel frames, 1500 encoder frames of 20 ms). Two modes:

- ``padded`` (the default): one utterance per window, zero-padded as Whisper pads a short clip.
  An utterance longer than 30 s is cut into consecutive 30-s pieces, one window each, the way
  Whisper walks through long-form audio.
- ``packed``: consecutive pieces of several utterances share a window, back to back on the
  20-ms frame grid, the way Whisper hears continuous speech. Fewer windows, but each frame's
  activation now depends on its neighbours and its position in the window: not the same
  computation as ``padded``. Measured (benchmarks/extract.py, tiny.en, test-clean): ``encoder.out``
  in packed windows has mean cosine about 0.7 to the padded value; an utterance that opens its
  window keeps about 0.99, one placed later drops to 0.4-0.65. Use it knowingly.

Only the frames of real audio are mapped back; the padding's frames are computed and dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from whisper_sae.audio.constants import FRAMES_PER_WINDOW, SAMPLE_RATE, SAMPLES_PER_FRAME, WINDOW_SAMPLES
from whisper_sae.audio.windows import window_spans

# The figures come from ``audio.constants``; these names are kept for the tests and callers that use them.
FRAME_SAMPLES = SAMPLES_PER_FRAME  # one encoder frame: 2 mel hops of 10 ms
WINDOW_FRAMES = FRAMES_PER_WINDOW
__all__ = [
    "FRAME_SAMPLES",
    "MODES",
    "SAMPLE_RATE",
    "Segment",
    "WINDOW_FRAMES",
    "WINDOW_SAMPLES",
    "Window",
    "frames_of_samples",
    "pieces",
    "plan_windows",
]
MODES = ("padded", "packed")


def frames_of_samples(n_samples: int) -> int:
    """Encoder frames that hold real audio for a clip of ``n_samples`` (a partial last frame counts)."""
    return -(-n_samples // SAMPLES_PER_FRAME)


@dataclass(frozen=True)
class Segment:
    """A piece of one utterance placed in a window."""

    utt: int  # position of the utterance in the list that was planned
    src_start: int  # first sample of the piece within the utterance
    n_samples: int
    dst_start: int  # first sample of the piece within the window (on the frame grid)
    n_frames: int  # encoder frames of real audio in the piece

    @property
    def first_frame(self) -> int:
        """The piece's first encoder frame within the window."""
        return self.dst_start // SAMPLES_PER_FRAME

    @property
    def pos_offset(self) -> int:
        """Frame position, within the utterance, of the piece's first frame."""
        return self.src_start // SAMPLES_PER_FRAME


@dataclass
class Window:
    """One 30-s encoder input made of one or more segments."""

    segments: list[Segment] = field(default_factory=list)

    @property
    def used_samples(self) -> int:
        return max((s.dst_start + s.n_samples for s in self.segments), default=0)

    def audio(self, audios: list[np.ndarray]) -> np.ndarray:
        """The window's samples (up to the end of its last segment; the feature extractor pads the rest)."""
        if len(self.segments) == 1 and self.segments[0].dst_start == 0:
            s = self.segments[0]
            return audios[s.utt][s.src_start : s.src_start + s.n_samples]
        out = np.zeros(self.used_samples, dtype=np.float32)
        for s in self.segments:
            out[s.dst_start : s.dst_start + s.n_samples] = audios[s.utt][s.src_start : s.src_start + s.n_samples]
        return out


def pieces(n_samples: int) -> list[tuple[int, int]]:
    """Consecutive (start, length) pieces of at most 30 s covering an utterance of ``n_samples``
    (``audio.windows.window_spans``: the one place windows are cut)."""
    return window_spans(n_samples)


def plan_windows(
    lengths: list[int], mode: str = "padded", frames_for: Callable[[int], int] = frames_of_samples
) -> list[Window]:
    """Windows covering utterances of the given sample counts, in order; see the module docstring.

    ``frames_for(n_samples)`` says how many encoder frames hold a piece's real audio.
    """
    if mode not in MODES:
        raise ValueError(f"window mode {mode!r} is not known; use one of {', '.join(MODES)}")
    windows: list[Window] = []
    cursor = WINDOW_SAMPLES  # forces a new window for the first piece
    for utt, n in enumerate(lengths):
        if n <= 0:
            raise ValueError(f"utterance {utt} has {n} samples; every planned utterance needs audio")
        for start, length in pieces(n):
            if mode == "padded" or cursor + length > WINDOW_SAMPLES:
                windows.append(Window())
                cursor = 0
            # never more frames than the piece's span on the grid, so no frame holds two utterances
            n_frames = min(frames_for(length), frames_of_samples(length))
            seg = Segment(utt=utt, src_start=start, n_samples=length, dst_start=cursor, n_frames=n_frames)
            windows[-1].segments.append(seg)
            cursor += frames_of_samples(length) * SAMPLES_PER_FRAME  # the next piece starts on the grid
    return windows
