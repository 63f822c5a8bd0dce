"""``whisper-sae probe SAE_DIR --corpus SPEC --attribute gender``: speaker attributes in an SAE's features."""

from __future__ import annotations

import argparse

from whisper_sae.cli import common


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
    parser.add_argument("sae_dir", metavar="SAE_DIR", help="SAE folder (cfg.json + sae_weights.safetensors) of an encoder hook")
    parser.add_argument("--corpus", default=None, help="a corpus spec for load_corpus (folder, saved dataset, hf:...)")
    parser.add_argument("--store", default=None, metavar="DIR",
                        help="activation store holding the SAE's hook: read its frames instead of running Whisper; "
                             "without --corpus its utterance records (speaker, attributes, audio path) are the corpus")
    parser.add_argument("--attribute", action="append", required=True, metavar="NAME",
                        help="attribute to probe; repeat for several (e.g. --attribute gender --attribute accent)")
    parser.add_argument("--metadata", default=None, metavar="FILE",
                        help="CSV/TSV or SPEAKERS.TXT keyed by utterance or speaker id; its columns become attributes")
    parser.add_argument("--out", default=None, help="output folder (default SAE_DIR/probe, where the dashboard looks)")
    parser.add_argument("--analysis", default=None, metavar="DIR",
                        help="analysis of this SAE whose phone/word labels annotate the top features (default SAE_DIR/analysis if present)")
    common.add_model(parser, default_help="the model named in the SAE's cfg.json")
    common.add_max_utterances(parser)
    parser.add_argument("--min-speakers", type=int, default=3, metavar="N",
                        help="drop classes with fewer distinct speakers than this (default 3)")
    parser.add_argument("--frames-per-utterance", type=int, default=24, metavar="N",
                        help="frames per utterance used for frame-level numbers (default 24; utterance means use all)")
    parser.add_argument("--ablate-k", type=int, default=10, metavar="K",
                        help="features removed in the ablation check (0 skips it; default 10)")
    parser.add_argument("--wer-utterances", type=int, default=24, metavar="N",
                        help="utterances transcribed per ablation condition (0 skips WER; default 24)")
    parser.add_argument("--models", default="logreg,forest", metavar="LIST",
                        help="probe models, comma-separated: logreg (logistic / ridge; always needed), forest "
                             "(random forest). Default both; logreg alone is quicker")
    parser.add_argument("--no-tsne", action="store_true", help="skip the t-SNE picture")
    common.add_no_progress(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from whisper_sae.analysis.probe import ProbeOptions, probe

    if args.corpus is None and args.store is None:
        raise ValueError("give --corpus (audio with speaker attributes) or --store (an activation store of this SAE's hook)")
    for flag in ("max_utterances", "min_speakers", "frames_per_utterance"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if "logreg" not in models or any(m not in ("logreg", "forest") for m in models):
        raise ValueError(f"--models {args.models!r}: give logreg (the report and the ablation use it), optionally with forest")
    options = ProbeOptions(models=models, min_speakers=args.min_speakers, frames_per_utterance=args.frames_per_utterance, ablate_k=max(args.ablate_k, 0),
                           wer_utterances=max(args.wer_utterances, 0), tsne=not args.no_tsne, progress=not args.no_progress)
    result = probe(args.sae_dir, args.corpus, args.attribute, metadata=args.metadata, out=args.out, analysis=args.analysis, store=args.store,
                   max_utterances=args.max_utterances, model=args.model, options=options)
    s = result.summary
    print(f"{s['sae']['hook']} SAE, {s['n_utterances']} utterances, {s['n_speakers']} speakers")
    for name, block in result.attributes.items():
        key = "balanced_accuracy" if block["kind"] == "categorical" else "r2"
        for level in ("frame", "utterance"):
            scores = block["probes"][level]["logreg"]
            print(f"{name:>10} {level:>9}: " + "  ".join(f"{fs} {m[key]:.3f}" for fs, m in scores.items()))
        print(f"{'':>10} most selective: " + "; ".join(_describe(t) for t in block["top_features"][:5]))
        for note in block["notes"]:
            print(f"  note: {note}")
    print(f"written: {result.out / 'probe.md'}, {result.out / 'probe.json'}")
    return 0


def _describe(row: dict) -> str:
    """'3689 female (AUROC 0.975, phone S F1 0.03)' for a top-feature row of probe.json."""
    what = (f"{row['class']} (AUROC {row['auroc_utterance']:.3f}" if "class" in row
            else f"(rho {row['rho_utterance']:+.3f}")
    label = next((f", {kind} {row[kind]} F1 {row[f'{kind}_f1']:.2f}" for kind in ("phone", "word") if row.get(kind)), "")
    return f"{row['feature']} {what}{label})"
