"""The numbers a probe needs from a corpus: every utterance's real-audio frames at an encoder hook
(computed on a padded 30-s window, as Whisper hears them), their SAE codes, utterance means, and a
fixed subsample of frames for the frame-level statistics and probes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from whisper_sae.audio import Utterance
from whisper_sae.audio.constants import WINDOW_SAMPLES
from whisper_sae.whisper import HookPoint, encode_clips


@dataclass
class FrameActivations:
    """All real-audio frames of the probed utterances at one hook.

    ``raw`` [N, d] float32; ``utt`` [N] index of each frame's utterance (sorted).
    """

    raw: np.ndarray
    utt: np.ndarray
    n_utterances: int


def records_of(utterances: Iterable[Utterance]) -> tuple[list[Utterance], list[dict]]:
    """Utterances in memory plus plain records (id, speaker, text, attributes) for label resolution.
    The speaker falls back to ``attributes["speaker"]`` when the corpus put it only there."""
    utts, records = [], []
    for u in utterances:
        attrs = dict(u.attributes or {})
        speaker = u.speaker if u.speaker is not None else attrs.get("speaker")
        utts.append(u)
        records.append(
            {
                "id": u.id,
                "speaker": None if speaker is None else str(speaker),
                "text": u.text,
                "attributes": attrs,
                "duration": u.duration,
            }
        )
    return utts, records


def encoder_frames(
    lw, hook: str, utterances: list[Utterance], *, batch_size: int = 8, progress: bool = True
) -> FrameActivations:
    """Run the encoder over every utterance (longer ones in consecutive 30-s windows) and keep the
    frames of real audio at ``hook``."""
    point = HookPoint.parse(hook, lw.config)
    if point.side != "encoder":
        raise ValueError(
            f"probe reads encoder hooks (speaker attributes live in the audio frames); got {hook!r}. Use an SAE trained on encoder.blocks.N or encoder.out"
        )
    windows = [(i, w) for i, u in enumerate(utterances) for w in _windows(np.asarray(u.audio, dtype=np.float32))]
    parts: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    bar = tqdm(total=len(windows), desc=f"encoder → {hook}", unit="window", disable=not progress)
    for lo in range(0, len(windows), batch_size):
        batch = windows[lo : lo + batch_size]
        for (i, _), a in zip(batch, encode_clips(lw, [w for _, w in batch], point.name)):
            parts.append(a.cpu().numpy().astype(np.float32))
            owner.append(np.full(len(a), i, dtype=np.int32))
        bar.update(len(batch))
    bar.close()
    raw = np.concatenate(parts) if parts else np.zeros((0, lw.d_model), np.float32)
    utt = np.concatenate(owner) if owner else np.zeros(0, np.int32)
    return FrameActivations(raw=raw, utt=utt, n_utterances=len(utterances))


def _windows(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[s : s + WINDOW_SAMPLES] for s in range(0, max(len(audio), 1), WINDOW_SAMPLES)]


class StoredUtterance:
    """An utterance known from an activation store's record (id, speaker, text, attributes, audio path);
    its audio is read from the path only when asked for (the ablation's transcripts)."""

    def __init__(self, record: dict, store_path=None):
        from whisper_sae.artifacts import resolve_path

        self.id, self.text = record["id"], record.get("text")
        # A store records audio paths relative to itself (older stores: to the working directory).
        self.path = resolve_path(record.get("path"), store_path) if store_path is not None else record.get("path")
        self.attributes = dict(record.get("attributes") or {})
        self.speaker = record.get("speaker")
        self.duration = float(record.get("duration") or 0.0)
        self._audio = None

    @property
    def audio(self) -> np.ndarray:
        if self._audio is None:
            from whisper_sae.audio import load_audio

            if not self.path:
                raise ValueError(f"store record {self.id!r} has no audio path; probe from the corpus to transcribe it")
            self._audio = load_audio(self.path)
        return self._audio


def stored_utterances(store, max_utterances: int | None = None) -> list[StoredUtterance]:
    recs = store.utterances
    return [StoredUtterance(r, store.path) for r in (recs if max_utterances is None else recs[:max_utterances])]


def store_frames(store, hook: str, ids: list[str]) -> FrameActivations:
    """The real-audio frames of utterances ``ids`` at ``hook`` read from an activation store (as stored:
    fp16 unless extracted otherwise), in the order of ``ids`` and of position, instead of running Whisper.
    For a decoder hook the rows are the teacher-forced tokens (utterance means then pool over tokens)."""
    if hook not in store.hooks:
        raise ValueError(f"store {store.path} has no {hook!r} activations; it holds {', '.join(store.hooks)}")
    by_id = {r["id"]: r["idx"] for r in store.utterances}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(ids)} utterances are not in store {store.path} (e.g. {missing[0]!r}); "
            "extract them first, or probe from the corpus without --store"
        )
    idx = np.array([by_id[i] for i in ids], dtype=np.int64)
    acts, index = store.read(hook, utterances=idx)
    ours = np.full(int(idx.max()) + 1, -1, dtype=np.int64)
    ours[idx] = np.arange(len(idx))
    utt = ours[index["utt"].numpy().astype(np.int64)]
    order = np.lexsort((index["pos"].numpy(), utt))
    return FrameActivations(
        raw=acts.numpy()[order].astype(np.float32), utt=utt[order].astype(np.int32), n_utterances=len(ids)
    )


