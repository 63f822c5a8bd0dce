"""``whisper-sae probe SAE_DIR --corpus SPEC --attribute gender``: speaker attributes in an SAE's features."""

from __future__ import annotations

import argparse

from whisper_sae.cli import common
from whisper_sae.cli.dataclass_flags import add_flags, picked

PROBE_OPTIONS = "whisper_sae.analysis.probing.run:ProbeOptions"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="do the SAE's features encode who speaks? selectivity, held-out-speaker probes, ablation",
        description=(
            "For each attribute (gender, accent, rate, pitch, speaker, or any metadata column): per-feature "
            "AUROC / Cohen's d with Benjamini-Hochberg-corrected p-values at frame and utterance level; "
            "logistic-regression and random-forest probes from SAE codes, raw activations and the best "
            "1/4/16 features, scored on held-out speakers (balanced accuracy, per-class recall, macro-F1; "
            "R² for numbers); PCA / t-SNE / heatmap / dendrogram PNGs; and an ablation of the top features "
            "(probe re-trained, WER measured). Writes probe.json, probe.md and the PNGs into --out (default "
            "SAE_DIR/probe, where `whisper-sae dashboard` finds it and shows each feature's selectivity)."
        ),
    )
    parser.add_argument(
        "sae_dir", metavar="SAE_DIR", help="SAE folder (cfg.json + sae_weights.safetensors) of an encoder hook"
    )
    parser.add_argument("--corpus", default=None, help="a corpus spec for load_corpus (folder, saved dataset, hf:...)")
    parser.add_argument(
        "--store",
        default=None,
        metavar="DIR",
        help="activation store holding the SAE's hook: read its frames instead of running Whisper; "
        "without --corpus its utterance records (speaker, attributes, audio path) are the corpus",
    )
    parser.add_argument(
        "--test-corpus",
        default=None,
        metavar="SPEC",
        help="cross-corpus check: train each categorical attribute's probes on all of --corpus/--store and "
        "score them on this corpus (classes both have), e.g. train on ravdess:DIR, test on tess:DIR",
    )
    parser.add_argument(
        "--test-store",
        default=None,
        metavar="DIR",
        help="the cross-corpus test set as an activation store of the SAE's hook (its records are the corpus); "
        "read instead of running Whisper on --test-corpus",
    )
    parser.add_argument(
        "--attribute",
        action="append",
        required=True,
        metavar="NAME",
        help="attribute to probe; repeat for several (e.g. --attribute gender --attribute accent)",
    )
    parser.add_argument(
        "--metadata",
        default=None,
        metavar="FILE",
        help="CSV/TSV or SPEAKERS.TXT keyed by utterance or speaker id; its columns become attributes",
    )
    parser.add_argument(
        "--derive",
        action="append",
        default=[],
        metavar="NAME=COLUMN<=VALUE",
        help="add a two-class attribute NAME / 'not NAME' from one comparison on a column, and probe it; "
        "OP is <=, >=, <, >, == or != (e.g. --derive child=age<=12 --derive native=native_language==english); "
        "repeat for several",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default SAE_DIR/probe, where the dashboard looks; ./whisper-sae-out/NAME/probe for a shipped SAE)",
    )
    parser.add_argument(
        "--analysis",
        default=None,
        metavar="DIR",
        help="analysis of this SAE whose phone/word labels annotate the top features (default SAE_DIR/analysis if present)",
    )
    common.add_model(parser, default_help="the model named in the SAE's cfg.json")
    common.add_max_utterances(parser)
    # ProbeOptions' knobs: defaults and help from the dataclass (read without importing the probe's stack).
    options = add_flags(
        parser,
        PROBE_OPTIONS,
        only=(
            "min_speakers",
            "merge_rare",
            "frames_per_utterance",
            "ablate",
            "ablate_k",
            "wer_utterances",
            "models",
            "tsne",
            "progress",
        ),
        help={
            "ablate": "attributes whose top features the ablation check removes, comma-separated "
            "(categorical ones among --attribute), e.g. emotion",
            "ablate_k": "features removed in the ablation check (0 skips it)",
            "models": "probe models, comma-separated: logreg (logistic / ridge; always needed), forest (random forest); "
            "logreg alone is quicker",
            "tsne": "draw the t-SNE picture (--no-tsne skips it)",
            "progress": "show progress bars (--no-progress hides them)",
        },
    )
    parser.set_defaults(_probe_options=options)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from whisper_sae.analysis.probing import ProbeOptions, probe
    from whisper_sae.artifacts import locate_sae, output_dir_for

    if args.corpus is None and args.store is None:
        raise ValueError(
            "give --corpus (audio with speaker attributes) or --store (an activation store of this SAE's hook)"
        )
    for flag in ("max_utterances", "min_speakers", "frames_per_utterance"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    models = args.models
    if "logreg" not in models or any(m not in ("logreg", "forest") for m in models):
        raise ValueError(
            f"--models {','.join(models)!r}: give logreg (the report and the ablation use it), optionally with forest"
        )
    given = picked(args, args._probe_options)
    options = ProbeOptions(
        **{**given, "ablate_k": max(args.ablate_k, 0), "wer_utterances": max(args.wer_utterances, 0)}
    )
    labels = output_dir_for(
        args.sae_dir, "analysis"
    )  # SAE_DIR/analysis, or ./whisper-sae-out/NAME/analysis for a shipped SAE
    analysis = args.analysis or (labels if (labels / "analysis.json").is_file() else None)
    result = probe(
        locate_sae(args.sae_dir),
        args.corpus,
        args.attribute,
        metadata=args.metadata,
        derive=args.derive,
        out=args.out or output_dir_for(args.sae_dir, "probe"),
        analysis=analysis,
        store=args.store,
        test_corpus=args.test_corpus,
        test_store=args.test_store,
        max_utterances=args.max_utterances,
        model=args.model,
        options=options,
    )
    report = result.report
    print(f"{report.sae.hook} SAE, {report.n_utterances} utterances, {report.n_speakers} speakers")
    for name, block in report.attributes.items():
        for level in ("frame", "utterance"):
            scores = block.scores(level, "logreg")
            print(f"{name:>10} {level:>9}: " + "  ".join(f"{fs} {_num(v)}" for fs, v in scores.items()))
        print(f"{'':>10} most selective: " + "; ".join(_describe(t) for t in block.top_features[:5]))
        if block.transfer and block.transfer.get("probes"):
            scores = {fs: m["balanced_accuracy"] for fs, m in block.transfer["probes"]["utterance"]["logreg"].items()}
            print(
                f"{'':>10} on {block.transfer['test_corpus']}: "
                + "  ".join(f"{fs} {_num(v)}" for fs, v in scores.items())
            )
        for note in block.notes:
            print(f"  note: {note}")
    print(f"written: {result.out / 'probe.md'}, {result.out / 'probe.json'}")
    return 0


def _num(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _describe(row) -> str:
    """'3689 female (AUROC 0.975, phone S F1 0.03)' for a top feature (``TopFeature``) of probe.json."""
    what = (
        f"{row.class_} (AUROC {row.auroc_utterance:.3f}" if row.class_ is not None else f"(rho {row.rho_utterance:+.3f}"
    )
    label = next((f", {kind} {name} F1 {f1:.2f}" for kind, (name, f1) in row.labels.items() if name), "")
    return f"{row.feature} {what}{label})"
