"""The options every corpus spec takes: ?split=SPLIT.json:SIDE (by speaker) and ?every=N."""

from __future__ import annotations

import json

import pytest

from whisper_sae.audio import load_corpus, speaker_split
from whisper_sae.audio.formats import SpecError, parse_spec

from .test_concat_splits import kaldi_dir, write


@pytest.fixture
def corpus_dir(tmp_path):
    utts = {f"u{i}": f"s{i % 4}" for i in range(12)}  # 4 speakers, 3 utterances each
    return kaldi_dir(tmp_path / "c", utts)


def test_split_option_keeps_one_side_by_speaker(corpus_dir, tmp_path):
    split = speaker_split(load_corpus(f"kaldi:{corpus_dir}"), held_out=0.25, seed=3)
    path = split.save(tmp_path / "split.json")
    train = load_corpus(f"kaldi:{corpus_dir}?split={path}:train")
    held = load_corpus(f"kaldi:{corpus_dir}?split={path}:held_out")
    train_ids, held_ids = [u.id for u in train], [u.id for u in held]
    assert set(train_ids) == split.train and set(held_ids) == split.held_out
    assert len(train) == len(train_ids) == 9 and len(held) == 3
    assert {u.speaker for u in held}.isdisjoint({u.speaker for u in train})


def test_every_option_spreads_over_speakers_and_composes_with_split(corpus_dir, tmp_path):
    every = load_corpus(f"kaldi:{corpus_dir}?every=4")
    assert [u.id for u in every] == ["u0", "u4", "u8"] and len(every) == 3
    split = speaker_split(load_corpus(f"kaldi:{corpus_dir}"), held_out=0.5, seed=0)
    path = split.save(tmp_path / "split.json")
    both = load_corpus(f"kaldi:{corpus_dir}?split={path}:train&every=2")
    kept = sorted(split.train, key=lambda u: int(u[1:]))[::2]
    assert [u.id for u in both] == kept


def test_options_work_without_a_format_prefix(tmp_path):
    folder = tmp_path / "clips"
    for i in range(5):
        write(folder / f"clip{i}.wav", seed=i)
    assert len(load_corpus(f"{folder}?every=2")) == 3
    assert parse_spec(f"{folder}?every=2").options == {"every": "2"}
    with pytest.raises(SpecError, match="no FORMAT: prefix"):
        parse_spec(f"{folder}?text_file=x")


def test_bad_split_options_name_the_problem(corpus_dir, tmp_path):
    with pytest.raises(ValueError, match="must be SPLIT.json:train or SPLIT.json:held_out"):
        load_corpus(f"kaldi:{corpus_dir}?split={tmp_path}/s.json:both")
    with pytest.raises(FileNotFoundError, match="split file .*nowhere.json"):
        load_corpus(f"kaldi:{corpus_dir}?split={tmp_path}/nowhere.json:train")
    with pytest.raises(ValueError, match="every='0' must be a whole number"):
        load_corpus(f"kaldi:{corpus_dir}?every=0")
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps({"train": ["x"], "held_out": ["y"], "train_speakers": ["zz"], "held_out_speakers": ["yy"]})
    )
    with pytest.raises(ValueError, match="none of its speakers is on the"):
        load_corpus(f"kaldi:{corpus_dir}?split={other}:train")
