"""LJSpeech-style metadata.csv folders, and audio folders with a table keyed by file name (Speech Accent Archive)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, load_corpus
from whisper_sae.cli import main

PARAGRAPH = "Please call Stella. Ask her to bring these things with her from the store."


def write(path, seconds=0.4, sr=SAMPLE_RATE, seed=0, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * sr)).astype(np.float32)
    sf.write(path, x, sr, format=fmt)


@pytest.fixture
def ljs(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    (root / "metadata.csv").write_text(
        'LJ001-0001|Printing, in 1869, "the only art|Printing, in eighteen sixty-nine, "the only art\n'
        "LJ001-0002|in being comparatively modern.|in being comparatively modern.\n"
        "LJ001-0003||only the normalized one\n"
    )
    for i in (1, 2, 3):
        write(root / "wavs" / f"LJ001-000{i}.wav", sr=22050, seed=i)
    return root


def test_ljspeech(ljs, caplog):
    with (ljs / "metadata.csv").open("a") as f:
        f.writelines(f"LJ050-{i:04d}|not in this part|not in this part\n" for i in range(500))  # LJSpeech "part 1"
    with caplog.at_level(logging.WARNING):
        corpus = load_corpus(ljs)  # detected: metadata.csv with bars + wavs/
    assert len(corpus) == 3 and sum("500 of its 503 rows" in r.message for r in caplog.records) == 1
    utts = {u.id: u for u in corpus}
    assert sorted(utts) == ["LJ001-0001", "LJ001-0002", "LJ001-0003"]
    assert utts["LJ001-0001"].text == 'Printing, in 1869, "the only art'  # as written; quotes are text
    assert utts["LJ001-0003"].text == "only the normalized one"
    u = utts["LJ001-0002"]
    assert (
        u.speaker == "LJSpeech-1.1" and u.attributes["gender"] == "female" and u.attributes["corpus"] == "LJSpeech-1.1"
    )
    assert u.duration == pytest.approx(0.4, abs=1e-3)  # 22.05 kHz resampled


def test_ljspeech_options_name_the_speaker(ljs, tmp_path):
    other = tmp_path / "reader"
    ljs.rename(other)
    (u, *_) = list(load_corpus(f"rd=ljspeech:{other}?speaker=R1&gender=m"))
    assert u.speaker == "R1" and u.attributes["gender"] == "male" and u.attributes["corpus"] == "rd"
    (u, *_) = list(load_corpus(f"ljspeech:{other}"))
    assert "gender" not in u.attributes  # only the LJ Speech corpus itself is known to be one woman


@pytest.fixture
def accent(tmp_path):
    """The Speech Accent Archive's shape: mp3s at the top, speakers_all.csv keyed by file name without extension."""
    root = tmp_path / "saa"
    fmt = "MP3" if "MP3" in sf.available_formats() else "WAV"
    for i, name in enumerate(("english1", "mandarin3", "extra9")):
        write(root / f"{name}.mp3", 0.5, sr=44100 if fmt == "MP3" else SAMPLE_RATE, seed=i, fmt=fmt)
    (root / "speakers_all.csv").write_text(
        "age,age_onset,birthplace,filename,native_language,sex,speakerid,country\n"
        '24.0,0.0,"kansas city, missouri, usa",english1,english,female,17,usa\n'
        '38.0,12.0,"beijing, china",mandarin3,mandarin,male,321,china\n'
        '50.0,10.0,"lagos, nigeria",yoruba2,yoruba,male,900,nigeria\n'
    )
    return root


def test_audio_folder_with_a_speaker_table(accent, caplog):
    with caplog.at_level(logging.WARNING):
        corpus = load_corpus(accent, text=PARAGRAPH)  # detected: one CSV with a filename column
        utts = {u.id: u for u in corpus}
    assert sorted(utts) == ["english1", "extra9", "mandarin3"]
    m = utts["mandarin3"]
    assert m.speaker == "321" and m.text == PARAGRAPH
    assert m.attributes["native_language"] == "mandarin" and m.attributes["gender"] == "male"
    assert m.attributes["age"] == 38 and m.attributes["age_onset"] == 12 and m.attributes["country"] == "china"
    assert m.attributes["birthplace"] == "beijing, china" and m.attributes["corpus"] == "saa"
    assert utts["english1"].attributes["gender"] == "female"
    assert utts["extra9"].speaker is None and utts["extra9"].attributes == {"corpus": "saa"}
    said = " ".join(r.message for r in caplog.records)
    assert "1 audio files have no row" in said and "1 rows name no audio file" in said and "yoruba2" in said


def test_csv_spec_with_table_options_and_a_text_file(accent, tmp_path):
    (tmp_path / "para.txt").write_text(PARAGRAPH + "\n")
    (accent / "other.csv").write_text("file,x\nenglish1,1\n")  # a second table: auto-detection would be ambiguous
    spec = f"csv:{accent}:speakers_all.csv?speaker=filename&text_file={tmp_path / 'para.txt'}"
    utts = {u.id: u for u in load_corpus(spec)}
    assert utts["english1"].speaker == "english1" and utts["english1"].text == PARAGRAPH


def test_corpus_info_text_flag_and_help(accent, tmp_path, capsys):
    (tmp_path / "para.txt").write_text(PARAGRAPH)
    assert main(["corpus", "info", str(accent), "--text", f"@{tmp_path / 'para.txt'}"]) == 0
    out = capsys.readouterr().out
    assert "3 utterances" in out and "3 with transcripts" in out and "native_language: " in out
    with pytest.raises(SystemExit):
        main(["corpus", "info", "--help"])
    help_text = capsys.readouterr().out
    for prefix in (
        "kaldi:DIR",
        "lhotse:DIR[:PART]",
        "commonvoice:DIR[:SPLIT]",
        "ljspeech:DIR",
        "csv:DIR[:TABLE]",
        "NAME=",
    ):
        assert prefix in help_text
