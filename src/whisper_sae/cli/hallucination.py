"""``whisper-sae hallucination rate|select``: Whisper's words on audio without speech, and the SAE
features that fire when it writes them (see ``whisper_sae.circuits.hallucination``)."""

from __future__ import annotations

import argparse
import json

from whisper_sae.cli import common

EPILOG = """\
examples:
  whisper-sae corpus nonspeech --out runs/ns-train --seed 1
  whisper-sae hallucination rate --model tiny.en --corpus runs/ns-train
  whisper-sae hallucination select runs/sae-tiny --nonspeech runs/ns-train --speech data/speech \\
      --top 8 --out runs/steer.json
  whisper-sae hallucination rate --corpus runs/ns-heldout --steer-file runs/steer.json
  whisper-sae intervene runs/sae-tiny clip.flac --steer-file runs/steer.json
"""


def register(subparsers) -> None:
    group = subparsers.add_parser(
        "hallucination",
        help="hallucination rate on non-speech audio; select SAE features to steer it down",
        description="How often Whisper writes words for audio without speech (`rate`), and which SAE features "
        "fire when it does (`select`, which writes a steering spec that `rate --steer-file` and `intervene "
        "--steer-file` apply).",
        epilog=EPILOG,
    )
    sub = group.add_subparsers(dest="hallucination_command", metavar="ACTION")  # none given: this help

    rate = sub.add_parser(
        "rate",
        help="share of clips transcribed with words, per kind (optionally with a steering spec applied)",
        description="Greedy transcripts of each clip; a clip counts when a letter or digit is left after "
        "Whisper's English normaliser. Prints the per-kind table; --json writes every clip.",
    )
    rate.add_argument("--corpus", required=True, help="non-speech corpus (whisper-sae corpus nonspeech --out DIR)")
    common.add_model(rate, default_help="tiny.en, or the steering spec's model")
    rate.add_argument("--steer-file", default=None, metavar="JSON", help="steering spec to apply")
    rate.add_argument("--sae", default=None, help="the SAE the steering spec edits (default: the one it names)")
    rate.add_argument("--max-new-tokens", type=common.positive_int, default=96, help="tokens per transcript")
    common.add_batch_size(rate, unit="30-s windows", default=8)
    common.add_max_utterances(rate, help="use at most N clips")
    rate.add_argument("--json", default=None, metavar="PATH", help="write the full result (every clip) here")
    common.add_no_progress(rate)
    rate.set_defaults(func=run_rate)

    select = sub.add_parser(
        "select",
        help="rank SAE features by how selectively they fire when Whisper hallucinates; write a steering spec",
        description="Transcribe the --nonspeech clips, split them into hallucinated and correctly empty ones, "
        "and rank the SAE's features by the smallest standardised difference of their mean clip activation "
        "between the hallucinated clips and each other group (empty clips, --speech clips). Writes the ranking "
        "(--ranking) and a steering spec of the --top features (--out).",
    )
    select.add_argument("sae_dir", metavar="SAE_DIR", help="SAE folder or shipped SAE name (an encoder hook)")
    select.add_argument("--nonspeech", required=True, help="non-speech clips to choose features on (a train split)")
    select.add_argument("--speech", default=None, help="real speech clips to contrast with (recommended)")
    common.add_model(select, default_help="the model named in the SAE's cfg.json")
    select.add_argument("--top", type=common.positive_int, default=8, help="features in the steering spec")
    select.add_argument(
        "--clamp",
        type=float,
        default=0.0,
        help="0 ablates the features; another number c sets each to c x its mean active value on hallucinated "
        "clips, e.g. -1",
    )
    select.add_argument("--padding", action="store_true", help="the spec also edits the 30-s window's padding")
    select.add_argument(
        "--active-only",
        action="store_true",
        help="the spec edits each feature only on the frames where it fires (speech frames where it is silent "
        "stay untouched)",
    )
    select.add_argument(
        "--feature-gate",
        action="store_true",
        help="the spec edits only clips where the chosen features fire strongly (threshold set between the "
        "speech clips and the hallucinated ones; needs --speech)",
    )
    select.add_argument("--out", required=True, metavar="JSON", help="where to write the steering spec")
    select.add_argument("--ranking", default=None, metavar="JSON", help="also write the whole ranking here")
    select.add_argument(
        "--max-new-tokens", type=common.positive_int, default=16, help="tokens per labelling transcript"
    )
    common.add_batch_size(select, unit="30-s windows", default=8)
    common.add_max_utterances(select, help="use at most N clips of each corpus")
    common.add_no_progress(select)
    select.set_defaults(func=run_select)


def run_rate(args: argparse.Namespace) -> int:
    from whisper_sae.circuits import hallucination_rate
    from whisper_sae.circuits.steering import SteeringSpec

    spec = SteeringSpec.load(args.steer_file) if args.steer_file else None
    if spec is None and args.sae is not None:
        raise ValueError("--sae names the SAE a steering spec edits; give --steer-file too")
    result = hallucination_rate(
        args.model or (spec.model if spec else None),
        args.corpus,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        max_utterances=args.max_utterances,
        progress=not args.no_progress,
        steering=spec,
        sae=args.sae,
    )
    print(f"{result.meta['model']} on {result.overall['clips']} clips of {result.meta['corpus']}")
    print(result.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=1)
    return 0


def run_select(args: argparse.Namespace) -> int:
    from whisper_sae.artifacts import locate_sae
    from whisper_sae.circuits.hallucination_features import select_hallucination_features

    selection = select_hallucination_features(
        str(locate_sae(args.sae_dir)),
        args.nonspeech,
        args.speech,
        model=args.model,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        max_clips=args.max_utterances,
        progress=not args.no_progress,
    )
    spec = selection.spec(
        args.top, args.clamp, padding=args.padding, active_only=args.active_only, gated=args.feature_gate
    )
    spec.save(args.out)
    if args.ranking:
        selection.save(args.ranking)
    print(f"clips per group: {selection.meta['clips']}; contrasted with {', '.join(selection.meta['contrasted'])}")
    print(selection.table(args.top))
    print(f"steering spec written to {args.out}")
    return 0
