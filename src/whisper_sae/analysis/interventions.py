"""Interventions: transcribe with one SAE feature removed, set or scaled, everything else unchanged.

At the SAE's hook, x' = x + decode(codes') - decode(codes): the SAE's error term (x - x_hat) is kept,
so only the chosen feature's contribution changes, and only on the chosen frames.

``intervene`` compares one edit's transcripts; ``Edit`` + ``edited`` apply a stack of edits (several
features, SAEs or hooks at once) and ``reference_ce`` scores a reference text under them. ``whisper-sae
intervene`` and the interactive app (``whisper_sae.serve``) both go through ``edited``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from whisper_sae.audio.constants import FRAME_SECONDS, SAMPLE_RATE, WINDOW_SECONDS
from whisper_sae.whisper import HookPoint, frames_for_duration, patch

from .checks import check_sae_model

MODES = ("ablate", "clamp", "scale")


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
    """Per edited feature: the new activation (``clamp``) or the factor (``scale``); zeros for ``ablate``.
    ``value`` is one number for every feature or a list with one per feature."""
    if mode == "ablate":
        return torch.zeros(n)
    if value is None:
        example = "value=10.0" if mode == "clamp" else "value=2.0"
        what = "set the feature to" if mode == "clamp" else "multiply the feature by"
        raise ValueError(f"mode {mode!r} needs a value to {what} (e.g. {example})")
    if isinstance(value, (int, float, np.integer, np.floating)):
        values = [float(value)] * n
    else:
        values = [float(v) for v in value]
        if len(values) != n:
            raise ValueError(f"{mode} got {len(values)} values for {n} features; give one value, or one per feature")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"value {bad[0]!r} must be a finite number")
    return torch.tensor(values)


def edit_fn(
    sae,
    feature: int | list[int],
    mode: str,
    value: float | list[float] | None,
    frame_mask: torch.Tensor | None,
    *,
    allow_empty: bool = False,
    active_only: bool = False,
    gate: float | None = None,
):
    """The [B, T, d] -> [B, T, d] function that swaps the contribution of one feature (or several,
    given as a list) at masked positions (every position when ``frame_mask`` is None): ``ablate`` sets
    it to 0, ``clamp`` to ``value``, ``scale`` multiplies it by ``value`` (one number, or one per feature).

    With ``active_only`` a feature is edited only at the positions where it fires (code > 0) and left at 0
    elsewhere: a clamp then replaces the feature's own activity instead of writing its direction into
    every frame.

    With ``gate`` a clip (batch item) is edited only when the mean over its masked positions of the edited
    features' summed activation exceeds ``gate``; other clips are returned as the SAE spliced with its
    error term, unedited. The features then decide where the edit applies (a detector and its remedy).

    With ``allow_empty`` an empty feature list is accepted: nothing is edited, and the result is the SAE
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
        v = values.to(device=x.device, dtype=codes.dtype)
        new = codes[..., features] * v if mode == "scale" else v.expand_as(codes[..., features])
        if active_only:
            new = torch.where(codes[..., features] > 0, new, codes[..., features])
        if gate is not None and features:
            where = (
                torch.ones(codes.shape[:2], dtype=torch.bool, device=x.device)
                if frame_mask is None
                else frame_mask[:, : x.shape[1]].to(x.device)
            )
            score = (codes[..., features].sum(-1) * where).sum(1) / where.sum(1).clamp(min=1)
            new = torch.where((score > gate)[:, None, None], new, codes[..., features])
        if frame_mask is None:
            edited[..., features] = new
            return (x + sae.decode(edited) - sae.decode(codes)).to(acts.dtype)
        mask = frame_mask[:, : x.shape[1]].to(x.device)
        edited[..., features] = torch.where(mask[..., None], new, codes[..., features])
        # Frames outside the mask are returned as they came, bit for bit (no float round trip).
        out = torch.where(mask[..., None], x + sae.decode(edited) - sae.decode(codes), x)
        return out.to(acts.dtype)

    return fn


