"""Label F1 per group (e.g. per language): is the feature that fires on /a/ in Spanish the one that fires on /a/
in English?

``labels.AlignmentLabeler`` keeps only each feature's best label over the whole corpus. Here every
(feature, label) pair is counted separately within each group, so for a label shared by several groups the
F1 of any feature can be read in each group: precision = P(frame is p | f fires, group g), recall =
P(f fires | frame is p, group g), both over the frames of group g only. Counts are dense [d_sae, labels] per
group (a few thousand features by a few dozen phones).
"""

from __future__ import annotations

import numpy as np

from .labels import frame_labels

STRESS_MARKS = "ˈˌ'\","


def plain_phone(name: str) -> str:
    """A phone name without stress marks (eSpeak writes ``ˈa`` for a stressed /a/); pauses (``_``) become ''."""
    name = name.strip().strip(STRESS_MARKS)
    return "" if name.startswith("_") else name


class GroupedLabelF1:
    """Counts, per group, how often each feature fires inside each label's frames."""

    def __init__(self, d_sae: int, key: str = "phone", normalize=plain_phone):
        if d_sae <= 0:
            raise ValueError(f"d_sae must be positive, not {d_sae}")
        self.d_sae, self.key, self.normalize = d_sae, key, normalize
        self.vocab: dict[str, int] = {}
        self._co: dict[str, np.ndarray] = {}
        self._active: dict[str, np.ndarray] = {}
        self._label_frames: dict[str, np.ndarray] = {}
        self.frames: dict[str, int] = {}

    @property
    def groups(self) -> list[str]:
        return sorted(self._co)

    def _grow(self, n: int) -> None:
        for store in (self._co, self._label_frames):
            for g, arr in store.items():
                if arr.shape[-1] < n:
                    pad = [(0, 0)] * (arr.ndim - 1) + [(0, n - arr.shape[-1])]
                    store[g] = np.pad(arr, pad)

    def update(self, group: str, codes: np.ndarray, times: np.ndarray, intervals: list[dict]) -> None:
        """Add one utterance: ``codes`` [T, d_sae] at frame centres ``times`` [T] (s); ``intervals`` are the
        alignment's {key, start, end} items (e.g. ``alignment["phones"]``)."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.d_sae:
            raise ValueError(f"codes must be [frames, {self.d_sae}], got shape {codes.shape}")
        if codes.shape[0] != len(times):
            raise ValueError(f"{codes.shape[0]} frames of codes but {len(times)} frame times")
        items = [{**it, self.key: self.normalize(str(it[self.key]))} for it in intervals]
        labels = frame_labels(items, self.key, np.asarray(times, dtype=np.float64))
        for name in labels:
            if name is not None and name not in self.vocab:
                self.vocab[name] = len(self.vocab)
        n = len(self.vocab)
        if group not in self._co:
            self._co[group] = np.zeros((self.d_sae, n), np.int64)
            self._active[group] = np.zeros(self.d_sae, np.int64)
            self._label_frames[group] = np.zeros(n, np.int64)
            self.frames[group] = 0
        self._grow(n)
        onehot = np.zeros((len(labels), n), np.int64)
        for t, name in enumerate(labels):
            if name is not None:
                onehot[t, self.vocab[name]] = 1
        fires = (codes > 0).astype(np.int64)
        self._co[group] += fires.T @ onehot
        self._active[group] += fires.sum(0)
        self._label_frames[group] += onehot.sum(0)
        self.frames[group] += codes.shape[0]

    def label_frames(self, group: str) -> dict[str, int]:
        """Frames of each label in ``group``."""
        counts = self._label_frames[self._check(group)]
        return {name: int(counts[j]) for name, j in self.vocab.items() if j < len(counts)}

    def _check(self, group: str) -> str:
        if group not in self._co:
            raise KeyError(f"group {group!r} has no frames; groups seen: {', '.join(self.groups) or 'none'}")
        return group

    def f1(self, group: str, label: str) -> np.ndarray:
        """[d_sae] F1 of every feature for ``label`` within ``group`` (0 where the label never occurs there)."""
        g = self._check(group)
        if label not in self.vocab:
            raise KeyError(f"label {label!r} never occurred; e.g. {', '.join(list(self.vocab)[:8])}")
        j = self.vocab[label]
        if j >= self._co[g].shape[1]:
            return np.zeros(self.d_sae)
        co = self._co[g][:, j].astype(np.float64)
        precision = co / np.maximum(self._active[g], 1)
        recall = co / max(int(self._label_frames[g][j]), 1)
        return np.where(co > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)

    def shared_labels(self, min_frames: int = 20) -> list[str]:
        """Labels with at least ``min_frames`` frames in at least two groups, most widespread first."""
        counts = {
            name: sum(self.label_frames(g).get(name, 0) >= min_frames for g in self.groups) for name in self.vocab
        }
        return sorted((n for n, c in counts.items() if c >= 2), key=lambda n: (-counts[n], n))

    def compare(self, label: str, min_frames: int = 20) -> dict:
        """For ``label``: in each group with enough frames, its best feature and F1; and the F1 that each
        group's best feature reaches in every other group (the matrix ``cross[a][b]``: best feature of a, scored
        in b). ``same_best`` says whether all groups share one best feature."""
        groups = [g for g in self.groups if self.label_frames(g).get(label, 0) >= min_frames]
        f1 = {g: self.f1(g, label) for g in groups}
        best = {g: int(np.argmax(f1[g])) for g in groups}
        return {
            "label": label,
            "groups": groups,
            "frames": {g: self.label_frames(g)[label] for g in groups},
            "best_feature": best,
            "best_f1": {g: float(f1[g][best[g]]) for g in groups},
            "cross": {a: {b: float(f1[b][best[a]]) for b in groups} for a in groups},
            "same_best": len(set(best.values())) == 1 if groups else False,
        }
