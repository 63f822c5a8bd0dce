"""Interventions: transcribe with one SAE feature removed or set, everything else unchanged.

At the SAE's hook, x' = x + decode(codes') - decode(codes): the SAE's error term (x - x_hat) is kept,
so only the chosen feature's contribution changes, and only on the chosen frames.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from whisper_sae.audio.constants import FRAME_SECONDS, SAMPLE_RATE, WINDOW_SECONDS
from whisper_sae.whisper import HookPoint, frames_for_duration, patch

from .checks import check_sae_model

MODES = ("ablate", "clamp")


class Intervention(NamedTuple):
    """One clip's transcripts without and with the intervention."""

    before: str
    """Whisper's transcript, untouched."""
    after: str
    """The transcript with the feature ablated or clamped."""


def parse_frames(spec: str | None) -> tuple[float, float] | None:
    """``"t0:t1"`` in seconds (either side may be empty) to (t0, t1); None stays None. An empty or
    reversed range (``3:1``, ``1:1``) is an error: it would edit nothing and look like "no effect"."""
    if spec is None or spec == "":
        return None
    try:
        lo, hi = spec.split(":")
        frames = (float(lo) if lo else 0.0, float(hi) if hi else float("inf"))
    except ValueError:
        raise ValueError(f"frames {spec!r} must be 't0:t1' in seconds, e.g. '0.5:1.2' or '1.0:'") from None
    return check_frames(frames, spec)


def check_frames(frames: tuple[float, float], spec=None) -> tuple[float, float]:
    """``frames`` when it is a non-empty range of non-negative seconds, else a ValueError naming it."""
    lo, hi = float(frames[0]), float(frames[1])
    shown = spec if spec is not None else f"{frames[0]}:{frames[1]}"
    if math.isnan(lo) or math.isnan(hi) or lo < 0:
        raise ValueError(f"frames {shown!r} must be seconds from 0 up, e.g. '0.5:1.2'")
    if hi <= lo:
        example = f"{hi:g}:{lo:g}" if hi < lo else f"{lo:g}:{lo + 0.5:g}"
        raise ValueError(f"frames {shown!r} is an empty range: t1 must be after t0 (seconds), e.g. '{example}'")
    return lo, hi


def _features(sae, feature, *, allow_empty: bool = False) -> list[int]:
    features = [int(feature)] if isinstance(feature, (int, np.integer)) else [int(f) for f in feature]
    bad = [f for f in features if not 0 <= f < sae.cfg.d_sae]
    if bad or not (features or allow_empty):
        raise ValueError(f"feature {bad or features} is out of range; this SAE has features 0..{sae.cfg.d_sae - 1}")
    return features


def _values(mode: str, value, n: int) -> torch.Tensor:
    """The new activation of each of ``n`` edited features: 0 (ablate), or ``value`` (one number for all,
    or one per feature)."""
    if mode == "ablate":
        return torch.zeros(n)
    if value is None:
        raise ValueError("mode 'clamp' needs a value to set the feature to (e.g. value=10.0)")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return torch.full((n,), float(value))
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"clamp got {len(values)} values for {n} features; give one value, or one per feature")
    return torch.tensor(values)


