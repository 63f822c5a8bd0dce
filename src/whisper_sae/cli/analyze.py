"""``whisper-sae analyze`` (feature statistics and labels), ``intervene`` (ablate/clamp a feature and
compare transcripts) and ``dashboard`` (static HTML site of the features)."""

from __future__ import annotations

import argparse
import json

from whisper_sae.cli import common


def register(subparsers) -> None:
    analyze = subparsers.add_parser(
        "analyze",
        help="per-feature statistics, top clips and phone/word labels of an SAE over a corpus",
        description=(
            "One streaming pass of a corpus through Whisper and the SAE: each feature's firing frequency, mean "
            "and max activation, activation histogram, top activating frames, and (where the corpus has time "
            "alignments) the phone and word it best predicts with precision, recall and F1. Written as "
            "analysis.json + .npy files (default SAE_DIR/analysis); load with whisper_sae.analysis.load_analysis."
        ),
    )
    analyze.add_argument(
        "sae_dir",
        metavar="SAE_DIR",
        help="SAE folder (cfg.json + sae_weights.safetensors), shipped SAE name (whisper-sae pretrained list) or hf://ORG/REPO[/SUBDIR]",
    )
    analyze.add_argument("--corpus", default=None, help="corpus spec (folder, dataset, audio file, hf:...)")
    analyze.add_argument(
        "--store",
        default=None,
        help="read the activations from this store (made by `whisper-sae extract` with the SAE's "
        "hook) instead of running Whisper; much faster",
    )
    common.add_model(analyze, default_help="the model named in the SAE's cfg.json")
    analyze.add_argument(
        "--out",
        default=None,
        help="output folder (default SAE_DIR/analysis; ./whisper-sae-out/NAME/analysis for a shipped SAE)",
    )
    analyze.add_argument("--top-n", type=int, default=20, help="top activating frames kept per feature (20)")
    common.add_max_utterances(analyze)
    common.add_batch_size(analyze, unit="30-s windows", default=8)
    analyze.add_argument(
        "--alignments-dir",
        default=None,
        help="folder of <utterance id>.json alignments ({words, phones}) for corpora without them",
    )
    analyze.add_argument(
        "--whisper-words",
        action="store_true",
        help="label unaligned audio with word times from Whisper's cross-attention (words only)",
    )
    analyze.add_argument(
        "--all-frames",
        action="store_true",
        help="top frames may repeat an utterance (default: one peak per utterance and feature)",
    )
    common.add_no_progress(analyze)
    analyze.set_defaults(func=run_analyze)

    intervene = subparsers.add_parser(
        "intervene",
        help="transcribe audio with one SAE feature ablated, clamped or scaled; print before and after",
        description=(
            "Transcribe AUDIO with Whisper, then again with FEATURE removed (ablate), set to VALUE (clamp) or "
            "multiplied by VALUE (scale) at the "
            "SAE's hook: x' = x + decode(codes') - decode(codes), so the SAE's error term and every other feature "
            "stay as they were. --frames limits the edit to encoder frames inside t0:t1 seconds. --steer-file applies "
            "a saved steering spec instead (features and the value of each; made by `whisper-sae hallucination select`)."
        ),
    )
    intervene.add_argument("sae_dir", metavar="SAE_DIR", help="SAE folder (cfg.json + sae_weights.safetensors)")
    intervene.add_argument("audio", nargs="+", metavar="AUDIO", help="audio file(s), at most 30 s each")
    intervene.add_argument(
        "--feature", default=None, help="feature id, or several comma-separated (edited together); or give --steer-file"
    )
    intervene.add_argument(
        "--steer-file",
        default=None,
        metavar="JSON",
        help="a steering spec (whisper-sae-steering/1: features and values, 0 = ablate) to apply instead of "
        "--feature/--mode/--value",
    )
    intervene.add_argument(
        "--mode",
        choices=["ablate", "clamp", "scale"],
        default="ablate",
        help="ablate: set the feature to 0; clamp: set it to --value; scale: multiply it by --value",
    )
    intervene.add_argument(
        "--value", type=float, default=None, help="activation to clamp to (clamp), or factor to scale by (scale)"
    )
    intervene.add_argument("--frames", default=None, metavar="T0:T1", help="seconds, e.g. 0.5:1.2 (encoder hooks)")
    intervene.add_argument(
        "--active-only",
        action="store_true",
        help="edit each feature only on the frames where it fires (a clamp then replaces its activity instead of "
        "writing its direction into every frame); a --steer-file says this itself",
    )
    common.add_model(intervene, default_help="the model named in the SAE's cfg.json")
    intervene.add_argument("--json", action="store_true", help="print the results as JSON lines")
    intervene.set_defaults(func=run_intervene)

    dash = subparsers.add_parser(
        "dashboard",
        help="write a static HTML dashboard of an SAE's features (opens from disk, plays audio)",
        description=(
            "An index of all features (sortable by frequency, label F1, max activation; searchable by label) and "
            "a page per feature: label and scores, activation-density histogram, top clips with audio, "
            "spectrogram and activation over time, transcript with the active words highlighted. Needs an "
            "analysis (runs `analyze` first when SAE_DIR/analysis is missing and --corpus is given). Where "
            "`whisper-sae probe` was run (SAE_DIR/probe, or --probe), pages show each feature's speaker-attribute "
            "selectivity and the index sorts and filters by it."
        ),
    )
    dash.add_argument("sae_dir", metavar="SAE_DIR", help="SAE folder (cfg.json + sae_weights.safetensors)")
    dash.add_argument("--out", required=True, help="output folder for the site")
    dash.add_argument("--analysis", default=None, help="analysis folder (default SAE_DIR/analysis)")
    dash.add_argument("--corpus", default=None, help="corpus to read clips from (default: the analysed corpus)")
    common.add_model(dash, default_help="the model named in the SAE's cfg.json")
    dash.add_argument("--features", default=None, help="comma-separated feature ids to give pages (default: best)")
    dash.add_argument("--max-features", type=int, default=200, help="pages for at most N features (200; 0 = all)")
    dash.add_argument("--clips", type=int, default=5, help="top clips per feature page (5)")
    dash.add_argument("--excerpt", type=float, default=3.0, help="seconds of audio per clip (3.0)")
    dash.add_argument(
        "--alignments-dir",
        default=None,
        help="folder of <utterance id>.json alignments ({words, phones}) for corpora without them",
    )
    dash.add_argument(
        "--probe",
        action="append",
        default=None,
        metavar="PATH",
        help="probe.json (or its folder) of this SAE; repeat for several (default SAE_DIR/probe if present)",
    )
    dash.add_argument(
        "--attribute-pages",
        type=int,
        default=10,
        metavar="N",
        help="also give pages to the N most selective features of each probed attribute (10)",
    )
    dash.add_argument("--serve", action="store_true", help="then serve it on http://127.0.0.1:PORT")
    dash.add_argument("--port", type=int, default=8000, help="port for --serve")
    common.add_no_progress(dash)
    dash.set_defaults(func=run_dashboard)