def sample_frames(utt: np.ndarray, n_utterances: int, *, per_utterance: int, max_frames: int) -> np.ndarray:
    """Indices of at most ``per_utterance`` evenly spaced frames of each utterance, fewer per utterance
    when that would exceed ``max_frames`` in all. Deterministic, so reruns compare like with like."""
    per = max(1, min(per_utterance, max_frames // max(n_utterances, 1)))
    starts = np.searchsorted(utt, np.arange(n_utterances), side="left")
    ends = np.searchsorted(utt, np.arange(n_utterances), side="right")
    picks = []
    for s, e in zip(starts, ends):
        if e > s:
            picks.append(np.unique(np.linspace(s, e - 1, num=min(per, e - s)).round().astype(np.int64)))
    return np.concatenate(picks) if picks else np.zeros(0, np.int64)


@torch.no_grad()
def codes_and_means(
    sae,
    raw: np.ndarray,
    utt: np.ndarray,
    n_utterances: int,
    sample: np.ndarray,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk: int = 4096,
) -> dict[str, np.ndarray]:
    """SAE codes and raw activations (optionally after ``transform``, e.g. an ablation), as
    ``{"codes_frames" [S, F], "raw_frames" [S, d], "codes_pooled" [U, F], "raw_pooled" [U, d]}``:
    frames at ``sample``; pooled = the mean over all of an utterance's frames."""
    param = next(sae.parameters())
    F = sae.cfg.d_sae
    code_sum = np.zeros((n_utterances, F), np.float64)
    raw_sum = np.zeros((n_utterances, raw.shape[1]), np.float64)
    keep = np.zeros(len(raw), dtype=bool)
    keep[sample] = True
    codes_frames, raw_frames = [], []
    for lo in range(0, len(raw), chunk):
        x = torch.from_numpy(raw[lo : lo + chunk]).to(param.device, torch.float32)
        if transform is not None:
            x = transform(x)
        c = sae.encode(x).float()
        xs, cs, u = x.cpu().numpy(), c.cpu().numpy(), utt[lo : lo + chunk]
        np.add.at(code_sum, u, cs)
        np.add.at(raw_sum, u, xs)
        k = keep[lo : lo + chunk]
        codes_frames.append(cs[k])
        raw_frames.append(xs[k])
    counts = np.maximum(np.bincount(utt, minlength=n_utterances), 1)[:, None]
    return {
        "codes_frames": np.concatenate(codes_frames) if codes_frames else np.zeros((0, F), np.float32),
        "raw_frames": np.concatenate(raw_frames) if raw_frames else np.zeros((0, raw.shape[1]), np.float32),
        "codes_pooled": (code_sum / counts).astype(np.float32),
        "raw_pooled": (raw_sum / counts).astype(np.float32),
    }
