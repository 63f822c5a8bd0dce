"""Word timestamps from Whisper itself: cross-attention of the alignment heads, warped onto frames.

The decoder is teacher-forced on a transcript (the reference, or Whisper's own); the cross-attention
weights of the alignment heads are standardised over tokens at each frame, smoothed over time, averaged, and a
monotone path through (token, frame) found by dynamic time warping gives each token's start. This is
what ``transformers`` does for ``return_token_timestamps``, computed here so it also works with a
given transcript and any attention implementation. Gives words only (no phones).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import median_filter

from whisper_sae.audio.constants import FRAME_SECONDS, SAMPLE_RATE
from whisper_sae.whisper import frames_for_duration
from whisper_sae.whisper.hooks import _core


def alignment_heads(lw) -> list[tuple[int, int]]:
    """(layer, head) pairs: the model's own when its generation config has them, else every head of
    the upper half of the decoder (the heads that align best in every Whisper size)."""
    heads = getattr(lw.model.generation_config, "alignment_heads", None)
    if heads:
        return [(int(layer), int(head)) for layer, head in heads]
    n_layers, n_heads = lw.config.decoder_layers, lw.config.decoder_attention_heads
    return [(layer, head) for layer in range(n_layers // 2, n_layers) for head in range(n_heads)]


@torch.no_grad()
def cross_attention(lw, audio: np.ndarray, tokens: list[int]) -> torch.Tensor:
    """Cross-attention weights [layers, heads, len(tokens), FRAMES_PER_WINDOW] with ``tokens`` teacher-forced."""
    decoder = _core(lw).decoder
    queries: dict[int, torch.Tensor] = {}
    keys: dict[int, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(decoder.layers):
        attn = layer.encoder_attn
        handles.append(attn.q_proj.register_forward_hook(lambda m, a, o, i=i: queries.__setitem__(i, o)))
        handles.append(attn.k_proj.register_forward_hook(lambda m, a, o, i=i: keys.__setitem__(i, o)))
    try:
        features = lw.log_mel([audio]).to(lw.model.dtype)
        hidden = _core(lw).encoder(features).last_hidden_state
        ids = torch.tensor([tokens], device=hidden.device)
        decoder(input_ids=ids, encoder_hidden_states=hidden, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    n_heads = lw.config.decoder_attention_heads
    out = []
    for i, layer in enumerate(decoder.layers):
        q = queries[i][0].float().unflatten(-1, (n_heads, -1)).transpose(0, 1)  # [H, L, hd]
        k = keys[i][0].float().unflatten(-1, (n_heads, -1)).transpose(0, 1)  # [H, FRAMES_PER_WINDOW, hd]
        out.append(torch.softmax(q @ k.transpose(1, 2) * layer.encoder_attn.scaling, dim=-1))
    return torch.stack(out)


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The monotone (row, column) path of least total cost from (0, 0) to the last cell."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    move = np.zeros((n + 1, m + 1), np.int8)  # 0 diagonal, 1 up (next row), 2 left (next column)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            options = (acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
            k = int(np.argmin(options))
            acc[i, j] = cost[i - 1, j - 1] + options[k]
            move[i, j] = k
    i, j, rows, cols = n, m, [], []
    while i > 0 and j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        k = move[i, j]
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    return np.array(rows[::-1]), np.array(cols[::-1])


def token_starts(weights: np.ndarray) -> np.ndarray:
    """Start frame of each row (token) of a [tokens, frames] alignment matrix (higher = aligned)."""
    rows, cols = dtw_path(-weights)
    starts = np.zeros(weights.shape[0], dtype=np.int64)
    first = np.ones(len(rows), bool)
    first[1:] = rows[1:] != rows[:-1]
    starts[rows[first]] = cols[first]
    return starts


def _words(lw, text_tokens: list[int], starts: np.ndarray, end_frame: int) -> list[dict]:
    """Group tokens into words (a token starting with a space begins one) with start and end times."""
    words: list[dict] = []
    bounds = list(starts) + [end_frame]
    for j, token in enumerate(text_tokens):
        piece = lw.tokenizer.decode([token])
        if not words or piece.startswith(" "):
            words.append({"word": piece.strip(), "start": bounds[j] * FRAME_SECONDS})
        else:
            words[-1]["word"] += piece
        words[-1]["end"] = max(bounds[j + 1], bounds[j]) * FRAME_SECONDS
    return [w for w in words if w["word"]]


def word_timestamps(lw, audios: list[np.ndarray], texts: list[str] | None = None) -> list[list[dict]]:
    """Per clip (at most 30 s) the words with ``start``/``end`` in seconds. ``texts`` are forced when
    given; otherwise Whisper's own greedy transcript is used."""
    texts = texts if texts is not None else lw.transcribe(list(audios))
    heads = alignment_heads(lw)
    results = []
    for audio, text in zip(audios, texts):
        text_tokens = lw.text_tokens(text) if text.strip() else []
        # The decoder has a fixed number of positions: prompt + text + end token must fit in it.
        text_tokens = text_tokens[: lw.config.max_target_positions - len(lw.prompt_ids) - 1]
        if not text_tokens:
            results.append([])
            continue
        tokens = list(lw.prompt_ids) + text_tokens + [lw.eot_id]
        attn = cross_attention(lw, np.asarray(audio, np.float32), tokens)
        n_frames = max(frames_for_duration(len(audio) / SAMPLE_RATE), 1)
        # Row p predicts token p + 1: rows from the prompt's last position to the last text token.
        first = len(lw.prompt_ids) - 1
        w = torch.stack([attn[layer, head] for layer, head in heads])[
            :, first : first + len(text_tokens) + 1, :n_frames
        ]
        w = w.numpy()
        w = (w - w.mean(-2, keepdims=True)) / (w.std(-2, keepdims=True) + 1e-6)
        w = median_filter(w, size=(1, 1, 7), mode="nearest").mean(0)
        starts = token_starts(w)
        results.append(_words(lw, text_tokens, starts[:-1], int(starts[-1]) if len(starts) else n_frames))
    return results
