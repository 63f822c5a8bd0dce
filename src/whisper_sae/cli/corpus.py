"""``whisper-sae corpus``: make a synthetic speech corpus, or look inside any corpus spec."""

from __future__ import annotations

import argparse
import json
from collections import Counter

from whisper_sae.cli.common import add_max_utterances, positive_int

SYNTH_EPILOG = """\
The corpus is written in LibriSpeech layout (OUT/synth/SPK/CHAPTER/SPK-CHAPTER-UTT.flac with
SPK-CHAPTER.trans.txt), one word/phone alignment JSON beside each file (times from eSpeak's own
events), OUT/metadata.tsv (utterance id -> speaker, gender, accent, voice, variant, quality, rate,
pitch, text_id) and OUT/corpus.json. Read it back with --corpus OUT in other commands.

examples:
  whisper-sae corpus synth --out data/synth --minutes 3
  whisper-sae corpus synth --out data/balanced --minutes 10 --balanced --voices-per-text 4
  whisper-sae corpus synth --out data/multi --minutes 5 --languages en,de,fr
"""


def _synth(args: argparse.Namespace) -> int:
    from whisper_sae.audio.synth import synthesize_corpus

    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    out = synthesize_corpus(
        args.out, minutes=args.minutes, languages=languages, seed=args.seed, balanced=args.balanced,
        voices_per_text=args.voices_per_text, n_speakers=args.speakers, whispered=args.whispered,
        accents=[a.strip() for a in args.accents.split(",") if a.strip()] if args.accents else None,
        max_words=args.max_words,
        workers=args.workers, overwrite=args.overwrite,
    )
    summary = json.loads((out / "corpus.json").read_text())
    print(f"wrote {summary['n_utterances']} utterances, {summary['seconds'] / 60:.1f} min of speech by "
          f"{summary['n_speakers']} voices (eSpeak NG {summary['espeak']}) to {out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from whisper_sae.audio import load_corpus

    corpus = load_corpus(args.spec, max_utterances=args.max_utterances, metadata=args.metadata or None)
    n, seconds, with_text, with_alignment = 0, 0.0, 0, 0
    speakers: set = set()
    columns: dict[str, Counter] = {}
    for utt in corpus:
        n += 1
        seconds += utt.duration
        with_text += utt.text is not None
        with_alignment += utt.alignment is not None
        speakers.add(utt.speaker)
        for key, value in utt.attributes.items():
            columns.setdefault(key, Counter())[value] += 1
    print(f"corpus {corpus.spec}: {n} utterances, {seconds / 60:.1f} min, {len(speakers - {None})} speakers, "
          f"{with_text} with transcripts, {with_alignment} with alignments, {len(corpus.skipped)} skipped")
    for key, counts in sorted(columns.items()):
        shown = ", ".join(f"{v}: {c}" for v, c in counts.most_common(6))
        more = f", … ({len(counts)} values)" if len(counts) > 6 else ""
        print(f"  {key}: {shown}{more}")
    for skip in corpus.skipped:
        print(f"  skipped {skip['id']}: {skip['reason']}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("corpus", help="make a synthetic speech corpus, or summarise a corpus",
                                   description="Speech corpora: synthesize one offline with eSpeak NG, or "
                                               "summarise any corpus spec.")
    sub = parser.add_subparsers(dest="corpus_command", metavar="ACTION")  # none given: this help, as `store` does

    synth = sub.add_parser(
        "synth", help="synthesize English (or other) prose with many eSpeak NG voices",
        description="Synthesize varied prose offline with eSpeak NG voices (genders, accents, rates, "
                    "pitches), with word and phone alignments and per-utterance speaker attributes.",
        epilog=SYNTH_EPILOG,
    )
    synth.add_argument("--out", required=True, help="folder to write the corpus into")
    synth.add_argument("--minutes", type=float, default=2.0, help="about how much speech to make (default 2)")
    synth.add_argument("--languages", default="en",
                       help="comma-separated languages, from en, de, fr, es, it, nl, pt (default en)")
    synth.add_argument("--balanced", action="store_true",
                       help="have every text spoken by several voices of both genders, so that what is said "
                            "and who says it are not confounded")
    synth.add_argument("--voices-per-text", type=positive_int, default=3, help="voices per text with --balanced (default 3)")
    synth.add_argument("--speakers", type=positive_int, default=12, help="voices per language (default 12)")
    synth.add_argument("--whispered", type=float, default=0.0,
                       help="fraction of voices that whisper (eSpeak's +whisper/+whisperf; default 0)")
    synth.add_argument("--accents", default=None,
                       help="comma-separated eSpeak voices to use, e.g. en-us,en-gb-x-rp (default: all of "
                            "en-us, en-us-nyc, en, en-gb-x-rp, en-gb-scotland, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029)")
    synth.add_argument("--max-words", type=positive_int, default=None, help="only speak texts of at most this many words")
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives the same corpus (default 0)")
    synth.add_argument("--workers", type=positive_int, default=None, help="processes (default: number of CPUs)")
    synth.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    synth.set_defaults(func=_synth)

    info = sub.add_parser("info", help="count utterances, speakers, transcripts and attributes of a corpus",
                          description="Read a corpus spec (folder, saved dataset, hf:NAME:CONFIG:SPLIT, file) "
                                      "and summarise it, listing any files that would be skipped.")
    info.add_argument("spec", metavar="SPEC",
                      help="corpus spec: a LibriSpeech-layout or audio folder, a saved dataset, an audio file, or "
                           "hf:NAME[:CONFIG]:SPLIT")
    info.add_argument("--metadata", action="append", metavar="FILE",
                      help="extra metadata table (CSV/TSV/SPEAKERS.TXT) keyed by utterance or speaker id; repeatable")
    add_max_utterances(info, help="read at most N utterances")
    info.set_defaults(func=_info)
