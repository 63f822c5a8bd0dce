"""Common Voice folders (TSV + clips/*.mp3) and MP3 decoding through soundfile/libsndfile."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, load_audio, load_corpus

HAS_MP3 = "MP3" in sf.available_formats()


def tone(seconds, freq=440.0, sr=SAMPLE_RATE):
    t = np.arange(int(seconds * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_clip(path, seconds, freq=440.0):
    """An MP3 where libsndfile writes MP3 (≥ 1.1), else WAV bytes under the .mp3 name (decoded by content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if HAS_MP3:
        sf.write(path, tone(seconds, freq, 48000), 48000, format="MP3")
    else:
        sf.write(path, tone(seconds, freq), SAMPLE_RATE, format="WAV")


@pytest.mark.skipif(
    not HAS_MP3, reason=f"libsndfile {sf.__libsndfile_version__} here has no MP3 support (needs >= 1.1)"
)
def test_mp3_decodes(tmp_path):
    sf.write(tmp_path / "a.mp3", tone(1.0, 300.0, 44100), 44100, format="MP3")
    x = load_audio(tmp_path / "a.mp3")
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) / SAMPLE_RATE - 1.0) < 0.1  # MP3 frames pad the ends a little
    spectrum = np.abs(np.fft.rfft(x))
    assert np.argmax(spectrum) * SAMPLE_RATE / len(x) == pytest.approx(300.0, abs=3.0)  # the tone survived


@pytest.fixture
def cv(tmp_path):
    root = tmp_path / "cv-corpus" / "en"
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"
    (root).mkdir(parents=True)
    (root / "validated.tsv").write_text(
        header
        + 'c1\tcommon_voice_en_1.mp3\t"Hello, he said.\t2\t0\ttwenties\tmale_masculine\tIndia and South Asia\ten\t\n'
        + "c2\tcommon_voice_en_2.mp3\tA second sentence.\t2\t0\tfifties\tfemale\t\ten\t\n"
        + "c1\tcommon_voice_en_3.mp3\tMissing clip.\t2\t0\ttwenties\tmale\t\ten\t\n"
    )
    (root / "test.tsv").write_text(header + "c2\tcommon_voice_en_2.mp3\tA second sentence.\t2\t0\t\t\t\tzh-CN\t\n")
    write_clip(root / "clips" / "common_voice_en_1.mp3", 0.8)
    write_clip(root / "clips" / "common_voice_en_2.mp3", 0.5, 600.0)
    return root


def test_common_voice_validated_tsv(cv, caplog):
    with caplog.at_level(logging.WARNING):
        corpus = load_corpus(cv)  # detected: clips/ + validated.tsv
    utts = {u.id: u for u in corpus}
    assert sorted(utts) == ["common_voice_en_1", "common_voice_en_2"]
    u1 = utts["common_voice_en_1"]
    assert u1.text == '"Hello, he said.'  # no CSV quoting: the quote does not swallow the next fields and lines
    assert u1.speaker == "c1"
    a = u1.attributes
    assert a["gender"] == "male" and a["age"] == 25 and a["age_group"] == "twenties"
    assert a["accent"] == "India and South Asia" and a["locale"] == "en" and a["language"] == "en"
    assert a["corpus"] == "cv-corpus/en" and "up_votes" not in a
    assert utts["common_voice_en_2"].attributes["gender"] == "female"
    assert abs(u1.duration - 0.8) < 0.1
    # Listed but absent (a subset of a release): left out, one warning with the count, not a skip per row.
    assert len(corpus) == 2 and corpus.skipped == []
    assert any(
        "1 of its 3 rows name an audio file that is absent" in r.message and "common_voice_en_3.mp3" in r.message
        for r in caplog.records
    )


def test_common_voice_clip_that_does_not_decode_is_skipped_and_counted(cv):
    (cv / "clips" / "common_voice_en_2.mp3").write_bytes(b"ID3 not really an mp3")
    corpus = load_corpus(cv)
    assert [u.id for u in corpus] == ["common_voice_en_1"]
    assert [s["id"] for s in corpus.skipped] == ["common_voice_en_2"] and "common_voice_en_2.mp3" in corpus.skipped[0][
        "reason"
    ]


def test_common_voice_split_is_chosen_by_the_spec(cv):
    (u,) = list(load_corpus(f"commonvoice:{cv}:test"))
    assert u.id == "common_voice_en_2" and u.attributes["language"] == "zh" and u.attributes["locale"] == "zh-CN"
    assert u.attributes["corpus"] == "cv-corpus/en:test" and "age" not in u.attributes
    with pytest.raises(FileNotFoundError, match=r"has no dev.tsv; its TSVs are test, validated"):
        load_corpus(f"commonvoice:{cv}:dev")
