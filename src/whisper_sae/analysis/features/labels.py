"""Labels from time alignments: for every feature, the phone (and word) it best predicts over frames.

A frame "is" phone p when its centre falls in one of p's intervals. For feature f and label p,
precision = P(frame is p | f fires), recall = P(f fires | frame is p), and the label of f is the p
with the highest F1. Counts are accumulated sparsely ((feature, label) pairs of firing frames), so
memory grows with the pairs seen, not with d_sae x vocabulary.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

F1_THRESHOLDS = (0.5, 0.7, 0.9)
_KEY_SHIFT = np.int64(1 << 32)


def normalize_word(word: str) -> str:
    """Case- and punctuation-free form, so "STUFF" (LibriSpeech) and "stuff," (Whisper) agree."""
    return re.sub(r"[^\w']+", "", word.lower()).strip("'")


def frame_labels(intervals: list[dict], key: str, times: np.ndarray) -> list[str | None]:
    """The label of each frame centre in ``times`` (seconds) from ``intervals`` of {key, start, end}."""
    out: list[str | None] = [None] * len(times)
    for item in intervals:
        name = item[key] if key != "word" else normalize_word(item[key])
        if not name:
            continue
        lo, hi = np.searchsorted(times, [float(item["start"]), float(item["end"])], side="left")
        out[lo:hi] = [name] * (hi - lo)
    return out


class AlignmentIndex:
    """``<utterance id>.json`` alignment files anywhere under a folder (a flat alignments folder, or a
    corpus that keeps them beside the audio, as the synthetic corpus does). An id with characters unsafe
    in a file name is also found under its percent-encoded name (``a/b`` -> ``a%2Fb.json``, as
    ``whisper-sae corpus align`` writes it; ``audio.align.alignment_filename``)."""

    def __init__(self, root: str | Path):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"alignments folder {root} does not exist; give a folder of <utterance id>.json")
        self.paths = {p.stem: p for p in sorted(root.rglob("*.json"))}

    def get(self, utt_id: str) -> dict | None:
        path = self.paths.get(utt_id)
        if path is None:
            from whisper_sae.audio.align import alignment_filename

            path = self.paths.get(alignment_filename(utt_id)[: -len(".json")])
        if path is None:
            return None
        doc = json.loads(path.read_text())
        return doc if isinstance(doc, dict) and ("words" in doc or "phones" in doc) else None


class _PairCounter:
    """Counts of (feature, label) for one label kind, plus per-label frame totals."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.label_frames: list[int] = []
        self._keys: list[np.ndarray] = []
        self._merged_keys = np.zeros(0, dtype=np.int64)
        self._merged_counts = np.zeros(0, dtype=np.int64)
        self._pending = 0

    def ids(self, labels: list[str | None]) -> np.ndarray:
        out = np.full(len(labels), -1, dtype=np.int64)
        for i, name in enumerate(labels):
            if name is None:
                continue
            j = self.vocab.setdefault(name, len(self.vocab))
            if j == len(self.label_frames):
                self.label_frames.append(0)
            self.label_frames[j] += 1
            out[i] = j
        return out

    def add(self, frame_ids: np.ndarray, t_idx: np.ndarray, f_idx: np.ndarray) -> None:
        lab = frame_ids[t_idx]
        keep = lab >= 0
        self._keys.append(f_idx[keep].astype(np.int64) * _KEY_SHIFT + lab[keep])
        self._pending += int(keep.sum())
        if self._pending > 2_000_000:
            self._compact()

    def _compact(self) -> None:
        keys = np.concatenate([self._merged_keys] + self._keys)
        counts = np.concatenate([self._merged_counts, np.ones(sum(len(k) for k in self._keys), np.int64)])
        self._merged_keys, inverse = np.unique(keys, return_inverse=True)
        self._merged_counts = np.bincount(inverse, weights=counts).astype(np.int64)
        self._keys, self._pending = [], 0

    def best(self, active: np.ndarray) -> dict[str, np.ndarray]:
        """Per feature: best label id (-1 if none) and its precision, recall, F1."""
        self._compact()
        d_sae = len(active)
        feat = (self._merged_keys // _KEY_SHIFT).astype(np.int64)
        lab = (self._merged_keys % _KEY_SHIFT).astype(np.int64)
        co = self._merged_counts.astype(np.float64)
        totals = np.asarray(self.label_frames, dtype=np.float64)
        precision = co / np.maximum(active[feat], 1)
        recall = co / np.maximum(totals[lab], 1)
        f1 = np.where(co > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
        best = {
            "label": np.full(d_sae, -1, np.int64),
            "precision": np.zeros(d_sae),
            "recall": np.zeros(d_sae),
            "f1": np.zeros(d_sae),
        }
        # Sort by (feature, f1) so the last row of each feature holds its best label.
        order = np.lexsort((f1, feat))
        last = np.ones(len(order), bool)
        last[:-1] = feat[order][1:] != feat[order][:-1]
        rows = order[last]
        best["label"][feat[rows]] = lab[rows]
        best["precision"][feat[rows]] = precision[rows]
        best["recall"][feat[rows]] = recall[rows]
        best["f1"][feat[rows]] = f1[rows]
        return best


class AlignmentLabeler:
    """Accumulates, over aligned utterances, how often each feature fires inside each phone and word."""

    def __init__(self, d_sae: int):
        self.d_sae = d_sae
        self.n_frames = 0
        self.active = np.zeros(d_sae, dtype=np.int64)
        self.phones = _PairCounter()
        self.words = _PairCounter()

    def update(self, codes: np.ndarray, times: np.ndarray, alignment: dict) -> None:
        """``codes`` [T, d_sae] for frames centred at ``times`` [T] (s); ``alignment`` words/phones."""
        codes = np.asarray(codes)
        if codes.shape[0] != len(times):
            raise ValueError(f"{codes.shape[0]} frames of codes but {len(times)} frame times")
        times = np.asarray(times, dtype=np.float64)
        phone_ids = self.phones.ids(frame_labels(alignment.get("phones") or [], "phone", times))
        word_ids = self.words.ids(frame_labels(alignment.get("words") or [], "word", times))
        t_idx, f_idx = np.nonzero(codes > 0)
        self.n_frames += codes.shape[0]
        self.active += np.bincount(f_idx, minlength=self.d_sae)
        self.phones.add(phone_ids, t_idx, f_idx)
        self.words.add(word_ids, t_idx, f_idx)

    def update_tokens(self, codes: np.ndarray, tokens: list[str]) -> None:
        """Decoder features: each position's label is its token text (as a word)."""
        codes = np.asarray(codes)
        # Special tokens (<|endoftext|>) keep their own name; text tokens are normalised like words.
        word_ids = self.words.ids([t.strip() if t.startswith("<|") else normalize_word(t) or None for t in tokens])
        t_idx, f_idx = np.nonzero(codes > 0)
        self.n_frames += codes.shape[0]
        self.active += np.bincount(f_idx, minlength=self.d_sae)
        self.words.add(word_ids, t_idx, f_idx)

    def result(self) -> dict:
        """Arrays ``{kind}_label`` (index into ``{kind}_vocab``), ``_precision``, ``_recall``, ``_f1``."""
        out: dict = {"label_frames": self.n_frames}
        for kind, counter in (("phone", self.phones), ("word", self.words)):
            best = counter.best(self.active)
            vocab = sorted(counter.vocab, key=counter.vocab.get)
            out[f"{kind}_vocab"] = vocab
            for name, arr in best.items():
                out[f"{kind}_{name}"] = arr.astype(np.float32) if name != "label" else arr
        return out


def f1_summary(f1: np.ndarray, alive: np.ndarray, thresholds=F1_THRESHOLDS) -> dict:
    """How many alive features have a best label with F1 above each threshold."""
    f1 = np.asarray(f1)[np.asarray(alive, bool)]
    return {
        "n_alive": int(len(f1)),
        "median_f1": float(np.median(f1)) if len(f1) else 0.0,
        **{f"f1>{t}": int((f1 > t).sum()) for t in thresholds},
    }
