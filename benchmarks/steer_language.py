"""Steering stage of benchmarks/language.py: ablate or clamp language-selective SAE features and read Whisper's
language detection (language-token probabilities at the first decoder step) and its greedy transcript.

Each clip runs once through Whisper's encoder (its padded 30-s window, as Whisper hears it); an edit at
``encoder.out`` is applied to that output with ``analysis.interventions.edit_fn`` (the SAE's error term kept),
an edit at an earlier hook reruns the encoder under ``whisper.patch``. Conditions:

  base              no edit
  ablate-own        the clip's language's selective features set to 0 on the frames of real audio
  ablate-own-all    the same on all 1500 positions (the padding too, which the decoder also reads)
  ablate-random     as many random features (none selective for any language), all positions: the control
  clamp-target x1/x4  the target language's selective features set to their typical value (x1, x4) on real
                    frames (target: German, or English for German clips)
"""

from __future__ import annotations

import json

import numpy as np
import torch
from tqdm.auto import tqdm

from whisper_sae.analysis.interventions import _frame_mask, edit_fn
from whisper_sae.artifacts import open_corpus, open_model, open_sae
from whisper_sae.audio.constants import SAMPLE_RATE
from whisper_sae.whisper import frames_for_duration, patch
from whisper_sae.whisper.language import language_probabilities_from_encoder

MAX_NEW_TOKENS = 24
# Conditions also transcribed (the others only read the language detection), to bound decoding time.
TRANSCRIBED = ("base", "ablate-own-all", "clamp-target x4")


def _pick_clips(work, per_language: int, real_speakers: int) -> list:
    """Held-out synthetic clips (``per_language`` voices per language, one clip each) and real clips (one per
    speaker of EmoDB and LibriSpeech, ``real_speakers`` each)."""
    picked, seen = [], {}
    specs = [(str(work / "synth-probe"), per_language, "synth")]
    if (work / "emodb-subset").exists():
        specs.append((f"emodb=emodb:{work / 'emodb-subset'}", real_speakers, "emodb"))
    if (work / "libri-subset").exists():
        specs.append((f"librispeech={work / 'libri-subset'}", real_speakers, "librispeech"))
    for spec, limit, corpus in specs:
        utterances, _ = open_corpus(spec)
        for utt in utterances:
            lang = utt.attributes.get("language") or "en"
            key = (corpus, lang)
            voices = seen.setdefault(key, set())
            if utt.speaker in voices or len(voices) >= limit or utt.duration > 8.0:
                continue
            voices.add(utt.speaker)
            picked.append((corpus, lang, utt))
    return picked


def _typical_values(work, sae, hook: str, features: dict[str, list[int]]) -> dict[str, float]:
    """Per language, the 90th percentile of its selective features' non-zero activations on its own frames
    (held-out voices): the value a clamp sets them to (x1)."""
    from whisper_sae.activations.store import ActivationStore
    from whisper_sae.analysis.features.codes import store_codes

    values: dict[str, list[np.ndarray]] = {lang: [] for lang in features}
    for rec, uc in store_codes(ActivationStore(work / "store-probe-synth"), sae, hook):
        lang = (rec.get("attributes") or {}).get("language")
        if lang in features:
            part = uc.codes[:, features[lang]]
            values[lang].append(part[part > 0])
    return {
        lang: float(np.percentile(np.concatenate(v), 90)) if v and np.concatenate(v).size else 1.0
        for lang, v in values.items()
    }


def run_steering(work, selective: dict, sae_dir, hooks, args) -> dict:
    torch.manual_seed(0)
    lw = open_model("base")
    clips = _pick_clips(work, args.steer_per_language, args.steer_real_speakers)
    out = {"clips": [], "conditions": {}, "max_new_tokens": MAX_NEW_TOKENS}
    for hook in hooks:
        sae, _ = open_sae(str(sae_dir(work, hook)))
        feats = {lang: [r["feature"] for r in rows] for lang, rows in selective[hook].items()}
        all_selective = {f for fs in feats.values() for f in fs}
        rng = np.random.default_rng(0)
        pool = np.array([f for f in range(sae.cfg.d_sae) if f not in all_selective])
        random_feats = [int(f) for f in rng.choice(pool, size=args.top, replace=False)]
        typical = _typical_values(work, sae, hook, feats)
        out["conditions"][hook] = {"features": feats, "random": random_feats, "typical": typical}
        rows = []
        for corpus, lang, utt in tqdm(clips, desc=f"steer {hook}", unit="clip"):
            audio = utt.audio[: 30 * SAMPLE_RATE]
            features = lw.log_mel([audio])
            with torch.inference_mode():
                hidden = lw.model.model.encoder(features).last_hidden_state
            n_real = frames_for_duration(len(audio) / SAMPLE_RATE)
            real = _frame_mask([n_real], None, lw.config.max_source_positions)
            everywhere = torch.ones_like(real)
            own = feats.get(lang) or feats.get("en")
            target = "en" if lang == "de" else "de"
            conditions = [
                ("base", None),
                ("ablate-own", edit_fn(sae, own, "ablate", None, real)),
                ("ablate-own-all", edit_fn(sae, own, "ablate", None, everywhere)),
                ("ablate-random", edit_fn(sae, random_feats, "ablate", None, everywhere)),
                ("clamp-target x1", edit_fn(sae, feats[target], "clamp", typical[target], real)),
                ("clamp-target x4", edit_fn(sae, feats[target], "clamp", 4 * typical[target], real)),
            ]
            for name, fn in conditions:
                if fn is None:
                    edited = hidden
                elif hook == "encoder.out":
                    edited = fn(hidden)
                else:
                    with torch.inference_mode(), patch(lw.model, hook, fn):
                        edited = lw.model.model.encoder(features).last_hidden_state
                probs = language_probabilities_from_encoder(lw, edited)
                top = probs.top()[0]
                tokens = (
                    lw.greedy_from_encoder(edited, lw.prompt_for(top), MAX_NEW_TOKENS)[0]
                    if name in TRANSCRIBED
                    else None
                )
                rows.append(
                    {
                        "hook": hook,
                        "clip": utt.id,
                        "corpus": corpus,
                        "language": lang,
                        "target": target,
                        "condition": name,
                        "detected": top,
                        "p_own": float(probs.of(lang)[0]),
                        "p_target": float(probs.of(target)[0]),
                        "transcript": None
                        if tokens is None
                        else lw.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                        "reference": utt.text,
                    }
                )
                with open(work / "steer-rows.jsonl", "a") as fh:  # partial results survive an interrupted run
                    fh.write(json.dumps(rows[-1]) + "\n")
        out["clips"].extend(rows)
    return out
