"""Emotional-speech corpora labelled by file and folder names: RAVDESS, TESS, SAVEE, EmoDB.

Each fixture is a handful of short generated wavs named as the real corpus names them; the tests
check the labels, speakers, genders and transcripts read from the names, the shared emotion
vocabulary, the detection of each scheme, the skipping of badly named files, and the editable
table that ``whisper-sae corpus labels`` writes.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, load_corpus
from whisper_sae.audio.formats import detect_format
from whisper_sae.audio.formats.emotion import EMOTIONS
from whisper_sae.cli import main


def write(path, seconds=0.2, sr=SAMPLE_RATE, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * sr)).astype(np.float32)
    sf.write(path, x, sr)
    return path


def make(root, names, sr=SAMPLE_RATE):
    for i, name in enumerate(names):
        write(root / name, sr=sr, seed=i)
    return root


RAVDESS = [
    "Actor_01/03-01-05-02-02-01-01.wav",
    "Actor_01/03-01-01-01-01-01-01.wav",
    "Actor_12/03-01-06-01-01-02-12.wav",
    "Actor_12/03-02-08-02-02-01-12.wav",
]


def test_ravdess(tmp_path, caplog):
    root = make(
        tmp_path / "ravdess",
        RAVDESS + ["Actor_01/03-01-05-01-02-01.wav", "Actor_12/03-01-09-01-01-01-12.wav"],
        sr=48000,
    )
    assert detect_format(root) == "ravdess"  # 4 of 6 names follow the scheme
    corpus = load_corpus(root)
    assert len(corpus) == 6
    with caplog.at_level(logging.WARNING):
        utts = {u.id: u for u in corpus}
    assert sorted(utts) == sorted(n.split("/")[1][:-4] for n in RAVDESS)
    u = utts["03-01-05-02-02-01-01"]
    assert u.speaker == "Actor_01" and u.text == "Dogs are sitting by the door."
    assert u.duration == pytest.approx(0.2, abs=1e-3)  # 48 kHz resampled
    a = u.attributes
    assert (
        a["emotion"],
        a["emotion_raw"],
        a["intensity"],
        a["statement"],
        a["repetition"],
        a["actor"],
        a["gender"],
    ) == ("angry", "angry", "strong", 2, 1, 1, "male")
    assert a["vocal_channel"] == "speech" and a["language"] == "en" and a["corpus"] == "ravdess"
    f = utts["03-01-06-01-01-02-12"]
    assert f.speaker == "Actor_12" and f.attributes["gender"] == "female" and f.attributes["emotion"] == "fearful"
    assert f.text == "Kids are talking by the door." and f.attributes["repetition"] == 2
    assert utts["03-02-08-02-02-01-12"].attributes["vocal_channel"] == "song"
    assert utts["03-02-08-02-02-01-12"].attributes["emotion"] == "surprised"
    # the two bad names: skipped, named and counted like undecodable files
    assert len(corpus.skipped) == 2
    reasons = " ".join(s["reason"] for s in corpus.skipped)
    assert "03-01-05-01-02-01.wav: a RAVDESS name is 7 two-digit fields" in reasons and "(6 fields)" in reasons
    assert "03-01-09-01-01-01-12.wav: RAVDESS emotion (3rd field) 09 is not one of 01 neutral" in reasons
    warned = [r.message for r in caplog.records if "skipping utterance" in r.message]
    assert len(warned) == 2 and any("03-01-05-01-02-01.wav" in w for w in warned)


def test_tess(tmp_path):
    root = make(
        tmp_path / "TESS Toronto emotional speech set data",
        [
            "OAF_angry/OAF_back_angry.wav",
            "YAF_pleasant_surprise/YAF_bar_ps.wav",
            "OAF_neutral/OA_bite_neutral.wav",
            "YAF_Fear/YAF_chair_fear.wav",
            "OAF_Sad/OAF_dog_sad.wav",
        ],
    )
    assert detect_format(root) == "tess"
    utts = {u.id: u for u in load_corpus(root)}
    u = utts["OAF_back_angry"]
    assert u.speaker == "OAF" and u.text == "Say the word back."
    assert (
        u.attributes.items()
        >= {"emotion": "angry", "emotion_raw": "angry", "word": "back", "gender": "female", "age": 64}.items()
    )
    s = utts["YAF_bar_ps"]
    assert s.speaker == "YAF" and s.attributes["age"] == 26
    assert s.attributes["emotion"] == "surprised" and s.attributes["emotion_raw"] == "pleasant_surprise"
    assert utts["OA_bite_neutral"].speaker == "OAF"  # TESS's own typo: the folder names the speaker
    assert utts["YAF_chair_fear"].attributes["emotion"] == "fearful"  # folder case does not matter
    assert utts["OAF_dog_sad"].attributes["emotion"] == "sad"


def test_tess_flat_copy_reads_the_file_name(tmp_path):
    root = make(tmp_path / "flat", ["OAF_back_angry.wav", "YAF_bar_ps.wav", "YAF_beg_sad.wav"])
    utts = {u.id: u for u in load_corpus(f"tess:{root}")}
    assert utts["YAF_bar_ps"].attributes["emotion"] == "surprised" and utts["OAF_back_angry"].speaker == "OAF"


def test_savee(tmp_path):
    root = make(tmp_path / "AudioData", ["DC/a01.wav", "DC/sa03.wav", "JK/a01.wav", "KL/su15.wav", "JE/n30.wav"])
    (root / "Info.txt").write_text("four male speakers")
    assert detect_format(root) == "savee"
    utts = {u.id: u for u in load_corpus(root)}
    assert sorted(utts) == ["DC/a01", "DC/sa03", "JE/n30", "JK/a01", "KL/su15"]  # stems clash: paths are the ids
    u = utts["DC/sa03"]
    assert u.speaker == "DC" and u.text is None
    assert (
        u.attributes.items()
        >= {"emotion": "sad", "emotion_raw": "sadness", "sentence_index": 3, "gender": "male"}.items()
    )
    assert utts["JK/a01"].speaker == "JK" and utts["JK/a01"].attributes["emotion"] == "angry"
    assert utts["KL/su15"].attributes["emotion"] == "surprised" and utts["JE/n30"].attributes["emotion"] == "neutral"
    flat = make(tmp_path / "ALL", ["DC_a01.wav", "JE_h02.wav", "KL_sa01.wav"])
    assert detect_format(flat) == "savee"
    utts = {u.id: u for u in load_corpus(flat)}
    assert utts["JE_h02"].speaker == "JE" and utts["JE_h02"].attributes["emotion"] == "happy"


def test_emodb(tmp_path, caplog):
    root = make(tmp_path / "emodb" / "wav", ["03a01Fa.wav", "16b10Tb.wav", "09a05Lc.wav", "clip7.wav"])
    (root.parent / "audio_labels.csv").write_text(
        "Filename,Speaker Info,Emotion\n"
        '03a01Fa.wav,"male, 31 years old",disgust\n'  # E4's CSV swaps fear, disgust, happiness
        '16b10Tb.wav,"female, 31 years",sadness\n'
        'clip7.wav,"female, 34 years",anxiety\n'
    )
    assert detect_format(root) == "emodb"
    with caplog.at_level(logging.WARNING):
        corpus = load_corpus(root)
    assert any(
        "audio_labels.csv: 1 of its 3 rows give another emotion than the file name" in r.message
        and "03a01Fa.wav" in r.message
        for r in caplog.records
    )
    utts = {u.id: u for u in corpus}
    u = utts["03a01Fa"]
    assert u.speaker == "03" and u.text == "Der Lappen liegt auf dem Eisschrank."
    assert (
        u.attributes.items()
        >= {
            "emotion": "happy",
            "emotion_raw": "happiness",
            "gender": "male",
            "age": 31,
            "text_code": "a01",
            "version": "a",
            "language": "de",
        }.items()
    )
    t = utts["16b10Tb"]
    assert t.speaker == "16" and t.attributes["gender"] == "female" and t.attributes["emotion"] == "sad"
    assert t.text == "Die wird auf dem Platz sein, wo wir sie immer hinlegen."
    assert utts["09a05Lc"].attributes["emotion"] == "boredom" and utts["09a05Lc"].attributes["age"] == 21
    c = utts["clip7"]  # not named by the scheme: labels from the table, speaker from gender and age
    assert c.speaker == "08" and c.attributes["emotion"] == "fearful" and c.attributes["emotion_raw"] == "anxiety"
    assert c.attributes["language"] == "de" and corpus.skipped == []


def test_emotions_share_one_vocabulary(tmp_path):
    found = set()
    for spec in (
        f"ravdess:{make(tmp_path / 'r', RAVDESS)}",
        f"tess:{make(tmp_path / 't', ['OAF_fear/OAF_a_fear.wav', 'YAF_happy/YAF_b_happy.wav'])}",
        f"savee:{make(tmp_path / 's', ['DC/f01.wav', 'DC/d02.wav', 'DC/h03.wav'])}",
        f"emodb:{make(tmp_path / 'e', ['03a01Aa.wav', '03a01Ea.wav', '03a01Wa.wav', '03a01La.wav'])}",
    ):
        found |= {u.attributes["emotion"] for u in load_corpus(spec)}
    assert found <= set(EMOTIONS) | {"boredom"}
    assert found == {"angry", "neutral", "fearful", "surprised", "happy", "disgust", "boredom"}


def test_prefix_reads_a_folder_the_names_would_not_decide(tmp_path):
    root = make(tmp_path / "mixed", ["Actor_01/03-01-05-02-02-01-01.wav", "a.wav", "b.wav"])
    assert detect_format(root) is None  # one name in three: a plain folder
    utts = list(load_corpus(f"ravdess:{root}"))
    assert [u.id for u in utts] == ["03-01-05-02-02-01-01"]
    assert "emotion" not in next(iter(load_corpus(root))).attributes


def test_labels_table_round_trip(tmp_path, capsys):
    root = make(tmp_path / "ravdess", RAVDESS + ["Actor_01/03-01-05-01-02-01.wav"])
    out = root / "metadata.tsv"
    assert main(["corpus", "labels", str(root), "--out", str(out)]) == 0  # scheme detected
    printed = capsys.readouterr().out
    assert "wrote 4 rows" in printed and "left out 1 files" in printed and "03-01-05-01-02-01.wav" in printed
    lines = out.read_text().splitlines()
    assert lines[0].split("\t")[:6] == ["utterance_id", "path", "speaker", "text", "emotion", "emotion_raw"]
    assert len(lines) == 5
    from_names = {u.id: u for u in load_corpus(f"ravdess:{root}")}
    from_table = {u.id: u for u in load_corpus(f"csv:{root}:metadata.tsv")}
    assert set(from_table) == set(from_names) | {"03-01-05-01-02-01"}  # the badly named file has no row
    for utt, u in from_names.items():
        t = from_table[utt]
        assert (t.speaker, t.text) == (u.speaker, u.text)
        for key in ("emotion", "intensity", "statement", "actor", "gender"):
            assert t.attributes[key] == u.attributes[key]
    # an edited label wins: with metadata.tsv beside them the names no longer decide
    out.write_text(out.read_text().replace("\tangry\tangry\t", "\tcalm\tangry\t"))
    assert detect_format(root) is None
    edited = {u.id: u for u in load_corpus(root)}
    assert edited["03-01-05-02-02-01-01"].attributes["emotion"] == "calm"
    assert edited["03-01-05-02-02-01-01"].speaker == "Actor_01"


def test_labels_help_and_spec_grammar_name_the_schemes(capsys):
    with pytest.raises(SystemExit):
        main(["corpus", "info", "--help"])
    help_text = capsys.readouterr().out
    for prefix in ("ravdess:DIR", "tess:DIR", "savee:DIR", "emodb:DIR", "whisper-sae corpus labels"):
        assert prefix in help_text
    with pytest.raises(SystemExit):
        main(["corpus", "labels", "--help"])
    assert "03-01-05-01-02-01-12.wav" in capsys.readouterr().out