def edit_fn(
    sae,
    feature: int | list[int],
    mode: str,
    value: float | list[float] | None,
    frame_mask: torch.Tensor | None,
    *,
    allow_empty: bool = False,
):
    """The [B, T, d] -> [B, T, d] function that swaps the contribution of one feature (or several,
    given as a list) at masked positions (every position when ``frame_mask`` is None).

    ``value`` (clamp) is one activation for every feature or a list with one per feature. With
    ``allow_empty`` an empty feature list is accepted: nothing is edited, and the result is the SAE
    spliced with its error term, x + decode(codes) - decode(codes), the baseline of a steering run.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not known; valid modes are {', '.join(MODES)}")
    features = _features(sae, feature, allow_empty=allow_empty)
    values = _values(mode, value, len(features))

    @torch.no_grad()
    def fn(acts: torch.Tensor) -> torch.Tensor:
        x = acts.float()
        codes = sae.encode(x)
        edited = codes.clone()
        new = values.to(device=x.device, dtype=codes.dtype)
        if frame_mask is None:
            edited[..., features] = new
            return (x + sae.decode(edited) - sae.decode(codes)).to(acts.dtype)
        mask = frame_mask[:, : x.shape[1]].to(x.device)
        edited[..., features] = torch.where(mask[..., None], new, codes[..., features])
        # Frames outside the mask are returned as they came, bit for bit (no float round trip).
        out = torch.where(mask[..., None], x + sae.decode(edited) - sae.decode(codes), x)
        return out.to(acts.dtype)

    return fn


def _frame_mask(lengths: list[int], frames: tuple[float, float] | None, n_positions: int) -> torch.Tensor:
    """[B, n_positions] True on real-audio frames inside ``frames`` (seconds; all real frames if None)."""
    mask = torch.zeros(len(lengths), n_positions, dtype=torch.bool)
    centres = (torch.arange(n_positions) + 0.5) * FRAME_SECONDS
    for b, n in enumerate(lengths):
        inside = torch.arange(n_positions) < n
        if frames is not None:
            inside &= (centres >= frames[0]) & (centres < frames[1])
        mask[b] = inside
    return mask


def intervene(
    sae,
    lw,
    audios: list[np.ndarray],
    feature: int | list[int],
    mode: str = "ablate",
    value: float | list[float] | None = None,
    frames: tuple[float, float] | str | None = None,
    *,
    hook: str | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    padding: bool = False,
) -> list[Intervention]:
    """Transcribe each clip (<= 30 s) before and after ablating or clamping ``feature`` (an id, or a
    list of ids edited together, e.g. every feature labelled /s/; ``value`` may then hold one activation
    per feature).

    ``frames`` (encoder hooks only) limits the edit to frames whose centre lies in [t0, t1) seconds;
    by default every frame of real audio is edited, and padding frames of the 30-s window only with
    ``padding``. A range that is empty or lies after the end of every clip is an error (it would edit
    nothing). For decoder hooks the edit applies at every generated position.
    """
    _check(sae, lw, audios, feature, mode, value, frames, hook, padding)
    before = lw.transcribe(list(audios), batch_size=batch_size, max_new_tokens=max_new_tokens)
    after = transcribe_edited(
        sae,
        lw,
        audios,
        feature,
        mode,
        value,
        frames,
        hook=hook,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        padding=padding,
    )
    return [Intervention(b, a) for b, a in zip(before, after)]


def _check(sae, lw, audios, feature, mode, value, frames, hook, padding, *, allow_empty=False) -> None:
    """Refuse a bad edit before any transcript is made."""
    hook = hook or sae.cfg.hook_name
    point = HookPoint.parse(hook, lw.config)
    check_sae_model(sae, None, lw, hook)
    frames = parse_frames(frames) if isinstance(frames, str) else (None if frames is None else check_frames(frames))
    if point.side == "decoder" and (frames is not None or padding):
        raise ValueError(
            "frames and padding select encoder frames; for a decoder hook leave frames=None, padding=False"
        )
    if padding and frames is not None:
        raise ValueError("padding edits every frame of the 30-s window; give frames or padding, not both")
    edit_fn(sae, feature, mode, value, None, allow_empty=allow_empty)
    if frames is not None:
        longest = min(max((len(a) / SAMPLE_RATE for a in audios), default=0.0), float(WINDOW_SECONDS))
        if not (_frame_mask([frames_for_duration(longest)], frames, lw.config.max_source_positions).any()):
            raise ValueError(
                f"frames {frames[0]:g}:{frames[1]:g} s lie outside every clip (the longest is {longest:.2f} s); "
                f"choose a range inside the audio, e.g. 0:{longest:.2f}"
            )


def edit_for_batch(
    sae,
    lw,
    durations: list[float],
    feature: int | list[int],
    mode: str = "ablate",
    value: float | list[float] | None = None,
    frames: tuple[float, float] | None = None,
    *,
    hook: str | None = None,
    padding: bool = False,
    allow_empty: bool = False,
):
    """The edit function for one batch of clips of ``durations`` seconds, to give to ``patch`` around
    the forward passes of exactly that batch: real-audio frames (inside ``frames``) of encoder hooks,
    every position with ``padding`` or for decoder hooks."""
    point = HookPoint.parse(hook or sae.cfg.hook_name, lw.config)
    mask = None
    if point.side == "encoder" and not padding:
        lengths = [frames_for_duration(min(d, float(WINDOW_SECONDS))) for d in durations]
        mask = _frame_mask(lengths, frames, lw.config.max_source_positions)
    return edit_fn(sae, feature, mode, value, mask, allow_empty=allow_empty)


def transcribe_edited(
    sae,
    lw,
    audios: list[np.ndarray],
    feature: int | list[int],
    mode: str = "ablate",
    value: float | list[float] | None = None,
    frames: tuple[float, float] | str | None = None,
    *,
    hook: str | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    padding: bool = False,
    allow_empty: bool = False,
) -> list[str]:
    """The transcripts of ``intervene`` after the edit only (see there); with ``allow_empty`` and no
    feature, Whisper with the SAE spliced in with its error term."""
    _check(sae, lw, audios, feature, mode, value, frames, hook, padding, allow_empty=allow_empty)
    frames = parse_frames(frames) if isinstance(frames, str) else frames
    point = HookPoint.parse(hook or sae.cfg.hook_name, lw.config)
    after: list[str] = []
    for start in range(0, len(audios), batch_size):
        chunk = list(audios[start : start + batch_size])
        fn = edit_for_batch(
            sae,
            lw,
            [len(a) / SAMPLE_RATE for a in chunk],
            feature,
            mode,
            value,
            frames,
            hook=point.name,
            padding=padding,
            allow_empty=allow_empty,
        )
        with patch(lw.model, point, fn):
            after.extend(lw.transcribe(chunk, batch_size=len(chunk), max_new_tokens=max_new_tokens))
    return after
