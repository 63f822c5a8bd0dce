"""Layer lenses of an offline Whisper on a transcribed corpus: WER per encoder block, logit lens per decoder block.

    nice -n 10 python benchmarks/lens.py --model tiny.en --corpus ../shared/data/librispeech/test-clean \
        [--out runs/lens-tiny.en] [--plot docs/lens-tiny.en.png] [--threads 2]

Prints the table of ``whisper_sae.circuits.encoder_lens`` (the figures of docs/lens-report.md), the
check that the last block's lens is Whisper itself, and the wall time; writes lens.json / lens.md /
lens.png into --out and, with --plot, a copy of the plot there.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from pathlib import Path

import torch

from whisper_sae.circuits import encoder_lens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en", help="tiny.en or base (or any load_whisper spec)")
    parser.add_argument("--corpus", required=True, help="corpus with transcripts, e.g. LibriSpeech test-clean")
    parser.add_argument("--out", default=None, help="folder for lens.json/md/png (default runs/lens-MODEL)")
    parser.add_argument("--plot", default=None, help="also copy the plot here")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-utterances", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out or f"runs/lens-{Path(args.model).name}")
    start = time.time()
    result = encoder_lens(
        args.model, args.corpus, batch_size=args.batch_size, max_utterances=args.max_utterances, out=out, progress=True
    )
    elapsed = time.time() - start
    print(
        f"{result.meta['model']} on {result.n_utterances} utterances ({result.meta['seconds']:.0f} s) of "
        f"{result.meta['corpus']}; {elapsed:.0f} s on {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(result.table(examples=1))
    if args.plot:
        shutil.copy(result.files["plot"], args.plot)
        print(f"plot copied to {args.plot}")


if __name__ == "__main__":
    main()
