"""Forced alignment with pocketsphinx (``audio.align``, ``whisper-sae corpus align``) on speech made here by eSpeak."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import load_corpus, resample
from whisper_sae.audio.align import PHONES, alignment_filename, normalise_words

SENTENCE = "The cat sat on the warm mat, and the dog slept by the door."


@pytest.fixture(scope="module")
def spoken():
    """(16-kHz audio with silence around it, eSpeak's own word times on that audio) of SENTENCE."""
    from whisper_sae.audio.synth import normalise_transcript
    from whisper_sae.audio.synth.alignment import alignment_from_events
    from whisper_sae.audio.synth.espeak import engine

    tts = engine()
    samples, events = tts.synthesize(SENTENCE, "en-us", rate=160)
    audio = resample(samples.astype(np.float32) / 32768, tts.sample_rate)
    pad = np.zeros(8000, np.float32)  # 0.5 s of silence on each side
    audio = np.concatenate([pad, audio, pad])
    truth = alignment_from_events("x", normalise_transcript(SENTENCE), events, len(audio) / 16000 - 1.0)
    for word in truth["words"]:
        word["start"] += 0.5
        word["end"] += 0.5
    return audio, truth


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, spoken):
    """LibriSpeech layout: 1-2-0000 with a transcript (with a word missing from the dictionary in
    1-2-0001) and 1-2-0002 without one."""
    audio, _ = spoken
    root = tmp_path_factory.mktemp("align_corpus") / "1" / "2"
    root.mkdir(parents=True)
    for i in range(3):
        sf.write(root / f"1-2-000{i}.flac", audio, 16000)
    (root / "1-2.trans.txt").write_text(
        f"1-2-0000 {SENTENCE.upper()}\n1-2-0001 {SENTENCE.upper().replace('WARM', 'ZORBLEFLAX')}\n"
    )
    return root.parent.parent


def test_names_and_words():
    assert alignment_filename("1089-134686-0000") == "1089-134686-0000.json"
    assert alignment_filename("libri/1089-134686-0000") == "libri%2F1089-134686-0000.json"
    assert alignment_filename("a%b") == "a%25b.json" and alignment_filename(".x") == "%2Ex.json"
    assert normalise_words("“Don’t,” she said -- twenty-one times!") == ["don't", "she", "said", "twenty-one", "times"]


needs_pocketsphinx = pytest.mark.skipif(
    importlib.util.find_spec("pocketsphinx") is None,
    reason="forced alignment needs pocketsphinx (pip install whisper-sae[align])",
)


@needs_pocketsphinx
def test_align_utterance_matches_espeak_times(spoken):
    from whisper_sae.audio.align import align_utterance

    audio, truth = spoken
    doc = align_utterance(audio, SENTENCE, utt_id="u1")
    assert doc["id"] == "u1" and "pocketsphinx" in doc["source"]
    assert [w["word"] for w in doc["words"]] == [w.strip(",.").upper() for w in SENTENCE.split()]
    times = [t for w in doc["words"] for t in (w["start"], w["end"])]
    assert times == sorted(times) and times[0] >= 0.0 and times[-1] <= len(audio) / 16000
    assert all(w["end"] > w["start"] for w in doc["words"])
    assert doc["words"][0]["start"] >= 0.3  # the leading half second of silence is not a word
    # Word starts agree with eSpeak's own event times (the synthesizer knows where it put each word).
    starts = np.array([w["start"] for w in doc["words"]])
    ref = np.array([w["start"] for w in truth["words"]])
    assert len(ref) == len(starts)
    assert np.median(np.abs(starts - ref)) < 0.08, list(zip(starts, ref))
    phones = doc["phones"]
    assert phones and {p["phone"] for p in phones} <= set(PHONES)
    assert all(not any(c.isdigit() for c in p["phone"]) for p in phones)
    ptimes = [t for p in phones for t in (p["start"], p["end"])]
    assert ptimes == sorted(ptimes) and ptimes[-1] <= len(audio) / 16000
    cat = doc["words"][1]
    inside = [p["phone"] for p in phones if cat["start"] <= p["start"] and p["end"] <= cat["end"]]
    assert inside == ["K", "AE", "T"]


