"""Compare two folders of word/phone alignments (``whisper-sae corpus align`` output against a reference).

Words are paired by position (both align the same transcript); phones are paired where the two phone
sequences agree (difflib matching blocks), so a different pronunciation variant leaves its phones
unpaired and counted. For every paired item, both boundaries (start and end) count. Prints JSON.

    whisper-sae corpus align /work/shared/data/librispeech/test-clean --out runs/align/test-clean
    python benchmarks/align_check.py runs/align/test-clean /work/shared/data/librispeech/alignments/test-clean
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path

import numpy as np


def _pairs(mine: list[dict], ref: list[dict], key: str) -> tuple[list[tuple[dict, dict]], int]:
    if key == "word":
        if [w[key] for w in mine] != [w[key] for w in ref]:
            return [], 0
        return list(zip(mine, ref)), len(ref)
    matcher = difflib.SequenceMatcher(a=[p[key] for p in mine], b=[p[key] for p in ref], autojunk=False)
    out = []
    for block in matcher.get_matching_blocks():
        out += [(mine[block.a + k], ref[block.b + k]) for k in range(block.size)]
    return out, len(ref)


def compare(mine_dir: Path, ref_dir: Path) -> dict:
    result: dict = {"utterances_compared": 0, "utterances_missing": []}
    diffs: dict[str, list[float]] = {"word": [], "phone": []}
    counts = {"word": [0, 0], "phone": [0, 0]}  # paired, reference items
    word_mismatch = []
    for ref_path in sorted(ref_dir.glob("*.json")):
        mine_path = mine_dir / ref_path.name
        if not mine_path.is_file():
            result["utterances_missing"].append(ref_path.stem)
            continue
        ref, mine = json.loads(ref_path.read_text()), json.loads(mine_path.read_text())
        result["utterances_compared"] += 1
        for key, field in (("word", "words"), ("phone", "phones")):
            pairs, n_ref = _pairs(mine[field], ref[field], key)
            if key == "word" and not pairs:
                word_mismatch.append(ref_path.stem)
            counts[key][0] += len(pairs)
            counts[key][1] += n_ref
            for a, b in pairs:
                diffs[key] += [abs(a["start"] - b["start"]), abs(a["end"] - b["end"])]
    for key, values in diffs.items():
        d = np.asarray(values) if values else np.zeros(0)
        result[key] = {
            "paired": counts[key][0],
            "reference_items": counts[key][1],
            "boundaries": int(d.size),
            "median_ms": round(float(np.median(d)) * 1000, 1) if d.size else None,
            "mean_ms": round(float(d.mean()) * 1000, 1) if d.size else None,
            "within_20ms": round(float((d <= 0.020 + 1e-9).mean()), 4) if d.size else None,
            "within_50ms": round(float((d <= 0.050 + 1e-9).mean()), 4) if d.size else None,
            "identical": round(float((d < 1e-9).mean()), 4) if d.size else None,
        }
    result["word_sequence_mismatch"] = word_mismatch
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mine", type=Path, help="folder of alignments to check")
    parser.add_argument("reference", type=Path, help="folder of reference alignments (same file names)")
    args = parser.parse_args()
    print(json.dumps(compare(args.mine, args.reference), indent=1))


if __name__ == "__main__":
    main()
