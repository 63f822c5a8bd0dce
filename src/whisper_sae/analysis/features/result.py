"""The result of ``analyze``: per-feature arrays plus the utterances they point into, saved as
``analysis.json`` (metadata, utterance list, label vocabularies, summary) and one ``.npy`` per array.

Paths inside (the SAE folder, corpus, store, alignments folder, each utterance's audio) are written
relative to the analysis folder and read back relative to it (``artifacts.record_path`` /
``resolve_path``), so the dashboard finds them from any working directory and after the folders move
together. In memory, ``meta`` and ``utterances`` always hold paths usable from the current directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from whisper_sae.artifacts import SAEFolder, record_path, resolve_path

FORMAT = "whisper-sae-analysis/1"
PATH_KEYS = ("sae_dir", "corpus", "store", "alignments_dir")
"""The entries of ``meta`` that are paths (or, for ``corpus``, specs that may be paths)."""


def _map_paths(meta: dict, utterances: list[dict], fn) -> tuple[dict, list[dict]]:
    """``meta`` and ``utterances`` with ``fn`` applied to every path entry (``PATH_KEYS``, rows' ``path``);
    placeholders such as ``<in-memory utterances>`` are no paths and stay as they are."""
    meta = {
        k: (fn(v) if k in PATH_KEYS and isinstance(v, str) and not v.startswith("<") else v) for k, v in meta.items()
    }
    rows = [{**r, "path": fn(r["path"])} if isinstance(r.get("path"), str) else r for r in utterances]
    return meta, rows


@dataclass
class AnalysisResult:
    """Per-feature statistics and labels of one SAE over one corpus.

    ``arrays`` holds, for d_sae features: ``freq`` (fraction of frames where the feature fires),
    ``fire_count``, ``mean_act`` (mean over firing frames), ``max_act``, ``hist`` [d_sae, bins] of
    log10 activation with ``hist_edges``, ``top_act``/``top_utt``/``top_pos``/``top_time`` [d_sae, N]
    (``top_utt`` indexes ``utterances``; -1 marks an empty slot), ``top_token`` for decoder hooks,
    and when alignments were seen ``phone_label``/``word_label`` (index into ``phone_vocab``/
    ``word_vocab``, -1 none) with ``_precision``, ``_recall``, ``_f1``.
    """

    meta: dict
    utterances: list[dict]
    arrays: dict[str, np.ndarray]
    phone_vocab: list[str] = field(default_factory=list)
    word_vocab: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def d_sae(self) -> int:
        return int(len(self.arrays["freq"]))

    def label(self, feature: int, kind: str = "phone") -> tuple[str | None, float]:
        """The best ``kind`` ("phone" or "word") label of a feature and its F1 (None, 0 if none)."""
        key = f"{kind}_label"
        if key not in self.arrays:
            return None, 0.0
        idx = int(self.arrays[key][feature])
        vocab = self.phone_vocab if kind == "phone" else self.word_vocab
        return (vocab[idx] if idx >= 0 else None), float(self.arrays[f"{kind}_f1"][feature])

    def best_labelled(self, n: int = 10, kind: str = "phone") -> list[dict]:
        """The ``n`` features whose best label has the highest F1, as rows of :meth:`feature_row`."""
        if f"{kind}_f1" not in self.arrays:
            return []
        order = np.argsort(-self.arrays[f"{kind}_f1"], kind="stable")[:n]
        return [self.feature_row(int(f)) for f in order if self.arrays[f"{kind}_f1"][f] > 0]

    def feature_row(self, feature: int) -> dict:
        """Everything scalar about one feature, JSON-ready."""
        a = self.arrays
        row = {
            "feature": feature,
            "freq": float(a["freq"][feature]),
            "mean_act": float(a["mean_act"][feature]),
            "max_act": float(a["max_act"][feature]),
        }
        for kind in ("phone", "word"):
            name, f1 = self.label(feature, kind)
            if f"{kind}_f1" in a:
                row.update(
                    {
                        kind: name,
                        f"{kind}_f1": f1,
                        f"{kind}_precision": float(a[f"{kind}_precision"][feature]),
                        f"{kind}_recall": float(a[f"{kind}_recall"][feature]),
                    }
                )
        return row

    def top_frames(self, feature: int) -> list[dict]:
        """The feature's top activating frames: utterance id, index, position, time (s), activation."""
        a = self.arrays
        rows = []
        for j in range(a["top_act"].shape[1]):
            u = int(a["top_utt"][feature, j])
            if u < 0:
                break
            row = {
                "utt": u,
                "id": self.utterances[u]["id"],
                "pos": int(a["top_pos"][feature, j]),
                "time": float(a["top_time"][feature, j]),
                "act": float(a["top_act"][feature, j]),
            }
            if "top_token" in a:
                row["token"] = int(a["top_token"][feature, j])
            rows.append(row)
        return rows

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, arr in self.arrays.items():
            tmp = out / f"{name}.tmp.npy"
            np.save(tmp, np.asarray(arr), allow_pickle=False)
            tmp.replace(out / f"{name}.npy")
        meta, rows = _map_paths(self.meta, self.utterances, lambda p: record_path(p, out))
        doc = {
            "format": FORMAT,
            "meta": meta,
            "summary": self.summary,
            "arrays": sorted(self.arrays),
            "phone_vocab": self.phone_vocab,
            "word_vocab": self.word_vocab,
            "utterances": rows,
        }
        tmp = out / "analysis.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(out / "analysis.json")
        self.path = out
        return out

    @classmethod
    def load(cls, path: str | Path) -> AnalysisResult:
        path = Path(path)
        if path.is_dir() and not (path / "analysis.json").is_file() and SAEFolder(path).analysis.is_dir():
            path = SAEFolder(path).analysis  # an SAE folder whose analysis sits in its default place
        doc_path = path / "analysis.json"
        if not doc_path.is_file():
            what = "does not exist" if not path.exists() else "holds no analysis.json"
            raise FileNotFoundError(
                f"analysis folder {path} {what}; run `whisper-sae analyze SAE_DIR --corpus ...` "
                "(or --store ...) to make one, or pass the folder it wrote"
            )
        doc = json.loads(doc_path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{doc_path} has format {doc.get('format')!r}; expected {FORMAT!r}")
        arrays = {name: np.load(path / f"{name}.npy", allow_pickle=False) for name in doc["arrays"]}
        meta, rows = _map_paths(doc["meta"], doc["utterances"], lambda p: resolve_path(p, path))
        return cls(
            meta=meta,
            utterances=rows,
            arrays=arrays,
            phone_vocab=doc["phone_vocab"],
            word_vocab=doc["word_vocab"],
            summary=doc["summary"],
            path=path,
        )


def load_analysis(path: str | Path) -> AnalysisResult:
    """An ``AnalysisResult`` saved by ``analyze`` (its folder, or the SAE folder holding ``analysis/``)."""
    return AnalysisResult.load(path)
