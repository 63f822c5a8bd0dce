"""Bad corpus inputs (specs, Kaldi files, Common Voice / LJSpeech / CSV tables, splits) → one clear sentence each.

Each row builds its broken corpus in tmp_path and names the error it must raise: the type and a
pattern for the words that say what is wrong and where (file, line, column, option).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, Utterance, load_corpus, speaker_split
from whisper_sae.audio.textfile import TextEncodingError


def wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, np.float32), SAMPLE_RATE)
    return path


def kaldi(tmp, **files):
    d = tmp / "data"
    d.mkdir(exist_ok=True)
    wav(tmp / "a.wav")
    files.setdefault("wav.scp", f"a {tmp / 'a.wav'}\n")
    for name, text in files.items():
        (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(d)


def cv(tmp, tsv="client_id\tpath\tsentence\nc\ta.mp3\thi\n", name="validated.tsv"):
    d = tmp / "cv"
    (d / "clips").mkdir(parents=True)
    (d / name).write_text(tsv)
    return d


def ljs(tmp, meta):
    d = tmp / "lj"
    (d / "wavs").mkdir(parents=True)
    (d / "metadata.csv").write_text(meta)
    return str(d)


def audio_csv(tmp, table="filename,sex\na,f\n", extra=None):
    d = tmp / "saa"
    wav(d / "a.wav")
    (d / "speakers_all.csv").write_text(table)
    if extra:
        (d / "second.csv").write_text(extra)
    return str(d)


def ambiguous(tmp):
    d = cv(tmp)
    (d / "wav.scp").write_text(f"a {wav(tmp / 'a.wav')}\n")
    return str(d)


def lhotse_empty(tmp):
    pytest.importorskip("lhotse")
    (tmp / "m").mkdir()
    return f"lhotse:{tmp / 'm'}"


CASES = [
    # Kaldi data dirs
    (
        "piped wav.scp",
        lambda t: kaldi(t, **{"wav.scp": "a /x/a.wav\nb sox /x/b.sph -t wav - |\n"}),
        ValueError,
        r"wav.scp line 2 \('b sox .*is a piped command; piped wav.scp entries are not supported",
    ),
    (
        "wav.scp id without path",
        lambda t: kaldi(t, **{"wav.scp": "a\n"}),
        ValueError,
        r"wav.scp line 1 \('a'\) has no path after the id",
    ),
    (
        "utt2spk missing column",
        lambda t: kaldi(t, utt2spk="a s1\nb\n"),
        ValueError,
        r"utt2spk line 2 \('b'\) has 1 field",
    ),
    (
        "segments not seconds",
        lambda t: kaldi(t, segments="u a zero 1.0\n"),
        ValueError,
        r"segments: utterance u has start/end 'zero'",
    ),
    (
        "segments unknown recording",
        lambda t: kaldi(t, segments="u r9 0 1\n"),
        ValueError,
        r"names recordings that wav.scp lacks \(e.g. r9\)",
    ),
    (
        "Latin-1 text",
        lambda t: kaldi(t, text="a caf\xe9\n".encode("latin-1")),
        TextEncodingError,
        r"text is not valid UTF-8",
    ),
    ("kaldi dir without wav.scp", lambda t: f"kaldi:{t}", FileNotFoundError, r"has no wav.scp"),
    ("kaldi prefix, no folder", lambda t: f"kaldi:{t / 'nowhere'}", FileNotFoundError, r"no such file or folder"),
    # Common Voice
    (
        "CV tsv without path column",
        lambda t: str(cv(t, "client_id\tsentence\nc\thi\n")),
        ValueError,
        r"validated.tsv has columns \['client_id', 'sentence'\] but no 'path' column",
    ),
    (
        "CV split absent",
        lambda t: f"commonvoice:{cv(t)}:dev",
        FileNotFoundError,
        r"has no dev.tsv; its TSVs are validated",
    ),
    (
        "CV without validated/train",
        lambda t: f"commonvoice:{cv(t, name='test.tsv')}",
        FileNotFoundError,
        r"neither validated.tsv nor train.tsv \(TSVs: test.tsv\)",
    ),
    # LJSpeech
    (
        "LJSpeech line without transcript",
        lambda t: ljs(t, "LJ1|hi|hi\nLJ2\n"),
        ValueError,
        r"metadata.csv line 2 \('LJ2'\) has no transcript",
    ),
    # audio + table
    (
        "table without file column",
        lambda t: "csv:" + audio_csv(t, "speaker,sex\na,f\n") + ":speakers_all.csv",
        ValueError,
        r"speakers_all.csv has columns \['speaker', 'sex'\] but no file-name column",
    ),
    (
        "speaker option names no column",
        lambda t: f"csv:{audio_csv(t)}?speaker=nope",
        ValueError,
        r"has no column 'nope' for the speaker",
    ),
    (
        "two tables, none chosen",
        lambda t: "csv:" + audio_csv(t, extra="file,x\na,1\n"),
        ValueError,
        r"choose its table with csv:.*:TABLE \(CSV tables here: second.csv, speakers_all.csv\)",
    ),
    (
        "table file absent",
        lambda t: f"csv:{audio_csv(t)}:nope.csv",
        FileNotFoundError,
        r"metadata table 'nope.csv': no such file",
    ),
    # the spec itself
    ("ambiguous layout", ambiguous, ValueError, r"looks like kaldi and like commonvoice; say which with a prefix"),
    (
        "unknown option",
        lambda t: f"ljspeech:{t}?voice=x",
        ValueError,
        r"format ljspeech has no option voice; its options are speaker, gender",
    ),
    (
        "options without a format",
        lambda t: f"{t / 'x'}?speaker=a",
        ValueError,
        r"has options \(speaker\) but no FORMAT: prefix",
    ),
    ("argument to a format without one", lambda t: f"kaldi:{t}:train", ValueError, r"format kaldi takes no ':train'"),
    ("no corpus", lambda t: [], ValueError, r"no corpus given"),
    ("lhotse folder without manifests", lhotse_empty, FileNotFoundError, r"holds no recordings or cuts manifest"),
]


@pytest.mark.parametrize("build, error, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_corpus_input_is_a_clear_error(tmp_path, build, error, pattern):
    spec = build(tmp_path)
    with pytest.raises(error, match=pattern):
        corpus = load_corpus(spec)
        list(corpus)


SPLITS = [
    ("fraction of 1.5", dict(held_out=1.5), r"held_out must be a fraction of speakers between 0 and 1, got 1.5"),
    ("one speaker", dict(speakers=["s", "s"]), r"needs at least 2 speakers; the utterances have 1"),
    ("no speakers", dict(speakers=[None, "s"]), r"1 utterances have no speaker \(e.g. u0\)"),
    ("duplicate ids", dict(ids=["u", "u"]), r"utterance id 'u' occurs twice"),
    ("stratify by an absent attribute", dict(stratify="accent"), r"no utterance has attribute 'accent'"),
]


@pytest.mark.parametrize("kw, pattern", [c[1:] for c in SPLITS], ids=[c[0] for c in SPLITS])
def test_bad_split_request_is_a_clear_error(kw, pattern):
    speakers = kw.pop("speakers", ["a", "b", "c"])
    ids = kw.pop("ids", [f"u{i}" for i in range(len(speakers))])
    utts = [Utterance(id=i, audio=np.zeros(1, np.float32), speaker=s) for i, s in zip(ids, speakers)]
    with pytest.raises(ValueError, match=pattern):
        speaker_split(utts, **kw)
