"""The app's state and work, without HTTP: the loaded Whisper and SAEs, the clips, and what is computed
for them (spectrogram, transcript with word times, features over time, edited transcripts).

Every use of the model holds one lock: edits patch the model's modules while they run, so two requests
must never overlap inside it. Clips are kept in memory (the oldest dropped past ``Limits.max_clips``)
under random ids. Errors a user can cause are ``RequestError`` with an HTTP status and a sentence
naming the bad thing.
"""

from __future__ import annotations

import base64
import difflib
import logging
import math
import secrets
import shlex
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whisper_sae.audio.constants import FRAME_SECONDS, SAMPLE_RATE, WINDOW_SECONDS

logger = logging.getLogger(__name__)

SILENCE_PEAK = 1e-3
"""A clip whose loudest sample is below this (full scale 1.0, about -60 dBFS) is refused as silent."""
MEL_FRAME_SECONDS = 0.01
"""Whisper's log-mel hop: 160 samples at 16 kHz."""


class RequestError(ValueError):
    """A request the app cannot serve, with the HTTP status to answer it with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    """Largest upload accepted."""
    max_seconds: float = float(WINDOW_SECONDS)
    """Longest clip accepted (Whisper's window holds 30 s)."""
    max_clips: int = 32
    """Clips kept in memory; the oldest is dropped past this."""
    max_top: int = 64
    """Most features one heat strip may show."""


@dataclass
class LoadedSAE:
    """One SAE the app offers, with what is known about its features."""

    name: str
    """The SAE as the user named it (a folder or a shipped name), used in the API and in commands."""
    sae: Any
    folder: Path | None
    hook: str
    analysis: Any = None
    selectivity: Any = None
    dashboard: Path | None = None
    """A static dashboard folder of this SAE (``whisper-sae dashboard``), served under ``dashboard_url``."""
    index: int = 0

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def dashboard_url(self) -> str | None:
        return f"/dashboard/{self.index}/" if self.dashboard is not None else None

    def describe(self) -> dict:
        return {
            "name": self.name,
            "hook": self.hook,
            "side": self.hook.split(".")[0],
            "d_sae": self.d_sae,
            "analysis": self.analysis is not None,
            "attributes": sorted(self.selectivity.attributes) if self.selectivity else [],
            "dashboard": self.dashboard_url,
        }

    def label(self, feature: int) -> dict:
        """What is known about one feature: phone and word labels with F1, the most selective speaker
        attribute, and its dashboard page when the dashboard has one."""
        out: dict = {}
        if self.analysis is not None:
            for kind in ("phone", "word"):
                name, f1 = self.analysis.label(feature, kind)
                if name is not None and f1 > 0:
                    out[kind], out[f"{kind}_f1"] = name, round(f1, 3)
        if self.selectivity:
            from whisper_sae.analysis.dashboard.selectivity import SIGNIFICANT_Q, AttributeSelectivity

            rows = [
                (name, r) for name, r in self.selectivity.of(feature).items() if (r.get("q") or 1.0) < SIGNIFICANT_Q
            ]
            if rows:
                name, row = min(rows, key=lambda nr: nr[1]["rank"])
                out["attribute"] = name
                out["attribute_direction"] = AttributeSelectivity.direction(row)
                out["attribute_q"] = float(row["q"])
        if self.dashboard is not None and (self.dashboard / "features" / f"f{feature}.html").is_file():
            out["page"] = f"{self.dashboard_url}features/f{feature}.html"
        return out


@dataclass
class Clip:
    id: str
    name: str
    audio: np.ndarray
    reference: str | None = None
    transcript: str = ""
    words: list[dict] = field(default_factory=list)
    features: dict = field(default_factory=dict)  # (sae name, top) -> response
    ce_clean: dict = field(default_factory=dict)  # reference text -> clean cross-entropy

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode("ascii")


def word_diff(before: str, after: str) -> list[dict]:
    """``after`` against ``before`` word by word: runs of ``{"op": "same"|"del"|"ins", "text"}``."""
    a, b = before.split(), after.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append({"op": "same", "text": " ".join(a[i1:i2])})
            continue
        if i2 > i1:
            out.append({"op": "del", "text": " ".join(a[i1:i2])})
        if j2 > j1:
            out.append({"op": "ins", "text": " ".join(b[j1:j2])})
    return out


class Session:
    """The server's state: one Whisper, its SAEs, the clips, and a lock around the model."""

    def __init__(self, lw, saes: list[LoadedSAE], *, limits: Limits | None = None, corpus=None, model_spec=None):
        if not saes:
            raise ValueError(
                "serve needs at least one SAE (a folder or a shipped name such as tiny/encoder.out-original)"
            )
        self.lw = lw
        self.model_spec = model_spec
        self.saes = {s.name: s for s in saes}
        for i, s in enumerate(saes):
            s.index = i
        self.limits = limits or Limits()
        self.corpus = corpus  # {id: Utterance} or None
        self.model_lock = threading.Lock()
        self._clips: OrderedDict[str, Clip] = OrderedDict()
        self._clips_lock = threading.Lock()
        self._mel_hz = self._mel_centres()

    # ------------------------------------------------------------------ lookup

    def info(self) -> dict:
        return {
            "model": getattr(self.lw, "name", None),
            "saes": [s.describe() for s in self.saes.values()],
            "limits": {"max_bytes": self.limits.max_bytes, "max_seconds": self.limits.max_seconds},
            "corpus": self.corpus is not None,
            "frame_seconds": FRAME_SECONDS,
        }

    def sae(self, name: str | None) -> LoadedSAE:
        if name is None:
            return next(iter(self.saes.values()))
        if name not in self.saes:
            raise RequestError(f"SAE {name!r} is not loaded; this server has {', '.join(map(repr, self.saes))}", 404)
        return self.saes[name]

    def sae_for(self, name: str | None, hook: str | None) -> LoadedSAE:
        """The SAE named ``name``, or the one reading ``hook``; a hook no loaded SAE reads is a 404 naming it."""
        if hook is None:
            return self.sae(name)
        if name is not None:
            entry = self.sae(name)
            if entry.hook != hook:
                raise RequestError(f"SAE {name!r} reads hook {entry.hook!r}, not {hook!r}", 404)
            return entry
        for entry in self.saes.values():
            if entry.hook == hook:
                return entry
        hooks = ", ".join(sorted({s.hook for s in self.saes.values()}))
        raise RequestError(f"no loaded SAE reads hook {hook!r}; the loaded SAEs read {hooks}", 404)

    def clip(self, clip_id: str) -> Clip:
        with self._clips_lock:
            clip = self._clips.get(clip_id)
        if clip is None:
            raise RequestError(f"clip {clip_id!r} is not loaded (expired or never uploaded); upload it again", 404)
        return clip

    # ------------------------------------------------------------------ adding clips

    def read_upload(self, data: bytes, filename: str) -> np.ndarray:
        """Decode an uploaded file (any format ``load_audio`` reads) to 16-kHz mono."""
        from whisper_sae.audio import load_audio

        if len(data) > self.limits.max_bytes:
            raise RequestError(
                f"file {filename!r} is {len(data) / 1e6:.1f} MB; this server accepts at most "
                f"{self.limits.max_bytes / 1e6:.1f} MB (--max-upload-mb)",
                413,
            )
        if not data:
            raise RequestError(f"file {filename!r} is empty", 422)
        suffix = "".join(Path(filename).suffixes[-1:])[:10] if filename else ""
        suffix = suffix if suffix.replace(".", "").isalnum() else ""
        with tempfile.TemporaryDirectory(prefix="whisper-sae-serve-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                return load_audio(path)
            except Exception as err:  # noqa: BLE001 - any decoder failure is the file's fault here
                reason = str(err).replace(str(path), "").strip(" :") or type(err).__name__
                raise RequestError(f"file {filename!r} could not be read as audio: {reason}", 422) from None

    def add_clip(self, audio: np.ndarray, name: str, reference: str | None = None) -> Clip:
        """Check the clip (length, silence), transcribe it with word times and keep it; returns the Clip."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        seconds = len(audio) / SAMPLE_RATE
        limit = min(self.limits.max_seconds, float(WINDOW_SECONDS))
        if seconds > limit:
            raise RequestError(
                f"clip {name!r} is {seconds:.1f} s long; this server accepts at most {limit:g} s (--max-seconds)", 413
            )
        if seconds < 0.1:
            raise RequestError(f"clip {name!r} is {seconds * 1000:.0f} ms long; give at least 0.1 s of speech", 422)
        if not np.isfinite(audio).all():
            raise RequestError(f"clip {name!r} holds NaN or infinite samples", 422)
        peak = float(np.abs(audio).max())
        if peak < SILENCE_PEAK:
            raise RequestError(f"clip {name!r} is silent (peak level {peak:.1e}); record or upload speech", 422)
        from whisper_sae.analysis.features.word_times import word_timestamps

        clip = Clip(id=secrets.token_hex(8), name=name, audio=audio, reference=reference)
        with self.model_lock, torch.inference_mode():
            clip.transcript = self.lw.transcribe([audio])[0]
        with self.model_lock, torch.no_grad():
            clip.words = word_timestamps(self.lw, [audio], [clip.transcript])[0]
        with self._clips_lock:
            self._clips[clip.id] = clip
            while len(self._clips) > self.limits.max_clips:
                self._clips.popitem(last=False)
        return clip

    def clip_from_corpus(self, utt_id: str) -> Clip:
        if self.corpus is None:
            raise RequestError("this server has no corpus; start it with --corpus SPEC (or --store DIR)", 404)
        utt = self.corpus.get(utt_id)
        if utt is None:
            raise RequestError(f"utterance {utt_id!r} is not in the corpus (ids are listed by /api/corpus)", 404)
        return self.add_clip(utt.audio, utt_id, reference=utt.text or None)

    def corpus_ids(self, query: str = "", limit: int = 200) -> list[dict]:
        if self.corpus is None:
            return []
        rows = [
            {"id": uid, "seconds": round(len(u.audio) / SAMPLE_RATE, 2), "text": u.text or ""}
            for uid, u in self.corpus.items()
            if query.lower() in uid.lower()
        ]
        return rows[:limit]

    # ------------------------------------------------------------------ views

    def _mel_centres(self) -> list[float]:
        """The frequency (Hz) at which each of the model's mel filters peaks, for the spectrogram's axis."""
        filters = np.asarray(getattr(self.lw.feature_extractor, "mel_filters", np.zeros((0, 0))))
        if filters.ndim != 2 or not filters.size:
            return []
        if filters.shape[0] < filters.shape[1]:
            filters = filters.T  # [n_freqs, n_mels]
        nyquist = SAMPLE_RATE / 2
        return [round(float(i) * nyquist / (filters.shape[0] - 1), 1) for i in filters.argmax(0)]

    def clip_view(self, clip: Clip) -> dict:
        """The clip as the page shows it: log-mel spectrogram (uint8, base64, [n_mels, frames] row-major,
        low frequencies first), the mel centres in Hz, the transcript and its words with times."""
        with self.model_lock, torch.inference_mode():
            mel = self.lw.log_mel([clip.audio])[0].float().cpu().numpy()
        n = max(1, min(mel.shape[1], int(math.ceil(clip.duration / MEL_FRAME_SECONDS))))
        mel = mel[:, :n]
        lo, hi = float(mel.min()), float(mel.max())
        scaled = np.round((mel - lo) / max(hi - lo, 1e-6) * 255)
        return {
            "id": clip.id,
            "name": clip.name,
            "seconds": round(clip.duration, 3),
            "reference": clip.reference,
            "transcript": clip.transcript,
            "words": [
                {"word": w["word"], "start": round(w["start"], 3), "end": round(w["end"], 3)} for w in clip.words
            ],
            "spectrogram": {
                "n_mels": int(mel.shape[0]),
                "frames": int(n),
                "frame_seconds": MEL_FRAME_SECONDS,
                "mel_hz": self._mel_hz,
                "data": _b64(scaled),
            },
        }

    def features(self, clip: Clip, sae_name: str | None = None, hook: str | None = None, top: int = 12) -> dict:
        """The ``top`` features with the highest peak activation on the clip, and their activations over
        the clip's encoder frames (a heat strip, uint8 base64 [top, frames], each row scaled to its own peak)."""
        entry = self.sae_for(sae_name, hook)
        if not 1 <= int(top) <= self.limits.max_top:
            raise RequestError(f"top {top} must be 1..{self.limits.max_top}", 422)
        key = (entry.name, int(top))
        if key in clip.features:
            return clip.features[key]
        if entry.hook.startswith("decoder"):
            raise RequestError(
                f"SAE {entry.name!r} reads decoder hook {entry.hook!r}: the heat strip shows encoder frames; "
                "edit its features by id instead",
                422,
            )
        from whisper_sae.whisper import encode_clips

        with self.model_lock, torch.no_grad():
            acts = encode_clips(self.lw, [clip.audio], entry.hook)[0]
            codes = entry.sae.encode(acts.float().to(next(entry.sae.parameters()).device)).float().cpu().numpy()
        peaks = codes.max(0)
        order = [int(f) for f in np.argsort(-peaks, kind="stable")[: int(top)] if peaks[f] > 0]
        rows = codes[:, order].T if order else np.zeros((0, codes.shape[0]))
        scale = np.where(peaks[order] > 0, peaks[order], 1.0)[:, None] if order else np.ones((0, 1))
        strip = np.round(np.clip(rows / scale, 0, 1) * 255)
        result = {
            "sae": entry.name,
            "hook": entry.hook,
            "frames": int(codes.shape[0]),
            "frame_seconds": FRAME_SECONDS,
            "active": int((codes > 0).any(0).sum()),
            "features": [
                {
                    "id": f,
                    "peak": round(float(peaks[f]), 4),
                    "mean": round(float(codes[:, f].mean()), 4),
                    "peak_time": round((int(codes[:, f].argmax()) + 0.5) * FRAME_SECONDS, 3),
                    **entry.label(f),
                }
                for f in order
            ],
            "strip": _b64(strip),
        }
        clip.features[key] = result
        return result

    # ------------------------------------------------------------------ editing

    def parse_edits(self, clip: Clip, raw: list[dict]) -> list:
        """API edits (``{"sae", "features", "mode", "value", "t0", "t1", "active_only", "gate"}``) to checked ``Edit``
        objects."""
        from whisper_sae.analysis.interventions import Edit, check_edit

        if not isinstance(raw, list):
            raise RequestError("edits must be a list", 422)
        edits = []
        for i, e in enumerate(raw):
            if not isinstance(e, dict):
                raise RequestError(f'edit {i + 1} must be an object like {{"features": [12], "mode": "ablate"}}', 422)
            entry = self.sae_for(e.get("sae"), e.get("hook"))
            features = e.get("features")
            if isinstance(features, int):
                features = [features]
            if not features or not all(isinstance(f, int) and not isinstance(f, bool) for f in features):
                raise RequestError(f"edit {i + 1}: features must be a non-empty list of feature ids", 422)
            bad = [f for f in features if not 0 <= f < entry.d_sae]
            if bad:
                raise RequestError(
                    f"edit {i + 1}: feature {bad[0]} is out of range; SAE {entry.name!r} has features 0..{entry.d_sae - 1}",
                    422,
                )
            t0, t1, value = e.get("t0"), e.get("t1"), e.get("value")
            try:
                frames = None
                if t0 is not None or t1 is not None:
                    frames = (float(t0 or 0.0), float("inf") if t1 is None else float(t1))
                value = None if value is None else float(value)
                active = bool(e.get("active_only", False))
                gate = None if e.get("gate") is None else float(e["gate"])
                edit = Edit(
                    entry.sae, features, str(e.get("mode", "ablate")), value, frames, entry.hook, False, active, gate
                )
                edits.append((entry, check_edit(self.lw, edit, [clip.audio])))
            except (ValueError, TypeError) as err:
                raise RequestError(f"edit {i + 1}: {err}", 422) from None
        return edits

    def command(self, clip: Clip, edits: list) -> list[str]:
        """The ``whisper-sae intervene`` command line of each edit (one line per edit)."""
        model = f" --model {shlex.quote(self.model_spec)}" if self.model_spec else ""
        lines = []
        for entry, edit in edits:
            feats = ",".join(str(f) for f in ([edit.feature] if isinstance(edit.feature, int) else edit.feature))
            parts = [f"whisper-sae intervene {shlex.quote(entry.name)} {shlex.quote(clip.name)} --feature {feats}"]
            parts.append(f"--mode {edit.mode}")
            if edit.value is not None and edit.mode != "ablate":
                parts.append(f"--value {edit.value:g}")
            if edit.frames is not None:
                t0, t1 = edit.frames
                parts.append(f"--frames {t0:g}:{'' if math.isinf(t1) else f'{t1:g}'}")
            if edit.active_only:
                parts.append("--active-only")
            lines.append(" ".join(parts) + model)
        return lines

    def edit(self, clip: Clip, raw_edits: list[dict], reference: str | None = None) -> dict:
        """Re-transcribe ``clip`` with the stack ``raw_edits``; the word diff against the clean transcript,
        and the change in the reference's cross-entropy when a reference is given (or known for the clip)."""
        from whisper_sae.analysis.interventions import reference_ce, transcribe_edited

        edits = self.parse_edits(clip, raw_edits)
        checked = [e for _, e in edits]
        with self.model_lock:
            after = transcribe_edited(self.lw, [clip.audio], checked)[0] if checked else clip.transcript
        out = {
            "clean": clip.transcript,
            "edited": after,
            "changed": after != clip.transcript,
            "diff": word_diff(clip.transcript, after),
            "commands": self.command(clip, edits),
        }
        reference = (reference or "").strip() or None
        if reference is not None:
            with self.model_lock:
                if reference not in clip.ce_clean:
                    clip.ce_clean[reference] = reference_ce(self.lw, clip.audio, reference)
                ce_clean = clip.ce_clean[reference]
                ce_edited = reference_ce(self.lw, clip.audio, reference, checked) if checked else ce_clean
            out.update(reference=reference, ce_clean=round(ce_clean, 4), ce_edited=round(ce_edited, 4))
            out["ce_change"] = round(ce_edited - ce_clean, 4)
        return out


# ---------------------------------------------------------------------------------------- building


def load_saes(specs: list[str], lw, *, dashboards: dict[str, str] | None = None) -> list[LoadedSAE]:
    """Each SAE (a folder or a shipped name) with its analysis and probe where they exist in their default
    place (``output_dir_for``), and its dashboard folder from ``dashboards`` ({spec: folder})."""
    from whisper_sae.analysis import load_analysis
    from whisper_sae.analysis.checks import check_sae_analysis, check_sae_model
    from whisper_sae.artifacts import open_sae, output_dir_for

    dashboards = dict(dashboards or {})
    unknown = set(dashboards) - set(specs)
    if unknown:
        raise ValueError(
            f"--dashboard names SAE {sorted(unknown)[0]!r}, which is not served; serve it or drop the name"
        )
    out = []
    for spec in specs:
        sae, folder = open_sae(spec)
        hook = sae.cfg.hook_name
        check_sae_model(sae, folder, lw, hook)
        analysis = selectivity = None
        analysis_dir = output_dir_for(spec, "analysis")
        if analysis_dir is not None and (analysis_dir / "analysis.json").is_file():
            analysis = load_analysis(analysis_dir)
            check_sae_analysis(sae, folder, analysis, hook)
        probe_json = output_dir_for(spec, "probe") / "probe.json"
        if probe_json.is_file():
            from whisper_sae.analysis.dashboard.selectivity import load_selectivity

            selectivity = load_selectivity([probe_json], d_sae=int(sae.cfg.d_sae), hook=hook)
        dash = dashboards.get(spec)
        if dash is not None and not (Path(dash) / "index.html").is_file():
            raise FileNotFoundError(
                f"--dashboard {dash} holds no index.html; give the folder `whisper-sae dashboard --out` wrote"
            )
        out.append(LoadedSAE(spec, sae, folder, hook, analysis, selectivity, Path(dash).resolve() if dash else None))
    return out


def load_corpus_index(corpus: str | None = None, store: str | None = None, max_utterances: int = 500) -> dict | None:
    """{utterance id: Utterance} of ``corpus`` (or of the corpus ``store`` was extracted from), first N."""
    if corpus is None and store is not None:
        from whisper_sae.artifacts import open_store

        corpus = open_store(store).corpus
        if corpus is None:
            raise ValueError(f"store {store} records no corpus; pass --corpus")
    if corpus is None:
        return None
    from whisper_sae.artifacts import open_corpus

    utts, _ = open_corpus(corpus, max_utterances=max_utterances)
    return {u.id: u for u in utts}
