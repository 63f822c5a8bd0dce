"""``whisper-sae corpus``: make a synthetic speech corpus, or look inside any corpus spec."""

from __future__ import annotations

import argparse
import json
from collections import Counter

from whisper_sae.audio.formats import SPEC_GRAMMAR
from whisper_sae.cli.common import add_max_utterances, add_no_progress, positive_int

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
        args.out,
        minutes=args.minutes,
        languages=languages,
        seed=args.seed,
        balanced=args.balanced,
        voices_per_text=args.voices_per_text,
        n_speakers=args.speakers,
        whispered=args.whispered,
        accents=[a.strip() for a in args.accents.split(",") if a.strip()] if args.accents else None,
        max_words=args.max_words,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    summary = json.loads((out / "corpus.json").read_text())
    print(
        f"wrote {summary['n_utterances']} utterances, {summary['seconds'] / 60:.1f} min of speech by "
        f"{summary['n_speakers']} voices (eSpeak NG {summary['espeak']}) to {out}"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from whisper_sae.audio import load_corpus

    corpus = load_corpus(
        args.spec, max_utterances=args.max_utterances, metadata=args.metadata or None, text=_shared_text(args.text)
    )
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
    print(
        f"corpus {corpus.spec}: {n} utterances, {seconds / 60:.1f} min, {len(speakers - {None})} speakers, "
        f"{with_text} with transcripts, {with_alignment} with alignments, {len(corpus.skipped)} skipped"
    )
    for key, counts in sorted(columns.items()):
        shown = ", ".join(f"{v}: {c}" for v, c in counts.most_common(6))
        more = f", … ({len(counts)} values)" if len(counts) > 6 else ""
        print(f"  {key}: {shown}{more}")
    for skip in corpus.skipped:
        print(f"  skipped {skip['id']}: {skip['reason']}")
    return 0


def _shared_text(value: str | None) -> str | None:
    """``--text``: the transcript itself, or ``@FILE`` holding it."""
    if not value or not value.startswith("@"):
        return value
    from whisper_sae.audio.textfile import read_text

    return read_text(value[1:]).strip()


def _labels(args: argparse.Namespace) -> int:
    from whisper_sae.audio.formats.emotion import write_labels

    n, bad = write_labels(args.dir, args.scheme, args.out, labels=args.labels)
    print(
        f"wrote {n} rows to {args.out}" + (f"; left out {len(bad)} files whose names break the scheme:" if bad else "")
    )
    for err in bad:
        print(f"  {err}")
    print(f"read it back with: csv:{args.dir}:{args.out}")
    return 0


LABELS_EPILOG = """schemes (the folder's names decide when --scheme is not given):
  ravdess   03-01-05-01-02-01-12.wav  modality-channel-EMOTION-intensity-statement-repetition-actor
            (01 neutral 02 calm 03 happy 04 sad 05 angry 06 fearful 07 disgust 08 surprised; odd actor male)
  tess      OAF_angry/OAF_back_angry.wav   speaker OAF (64) / YAF (26), women; "Say the word back."
  savee     DC/a01.wav    speaker folder DC/JE/JK/KL, men; a d f h n sa su = anger disgust fear happiness
            neutral sadness surprise
  emodb     03a01Fa.wav   speaker, text code, emotion letter (W anger L boredom E disgust A fear F happiness
            T sadness N neutral), version; German; --labels audio_labels.csv for files named otherwise
Columns: utterance_id, path (relative to DIR), speaker, text, emotion (shared vocabulary), emotion_raw,
then the scheme's other fields. Edit it, then read the folder with it: csv:DIR:TABLE (a TABLE inside DIR
named metadata.tsv is also merged when DIR is read without a prefix, which then no longer reads names).

example:
  whisper-sae corpus labels data/ravdess --out data/ravdess/metadata.tsv
  whisper-sae corpus info csv:data/ravdess:metadata.tsv
"""


def _split(args: argparse.Namespace) -> int:
    from whisper_sae.audio import load_corpus, speaker_split

    corpus = load_corpus(args.spec if len(args.spec) > 1 else args.spec[0], metadata=args.metadata or None)
    split = speaker_split(corpus, held_out=args.held_out, seed=args.seed, stratify=args.stratify)
    split.info["corpus"] = corpus.spec
    split.save(args.out)
    print(
        f"{len(split.train_speakers)} speakers ({len(split.train)} utterances) to train, "
        f"{len(split.held_out_speakers)} speakers ({len(split.held_out)} utterances) held out; wrote {args.out}"
    )
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "corpus",
        help="make a synthetic speech corpus, or summarise a corpus",
        description="Speech corpora: synthesize one offline with eSpeak NG, or summarise any corpus spec.",
    )
    sub = parser.add_subparsers(dest="corpus_command", metavar="ACTION")  # none given: this help, as `store` does

    synth = sub.add_parser(
        "synth",
        help="synthesize English (or other) prose with many eSpeak NG voices",
        description="Synthesize varied prose offline with eSpeak NG voices (genders, accents, rates, "
        "pitches), with word and phone alignments and per-utterance speaker attributes.",
        epilog=SYNTH_EPILOG,
    )
    synth.add_argument("--out", required=True, help="folder to write the corpus into")
    synth.add_argument("--minutes", type=float, default=2.0, help="about how much speech to make (default 2)")
    synth.add_argument(
        "--languages", default="en", help="comma-separated languages, from en, de, fr, es, it, nl, pt (default en)"
    )
    synth.add_argument(
        "--balanced",
        action="store_true",
        help="have every text spoken by several voices of both genders, so that what is said "
        "and who says it are not confounded",
    )
    synth.add_argument(
        "--voices-per-text", type=positive_int, default=3, help="voices per text with --balanced (default 3)"
    )
    synth.add_argument("--speakers", type=positive_int, default=12, help="voices per language (default 12)")
    synth.add_argument(
        "--whispered",
        type=float,
        default=0.0,
        help="fraction of voices that whisper (eSpeak's +whisper/+whisperf; default 0)",
    )
    synth.add_argument(
        "--accents",
        default=None,
        help="comma-separated eSpeak voices to use, e.g. en-us,en-gb-x-rp (default: all of "
        "en-us, en-us-nyc, en, en-gb-x-rp, en-gb-scotland, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029)",
    )
    synth.add_argument(
        "--max-words", type=positive_int, default=None, help="only speak texts of at most this many words"
    )
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives the same corpus (default 0)")
    synth.add_argument("--workers", type=positive_int, default=None, help="processes (default: number of CPUs)")
    synth.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    synth.set_defaults(func=_synth)

    info = sub.add_parser(
        "info",
        help="count utterances, speakers, transcripts and attributes of a corpus",
        description="Read a corpus spec (folder, Kaldi dir, lhotse manifests, Common Voice, "
        "LJSpeech, audio + CSV, emotional speech labelled by file names (RAVDESS, "
        "TESS, SAVEE, EmoDB), saved dataset, hf:NAME:CONFIG:SPLIT, file) "
        "and summarise it, listing any files that would be skipped.",
        epilog=SPEC_GRAMMAR,
    )
    info.add_argument("spec", metavar="SPEC", help="corpus spec (grammar below)")
    info.add_argument(
        "--metadata",
        action="append",
        metavar="FILE",
        help="extra metadata table (CSV/TSV/SPEAKERS.TXT) keyed by utterance or speaker id; repeatable",
    )
    info.add_argument(
        "--text",
        default=None,
        help="transcript for every utterance without one (corpora where all "
        "read one paragraph); @FILE reads it from FILE",
    )
    add_max_utterances(info, help="read at most N utterances")
    info.set_defaults(func=_info)

    labels = sub.add_parser(
        "labels",
        help="write the labels spelled into an emotional-speech corpus's file names as a table",
        description="Parse the file and folder names of an emotional-speech corpus (RAVDESS, TESS, "
        "SAVEE, EmoDB) and write one row per file (emotion, speaker, gender, transcript...) "
        "to a TSV you can inspect and edit. Files whose names break the scheme are "
        "listed and left out.",
        epilog=LABELS_EPILOG,
    )
    labels.add_argument("dir", help="the corpus folder")
    labels.add_argument(
        "--scheme",
        default=None,
        choices=("ravdess", "tess", "savee", "emodb"),
        help="naming scheme (default: the one most file names follow)",
    )
    labels.add_argument(
        "--labels",
        default=None,
        metavar="CSV",
        help="EmoDB: table of labels for files named otherwise (default: audio_labels.csv in DIR or its parent)",
    )
    labels.add_argument("--out", required=True, help="TSV file to write, e.g. DIR/metadata.tsv")
    labels.set_defaults(func=_labels)

    split = sub.add_parser(
        "split",
        help="hold out a fraction of the speakers (never utterances of a training speaker)",
        description="Split a corpus (or several) into train and held-out utterance ids BY SPEAKER: "
        "no speaker is on both sides. Deterministic for a seed. Writes JSON with "
        "train/held_out ids and train_speakers/held_out_speakers.",
        epilog=SPEC_GRAMMAR,
    )
    split.add_argument("spec", nargs="+", help="corpus spec(s); several are split as one corpus")
    split.add_argument("--held-out", type=float, default=0.1, help="fraction of speakers held out (default 0.1)")
    split.add_argument("--seed", type=int, default=0, help="the same seed gives the same split (default 0)")
    split.add_argument(
        "--stratify", default=None, metavar="ATTRIBUTE", help="keep this attribute's mix on both sides, e.g. gender"
    )
    split.add_argument("--metadata", action="append", help="extra metadata table (CSV/TSV/SPEAKERS.TXT); repeatable")
    split.add_argument("--out", required=True, help="JSON file to write")
    split.set_defaults(func=_split)
    _add_nonspeech(sub)
    _add_cut(sub)
    _add_align(sub)


