"""SAE feature activations of utterances, computed the way Whisper hears them.

Encoder hooks: each utterance (split into 30-s windows if longer) is run on a padded 30-s window,
and only the frames of real audio are kept, as the activation store does. Decoder hooks: the
decoder is teacher-forced on the utterance's transcript (or Whisper's own when there is none).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from whisper_sae.audio import Utterance
from whisper_sae.audio.constants import FRAME_SECONDS, SAMPLES_PER_FRAME, WINDOW_SAMPLES
from whisper_sae.whisper import HookPoint, encode_clips, run_decoder_teacher_forced


@dataclass
class UtteranceCodes:
    """One utterance's codes: ``codes`` [T, d_sae], ``times`` [T] (frame centres, s; NaN for tokens),
    ``tokens`` (decoder hooks: the input token id at each position, else None)."""

    utterance: Utterance
    codes: np.ndarray
    times: np.ndarray
    tokens: list[int] | None = None


def _windows(audio: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(first frame, samples) of consecutive 30-s windows covering the audio."""
    return [
        (start // SAMPLES_PER_FRAME, audio[start : start + WINDOW_SAMPLES])
        for start in range(0, max(len(audio), 1), WINDOW_SAMPLES)
    ]


@torch.no_grad()
def _encode(sae, acts: torch.Tensor) -> np.ndarray:
    param = next(sae.parameters())
    return sae.encode(acts.to(param.device, torch.float32)).float().cpu().numpy()


def _encoder_batch(lw, sae, point: HookPoint, batch: list[tuple[int, int, np.ndarray]]):
    """Codes of a batch of (item, first_frame, window audio); yields (item, first_frame, codes [T, d])."""
    acts = encode_clips(lw, [w for _, _, w in batch], point.name)
    for (item, first, _), a in zip(batch, acts):
        yield item, first, _encode(sae, a)


def encoder_codes(
    lw, sae, hook: str, utterances: Iterable[Utterance], *, batch_size: int = 8
) -> Iterator[UtteranceCodes]:
    """Codes of every utterance at an encoder hook, in order, batching windows across utterances."""
    point = HookPoint.parse(hook, lw.config)
    pending: dict[int, tuple[Utterance, list]] = {}
    batch: list[tuple[int, int, np.ndarray]] = []
    order: list[int] = []

    def flush():
        for item, first, codes in _encoder_batch(lw, sae, point, batch):
            pending[item][1].append((first, codes))
        batch.clear()

    def finished():
        # Yield, in corpus order, the utterances whose windows have all been computed.
        while order and len(pending[order[0]][1]) == pending[order[0]][2]:
            utt, parts, _ = pending.pop(order.pop(0))
            parts.sort(key=lambda p: p[0])
            codes = np.concatenate([c for _, c in parts])
            yield UtteranceCodes(utt, codes, (np.arange(len(codes)) + 0.5) * FRAME_SECONDS)

    for item, utt in enumerate(utterances):
        windows = _windows(np.asarray(utt.audio, dtype=np.float32))
        pending[item] = (utt, [], len(windows))
        order.append(item)
        for first, window in windows:
            batch.append((item, first, window))
            if len(batch) >= batch_size:
                flush()
                yield from finished()
    if batch:
        flush()
    yield from finished()


def decoder_codes(lw, sae, hook: str, utterances: Iterable[Utterance]) -> Iterator[UtteranceCodes]:
    """Codes at a decoder hook, teacher-forced on each transcript; positions are the text tokens and end."""
    point = HookPoint.parse(hook, lw.config)
    for utt in utterances:
        audio = np.asarray(utt.audio, dtype=np.float32)[:WINDOW_SAMPLES]
        features = lw.log_mel([audio])
        with torch.no_grad():
            hidden = lw.model.model.encoder(features.to(lw.model.dtype)).last_hidden_state
        text = utt.text if utt.text else lw.transcribe([audio])[0]
        tokens = lw.prompt_ids + lw.text_tokens(text)[: lw.config.max_target_positions - len(lw.prompt_ids) - 1]
        tokens = tokens + [lw.eot_id]
        acts = run_decoder_teacher_forced(lw, hidden, [tokens], [point.name])[point.name][0]
        keep = slice(len(lw.prompt_ids), len(tokens))
        codes = _encode(sae, acts[keep])
        yield UtteranceCodes(utt, codes, np.full(len(codes), np.nan), tokens[keep])


def utterance_codes(
    lw, sae, hook: str, utterances: Iterable[Utterance], *, batch_size: int = 8
) -> Iterator[UtteranceCodes]:
    """Codes at ``hook`` (encoder or decoder) for each utterance, in order."""
    point = HookPoint.parse(hook, lw.config)
    if point.side == "encoder":
        return encoder_codes(lw, sae, hook, utterances, batch_size=batch_size)
    return decoder_codes(lw, sae, hook, utterances)


def store_codes(
    store, sae, hook: str, *, utterances: list[int] | None = None, chunk: int = 32
) -> Iterator[tuple[dict, UtteranceCodes]]:
    """(utterance record, codes) from an activation store's rows, no Whisper needed.

    Rows are regrouped by utterance and ordered by position; records come from ``store.utterances``
    (an audio path in a record is read relative to the store, see ``artifacts.resolve_path``).
    """
    from whisper_sae.artifacts import resolve_path

    records = {r["idx"]: r for r in store.utterances}
    order = sorted(records) if utterances is None else list(utterances)
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        acts, index = store.read(hook, part)
        utt_col, pos_col = index["utt"].long().numpy(), index["pos"].long().numpy()
        for idx in part:
            rows = np.nonzero(utt_col == idx)[0]
            rows = rows[np.argsort(pos_col[rows], kind="stable")]
            rec = records[idx]
            codes = _encode(sae, acts[rows])
            if len(rows) and int(index["token"][rows[0]]) >= 0:  # decoder rows keep their token id
                tokens = index["token"][rows].long().tolist()
                times = np.full(len(rows), np.nan)
            else:
                tokens, times = None, (pos_col[rows] + 0.5) * FRAME_SECONDS
            utt = Utterance(
                id=rec["id"],
                audio=np.zeros(0, np.float32),
                text=rec.get("text"),
                speaker=rec.get("speaker"),
                path=resolve_path(rec.get("path"), store.path),
            )
            yield rec, UtteranceCodes(utt, codes, times, tokens)
