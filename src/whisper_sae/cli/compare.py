"""``whisper-sae compare SAE_A SAE_B``: do two SAEs (seeds, widths, MSE vs KL) find the same features?"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="match two SAEs' features one-to-one by decoder direction and report how many agree",
        description="Match the features of two SAEs of the same hook one-to-one (Hungarian algorithm on decoder-"
        "direction cosines); report the fraction matched above 0.7 and 0.9, the cosine distribution "
        "(cosines.png), features of the wider SAE that split a narrower one's, and whether matched "
        "pairs carry the same phone / word label when both folders hold an analysis. Writes "
        "compare.json and compare.md.",
    )
    parser.add_argument("sae_a", metavar="SAE_A", help="first SAE folder")
    parser.add_argument("sae_b", metavar="SAE_B", help="second SAE folder")
    parser.add_argument("--out", default=None, help="output folder (default: SAE_A/compare-<name of SAE_B>)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from whisper_sae.evaluate.compare import THRESHOLDS, compare_saes, default_out

    result = compare_saes(args.sae_a, args.sae_b)
    files = result.write(args.out or default_out(args.sae_a, args.sae_b))
    shares = ", ".join(f"{result.fraction_above(t):.1%} above {t}" for t in THRESHOLDS)
    print(f"{result.n_pairs} one-to-one pairs: {shares}; mean matched cosine {float(result.cosine.mean()):.3f}")
    if result.splits.get("applies"):
        print(
            f"splits: {result.splits['n_split_features']} features of {result.splits['wide']} split "
            f"{result.splits['n_narrow_split']} narrower features"
        )
    print(f"written: {files['markdown']}, {files['json']}, {files['plot']}")
    return 0