# ------------------------------------------------------------------ corpus nonspeech (audio.nonspeech)


def _nonspeech(args: argparse.Namespace) -> int:
    from whisper_sae.audio.nonspeech import make_nonspeech_corpus

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
    out = make_nonspeech_corpus(
        args.out,
        args.per_kind,
        args.seed,
        overwrite=args.overwrite,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        **({"kinds": kinds} if kinds is not None else {}),
    )
    summary = json.loads((out / "corpus.json").read_text())
    print(
        f"wrote {summary['n_clips']} non-speech clips ({summary['seconds'] / 60:.1f} min; "
        f"{', '.join(summary['kinds'])}) to {out}"
    )
    return 0


def _add_nonspeech(sub) -> None:
    parser = sub.add_parser(
        "nonspeech",
        help="make audio without speech (silence, noises, tones, chords, music, room tone)",
        description="Write 16-kHz FLAC clips of silence, white/pink/brown noise, tones, chords, music-like "
        "arpeggios and room tone, of varied durations and levels, with OUT/metadata.tsv (kind, seed, "
        "duration, level, detail); the same seed gives the same clips. For measuring how often "
        "Whisper transcribes words where there are none.",
    )
    parser.add_argument("--out", required=True, help="folder to write the corpus into")
    parser.add_argument("--per-kind", type=int, default=8, help="clips per kind (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same clips (default 0)")
    parser.add_argument(
        "--kinds",
        default=None,
        help="comma-separated kinds (default all: silence, white_noise, pink_noise, brown_noise, tone, chord, "
        "music, room_tone)",
    )
    parser.add_argument("--min-seconds", type=float, default=1.0, help="shortest clip (default 1)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="longest clip, at most 30 (default 30)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-speech corpus already in --out")
    parser.set_defaults(func=_nonspeech)


# ------------------------------------------------------------------ corpus cut (audio.recordings)


def _cut(args: argparse.Namespace) -> int:
    from whisper_sae.audio.recordings import cut_recordings

    out = cut_recordings(
        args.folders,
        args.out,
        clip_seconds=args.clip_seconds,
        min_seconds=args.min_seconds,
        max_clips_per_file=args.max_per_file,
        overwrite=args.overwrite,
    )
    summary = json.loads((out / "corpus.json").read_text())
    kinds = ", ".join(f"{k} {n}" for k, n in summary["clips_per_kind"].items())
    print(
        f"wrote {summary['n_clips']} clips ({summary['seconds'] / 60:.1f} min) from {summary['files']} "
        f"recordings to {out} ({kinds})"
    )
    return 0


def _add_cut(sub) -> None:
    parser = sub.add_parser(
        "cut",
        help="cut real recordings without speech (noise, music, animals) into a non-speech corpus",
        description="Cut every audio file under FOLDER(s) into consecutive clips of --clip-seconds (16-kHz mono "
        "FLAC) and write them in the layout of `corpus nonspeech`, so the hallucination tools read real "
        "recordings like the generated ones. A clip's kind is the name of the sub-folder holding its file "
        "(or of FOLDER for files directly in it). Every file is read before anything is written.",
        epilog="example: whisper-sae corpus cut real-speech/bgnoise real-speech/librosa --out runs/real-nonspeech "
        "--clip-seconds 20 --max-per-file 3",
    )
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="folders of recordings (searched recursively)")
    parser.add_argument("--out", required=True, help="folder to write the corpus into")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="clip length, at most 30 (default 30)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="shortest tail kept as a clip (default 1)")
    parser.add_argument("--max-per-file", type=int, default=None, help="at most this many clips per file (default all)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-speech corpus already in --out")
    parser.set_defaults(func=_cut)