def ablate_rows_fn(sae, edits: list[list[tuple[int, int | None]]], real: torch.Tensor | None = None):
    """The [B, T, d] -> [B, T, d] function that ablates, in batch row b, the (feature, frame) pairs of
    ``edits[b]`` (frame None: every position of the row where ``real`` [B, T] is True, or every position
    without ``real``), keeping the SAE's error term as ``edit_fn`` does: x' = x + decode(codes') - decode(codes).
    Rows with no edit come back unchanged. One batch then holds many ablations of the same clip."""
    for row in edits:
        _features(sae, [f for f, _ in row] or [0])

    @torch.no_grad()
    def fn(acts: torch.Tensor) -> torch.Tensor:
        if acts.shape[0] != len(edits):
            raise RuntimeError(
                f"the hook saw a batch of {acts.shape[0]} rows but {len(edits)} rows of edits were given"
            )
        x = acts.float()
        out = x.clone()
        for b, row in enumerate(edits):
            if not row:
                continue
            codes = sae.encode(x[b])
            edited = codes.clone()
            for feature, frame in row:
                if frame is None:
                    where = real[b, : x.shape[1]].to(x.device) if real is not None else slice(None)
                    edited[where, feature] = 0.0
                else:
                    edited[frame, feature] = 0.0
            out[b] = x[b] + sae.decode(edited) - sae.decode(codes)
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


class Edit(NamedTuple):
    """One edit of a stack: ``feature`` (an id or a list) of ``sae`` ablated, clamped to or scaled by
    ``value``, on encoder frames whose centre lies in ``frames`` (seconds; None: every real frame)."""

    sae: Any
    feature: int | list[int]
    mode: str = "ablate"
    value: float | list[float] | None = None
    frames: tuple[float, float] | None = None
    hook: str | None = None
    """The hook to edit; the SAE's own (``sae.cfg.hook_name``) when None."""
    padding: bool = False
    """Encoder hooks: edit every frame of the 30-s window, the padding after the audio too (not with frames)."""
    active_only: bool = False
    """Edit a feature only where it fires (code > 0); see ``edit_fn``."""
    gate: float | None = None
    """Edit only clips whose mean summed activation of the features exceeds this; see ``edit_fn``."""


def check_edit(lw, edit: Edit, audios: Sequence[np.ndarray], *, allow_empty: bool = False) -> Edit:
    """``edit`` with its hook filled in and its frames parsed, after checking everything a transcript
    would otherwise fail on late: the hook exists, the SAE fits the model, the feature ids, mode and
    value are valid, and the range lies inside the longest clip."""
    hook = edit.hook or edit.sae.cfg.hook_name
    point = HookPoint.parse(hook, lw.config)
    check_sae_model(edit.sae, None, lw, hook)
    frames = edit.frames
    frames = parse_frames(frames) if isinstance(frames, str) else (None if frames is None else check_frames(frames))
    if point.side == "decoder" and frames is not None:
        raise ValueError("frames selects encoder frames; for a decoder hook leave frames=None")
    if point.side == "decoder" and edit.padding:
        raise ValueError("padding selects encoder frames; for a decoder hook leave padding=False")
    if edit.padding and frames is not None:
        raise ValueError("padding edits every frame of the 30-s window; give frames or padding, not both")
    edit_fn(edit.sae, edit.feature, edit.mode, edit.value, None, allow_empty=allow_empty)  # bad feature, mode or value
    if frames is not None:
        longest = min(max((len(a) / SAMPLE_RATE for a in audios), default=0.0), float(WINDOW_SECONDS))
        if not (_frame_mask([frames_for_duration(longest)], frames, lw.config.max_source_positions).any()):
            raise ValueError(
                f"frames {frames[0]:g}:{frames[1]:g} s lie outside every clip (the longest is {longest:.2f} s); "
                f"choose a range inside the audio, e.g. 0:{longest:.2f}"
            )
    return edit._replace(hook=point.name, frames=frames)


