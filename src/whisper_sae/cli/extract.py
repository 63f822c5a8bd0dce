"""``whisper-sae extract`` (corpus → activation store) and ``whisper-sae store info STORE``."""

from __future__ import annotations

import argparse

from whisper_sae.cli import common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="run Whisper over a corpus and store the activations at named hook points",
        description=(
            "Extract Whisper's activations at the given hook points for every utterance of a corpus into a "
            "sharded store (safetensors shards + utterances.jsonl + manifest.json). Encoder hooks give one "
            "row per 20-ms frame of real audio (30-s padding is computed but never stored); decoder hooks "
            "one row per teacher-forced token, token id kept. Rerunning the same command resumes."
        ),
    )
    common.add_model(parser)
    parser.add_argument(
        "--corpus",
        required=True,
        action="append",
        help="a LibriSpeech-layout or audio folder, a saved dataset, an audio file, "
        "hf:NAME[:CONFIG]:SPLIT, or FORMAT:PATH (kaldi, lhotse, commonvoice, ljspeech, csv, "
        "ravdess, tess, savee, emodb; grammar: whisper-sae corpus info --help); repeat for several "
        "corpora in one store, each utterance keeping its corpus name",
    )
    common.add_hooks(parser, required=True, alias=True)
    parser.add_argument("--out", required=True, metavar="STORE", help="store folder (created, or resumed)")
    parser.add_argument(
        "--mode",
        choices=["padded", "packed"],
        default="padded",
        help="padded: one utterance per 30-s window, as Whisper pads a clip (default); "
        "packed: several utterances back to back in a window (faster; a different "
        "computation; encoder hooks only)",
    )
    common.add_batch_size(
        parser, unit="30-s windows (one utterance each when padded)", default_help="1 on CPU, 16 on CUDA"
    )
    parser.add_argument(
        "--dtype",
        choices=["float16", "bfloat16", "float32"],
        default="float16",
        help="storage precision of the activations (default float16)",
    )
    parser.add_argument(
        "--autocast",
        choices=["none", "bf16", "fp16"],
        default="none",
        help="compute in reduced precision (default none: fp32, faithful to Whisper)",
    )
    common.add_max_utterances(parser, help="stop after N utterances (counting those done by an earlier run)")
    parser.add_argument(
        "--shard-rows", type=common.positive_int, default=None, metavar="N", help="rows per shard file (default 32768)"
    )
    parser.add_argument(
        "--decoder-text",
        choices=["reference", "model"],
        default="reference",
        help="teacher-force decoder hooks on the reference transcript (the model's own where "
        "there is none; default) or always on the model's own transcription",
    )
    parser.add_argument(
        "--max-store-gb",
        type=float,
        default=None,
        metavar="GB",
        help="stop once the stored activations reach this size (a rerun with more resumes)",
    )
    common.add_device(parser)
    common.add_no_progress(parser)
    parser.set_defaults(func=run_extract)

    store = subparsers.add_parser(
        "store",
        help="inspect an activation store",
        description="Inspect an activation store written by `whisper-sae extract`.",
    )
    store_sub = store.add_subparsers(dest="store_command", metavar="COMMAND")
    info = store_sub.add_parser("info", help="print a store's manifest summary")
    info.add_argument("store", metavar="STORE", help="store folder")
    info.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    info.add_argument(
        "--verify",
        action="store_true",
        help="read every shard and check its size and checksum against the manifest; names each bad "
        "shard and exits 1 if any",
    )
    info.set_defaults(func=run_store_info)


def run_extract(args: argparse.Namespace) -> int:
    from whisper_sae.activations import extract
    from whisper_sae.activations.writer import DEFAULT_SHARD_ROWS

    for flag, value in (
        ("--batch-size", args.batch_size),
        ("--max-utterances", args.max_utterances),
        ("--shard-rows", args.shard_rows),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    hooks = [h.strip() for h in args.hooks.split(",") if h.strip()]
    store = extract(
        args.model,
        args.corpus[0] if len(args.corpus) == 1 else args.corpus,
        hooks,
        args.out,
        mode=args.mode,
        batch_size=args.batch_size,
        dtype=args.dtype,
        autocast=None if args.autocast == "none" else args.autocast,
        shard_rows=args.shard_rows or DEFAULT_SHARD_ROWS,
        max_utterances=args.max_utterances,
        decoder_text=args.decoder_text,
        device=args.device,
        max_store_gb=args.max_store_gb,
        progress=not args.no_progress,
    )
    print(store.summary())
    return 0


def run_store_info(args: argparse.Namespace) -> int:
    import json

    from whisper_sae.activations import ActivationStore

    store = ActivationStore(args.store)
    print(json.dumps(store.manifest, indent=1) if args.json else store.summary())
    if args.verify:
        sound, report = store.verify_report()
        print(report)
        return 0 if sound else 1
    return 0