def run_analyze(args: argparse.Namespace) -> int:
    from whisper_sae.analysis import analyze
    from whisper_sae.artifacts import locate_sae, output_dir_for

    if args.corpus is None and args.store is None:
        raise ValueError("give --corpus (audio to run Whisper on) or --store (an activation store of the SAE's hook)")
    result = analyze(
        locate_sae(args.sae_dir),
        args.corpus,
        store=args.store,
        top_n=args.top_n,
        model=args.model,
        batch_size=args.batch_size,
        max_utterances=args.max_utterances,
        alignments_dir=args.alignments_dir,
        whisper_words=args.whisper_words,
        distinct_clips=not args.all_frames,
        out=args.out or output_dir_for(args.sae_dir, "analysis"),
        progress=not args.no_progress,
    )
    print(f"analysis written to {result.path}")
    print(json.dumps(result.summary, indent=1))
    for kind in ("phone", "word"):
        best = result.best_labelled(10, kind)
        if best:
            print(f"best {kind}-labelled features:")
            for row in best:
                print(
                    f"  {row['feature']:>6}  {row[kind]!s:<12} F1 {row[f'{kind}_f1']:.2f}  "
                    f"P {row[f'{kind}_precision']:.2f}  R {row[f'{kind}_recall']:.2f}  freq {row['freq']:.3%}"
                )
    return 0


