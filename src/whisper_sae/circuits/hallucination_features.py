"""Which SAE features fire when Whisper hallucinates on audio without speech.

The non-speech clips of a training split are transcribed (``hallucination_rate``) and split into those
Whisper hallucinates on and those it correctly leaves empty; real speech clips form a third group. Each
clip is summarised by its features' mean activation over its real-audio frames (first 30-s window). A
feature's selectivity is its smallest standardised difference between the hallucinated clips and each
other group with at least ``min_clips`` clips:

    score = min over g of (mean_h - mean_g) / (sqrt((var_h + var_g) / 2) + s)

so a high score needs the feature to fire more on hallucinated clips than both on correctly empty
non-speech and on speech. ``s``, 10 % of the root mean square of all clip means (every feature and
group), keeps features with tiny but constant activations from topping the list. The top features become a ``SteeringSpec`` that ablates them (value 0) or clamps them
to ``clamp`` times their mean activation on the frames of hallucinated clips where they fire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from whisper_sae.artifacts import open_corpus, open_model, open_sae
from whisper_sae.audio.constants import SAMPLE_RATE, WINDOW_SECONDS
from whisper_sae.circuits.hallucination import DEFAULT_MAX_NEW_TOKENS, hallucination_rate
from whisper_sae.circuits.steering import SteeringSpec
from whisper_sae.whisper import HookPoint, frames_for_duration
from whisper_sae.whisper.hooks import encode_clips

GATE_FEATURES = 256
"""How many of the best-ranked features keep per-clip means in a selection (for feature gates)."""


@dataclass
class FeatureSelection:
    """``ranking``: one row per feature, best first (feature, score, mean activation per group, the
    share of frames it fires on per group, ``active_mean`` on hallucinated clips); ``meta``: SAE, model,
    corpora, clip counts per group."""

    meta: dict
    ranking: list[dict] = field(repr=False)
    clip_means: dict[str, list[list[float]]] | None = field(default=None, repr=False)
    """Per group, each clip's mean activation of the first ``GATE_FEATURES`` ranked features (the data a
    feature gate's threshold is chosen from)."""

    def gate_threshold(self, n: int) -> float:
        """The feature-gate threshold for the top ``n`` features: the geometric mean of the highest gate
        score (summed clip-mean activation of those features) of a speech clip and the median score of a
        hallucinated clip, so speech like the selection's stays below it with a margin."""
        if not self.clip_means or not self.clip_means.get("speech") or not self.clip_means.get("hallucinated"):
            raise ValueError(
                "a feature gate is chosen against speech clips; select with a speech corpus (--speech) first"
            )
        if n > len(self.clip_means["speech"][0]):
            raise ValueError(f"the selection keeps gate data for the top {len(self.clip_means['speech'][0])} features")
        speech = np.asarray(self.clip_means["speech"])[:, :n].sum(1)
        halluc = np.asarray(self.clip_means["hallucinated"])[:, :n].sum(1)
        top, mid = float(speech.max()), float(np.median(halluc))
        if mid <= top:
            raise ValueError(
                f"the top {n} features do not separate the clips: a speech clip scores {top:.4g}, the median "
                f"hallucinated clip {mid:.4g}; a gate would edit speech"
            )
        return float(np.sqrt(max(top, 1e-6) * mid))

    def spec(
        self, n: int, clamp: float = 0.0, *, padding: bool = False, active_only: bool = False, gated: bool = False
    ) -> SteeringSpec:
        """The top ``n`` features, each ablated (``clamp`` 0) or set to ``clamp`` x its mean active value
        (with ``active_only``: only on the frames where it fires; with ``gated``: only in clips whose gate
        score passes ``gate_threshold(n)``)."""
        if n < 1:
            raise ValueError(f"n must be at least 1 feature, got {n}")
        rows = self.ranking[:n]
        edits = [(r["feature"], round(clamp * r["active_mean"], 4) if clamp else 0.0) for r in rows]
        how = "ablated" if not clamp else f"clamped to {clamp:g} x their mean active value on hallucinated clips"
        if active_only:
            how += ", on the frames where each fires"
        gate = self.gate_threshold(n) if gated else None
        if gate is not None:
            how += f", in clips whose summed mean activation of them exceeds {gate:.4g}"
        return SteeringSpec(
            edits=edits,
            sae=self.meta.get("sae"),
            hook=self.meta.get("hook"),
            model=self.meta.get("model"),
            padding=padding,
            active_only=active_only,
            gate=gate,
            note=f"top {n} hallucination-selective features of {self.meta.get('nonspeech')}, {how}",
        )

    def table(self, n: int = 10) -> str:
        groups = self.meta["groups"]
        head = " | ".join(f"mean {g}" for g in groups)
        lines = [
            f"| feature | score | {head} | fires on hallucinated frames |",
            "| ---: | ---: |" + " ---: |" * (len(groups) + 1),
        ]
        for r in self.ranking[:n]:
            means = " | ".join("–" if r["mean"][g] is None else f"{r['mean'][g]:.3f}" for g in groups)
            lines.append(f"| {r['feature']} | {r['score']:.2f} | {means} | {r['fires']['hallucinated']:.1%} |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"meta": self.meta, "ranking": self.ranking, "clip_means": self.clip_means}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureSelection:
        data = json.loads(Path(path).read_text())
        return cls(meta=data["meta"], ranking=data["ranking"], clip_means=data.get("clip_means"))


def selectivity(target: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """Per feature, the smallest standardised difference of mean clip activation between ``target``
    [n_t, F] and each array of ``others`` (see the module docstring); -inf where ``others`` is empty."""
    if not others:
        raise ValueError("selectivity needs at least one group to contrast the hallucinated clips with")
    mu_t, var_t = target.mean(0), target.var(0)
    floor = 0.1 * float(np.sqrt(np.mean(np.concatenate([target, *others]) ** 2))) + 1e-6
    score = np.full(target.shape[1], np.inf)
    for other in others:
        pooled = np.sqrt((var_t + other.var(0)) / 2) + floor
        score = np.minimum(score, (mu_t - other.mean(0)) / pooled)
    return score


@torch.no_grad()
def clip_activations(
    sae, lw, audios: list[np.ndarray], *, batch_size: int = 8, progress: bool = False, encoder_cache=None
) -> dict:
    """Per clip (first 30-s window, real-audio frames): ``mean`` [n, F] activation, ``fires`` [n, F]
    share of frames where the feature is on, ``active_sum`` [n, F] summed activation and ``frames`` [n].
    ``encoder_cache`` (batch start -> encoder outputs [B, 1500, d] of these clips, in batches of
    ``batch_size``, as ``hallucination_rate`` fills it) saves running the encoder again for an
    ``encoder.out`` SAE."""
    hook = HookPoint.parse(sae.cfg.hook_name, lw.config)
    if hook.side != "encoder":
        raise ValueError(f"hallucination features are chosen on encoder frames; the SAE reads {hook.name}")
    means, fires, sums, frames = [], [], [], []
    limit = int(WINDOW_SECONDS * SAMPLE_RATE)
    for start in tqdm(range(0, len(audios), batch_size), desc="clip features", disable=not progress):
        chunk = [np.asarray(a[:limit], dtype=np.float32) for a in audios[start : start + batch_size]]
        if encoder_cache is not None and hook.name == "encoder.out" and start in encoder_cache:
            real = [frames_for_duration(len(a) / SAMPLE_RATE) for a in chunk]
            clips = [encoder_cache[start][i, :n] for i, n in enumerate(real)]
        else:
            clips = encode_clips(lw, chunk, hook.name)
        for acts in clips:
            codes = sae.encode(acts.float())
            means.append(codes.mean(0).cpu().numpy())
            fires.append((codes > 0).float().mean(0).cpu().numpy())
            sums.append(codes.sum(0).cpu().numpy())
            frames.append(codes.shape[0])
    return {"mean": np.stack(means), "fires": np.stack(fires), "active_sum": np.stack(sums), "frames": np.array(frames)}


def rank_features(groups: dict[str, dict], *, min_clips: int = 2) -> list[dict]:
    """Rank features by ``selectivity`` of group "hallucinated" against every other group holding at
    least ``min_clips`` clips. ``groups``: name -> ``clip_activations`` output."""
    if "hallucinated" not in groups or len(groups["hallucinated"]["mean"]) < min_clips:
        raise ValueError(f"feature selection needs at least {min_clips} hallucinated clips")
    others = [g for g in groups if g != "hallucinated" and len(groups[g]["mean"]) >= min_clips]
    if not others:
        raise ValueError(f"feature selection needs a group to contrast with (at least {min_clips} clips)")
    score = selectivity(groups["hallucinated"]["mean"], [groups[g]["mean"] for g in others])
    h = groups["hallucinated"]
    on = (h["fires"] * h["frames"][:, None]).sum(0)
    active_mean = np.where(on > 0, h["active_sum"].sum(0) / np.maximum(on, 1), 0.0)
    order = np.argsort(-score, kind="stable")
    ranking = []
    for f in order.tolist():
        ranking.append(
            {
                "feature": f,
                "score": float(score[f]),
                "mean": {g: float(groups[g]["mean"][:, f].mean()) if len(groups[g]["mean"]) else None for g in groups},
                "fires": {
                    g: float(groups[g]["fires"][:, f].mean()) if len(groups[g]["mean"]) else None for g in groups
                },
                "active_mean": float(active_mean[f]),
            }
        )
    return ranking


def select_hallucination_features(
    sae,
    nonspeech,
    speech=None,
    *,
    model=None,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    max_clips: int | None = None,
    min_clips: int = 2,
    device=None,
    progress: bool = False,
) -> FeatureSelection:
    """Rank ``sae``'s features by how selectively they fire on the clips of ``nonspeech`` (a corpus
    spec or utterances) that ``model`` hallucinates on, against the clips it leaves empty and the
    clips of ``speech`` (real speech, optional). ``max_new_tokens`` bounds the transcripts that label
    the clips (whether one holds a word shows in its first tokens)."""
    given = sae
    sae, sae_dir = open_sae(sae, device)
    lw = open_model(model, sae=sae, device=device)
    clips, ns_spec = open_corpus(nonspeech, max_clips)
    clips = [u for u in clips if len(u.audio)]
    # One window per clip (clips of at most 30 s): the labelling pass's encoder outputs serve the features too.
    cache = {} if all(len(u.audio) <= WINDOW_SECONDS * SAMPLE_RATE for u in clips) else None
    labels = hallucination_rate(
        lw,
        clips,
        batch_size=batch_size,
        max_new_tokens=min(max_new_tokens, DEFAULT_MAX_NEW_TOKENS),
        progress=progress,
        encoder_cache=cache,
    )
    flags = [c["hallucinated"] for c in labels.clips]
    acts = clip_activations(
        sae, lw, [u.audio for u in clips], batch_size=batch_size, progress=progress, encoder_cache=cache
    )
    del cache
    groups = {
        "hallucinated": {k: v[np.array(flags, bool)] for k, v in acts.items()},
        "empty": {k: v[~np.array(flags, bool)] for k, v in acts.items()},
    }
    speech_spec = None
    if speech is not None:
        utts, speech_spec = open_corpus(speech, max_clips)
        audios = [u.audio for u in utts if len(u.audio)]
        groups["speech"] = clip_activations(sae, lw, audios, batch_size=batch_size, progress=progress)
    ranking = rank_features(groups, min_clips=min_clips)
    meta = {
        "sae": str(sae_dir) if sae_dir is not None else (given if isinstance(given, str) else None),
        "hook": sae.cfg.hook_name,
        "model": lw.name,
        "nonspeech": str(ns_spec),
        "speech": None if speech_spec is None else str(speech_spec),
        "groups": list(groups),
        "clips": {g: int(len(v["mean"])) for g, v in groups.items()},
        "contrasted": [g for g in groups if g != "hallucinated" and len(groups[g]["mean"]) >= min_clips],
        "max_new_tokens": labels.meta["max_new_tokens"],
        "hallucination_rate": labels.overall["rate"],
    }
    top = [r["feature"] for r in ranking[:GATE_FEATURES]]
    clip_means = {g: np.round(v["mean"][:, top], 6).tolist() for g, v in groups.items()}
    return FeatureSelection(meta=meta, ranking=ranking, clip_means=clip_means)
