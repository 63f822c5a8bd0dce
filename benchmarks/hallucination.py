"""Whisper's hallucination rate on audio without speech: the share of clips transcribed with words, per kind.

    whisper-sae corpus nonspeech --out runs/nonspeech --per-kind 8 --seed 0
    nice -n 10 python benchmarks/hallucination.py --model tiny.en --corpus runs/nonspeech [--json out.json]

Prints the table of ``whisper_sae.circuits.hallucination_rate`` (the figures of docs/hallucination-report.md)
and the wall time; --json writes every clip's transcript and no-speech probability.

With --steer, the steering experiment of the report's second part: choose hallucination features of --sae
on the --corpus clips (a TRAIN split) against --speech-select clips, then for each --top N and --clamp c
measure the hallucination rate on the --heldout clips and the WER on --wer-corpus (real speech), next to
clean Whisper, the SAE spliced with its error term and no edit, and a no-speech-probability gate:

    whisper-sae corpus nonspeech --out runs/ns-train --per-kind 8 --seed 1
    nice -n 5 python benchmarks/hallucination.py --steer --model tiny.en --sae runs/sae-tiny.en \
        --corpus runs/ns-train --heldout runs/nonspeech --speech-select runs/speech-select \
        --wer-corpus data/librispeech/test-clean --top 4,16,64 --clamp 0,-1 --json steer-tiny.en.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from whisper_sae.circuits import hallucination_rate


def _summary(result) -> dict:
    """The overall rate, counts and mean no-speech probability of a ``HallucinationResult``, and its groups."""
    keys = ("rate", "hallucinated", "clips", "no_speech_prob")
    return {**{k: result.overall[k] for k in keys}, "groups": result.groups}


def _gate(result, threshold: float) -> float:
    """Hallucination rate when every window with P(no speech) above ``threshold`` is dropped."""
    kept = [c for c in result.clips if c["hallucinated"] and (c["no_speech_prob"] or 0.0) <= threshold]
    return len(kept) / len(result.clips)


def _gated_wer(refs, hyps, probs, threshold: float) -> float:
    from whisper_sae.evaluate.metrics import corpus_wer

    return corpus_wer(refs, [("" if p > threshold else h) for h, p in zip(hyps, probs)])


def steer(args) -> None:
    """The steering sweep (see the module docstring); prints the tables, writes --json and --spec-out."""
    from whisper_sae.artifacts import open_corpus, open_model, open_sae
    from whisper_sae.circuits.hallucination_features import select_hallucination_features
    from whisper_sae.circuits.steering import SteeringSpec, steered_wer

    t0 = time.time()
    sae, sae_dir = open_sae(args.sae)
    lw = open_model(args.model, sae=sae)
    selection = select_hallucination_features(
        sae, args.corpus, args.speech_select, model=lw, max_new_tokens=args.max_new_tokens, progress=True
    )
    selection.meta["sae"] = str(sae_dir)
    print(f"selection on {args.corpus}: clips {selection.meta['clips']}, {time.time() - t0:.0f} s")
    print(selection.table(max(args.top)))
    configs: dict[str, SteeringSpec | None] = {"clean Whisper": None, "SAE + error term, no edit": SteeringSpec([])}
    for n in args.top:
        for c in args.clamp:
            name = f"top {n}, " + ("ablate" if c == 0 else f"clamp {c:g} x mean")
            configs[name] = selection.spec(n, c, padding=args.padding)
            if args.active_only and c != 0:  # (an ablation is the same either way)
                configs[name + ", active frames"] = selection.spec(n, c, padding=args.padding, active_only=True)
            if args.feature_gate:
                configs[name + ", feature-gated"] = selection.spec(n, c, padding=args.padding, gated=True)
    heldout, *extra = args.heldout
    rows, heldout_cache, wer_cache = {}, {}, {}  # clean encoder outputs, computed once (specs at encoder.out)
    extra_caches = {c: {} for c in extra}
    for name, spec in configs.items():
        t = time.time()
        result = hallucination_rate(
            lw,
            heldout,
            max_new_tokens=args.max_new_tokens,
            steering=spec,
            sae=sae,
            progress=False,
            encoder_cache=heldout_cache,
        )
        others = {}
        for corpus in extra:
            other = hallucination_rate(
                lw,
                corpus,
                max_new_tokens=args.max_new_tokens,
                steering=spec,
                sae=sae,
                progress=False,
                encoder_cache=extra_caches[corpus],
            )
            others[corpus] = {**_summary(other), "transcripts": {c["id"]: c["transcript"] for c in other.clips}}
        rows[name] = {
            **_summary(result),
            "spec": None if spec is None else spec.to_dict(),
            "extra_heldout": others,
            "seconds": round(time.time() - t, 1),
        }
        if name == "clean Whisper":
            clean_result = result
        more = "".join(f"; {c}: {o['hallucinated']}/{o['clips']}" for c, o in others.items())
        print(f"  {name}: {result.overall['hallucinated']}/{result.overall['clips']}{more} ({time.time() - t:.0f} s)")
    t = time.time()
    wers = steered_wer(sae, lw, args.wer_corpus, configs, max_utterances=args.max_utterances, encoder_cache=wer_cache)
    print(f"WER on {args.wer_corpus}: {time.time() - t:.0f} s")
    for name in rows:
        rows[name]["wer"] = wers[name]["wer"]
        rows[name]["changed"] = wers[name]["changed"]
        rows[name]["transcripts"] = wers[name]["transcripts"]
    base_wer = rows["SAE + error term, no edit"]["wer"]
    # The no-speech gate: P(no speech) of each speech utterance, read as hallucination_rate reads it.
    utts, _ = open_corpus(args.wer_corpus, args.max_utterances)
    utts = [u for u in utts if (u.text or "").strip() and u.duration <= 30]
    # (one window per utterance, batches of 8 as steered_wer made them: its cached encoder outputs serve)
    probs = hallucination_rate(lw, utts, max_new_tokens=1, encoder_cache=wer_cache).clips
    speech_probs = [c["no_speech_prob"] for c in probs]
    refs, clean_hyps = [u.text for u in utts], wers["clean Whisper"]["transcripts"]
    gates = {
        thr: {
            "rate": _gate(clean_result, thr),
            "wer": _gated_wer(refs, clean_hyps, speech_probs, thr),
            "speech_dropped": int(sum(p > thr for p in speech_probs)),
        }
        for thr in args.gate
    }
    lines = [
        "| condition | edits | held-out hallucinated | rate | mean P(no speech) | test-clean WER | Δ WER vs no edit "
        "| utts changed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        edits = "-" if r["spec"] is None else len(r["spec"]["edits"])
        lines.append(
            f"| {name} | {edits} | {r['hallucinated']}/{r['clips']} | {r['rate']:.0%} | {r['no_speech_prob']:.2f} | "
            f"{r['wer']:.2%} | {100 * (r['wer'] - base_wer):+.2f} | {r['changed']} |"
        )
    for thr, g in gates.items():
        lines.append(
            f"| gate: clean, drop P(no speech) > {thr:g} | - | - | {g['rate']:.0%} | - | {g['wer']:.2%} | "
            f"{100 * (g['wer'] - rows['clean Whisper']['wer']):+.2f} (vs clean) | {g['speech_dropped']} dropped |"
        )
    for corpus in extra:
        lines += ["", f"Held-out {corpus}:", "", "| condition | hallucinated | rate | mean P(no speech) | "
                  + " | ".join(rows["clean Whisper"]["extra_heldout"][corpus]["groups"]) + " |",
                  "| --- | ---: | ---: | ---: |" + " ---: |" * len(rows["clean Whisper"]["extra_heldout"][corpus]["groups"])]  # fmt: skip
        for name, r in rows.items():
            o = r["extra_heldout"][corpus]
            per = " | ".join(f"{g['hallucinated']}/{g['clips']}" for g in o["groups"].values())
            lines.append(
                f"| {name} | {o['hallucinated']}/{o['clips']} | {o['rate']:.0%} | {o['no_speech_prob']:.2f} | {per} |"
            )
    print("\n".join(lines))
    print(f"speech P(no speech): max {max(speech_probs):.3f}, mean {np.mean(speech_probs):.3f}")
    ok = [
        (r["rate"], name)
        for name, r in rows.items()
        if r["spec"] is not None and r["spec"]["edits"] and 100 * (r["wer"] - base_wer) <= 0.5
    ]
    best = min(ok)[1] if ok else None
    if best and args.spec_out:
        SteeringSpec.from_dict(rows[best]["spec"]).save(args.spec_out)
        print(f"best within 0.5 WER points: {best}; spec written to {args.spec_out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "selection": {"meta": selection.meta, "top": selection.ranking[: max(args.top)]},
                    "rows": rows,
                    "gates": {str(k): v for k, v in gates.items()},
                    "speech_no_speech_prob": speech_probs,
                    "best": best,
                    "seconds": round(time.time() - t0, 1),
                    "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                    f"{torch.get_num_threads()} threads",
                },
                f,
                indent=1,
            )
    print(f"total {time.time() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en", help="tiny.en or base (or any load_whisper spec)")
    parser.add_argument("--corpus", required=True, help="a non-speech corpus (whisper-sae corpus nonspeech)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=96, help="tokens per transcript (--steer: use 16)")
    parser.add_argument("--json", default=None, help="write the full result (every clip) here")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--steer", action="store_true", help="run the steering sweep instead (module docstring)")
    parser.add_argument("--sae", default=None, help="--steer: the SAE whose features are chosen and steered")
    parser.add_argument(
        "--heldout",
        action="append",
        default=None,
        help="--steer: held-out non-speech clips (other seed); repeat for more sets (e.g. real recordings made "
        "with `whisper-sae corpus cut`), each reported in its own table",
    )
    parser.add_argument("--speech-select", default=None, help="--steer: speech clips contrasted in the selection")
    parser.add_argument("--wer-corpus", default=None, help="--steer: transcribed speech for the WER")
    parser.add_argument("--max-utterances", type=int, default=None, help="--steer: at most N WER utterances")
    _ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    _floats = lambda s: [float(x) for x in s.split(",")]  # noqa: E731
    parser.add_argument("--top", type=_ints, default=[4, 16, 64], help="--steer: numbers of features, e.g. 4,16")
    parser.add_argument("--clamp", type=_floats, default=[0.0, -1.0], help="--steer: 0 = ablate, c = c x mean")
    parser.add_argument("--padding", action="store_true", help="--steer: also edit the window's padding frames")
    parser.add_argument(
        "--active-only",
        action="store_true",
        help="--steer: also run every clamp on only the frames where each feature fires",
    )
    parser.add_argument(
        "--feature-gate",
        action="store_true",
        help="--steer: also run every edit gated per clip by the edited features' own activation "
        "(FeatureSelection.gate_threshold)",
    )
    parser.add_argument("--gate", type=_floats, default=[0.6, 0.3], help="--steer: no-speech gate thresholds")
    parser.add_argument("--spec-out", default=None, help="--steer: write the best spec within 0.5 WER points here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steer:
        missing = [f for f in ("sae", "heldout", "wer_corpus") if getattr(args, f) is None]
        if missing:
            parser.error(f"--steer needs --{', --'.join(m.replace('_', '-') for m in missing)}")
        steer(args)
        return
    start = time.time()
    result = hallucination_rate(
        args.model, args.corpus, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, progress=True
    )
    elapsed = time.time() - start
    m = result.meta
    print(
        f"{m['model']} on {result.overall['clips']} clips ({m['seconds'] / 60:.1f} min) of {m['corpus']}; greedy, "
        f"at most {m['max_new_tokens']} new tokens; {elapsed:.0f} s on {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(result.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=1)


if __name__ == "__main__":
    main()