def run_intervene(args: argparse.Namespace) -> int:
    from whisper_sae.analysis import intervene, parse_frames
    from whisper_sae.analysis.checks import check_sae_model
    from whisper_sae.artifacts import locate_sae, open_model, open_sae
    from whisper_sae.audio import load_audio
    from whisper_sae.circuits.steering import SteeringSpec

    if (args.feature is None) == (args.steer_file is None):
        raise ValueError("give --feature (with --mode/--value) or --steer-file, one of the two")
    spec = None
    if args.steer_file is not None:
        spec = SteeringSpec.load(args.steer_file)
        if not spec.edits:
            raise ValueError(f"steering file {args.steer_file} edits no feature; nothing to intervene on")
        features, mode, value = spec.features, "clamp", spec.values
    else:
        try:
            features = [int(f) for f in str(args.feature).split(",")]
        except ValueError:
            raise ValueError(
                f"--feature {args.feature!r} must be a feature id or comma-separated ids, e.g. 12 or 12,40"
            ) from None
        mode, value = args.mode, args.value
    frames = parse_frames(args.frames)  # a bad range is refused before any model loads
    sae, sae_dir = open_sae(locate_sae(args.sae_dir))
    if spec is not None:
        spec.check(sae)
    lw = open_model(args.model, sae=sae)
    check_sae_model(sae, sae_dir, lw, sae.cfg.hook_name)
    audios = [load_audio(path) for path in args.audio]
    padding = bool(spec and spec.padding)
    results = intervene(
        sae,
        lw,
        audios,
        features if len(features) > 1 else features[0],
        mode,
        value,
        frames,
        padding=padding,
        active_only=bool(spec.active_only) if spec is not None else args.active_only,
        gate=spec.gate if spec is not None else None,
    )
    for path, res in zip(args.audio, results):
        if args.json:
            print(
                json.dumps(
                    {
                        "audio": path,
                        "feature": args.feature if spec is None else features,
                        "mode": mode,
                        "value": value,
                        "frames": args.frames,
                        "before": res.before,
                        "after": res.after,
                    }
                )
            )
        else:
            changed = "changed" if res.before != res.after else "unchanged"
            print(f"{path}  ({changed})\n  before: {res.before}\n  after:  {res.after}")
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from whisper_sae.analysis import analyze, build_dashboard
    from whisper_sae.analysis.dashboard.build import bind_server, owned_files, serve
    from whisper_sae.artifacts import locate_sae, open_sae, output_dir_for

    sae_dir = locate_sae(args.sae_dir)  # a folder, a shipped name or hf://; says what is missing, before anything else
    open_sae(sae_dir)
    owned_files(args.out)  # a foreign --out folder is refused before anything runs
    server = bind_server(args.out, args.port) if args.serve else None  # a busy port, too
    try:
        # Shipped and Hub SAEs keep their analysis and probe under ./whisper-sae-out/NAME/ (output_dir_for).
        analysis = args.analysis or output_dir_for(args.sae_dir, "analysis")
        probe_json = output_dir_for(args.sae_dir, "probe") / "probe.json"
        probe = args.probe or ([probe_json] if probe_json.is_file() else None)
        if not (Path(analysis) / "analysis.json").is_file():
            if args.corpus is None:
                raise FileNotFoundError(
                    f"no analysis at {analysis}; run `whisper-sae analyze {args.sae_dir} --corpus ...`"
                    " or pass --corpus to run it now"
                )
            analyze(
                sae_dir,
                args.corpus,
                model=args.model,
                alignments_dir=args.alignments_dir,
                out=analysis,
                progress=not args.no_progress,
            )
        features = [int(f) for f in args.features.split(",")] if args.features else None
        index = build_dashboard(
            sae_dir,
            args.out,
            analysis=analysis,
            corpus=args.corpus,
            model=args.model,
            features=features,
            max_features=args.max_features or None,
            clips_per_feature=args.clips,
            excerpt_seconds=args.excerpt,
            alignments_dir=args.alignments_dir,
            probe=probe,
            attribute_pages=max(args.attribute_pages, 0),
            progress=not args.no_progress,
        )
    except BaseException:
        if server is not None:
            server.server_close()
        raise
    print(f"dashboard: {index.resolve().as_uri()}")
    if server is not None:
        serve(args.out, server=server)
    return 0