@needs_pocketsphinx
def test_align_corpus_skips_and_names_missing_transcript(corpus_dir, tmp_path, caplog):
    from whisper_sae.audio.align import align_corpus

    out = tmp_path / "al"
    summary = align_corpus(str(corpus_dir), out, progress=False)
    assert summary.written == 2 and [s["id"] for s in summary.skipped] == ["1-2-0002"]
    assert "no transcript" in summary.skipped[0]["reason"] and "1-2-0002" in caplog.text
    assert "1-2-0002\tno transcript" in (out / "skipped.tsv").read_text()
    oov = json.loads((out / "1-2-0001.json").read_text())
    plain = json.loads((out / "1-2-0000.json").read_text())
    # The missing word keeps its place and times; its phones (heard, not from the dictionary) are left out.
    assert [w["word"] for w in oov["words"]][5] == "ZORBLEFLAX" and "ZORBLEFLAX" in oov["source"]
    span = oov["words"][5]
    assert span["end"] > span["start"]
    assert not [p for p in oov["phones"] if span["start"] <= p["start"] and p["end"] <= span["end"]]
    assert len(oov["phones"]) < len(plain["phones"])
    assert summary.oov_words == {"ZORBLEFLAX": 1}
    # A second run keeps what is there; the files feed the corpus reader's alignment lookup.
    again = align_corpus(str(corpus_dir), out, progress=False)
    assert again.kept == 2 and again.written == 0
    from whisper_sae.analysis.features.labels import AlignmentIndex

    index = AlignmentIndex(out)
    assert index.get("1-2-0000")["words"] == plain["words"] and index.get("1-2-0002") is None


@needs_pocketsphinx
def test_skip_mode_names_the_missing_word(spoken):
    from whisper_sae.audio.align import Aligner, AlignError

    aligner = Aligner(oov="skip")
    with pytest.raises(AlignError, match="not in the dictionary: zorbleflax"):
        aligner.align(spoken[0], "the cat zorbleflax")
    with pytest.raises(AlignError, match="no words"):
        aligner.align(spoken[0], " -- ! ")
    # Possessives and hyphenated words are built from dictionary words, not skipped.
    doc = aligner.align(spoken[0], SENTENCE.replace("cat", "cat's").replace("warm mat", "warm-mat"))
    assert "CAT'S" in [w["word"] for w in doc["words"]] and "WARM-MAT" in [w["word"] for w in doc["words"]]


def test_index_finds_percent_encoded_ids(tmp_path):
    from whisper_sae.analysis.features.labels import AlignmentIndex

    doc = {"id": "libri/1-2-0000", "words": [{"word": "A", "start": 0.1, "end": 0.2}], "phones": []}
    (tmp_path / alignment_filename(doc["id"])).write_text(json.dumps(doc))
    assert AlignmentIndex(tmp_path).get("libri/1-2-0000") == doc


@needs_pocketsphinx
def test_cli_align_and_install_hint(corpus_dir, tmp_path, capsys, monkeypatch):
    from whisper_sae.cli import main

    out = tmp_path / "cli"
    assert main(["corpus", "align", str(corpus_dir), "--out", str(out), "--max-utterances", "1", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "aligned 1 utterances" in said and (out / "1-2-0000.json").is_file()
    corpus = load_corpus(str(corpus_dir), max_utterances=1)
    assert next(iter(corpus)).id == "1-2-0000"
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # as if it were not installed
    assert main(["corpus", "align", str(corpus_dir), "--out", str(tmp_path / "x")]) == 1
    assert "pip install 'whisper-sae[align]'" in capsys.readouterr().err
