"""Kaldi data directories: wav.scp, text, utt2spk, spk2gender, spk2age, segments; bad lines and files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, load_corpus
from whisper_sae.audio.formats.kaldi import KaldiFormatError


def write(path, seconds=0.5, sr=SAMPLE_RATE, seed=0, subtype=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * sr)).astype(np.float32)
    sf.write(path, x, sr, subtype=subtype)
    return x


@pytest.fixture
def kaldi(tmp_path):
    """speechocean762's shape: WAVE/ beside train/, paths in wav.scp relative to the corpus root."""
    root = tmp_path / "so762"
    write(root / "WAVE" / "SPK1" / "u1.wav", 0.4, seed=1)
    write(root / "WAVE" / "SPK1" / "u2.wav", 0.6, sr=8000, seed=2)
    absolute = root / "elsewhere" / "u3.wav"
    write(absolute, 0.3, seed=3)
    d = root / "train"
    d.mkdir()
    (d / "wav.scp").write_text(f"u1 WAVE/SPK1/u1.wav\nu2 WAVE/SPK1/u2.wav\nu3 {absolute}\nu4 WAVE/SPK2/gone.wav\n")
    (d / "text").write_text("u1 MARK IS GOING TO SEE ELEPHANT\nu2 WE CALL IT BEAR\nu3\nu4 NOT THERE\n")
    (d / "utt2spk").write_text("u1 SPK1\nu2 SPK1\nu3 SPK2\nu4 SPK2\n")
    (d / "spk2utt").write_text("SPK1 u1 u2\nSPK2 u3 u4\n")
    (d / "spk2gender").write_text("SPK1 f\nSPK2 m\n")
    (d / "spk2age").write_text("SPK1 9\nSPK2 34\n")
    return d


def test_kaldi_dir_texts_speakers_attributes(kaldi):
    corpus = load_corpus(kaldi)  # detected by its wav.scp
    assert len(corpus) == 4
    utts = {u.id: u for u in corpus}
    assert sorted(utts) == ["u1", "u2", "u3"]
    assert utts["u1"].text == "MARK IS GOING TO SEE ELEPHANT" and utts["u3"].text == ""
    assert utts["u1"].speaker == "SPK1" and utts["u3"].speaker == "SPK2"
    a1, a3 = utts["u1"].attributes, utts["u3"].attributes
    assert a1["gender"] == "female" and a1["age"] == 9 and isinstance(a1["age"], int)
    assert a3["gender"] == "male" and a3["age"] == 34
    assert a1["corpus"] == "so762/train"  # "train" is generic: the parent's name comes first
    assert utts["u2"].duration == pytest.approx(0.6)  # 8 kHz resampled
    assert utts["u1"].path.endswith("WAVE/SPK1/u1.wav")


def test_missing_file_in_wav_scp_is_skipped_named_and_counted(kaldi):
    corpus = load_corpus(f"kaldi:{kaldi}")
    assert [u.id for u in corpus] == ["u1", "u2", "u3"]
    assert len(corpus.skipped) == 1
    (skip,) = corpus.skipped
    assert skip["id"] == "u4" and "gone.wav" in skip["reason"] and "no such audio file" in skip["reason"]


def test_segments_are_cut_at_the_right_samples(tmp_path):
    rec = write(tmp_path / "rec.wav", 2.0, subtype="FLOAT", seed=7)
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"rec1 {tmp_path / 'rec.wav'}\n")
    (d / "segments").write_text("a rec1 0.5 1.0\nb rec1 1.25 -1\nc rec1 2.5 3.0\n")
    (d / "utt2spk").write_text("a s1\nb s1\nc s1\n")
    (d / "text").write_text("a FIRST\nb SECOND\nc TOO LATE\n")
    corpus = load_corpus(d)
    utts = {u.id: u for u in corpus}
    np.testing.assert_array_equal(utts["a"].audio, rec[8000:16000])
    np.testing.assert_array_equal(utts["b"].audio, rec[20000:])
    assert utts["a"].text == "FIRST" and utts["b"].speaker == "s1"
    assert [s["id"] for s in corpus.skipped] == ["c"] and "outside" in corpus.skipped[0]["reason"]


def test_piped_wav_scp_is_a_clear_error_naming_the_line(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text("r1 /a/r1.wav\nr2 sph2pipe -f wav /corpus/r2.sph |\n")
    with pytest.raises(KaldiFormatError, match=r"wav.scp line 2 .*piped command.*not supported"):
        load_corpus(d)


def test_utt2_and_spk2_files_become_attributes(tmp_path):
    write(tmp_path / "x.wav")
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(f"x {tmp_path / 'x.wav'}\n")
    (d / "utt2spk").write_text("x S\n")
    (d / "spk2accent").write_text("S mandarin\n")
    (d / "utt2dur").write_text("x 0.5\n")  # not an attribute
    (u,) = list(load_corpus(d))
    assert u.attributes["accent"] == "mandarin" and "dur" not in u.attributes and u.text is None


def test_tab_separated_files_as_speechocean762_writes_them(tmp_path):
    """speechocean762's wav.scp and text separate the id by a tab ("000010011\tWAVE/SPEAKER0001/000010011.WAV")."""
    write(tmp_path / "WAVE" / "SPEAKER0001" / "000010011.WAV")
    d = tmp_path / "train"
    d.mkdir()
    (d / "wav.scp").write_text("000010011\tWAVE/SPEAKER0001/000010011.WAV\n")
    (d / "text").write_text("000010011\tMARK IS GOING TO SEE ELEPHANT\n")
    (d / "utt2spk").write_text("000010011\t0001\n")
    (d / "spk2gender").write_text("0001\tm\n")
    (u,) = list(load_corpus(d))
    assert u.id == "000010011" and u.text == "MARK IS GOING TO SEE ELEPHANT" and u.speaker == "0001"
    assert u.attributes["gender"] == "male"
