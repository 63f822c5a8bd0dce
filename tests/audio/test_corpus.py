"""load_corpus on folders: LibriSpeech layout, plain audio folders, single files, metadata, alignments, bad files."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, load_corpus, read_table


def write(path, seconds=0.5, sr=SAMPLE_RATE, channels=1, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, (int(seconds * sr), channels)).astype(np.float32)
    sf.write(path, x, sr)
    return path


@pytest.fixture
def libri(tmp_path):
    """SUBSET/SPK/CHAPTER layout: speaker 19 with a transcript file, speaker 7 without one."""
    root = tmp_path / "LibriSpeech"
    sub = root / "dev-tiny"
    for i in range(3):
        write(sub / "19" / "198" / f"19-198-{i:04d}.flac", 0.4 + 0.1 * i, seed=i)
    (sub / "19" / "198" / "19-198.trans.txt").write_text(
        "19-198-0000 NORTHANGER ABBEY\n19-198-0001 THIS LITTLE WORK\n19-198-0002 WAS FINISHED IN THE YEAR\n"
    )
    write(sub / "7" / "1" / "7-1-0000.flac", 1.0, sr=8000, channels=2)
    (root / "SPEAKERS.TXT").write_text(
        "; Some header text\n;ID      |SEX| SUBSET           |MINUTES| NAME\n"
        "19   | F | dev-tiny         | 25.19 | Kara Shallenberg\n"
        "7    | M | dev-tiny         | 3.50 | |CBW|Simon\n"
    )
    return sub


def test_librispeech_layout_with_and_without_transcripts(libri):
    corpus = load_corpus(libri)
    assert len(corpus) == 4
    utts = {u.id: u for u in corpus}
    assert sorted(utts) == ["19-198-0000", "19-198-0001", "19-198-0002", "7-1-0000"]
    assert utts["19-198-0001"].text == "THIS LITTLE WORK"
    assert utts["19-198-0002"].duration == pytest.approx(0.6)
    assert utts["7-1-0000"].text is None  # transcripts are optional
    assert utts["7-1-0000"].duration == pytest.approx(1.0)  # 8 kHz stereo → 16 kHz mono
    assert utts["7-1-0000"].audio.ndim == 1
    assert utts["19-198-0000"].speaker == "19"
    assert corpus.skipped == []


def test_speakers_txt_from_the_parent_folder_becomes_attributes(libri):
    utts = {u.id: u for u in load_corpus(libri)}
    a = utts["19-198-0000"].attributes
    assert a["speaker"] == "19" and a["sex"] == "F" and a["gender"] == "female"
    assert a["subset"] == "dev-tiny" and a["minutes"] == pytest.approx(25.19)
    assert utts["7-1-0000"].attributes["name"] == "|CBW|Simon"  # bars inside a name survive
    assert utts["7-1-0000"].attributes["gender"] == "male"


def test_corpus_is_lazy_and_reiterable(libri):
    corpus = load_corpus(libri, max_utterances=2)
    first = [u.id for u in corpus]
    assert first == [u.id for u in corpus] and len(first) == len(corpus) == 2


def test_bad_files_are_skipped_counted_and_named(tmp_path, caplog):
    write(tmp_path / "good.wav")
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC not really")
    (tmp_path / "empty.wav").write_bytes(b"")
    x = np.full(800, np.nan, np.float32)
    sf.write(tmp_path / "nan.wav", x, SAMPLE_RATE, subtype="FLOAT")
    write(tmp_path / "sub" / "quiet.ogg")
    corpus = load_corpus(tmp_path)
    with caplog.at_level(logging.WARNING):
        ids = [u.id for u in corpus]
    assert ids == ["good", "quiet"]
    assert sorted(s["id"] for s in corpus.skipped) == ["corrupt", "empty", "nan"]
    reasons = {s["id"]: s["reason"] for s in corpus.skipped}
    assert "empty.wav" in reasons["empty"] and "NaN" in reasons["nan"] and "corrupt.flac" in reasons["corrupt"]
    assert sum("skipping utterance" in r.message for r in caplog.records) == 3
    assert len(list(corpus)) == 2 and len(corpus.skipped) == 3  # a second pass does not double count


def test_duplicate_stems_get_path_ids(tmp_path):
    write(tmp_path / "a" / "x.wav")
    write(tmp_path / "b" / "x.wav")
    assert [u.id for u in load_corpus(tmp_path)] == ["a/x", "b/x"]


def test_single_file_and_long_audio(tmp_path):
    path = write(tmp_path / "talk.flac", seconds=31.0)
    (u,) = list(load_corpus(path))
    assert u.id == "talk" and u.duration == pytest.approx(31.0) and u.text is None


def test_alignments_folder_beside_the_subset(libri):
    folder = libri.parent / "alignments" / "dev-tiny"
    folder.mkdir(parents=True)
    alignment = {"id": "19-198-0001", "words": [{"word": "THIS", "start": 0.0, "end": 0.2}], "phones": []}
    (folder / "19-198-0001.json").write_text(json.dumps(alignment))
    (folder / "19-198-0002.json").write_text("{not json")
    utts = {u.id: u for u in load_corpus(libri)}
    assert utts["19-198-0001"].alignment["words"][0]["word"] == "THIS"
    assert utts["19-198-0002"].alignment is None and utts["19-198-0000"].alignment is None


def test_utterance_and_speaker_tables_merge(libri, tmp_path):
    (tmp_path / "utt.csv").write_text("utterance_id,emotion,snr\n19-198-0001, calm ,12.5\n7-1-0000,angry,3\n")
    (tmp_path / "spk.tsv").write_text("speaker\taccent\n19\tscottish\n")
    corpus = load_corpus(libri, metadata=[tmp_path / "utt.csv", tmp_path / "spk.tsv"])
    utts = {u.id: u.attributes for u in corpus}
    assert utts["19-198-0001"]["emotion"] == "calm" and utts["19-198-0001"]["snr"] == 12.5
    assert utts["7-1-0000"]["snr"] == 3.0 and "emotion" not in utts["19-198-0000"]
    assert utts["19-198-0002"]["accent"] == "scottish" and "accent" not in utts["7-1-0000"]


def test_table_matching_nothing_is_reported(libri, tmp_path, caplog):
    (tmp_path / "wrong.csv").write_text("id,gender\nA1,male\nA2,female\n")
    with caplog.at_level(logging.WARNING):
        list(load_corpus(libri, metadata=tmp_path / "wrong.csv"))
    assert any("wrong.csv" in r.message and "none of its 2 ids" in r.message for r in caplog.records)


def test_table_without_an_id_column_is_an_error(tmp_path):
    (tmp_path / "t.csv").write_text("colour,size\nred,3\n")
    with pytest.raises(ValueError, match=r"t.csv has columns \['colour', 'size'\] but no id column"):
        read_table(tmp_path / "t.csv")


def test_common_voice_style_path_keys(tmp_path):
    write(tmp_path / "clips" / "cv_001.mp3".replace(".mp3", ".wav"))
    (tmp_path / "clips" / "meta.tsv").write_text("client_id\tpath\tgender\nabc\tcv_001.mp3\tfemale\n")
    table = read_table(tmp_path / "clips" / "meta.tsv")
    assert table.key_column == "path" and table.rows["cv_001"]["gender"] == "female"
    (u,) = list(load_corpus(tmp_path / "clips", metadata=tmp_path / "clips" / "meta.tsv"))
    assert u.speaker == "abc" and u.attributes["gender"] == "female"


def test_wrong_specs_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder; a corpus spec is"):
        load_corpus(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="is a file but not audio"):
        load_corpus(tmp_path / "notes.txt")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match="holds no audio files"):
        load_corpus(tmp_path / "empty_dir")


# -- transcript and table encodings (issue 16.5): each case used to lose or garble text silently

TRANSCRIPT = "19-198-0000 NORTHANGER ABBEY\n19-198-0001 THIS LITTLE WORK\n19-198-0002 WAS FINISHED IN THE YEAR\n"


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),  # UTF-8 with a BOM: the first id used to carry it
        lambda t: t.encode("utf-16"),  # UTF-16 with a BOM: every line used to be lost
        lambda t: t.encode("utf-16-le"),  # BOM-less UTF-16
    ],
    ids=["utf8-bom", "utf16", "utf16le-nobom"],
)
def test_transcripts_in_other_unicode_encodings_keep_every_text(libri, encode):
    (libri / "19" / "198" / "19-198.trans.txt").write_bytes(encode(TRANSCRIPT))
    texts = {u.id: u.text for u in load_corpus(libri)}
    assert texts["19-198-0000"] == "NORTHANGER ABBEY"
    assert texts["19-198-0002"] == "WAS FINISHED IN THE YEAR"


def test_latin1_transcript_is_an_error_naming_the_file(libri):
    from whisper_sae.audio.textfile import TextEncodingError

    trans = libri / "19" / "198" / "19-198.trans.txt"
    trans.write_bytes("19-198-0000 CAFÉ NOËL\n".encode("latin-1"))
    with pytest.raises(TextEncodingError, match="19-198.trans.txt"):
        list(load_corpus(libri))


def test_tsv_value_starting_with_a_quote_keeps_the_following_rows(tmp_path):
    path = tmp_path / "metadata.tsv"
    path.write_text('id\ttitle\tgender\na\t"Quoted" title\tfemale\nb\tplain\tmale\nc\t12" record\tfemale\n')
    table = read_table(path)
    assert set(table.rows) == {"a", "b", "c"}
    assert table.rows["a"]["title"] == '"Quoted" title' and table.rows["b"]["gender"] == "male"
    assert table.rows["c"]["title"] == '12" record'


def test_tables_with_a_bom_or_utf16_keep_their_first_column(tmp_path):
    text = "id\tgender\na\tfemale\n"
    for name, data in (
        ("bom.tsv", b"\xef\xbb\xbf" + text.encode()),
        ("u16.tsv", text.encode("utf-16")),
        ("SPEAKERS.TXT", ";ID |SEX| NAME\n7 | M | Simon\n".encode("utf-16")),
    ):
        (tmp_path / name).write_bytes(data)
        table = read_table(tmp_path / name)
        assert table.key_column == "id" and table.rows, name
