"""WER of the offline Whisper models on the real LibriSpeech test-clean samples (greedy, no timestamps).

    python benchmarks/wer_clean.py [--models tiny.en,base] [--data ../shared/data/librispeech/test-clean]

Prints one line per model: utterances, words, WER (jiwer over Whisper's English normalizer), seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jiwer
import soundfile as sf
import torch
from whisper_normalizer.english import EnglishTextNormalizer

from whisper_sae.whisper import load_whisper

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech" / "test-clean"


def read_librispeech(root: Path) -> tuple[list, list[str], list[str]]:
    """(audios, references, ids) of every utterance listed in a *.trans.txt under ``root``."""
    audios, refs, ids = [], [], []
    for trans in sorted(root.rglob("*.trans.txt")):
        for line in trans.read_text().splitlines():
            utt_id, text = line.split(" ", 1)
            audio, rate = sf.read(trans.parent / f"{utt_id}.flac", dtype="float32")
            if rate != 16000:
                raise ValueError(f"{utt_id} is sampled at {rate} Hz; LibriSpeech is 16000 Hz.")
            audios.append(audio)
            refs.append(text)
            ids.append(utt_id)
    if not ids:
        raise ValueError(f"No *.trans.txt under {root}; expected a LibriSpeech-layout folder.")
    return audios, refs, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (1 is faster on a machine shared with other jobs)",
    )
    parser.add_argument("--show-errors", action="store_true", help="print every utterance that has an error")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    audios, refs, ids = read_librispeech(args.data)
    normalize = EnglishTextNormalizer()
    refs_norm = [normalize(r) for r in refs]
    seconds = sum(len(a) for a in audios) / 16000
    print(f"{len(ids)} utterances, {seconds:.0f} s of audio, {sum(len(r.split()) for r in refs_norm)} words")
    for spec in args.models.split(","):
        lw = load_whisper(spec)
        start = time.time()
        hyps = lw.transcribe(audios, batch_size=args.batch_size, progress=True)
        elapsed = time.time() - start
        hyps_norm = [normalize(h) for h in hyps]
        error = jiwer.wer(refs_norm, hyps_norm)
        print(f"{spec}: WER {100 * error:.2f} % on {len(ids)} utterances ({elapsed:.0f} s to transcribe)")
        if args.show_errors:
            for utt_id, ref, hyp in zip(ids, refs_norm, hyps_norm):
                if ref != hyp:
                    print(f"  {utt_id}\n    ref: {ref}\n    hyp: {hyp}")


if __name__ == "__main__":
    main()
