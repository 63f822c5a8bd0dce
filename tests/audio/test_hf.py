"""Hugging Face ``datasets`` corpora: saved to disk and streamed (the hub path, on a local parquet folder)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, load_corpus
from whisper_sae.audio.hf import parse_hub_spec

datasets = pytest.importorskip("datasets")


def wav_bytes(seconds: float, sr: int, seed: int, channels: int = 1) -> bytes:
    x = np.random.default_rng(seed).uniform(-0.2, 0.2, (int(seconds * sr), channels)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV")
    return buf.getvalue()


def common_voice_like() -> datasets.Dataset:
    rows = {
        "client_id": ["spk_a", "spk_b", "spk_a", "spk_c"],
        "path": ["cv_0.mp3", "cv_1.mp3", "cv_2.mp3", "cv_3.mp3"],
        "audio": [
            {"bytes": wav_bytes(0.5, 48000, 0), "path": None},
            {"bytes": wav_bytes(0.25, 16000, 1, channels=2), "path": None},
            {"bytes": b"not audio at all", "path": None},
            {"bytes": wav_bytes(1.0, 8000, 3), "path": None},
        ],
        "sentence": [" Hello there. ", "Good morning.", "Broken row.", "Last one."],
        "gender": ["male", "female", "male", " female "],
        "accent": ["scotland", "us", "scotland", "england"],
        "age": ["twenties", "thirties", "twenties", None],
        "up_votes": [2, 3, 0, 1],
    }
    return datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio())


def check_rows(corpus):
    utts = list(corpus)
    assert [u.id for u in utts] == ["cv_0", "cv_1", "cv_3"]
    assert [s["id"] for s in corpus.skipped] == ["cv_2"]  # the undecodable row is skipped, not fatal
    a, b, d = utts
    assert a.duration == pytest.approx(0.5) and b.duration == pytest.approx(0.25) and d.duration == pytest.approx(1.0)
    assert a.audio.dtype == np.float32 and b.audio.ndim == 1 and a.sample_rate == SAMPLE_RATE
    assert a.text == "Hello there." and a.speaker == "spk_a" and d.speaker == "spk_c"
    assert a.attributes["gender"] == "male" and d.attributes["gender"] == "female"  # stray spaces stripped
    assert a.attributes["accent"] == "scotland" and a.attributes["up_votes"] == 2
    assert "age" not in d.attributes and "audio" not in a.attributes and "sentence" not in a.attributes


def test_saved_dataset_with_attribute_columns(tmp_path):
    common_voice_like().save_to_disk(str(tmp_path / "cv"))
    corpus = load_corpus(tmp_path / "cv")
    assert len(corpus) == 4
    check_rows(corpus)


def test_saved_dataset_dict_needs_a_split(tmp_path):
    ds = common_voice_like()
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"has splits \['train', 'test'\]; choose one"):
        load_corpus(tmp_path / "dd")
    assert [u.id for u in load_corpus(tmp_path / "dd", split="test")] == ["cv_0"]


def test_hub_streaming_code_path_on_a_local_parquet_dataset(tmp_path):
    folder = tmp_path / "hub_copy" / "data"
    folder.mkdir(parents=True)
    common_voice_like().to_parquet(str(folder / "train-00000-of-00001.parquet"))
    corpus = load_corpus(f"hf:{tmp_path / 'hub_copy'}:train")
    with pytest.raises(TypeError, match="streamed"):
        len(corpus)
    check_rows(corpus)
    assert [u.id for u in load_corpus(f"hf:{tmp_path / 'hub_copy'}:train", max_utterances=1)] == ["cv_0"]


def test_librispeech_style_columns(tmp_path):
    ds = datasets.Dataset.from_dict(
        {
            "file": ["a.flac"],
            "audio": [{"bytes": wav_bytes(0.3, 16000, 5), "path": "a.flac"}],
            "text": ["HE HOPED THERE WOULD BE STEW"],
            "speaker_id": [1089],
            "chapter_id": [134686],
            "id": ["1089-134686-0000"],
        }
    ).cast_column("audio", datasets.Audio(sampling_rate=16000))
    ds.save_to_disk(str(tmp_path / "ls"))
    (u,) = list(load_corpus(tmp_path / "ls"))
    assert u.id == "1089-134686-0000" and u.speaker == "1089" and u.text.startswith("HE HOPED")
    assert u.attributes["chapter_id"] == 134686


def test_hub_spec_parsing():
    assert parse_hub_spec("hf:openslr/librispeech_asr:clean:test") == ("openslr/librispeech_asr", "clean", "test")
    assert parse_hub_spec("hf:user/data:validation") == ("user/data", None, "validation")
    with pytest.raises(ValueError, match="not hf:NAME"):
        parse_hub_spec("hf:")


def test_unreachable_hub_dataset_is_a_sentence(tmp_path):
    with pytest.raises(RuntimeError, match=r"could not open dataset .*nothing_here.*for streaming"):
        load_corpus(f"hf:{tmp_path / 'nothing_here'}:test")