# ------------------------------------------------------------------ corpus align (audio.align)

ALIGN_EPILOG = """\
Writes OUT/<utterance id>.json ({"id", "words": [{"word", "start", "end"}], "phones": [{"phone", "start",
"end"}], "source"}; 39 ARPAbet phones without stress, silences left out; ids with characters unsafe in a
file name percent-encoded, e.g. a/b -> a%2Fb.json) and OUT/skipped.tsv (utterances without a transcript or
that could not be aligned, and why). Utterances already in OUT are kept unless --overwrite, so a stopped run
resumes. Use the folder with: whisper-sae analyze SAE --corpus SPEC --alignments-dir OUT (or --store STORE
--alignments-dir OUT). Words missing from the CMU dictionary: see --oov.

examples:
  whisper-sae corpus align data/LibriSpeech/dev-clean --out runs/align/dev-clean
  whisper-sae corpus align 'kaldi:data/speechocean/test?every=10' --out runs/align/so-test --max-utterances 50
"""


def _align(args: argparse.Namespace) -> int:
    from whisper_sae.audio.align import INSTALL_HINT, align_corpus

    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    summary = align_corpus(
        args.spec,
        args.out,
        max_utterances=args.max_utterances,
        overwrite=args.overwrite,
        oov=args.oov,
        progress=not args.no_progress,
    )
    rate = summary.audio_seconds / summary.wall_seconds if summary.wall_seconds else 0.0
    print(
        f"aligned {summary.written} utterances ({summary.audio_seconds / 60:.1f} min of audio, {rate:.1f}x real time), "
        f"kept {summary.kept} from an earlier run, skipped {len(summary.skipped)}; wrote {summary.out_dir}"
    )
    if summary.oov_words:
        print(f"  {len(summary.oov_words)} words not in the dictionary were pronounced as heard (phones left out)")
    for skip in summary.skipped[:20]:
        print(f"  skipped {skip['id']}: {skip['reason']}")
    if len(summary.skipped) > 20:
        print(f"  ... {len(summary.skipped) - 20} more in {summary.out_dir / 'skipped.tsv'}")
    return 0


def _add_align(sub) -> None:
    parser = sub.add_parser(
        "align",
        help="word and phone forced alignment of an English corpus to its transcripts (pocketsphinx)",
        description="Force-align every utterance of an English corpus to its reference transcript with "
        "pocketsphinx (en-us model, CMU dictionary) and write word and phone times per utterance, for "
        "phone/word labels of features on real speech. Needs pip install 'whisper-sae[align]'.",
        epilog=ALIGN_EPILOG,
    )
    parser.add_argument("spec", metavar="CORPUS", help="corpus spec with transcripts (see `corpus info --help`)")
    parser.add_argument("--out", required=True, help="folder to write <utterance id>.json alignments into")
    add_max_utterances(parser, help="align at most N utterances")
    parser.add_argument(
        "--oov",
        choices=("phone-loop", "skip"),
        default="phone-loop",
        help="words missing from the dictionary and not built from dictionary words: pronounce them as a "
        "free phone loop hears them (their phones left out; default) or skip the utterance",
    )
    parser.add_argument("--overwrite", action="store_true", help="realign utterances already in --out")
    add_no_progress(parser)
    parser.set_defaults(func=_align)
