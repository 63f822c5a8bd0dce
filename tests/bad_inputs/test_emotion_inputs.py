"""Bad inputs to the emotional-speech readers (RAVDESS, TESS, SAVEE, EmoDB) → one clear sentence each.

Two tables: specs and label tables that are errors (type and words that name the bad thing), and
file names that break their scheme, which are not errors but skipped files: the corpus still
reads, and the skip's reason names the file and the rule it breaks.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, load_corpus
from whisper_sae.audio.formats.emotion import write_labels


def wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, np.float32), SAMPLE_RATE)
    return path


def emodb(tmp, table=None, names=("03a01Fa.wav",)):
    d = tmp / "emodb"
    for name in names:
        wav(d / name)
    if table is not None:
        (d / "audio_labels.csv").write_text(table)
    return d


def labels(tmp):
    wav(tmp / "d" / "a.wav")
    write_labels(tmp / "d", None, tmp / "out.tsv")


CASES = [
    ("prefix, no folder", lambda t: f"tess:{t / 'nowhere'}", FileNotFoundError, r"no such file or folder"),
    (
        "prefix on a file",
        lambda t: f"ravdess:{wav(t / '03-01-01-01-01-01-01.wav')}",
        FileNotFoundError,
        r"ravdess corpus .*03-01-01-01-01-01-01.wav: no such folder",
    ),
    ("folder without audio", lambda t: f"savee:{t}", ValueError, r"savee corpus .* holds no audio files"),
    (
        "unknown option",
        lambda t: f"savee:{t}?scheme=ravdess",
        ValueError,
        r"format savee has no option scheme; its options are none",
    ),
    (
        "label table absent",
        lambda t: f"emodb:{emodb(t)}?labels=nope.csv",
        FileNotFoundError,
        r"EmoDB label table 'nope.csv': no such file",
    ),
    (
        "label table without emotion column",
        lambda t: "emodb:" + str(emodb(t, "Filename,Mood\nx.wav,sad\n")),
        ValueError,
        r"audio_labels.csv has columns \['filename', 'mood'\]; it needs .* an emotion column",
    ),
    (
        "label table with unknown emotion",
        lambda t: "emodb:" + str(emodb(t, "Filename,Emotion\nx.wav,joyful\n")),
        ValueError,
        r"audio_labels.csv line 2: emotion 'joyful' is not one of",
    ),
    (
        "label table beside EmoDB names: ambiguous",
        lambda t: str(emodb(t, "Filename,Emotion\nx.wav,anger\n", ("03a01Fa.wav", "x.wav", "10b02Wa.wav"))),
        ValueError,
        r"looks like csv and like emodb; say which with a prefix",
    ),
]


@pytest.mark.parametrize("build, error, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_emotion_corpus_input_is_a_clear_error(tmp_path, build, error, pattern):
    spec = build(tmp_path)
    with pytest.raises(error, match=pattern):
        list(load_corpus(spec))


def test_labels_of_a_folder_no_scheme_fits(tmp_path):
    with pytest.raises(ValueError, match=r"no naming scheme fits the audio file names of .*d; give one with --scheme"):
        labels(tmp_path)


BAD_NAMES = [
    (
        "RAVDESS with 6 fields",
        "ravdess",
        "Actor_01/03-01-05-01-02-01.wav",
        r"a RAVDESS name is 7 two-digit fields .*\(6 fields\)",
    ),
    (
        "RAVDESS unknown emotion",
        "ravdess",
        "Actor_01/03-01-09-01-01-01-01.wav",
        r"RAVDESS emotion \(3rd field\) 09 is not one of 01 neutral",
    ),
    (
        "RAVDESS statement 03",
        "ravdess",
        "Actor_01/03-01-03-01-03-01-01.wav",
        r"RAVDESS statement \(5th field\) 03 is not one of",
    ),
    ("RAVDESS letters", "ravdess", "Actor_01/03-01-xx-01-01-01-01.wav", r"a RAVDESS name is 7 two-digit fields"),
    ("RAVDESS actor 00", "ravdess", "03-01-03-01-01-01-00.wav", r"actor \(7th field\) 00 is not an actor number"),
    ("TESS unknown speaker", "tess", "flat/MAF_back_angry.wav", r"TESS speaker 'MAF' is not OAF or YAF"),
    ("TESS unknown emotion", "tess", "OAF_bored/OAF_back_bored.wav", r"TESS emotion 'bored' is not one of angry"),
    ("TESS no word", "tess", "OAF_angry/OAF.wav", r"a TESS name is SPEAKER_WORD_EMOTION"),
    ("SAVEE unknown prefix", "savee", "DC/x01.wav", r"SAVEE emotion prefix 'x' is not one of a anger"),
    ("SAVEE no speaker folder", "savee", "a01.wav", r"a SAVEE file sits in its speaker's folder"),
    (
        "EmoDB unknown emotion letter",
        "emodb",
        "03a01Xa.wav",
        r"EmoDB emotion letter \(6th character\) 'X' is not one of W anger",
    ),
    ("EmoDB other name, no table", "emodb", "clip.wav", r"an EmoDB name is SPEAKER\(2 digits\).*audio_labels.csv"),
]
GOOD = {
    "ravdess": "Actor_02/03-01-01-01-01-01-02.wav",
    "tess": "YAF_sad/YAF_beg_sad.wav",
    "savee": "JE/n01.wav",
    "emodb": "08a02Tb.wav",
}


@pytest.mark.parametrize("scheme, name, pattern", [c[1:] for c in BAD_NAMES], ids=[c[0] for c in BAD_NAMES])
def test_badly_named_file_is_skipped_named_and_counted(tmp_path, caplog, scheme, name, pattern):
    root = tmp_path / "corpus"
    wav(root / GOOD[scheme])
    wav(root / name)
    corpus = load_corpus(f"{scheme}:{root}")
    with caplog.at_level(logging.WARNING):
        utts = list(corpus)
    assert len(utts) == 1 and len(corpus) == 2
    (skip,) = corpus.skipped
    assert skip["path"].endswith(name) and skip["reason"].startswith(str(root / name))
    assert re.search(pattern, skip["reason"]), skip["reason"]
    assert any(name.split("/")[-1] in r.message and "skipping utterance" in r.message for r in caplog.records)
    n, bad = write_labels(root, scheme, tmp_path / "labels.tsv")  # the table leaves it out too
    assert n == 1 and len(bad) == 1 and name.split("/")[-1] in str(bad[0])
