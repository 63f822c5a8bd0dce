"""Whisper's hallucination rate on audio without speech: the share of clips transcribed with words, per kind.

    whisper-sae corpus nonspeech --out runs/nonspeech --per-kind 8 --seed 0
    nice -n 10 python benchmarks/hallucination.py --model tiny.en --corpus runs/nonspeech [--json out.json]

Prints the table of ``whisper_sae.circuits.hallucination_rate`` (the figures of docs/hallucination-report.md)
and the wall time; --json writes every clip's transcript and no-speech probability.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from whisper_sae.circuits import hallucination_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en", help="tiny.en or base (or any load_whisper spec)")
    parser.add_argument("--corpus", required=True, help="a non-speech corpus (whisper-sae corpus nonspeech)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--json", default=None, help="write the full result (every clip) here")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
