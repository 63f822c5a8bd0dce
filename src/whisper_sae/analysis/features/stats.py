"""Per-feature statistics gathered in one streaming pass: firing counts, mean and max activation,
an activation-density histogram, and the top-N activating frames (a bounded top-N merge).

Everything here works on plain arrays of SAE codes, so it is tested without Whisper.
"""

from __future__ import annotations

import numpy as np

# Histogram of log10(activation) for firing frames; the same edges for every feature so pages compare.
HIST_EDGES = np.linspace(-4.0, 4.0, 81)


class TopN:
    """The N largest values per feature seen so far, with two integer tags each (utterance, position).

    Memory is O(N * d_sae) whatever the stream length: candidates are buffered and merged back to N
    rows whenever the buffer grows past N rows.
    """

    def __init__(self, d_sae: int, n: int):
        if n < 1:
            raise ValueError(f"top_n must be a positive number of frames per feature, got {n}")
        self.n, self.d_sae = n, d_sae
        self.values = np.full((0, d_sae), -np.inf, dtype=np.float32)
        self.utt = np.zeros((0, d_sae), dtype=np.int64)
        self.pos = np.zeros((0, d_sae), dtype=np.int64)
        self._buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._buf_rows = 0

    def add(self, values: np.ndarray, utt: np.ndarray, pos: np.ndarray) -> None:
        """Offer candidates: ``values``/``utt``/``pos`` are [m, d_sae] (or utt/pos [m], broadcast)."""
        values = np.asarray(values, dtype=np.float32)
        m = values.shape[0]
        utt, pos = (np.asarray(a, dtype=np.int64) for a in (utt, pos))
        # A scalar or one tag per row [m] applies to every feature of that row.
        utt = np.broadcast_to(utt.reshape(m, -1) if utt.ndim else utt, values.shape)
        pos = np.broadcast_to(pos.reshape(m, -1) if pos.ndim else pos, values.shape)
        # A frame where the feature is silent is never one of its "top activating" frames.
        values = np.where(values > 0, values, -np.inf).astype(np.float32)
        self._buf.append((values, utt, pos))
        self._buf_rows += m
        if self._buf_rows >= max(self.n, 64):
            self._merge()

    def _merge(self) -> None:
        if not self._buf:
            return
        values = np.concatenate([self.values] + [b[0] for b in self._buf])
        utt = np.concatenate([self.utt] + [b[1] for b in self._buf])
        pos = np.concatenate([self.pos] + [b[2] for b in self._buf])
        self._buf, self._buf_rows = [], 0
        if values.shape[0] > self.n:
            keep = np.argpartition(-values, self.n - 1, axis=0)[: self.n]
            values = np.take_along_axis(values, keep, 0)
            utt = np.take_along_axis(utt, keep, 0)
            pos = np.take_along_axis(pos, keep, 0)
        self.values, self.utt, self.pos = values, utt, pos

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted best first, as [d_sae, N] arrays; empty slots have value 0 and utt/pos -1."""
        self._merge()
        order = np.argsort(-self.values, axis=0, kind="stable")
        values = np.take_along_axis(self.values, order, 0).T
        utt = np.take_along_axis(self.utt, order, 0).T
        pos = np.take_along_axis(self.pos, order, 0).T
        pad = self.n - values.shape[1]
        if pad > 0:
            values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
            utt = np.pad(utt, ((0, 0), (0, pad)), constant_values=-1)
            pos = np.pad(pos, ((0, 0), (0, pad)), constant_values=-1)
        empty = ~np.isfinite(values)
        return (np.where(empty, 0.0, values).astype(np.float32), np.where(empty, -1, utt), np.where(empty, -1, pos))


class FeatureStats:
    """Streaming per-feature statistics over utterances of SAE codes.

    ``distinct_clips`` keeps at most one top frame per utterance and feature (the utterance's peak),
    so a feature's top list shows N different clips rather than N neighbouring frames of one clip.
    """

    def __init__(self, d_sae: int, top_n: int = 20, *, distinct_clips: bool = True):
        self.d_sae = d_sae
        self.distinct_clips = distinct_clips
        self.n_frames = 0
        self.fire_count = np.zeros(d_sae, dtype=np.int64)
        self.act_sum = np.zeros(d_sae, dtype=np.float64)
        self.act_max = np.zeros(d_sae, dtype=np.float32)
        self.hist = np.zeros((d_sae, len(HIST_EDGES) - 1), dtype=np.int64)
        self.top = TopN(d_sae, top_n)

    def update(self, codes: np.ndarray, utt_index: int) -> None:
        """Add one utterance's codes [T, d_sae] (frames or tokens in order)."""
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.d_sae:
            raise ValueError(f"codes must be [frames, {self.d_sae}], got shape {codes.shape}")
        if codes.shape[0] == 0:
            return
        self.n_frames += codes.shape[0]
        firing = codes > 0
        self.fire_count += firing.sum(0)
        self.act_sum += codes.sum(0, where=firing, dtype=np.float64)
        np.maximum(self.act_max, codes.max(0), out=self.act_max)
        t_idx, f_idx = np.nonzero(firing)
        if len(f_idx):
            bins = np.clip(
                np.searchsorted(HIST_EDGES, np.log10(codes[t_idx, f_idx]), "right") - 1, 0, len(HIST_EDGES) - 2
            )
            np.add.at(self.hist, (f_idx, bins), 1)
        if self.distinct_clips:
            peak = codes.argmax(0)
            self.top.add(codes[peak, np.arange(self.d_sae)][None], utt_index, peak[None])
        else:
            k = min(self.top.n, codes.shape[0])
            rows = np.argpartition(-codes, k - 1, axis=0)[:k]
            self.top.add(np.take_along_axis(codes, rows, 0), utt_index, rows)

    def result(self) -> dict[str, np.ndarray]:
        """Arrays keyed by name: freq, mean_act (over firing frames), max_act, hist, top_act/utt/pos."""
        top_act, top_utt, top_pos = self.top.result()
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.fire_count > 0, self.act_sum / np.maximum(self.fire_count, 1), 0.0)
        return {
            "freq": self.fire_count / max(self.n_frames, 1),
            "fire_count": self.fire_count.copy(),
            "mean_act": mean.astype(np.float32),
            "max_act": self.act_max.copy(),
            "hist": self.hist.copy(),
            "hist_edges": HIST_EDGES.copy(),
            "top_act": top_act,
            "top_utt": top_utt,
            "top_pos": top_pos,
        }
