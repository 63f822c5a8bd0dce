"""Search for interpretable interventions: per phone, ablate every feature labelled with it on a clip,
and swap one phone for another (ablate the features of phone Q, clamp the best feature of phone P
on the frames of one Q) — then compare transcripts. Writes JSON lines to --out.

    python benchmarks/analysis_interventions.py SAE_DIR --alignments-dir DIR [--phones 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from whisper_sae.analysis import AnalysisResult
from whisper_sae.analysis.features.labels import AlignmentIndex
from whisper_sae.analysis.interventions import _frame_mask, edit_fn
from whisper_sae.artifacts import open_model, open_sae
from whisper_sae.audio import SAMPLE_RATE, load_audio
from whisper_sae.whisper import frames_for_duration, patch


def transcribe_with(lw, sae, audio, edits):
    """Transcript with the given (features, mode, value, (t0, t1) | None) edits applied together."""
    from contextlib import ExitStack

    n = frames_for_duration(len(audio) / SAMPLE_RATE)
    with ExitStack() as stack:
        for feats, mode, value, frames in edits:
            mask = _frame_mask([n], frames, lw.config.max_source_positions)
            stack.enter_context(patch(lw.model, sae.cfg.hook_name, edit_fn(sae, feats, mode, value, mask)))
        return lw.transcribe([audio])[0]


def groups(result: AnalysisResult, min_f1: float) -> dict[str, list[int]]:
    """Features per phone label (F1 above ``min_f1``), best first."""
    out: dict[str, list[int]] = {}
    f1 = result.arrays["phone_f1"]
    for f in np.argsort(-f1):
        if f1[f] < min_f1:
            break
        out.setdefault(result.phone_vocab[result.arrays["phone_label"][f]], []).append(int(f))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sae_dir")
    ap.add_argument("--alignments-dir", required=True)
    ap.add_argument("--phones", type=int, default=5)
    ap.add_argument("--min-f1", type=float, default=0.35)
    ap.add_argument("--max-seconds", type=float, default=7.0)
    ap.add_argument("--out", default="interventions.jsonl")
    ap.add_argument("--clamp-scale", type=float, default=2.0, help="clamp value as a multiple of the feature's max")
    ap.add_argument(
        "--span",
        choices=["phone", "word"],
        default="phone",
        help="swap on the phone's frames or on the whole word that starts with it",
    )
    args = ap.parse_args(argv)
    sae, _ = open_sae(args.sae_dir)
    result = AnalysisResult.load(Path(args.sae_dir) / "analysis")
    lw = open_model(result.meta.get("model_spec"), sae=sae)
    index = AlignmentIndex(args.alignments_dir)
    clips = sorted(
        (u for u in result.utterances if u["duration"] <= args.max_seconds and u.get("path")),
        key=lambda u: u["duration"],
    )
    by_phone = groups(result, args.min_f1)
    phones = [p for p, fs in sorted(by_phone.items(), key=lambda kv: -len(kv[1])) if p != "_"][: args.phones]
    out = open(args.out, "w")
    cache = {}

    def before(u):
        if u["id"] not in cache:
            audio = load_audio(u["path"])
            cache[u["id"]] = (audio, lw.transcribe([audio])[0])
        return cache[u["id"]]

    def record(kind, u, edits, after, note):
        audio, text = before(u)
        row = {
            "kind": kind,
            "utt": u["id"],
            "before": text,
            "after": after,
            "changed": after != text,
            "edits": [[list(map(int, f)) if not isinstance(f, int) else f, m, v, fr] for f, m, v, fr in edits],
            "note": note,
        }
        print(json.dumps(row), flush=True)
        out.write(json.dumps(row) + "\n")
        out.flush()

    for p in phones:
        feats = by_phone[p]

        # The shortest clip with the most frames of phone p.
        def p_frames(u, p=p):
            al = index.get(u["id"]) or {}
            return sum(ph["end"] - ph["start"] for ph in al.get("phones", []) if ph["phone"] == p)

        u = max(clips[:15], key=p_frames)
        audio, _ = before(u)
        edits = [(feats, "ablate", None, None)]
        record(
            "ablate_phone_group",
            u,
            edits,
            transcribe_with(lw, sae, audio, edits),
            f"ablate all {len(feats)} features labelled {p} (F1 >= {args.min_f1})",
        )
    # Swaps: on the first word starting with phone q, ablate q's features and clamp p's best feature.
    for p, q in zip(phones, phones[1:] + phones[:1]):
        best = by_phone[p][0]
        value = args.clamp_scale * float(result.arrays["max_act"][best])
        for u in clips[:15]:
            al = index.get(u["id"]) or {}
            hit = next((ph for ph in al.get("phones", []) if ph["phone"] == q), None)
            if hit is None:
                continue
            if args.span == "word":  # the word whose span holds the phone
                hit = next((w for w in al.get("words", []) if w["start"] <= hit["start"] < w["end"]), hit)
            audio, _ = before(u)
            frames = (float(hit["start"]), float(hit["end"]))
            edits = [(by_phone[q], "ablate", None, frames), ([best], "clamp", value, frames)]
            record(
                "swap_phone",
                u,
                edits,
                transcribe_with(lw, sae, audio, edits),
                f"{q} at {frames[0]:.2f}-{frames[1]:.2f} s: ablate {q} features, clamp feature {best} ({p}) to {value:.1f}",
            )
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
