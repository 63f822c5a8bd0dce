"""Several corpora as one (names kept, clashing ids prefixed), speaker splits, and a two-corpus store."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, Utterance, load_corpus, load_split, speaker_split
from whisper_sae.audio.formats import parse_spec
from whisper_sae.cli import main


def write(path, seconds=0.3, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(
        path, np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE
    )


def kaldi_dir(root, utts: dict[str, str], genders: dict[str, str] | None = None):
    """A Kaldi data dir of ``{utt: speaker}``, one short wav per utterance."""
    root.mkdir(parents=True)
    for i, utt in enumerate(utts):
        write(root / "wav" / f"{utt}.wav", seed=i)
    (root / "wav.scp").write_text("".join(f"{u} {root / 'wav' / u}.wav\n" for u in utts))
    (root / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in utts.items()))
    (root / "text").write_text("".join(f"{u} WORDS OF {u}\n" for u in utts))
    if genders:
        (root / "spk2gender").write_text("".join(f"{s} {g}\n" for s, g in genders.items()))
    return root


@pytest.fixture
def two(tmp_path):
    a = kaldi_dir(tmp_path / "alpha", {"u1": "s1", "u2": "s1", "u3": "s2"})
    b = kaldi_dir(tmp_path / "beta", {"u1": "t1", "u9": "t2"})
    write(b / "wav" / "broken.wav")
    (b / "wav" / "broken.wav").write_bytes(b"RIFF junk")
    (b / "wav.scp").write_text((b / "wav.scp").read_text() + f"bad {b / 'wav' / 'broken.wav'}\n")
    (b / "utt2spk").write_text((b / "utt2spk").read_text() + "bad t2\n")
    return a, b


def test_two_corpora_keep_names_and_unique_ids(two, caplog):
    a, b = two
    with caplog.at_level(logging.WARNING):
        corpus = load_corpus([str(a), str(b)])
        utts = list(corpus)
    assert len(corpus) == 6
    assert [u.id for u in utts] == ["u1", "u2", "u3", "beta/u1", "u9"]  # only the clash is prefixed
    assert [u.attributes["corpus"] for u in utts] == ["alpha"] * 3 + ["beta"] * 2
    assert utts[3].text == "WORDS OF u1" and utts[3].speaker == "t1"
    assert [(s["id"], s["corpus"]) for s in corpus.skipped] == [("bad", "beta")]
    assert any("1 utterance ids also belong to an earlier corpus" in r.message for r in caplog.records)
    assert [u.id for u in corpus] == [u.id for u in utts] and len(corpus.skipped) == 1  # same on every pass
    with pytest.raises(ValueError, match="is given twice"):
        load_corpus([str(a), str(a)])


def test_spec_names_and_options_parse():
    s = parse_spec("so=kaldi:data/train")
    assert (s.name, s.format, s.path, s.arg) == ("so", "kaldi", "data/train", None)
    s = parse_spec("commonvoice:cv/en:test")
    assert (s.format, s.path, s.arg) == ("commonvoice", "cv/en", "test")
    s = parse_spec("csv:saa:speakers_all.csv?speaker=filename&text=Please call Stella.")
    assert s.arg == "speakers_all.csv" and s.options == {"speaker": "filename", "text": "Please call Stella."}
    assert parse_spec("hf:openslr/librispeech_asr:clean:test").format == "hf"
    assert parse_spec("some/folder").format is None


def test_speaker_split_never_shares_a_speaker():
    rng = np.random.default_rng(0)
    utts = [
        Utterance(
            id=f"{s}-{k}",
            audio=np.zeros(10, np.float32),
            speaker=f"spk{s}",
            attributes={"gender": "female" if s % 3 else "male"},
        )
        for s in range(40)
        for k in range(int(rng.integers(1, 6)))
    ]
    split = speaker_split(utts, held_out=0.2, seed=3)
    train, held = split
    assert train and held and not (train & held) and train | held == {u.id for u in utts}
    speaker_of = {u.id: u.speaker for u in utts}
    assert not ({speaker_of[i] for i in train} & {speaker_of[i] for i in held})
    assert len(split.held_out_speakers) == 8
    again = speaker_split(list(reversed(utts)), held_out=0.2, seed=3)
    assert again.held_out == held  # order of arrival does not matter; the seed does
    assert speaker_split(utts, held_out=0.2, seed=4).held_out_speakers != split.held_out_speakers
    strat = speaker_split(utts, held_out=0.2, seed=0, stratify="gender")  # 26 women, 14 men: 5.2 and 2.8 to hold out
    assert strat.info["strata"] == {"female": {"train": 21, "held_out": 5}, "male": {"train": 11, "held_out": 3}}
    with pytest.raises(ValueError, match="2 utterances have no speaker"):
        speaker_split([Utterance(id=f"n{i}", audio=np.zeros(1, np.float32)) for i in range(2)])


def test_speaker_split_over_records_and_the_cli(two, tmp_path, capsys):
    a, b = two
    records = [{"id": "x1", "speaker": "p", "attributes": {}}, {"id": "x2", "attributes": {"speaker": "q"}}]
    assert len(speaker_split(records, held_out=0.5).held_out) == 1
    out = tmp_path / "split.json"
    assert main(["corpus", "split", str(a), str(b), "--held-out", "0.25", "--seed", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["train_speakers"]).isdisjoint(data["held_out_speakers"])
    assert len(data["held_out_speakers"]) == 1 and "beta/u1" in data["train"] + data["held_out"]
    assert data["n_train"] + data["n_held_out"] == 6  # the unreadable file too: split reads no audio
    assert load_split(out).held_out == set(data["held_out"])
    assert "held out; wrote" in capsys.readouterr().out


def test_extract_two_corpora_into_one_store(two, tiny_random_whisper_dir, tmp_path):
    from whisper_sae.activations import ActivationStore

    a, b = two
    out = tmp_path / "store"
    assert (
        main(
            [
                "extract",
                "--model",
                str(tiny_random_whisper_dir),
                "--corpus",
                f"A={a}",
                "--corpus",
                f"kaldi:{b}",
                "--hooks",
                "encoder.out",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    store = ActivationStore(out)
    records = {r["id"]: r for r in store.utterances}
    assert sorted(records) == ["beta/u1", "u1", "u2", "u3", "u9"]
    assert records["u1"]["attributes"]["corpus"] == "A" and records["beta/u1"]["attributes"]["corpus"] == "beta"
    assert records["beta/u1"]["speaker"] == "t1"
    assert store.manifest["utterances"]["n_skipped"] == 1