@contextlib.contextmanager
def edited(lw, edits: Sequence[Edit], audios: Sequence[np.ndarray]) -> Iterator[None]:
    """Inside, every forward pass of ``lw`` on the batch ``audios`` (in this order) runs with all
    ``edits`` applied, each at its hook (edits at one hook apply in order, each to the output of the
    one before). Edits should have been through ``check_edit``."""
    lengths = [frames_for_duration(len(a) / SAMPLE_RATE) for a in audios]
    with contextlib.ExitStack() as stack:
        for edit in edits:
            point = HookPoint.parse(edit.hook or edit.sae.cfg.hook_name, lw.config)
            mask = None
            if point.side == "encoder" and not edit.padding:
                mask = _frame_mask(lengths, edit.frames, lw.config.max_source_positions)
            fn = edit_fn(
                edit.sae,
                edit.feature,
                edit.mode,
                edit.value,
                mask,
                allow_empty=True,
                active_only=edit.active_only,
                gate=edit.gate,
            )
            stack.enter_context(patch(lw.model, point, fn))
        yield


@torch.no_grad()
def reference_ce(lw, audio: np.ndarray, text: str, edits: Sequence[Edit] = ()) -> float:
    """Mean cross-entropy (nats per token) of ``text`` (plus the end token) teacher-forced on ``audio``,
    with ``edits`` applied."""
    tokens = lw.text_tokens(text)[: lw.config.max_target_positions - len(lw.prompt_ids) - 1]
    if not tokens:
        raise ValueError("the reference text is empty; give the words spoken in the clip")
    ids = torch.tensor([list(lw.prompt_ids) + tokens + [lw.eot_id]], device=lw.device)
    with edited(lw, edits, [audio]):
        features = lw.log_mel([audio]).to(lw.model.dtype)
        logits = lw.model(input_features=features, decoder_input_ids=ids, use_cache=False).logits.float()
    n_prompt = len(lw.prompt_ids)
    pred, target = logits[0, n_prompt - 1 : -1], ids[0, n_prompt:]
    return float(torch.nn.functional.cross_entropy(pred, target))


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
    active_only: bool = False,
    gate: float | None = None,
):
    """The edit function for one batch of clips of ``durations`` seconds, to give to ``patch`` around
    the forward passes of exactly that batch: real-audio frames (inside ``frames``) of encoder hooks,
    every position with ``padding`` or for decoder hooks (the per-batch form of ``edited``)."""
    point = HookPoint.parse(hook or sae.cfg.hook_name, lw.config)
    mask = None
    if point.side == "encoder" and not padding:
        lengths = [frames_for_duration(min(d, float(WINDOW_SECONDS))) for d in durations]
        mask = _frame_mask(lengths, frames, lw.config.max_source_positions)
    return edit_fn(sae, feature, mode, value, mask, allow_empty=allow_empty, active_only=active_only, gate=gate)


def transcribe_edited(
    lw, audios: Sequence[np.ndarray], edits: Sequence[Edit], *, batch_size: int = 8, max_new_tokens: int | None = None
) -> list[str]:
    """Greedy transcripts of ``audios`` with the (checked) ``edits`` applied, batch by batch."""
    out: list[str] = []
    for start in range(0, len(audios), batch_size):
        chunk = list(audios[start : start + batch_size])
        with edited(lw, edits, chunk):
            out.extend(lw.transcribe(chunk, batch_size=len(chunk), max_new_tokens=max_new_tokens))
    return out


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
    active_only: bool = False,
    gate: float | None = None,
) -> list[Intervention]:
    """Transcribe each clip (<= 30 s) before and after ablating, clamping or scaling ``feature`` (an id,
    or a list of ids edited together, e.g. every feature labelled /s/; ``value`` may then hold one number
    per feature).

    ``frames`` (encoder hooks only) limits the edit to frames whose centre lies in [t0, t1) seconds;
    by default every frame of real audio is edited, and padding frames of the 30-s window only with
    ``padding``. A range that is empty or
    lies after the end of every clip is an error (it would edit nothing). For decoder hooks the edit
    applies at every generated position. ``active_only`` edits a feature only where it fires; ``gate``
    edits only the clips whose features pass it (``edit_fn``).
    """
    edit = check_edit(lw, Edit(sae, feature, mode, value, frames, hook, padding, active_only, gate), audios)
    before = lw.transcribe(list(audios), batch_size=batch_size, max_new_tokens=max_new_tokens)
    after = transcribe_edited(lw, audios, [edit], batch_size=batch_size, max_new_tokens=max_new_tokens)
    return [Intervention(b, a) for b, a in zip(before, after)]
