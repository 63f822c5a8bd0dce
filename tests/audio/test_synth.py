"""The synthetic corpus: layout, balance, attributes, and alignments that agree with the audio."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import numpy as np
import pytest

from whisper_sae.audio import load_corpus
from whisper_sae.audio.synth import ENGLISH_ACCENTS, design_speakers, normalise_transcript, synthesize_corpus, text_bank
from whisper_sae.audio.synth.corpus import plan_corpus
from whisper_sae.audio.synth.espeak import engine
from whisper_sae.audio.synth.voices import check_languages


@pytest.fixture(scope="module")
def utterances(synth_corpus):
    return list(load_corpus(synth_corpus))


def test_layout_and_summary(synth_corpus):
    summary = json.loads((synth_corpus / "corpus.json").read_text())
    flacs = sorted((synth_corpus / "synth").rglob("*.flac"))
    assert len(flacs) == summary["n_utterances"] >= 8
    for flac in flacs:
        spk, chapter, _ = flac.stem.split("-")
        assert flac.parent == synth_corpus / "synth" / spk / chapter
        assert flac.with_suffix(".json").is_file() and (flac.parent / f"{spk}-{chapter}.trans.txt").is_file()
    header = (synth_corpus / "metadata.tsv").read_text().splitlines()[0].split("\t")
    assert header[:2] == ["id", "speaker"] and {"gender", "accent", "rate", "pitch", "variant"} <= set(header)


def test_corpus_reads_back_with_text_alignment_and_attributes(utterances, synth_corpus):
    total = sum(u.duration for u in utterances)
    assert 20 < total < 50  # asked for 30 s
    assert total == pytest.approx(json.loads((synth_corpus / "corpus.json").read_text())["seconds"], abs=0.01)
    for u in utterances:
        a = u.attributes
        assert u.text and u.alignment and u.speaker == a["speaker"] == u.id.split("-")[0]
        assert a["gender"] in ("female", "male") and a["accent"] in ENGLISH_ACCENTS
        assert a["variant"][0] == a["gender"][0]  # m1..m8 are male, f1..f5 female
        assert (
            140 <= a["rate"] <= 195 and 30 <= a["pitch"] <= 70 and a["duration"] == pytest.approx(u.duration, abs=1e-3)
        )


def test_balanced_every_text_has_two_voices_of_both_genders(utterances):
    by_text = defaultdict(list)
    for u in utterances:
        by_text[u.attributes["text_id"]].append(u)
    assert len(by_text) >= 4
    for group in by_text.values():
        assert len({u.speaker for u in group}) == 2
        assert {u.attributes["gender"] for u in group} == {"female", "male"}
        assert len({u.text for u in group}) == 1
    assert len({u.speaker for u in utterances}) == 6
    assert len({u.attributes["accent"] for u in utterances}) == 6


def test_phones_tile_the_audio_in_order(utterances):
    for u in utterances:
        phones = u.alignment["phones"]
        assert phones[0]["start"] == 0.0 and phones[-1]["end"] == pytest.approx(u.duration, abs=1e-3)
        for p, q in zip(phones, phones[1:]):
            assert p["start"] <= p["end"] == q["start"]
        assert all(p["phone"] for p in phones)
        sounding = [p for p in phones if p["phone"] != "_"]
        assert len(sounding) > len(u.text.split())  # more phones than words
        assert any("ˈ" in p["phone"] for p in sounding)  # IPA stress marks: eSpeak's IPA names


def test_words_match_transcript_and_sit_on_the_speech(utterances):
    for u in utterances:
        words = u.alignment["words"]
        assert [w["word"] for w in words] == u.text.split()
        for w, v in zip(words, words[1:]):
            assert w["start"] < w["end"] <= v["start"] + 1e-9
        assert words[-1]["end"] <= u.duration
        # The audio inside words is speech; the pauses eSpeak reports between sentences are (near) silent.
        sr = u.sample_rate
        inside = np.concatenate([u.audio[int(w["start"] * sr) : int(w["end"] * sr)] for w in words])
        pauses = [p for p in u.alignment["phones"] if p["phone"] == "_" and p["end"] - p["start"] > 0.05]
        if pauses:
            quiet = np.concatenate([u.audio[int(p["start"] * sr) + 160 : int(p["end"] * sr) - 160] for p in pauses])
            assert np.sqrt(np.mean(inside**2)) > 5 * np.sqrt(np.mean(quiet**2) + 1e-12)


def test_transcripts_are_normalised(synth_corpus):
    for trans in (synth_corpus / "synth").rglob("*.trans.txt"):
        for line in trans.read_text().splitlines():
            utt, text = line.split(" ", 1)
            assert re.fullmatch(r"[A-Z' ]+", text), line


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    kwargs = dict(minutes=0.1, n_speakers=2, balanced=True, voices_per_text=2, seed=3, progress=False)
    a = synthesize_corpus(tmp_path / "a", workers=1, **kwargs)
    b = synthesize_corpus(tmp_path / "b", workers=2, **kwargs)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    c = synthesize_corpus(tmp_path / "c", workers=1, **{**kwargs, "seed": 4})
    assert (c / "metadata.tsv").read_text() != (a / "metadata.tsv").read_text()
    with pytest.raises(FileExistsError, match="already holds a synthetic corpus"):
        synthesize_corpus(tmp_path / "a", **kwargs)


def test_other_languages(tmp_path):
    out = synthesize_corpus(tmp_path / "de", minutes=0.1, languages=["de", "fr"], n_speakers=2, progress=False)
    utts = list(load_corpus(out))
    assert {u.attributes["language"] for u in utts} == {"de", "fr"}
    for u in utts:
        assert [w["word"] for w in u.alignment["words"]] == u.text.split()
    assert any(set("ÄÖÜÉÈÀÇ") & set(u.text) for u in utts) or all(u.text.isascii() for u in utts)


def test_plan_is_balanced_and_spans_voices():
    import random

    jobs = plan_corpus(3.0, ("en",), 0, True, 3, 12, 0.0)
    by_text = defaultdict(list)
    for speaker, utts in jobs:
        for utt in utts:
            by_text[utt["text_id"]].append(speaker)
    assert all(len(v) == 3 and len({s.gender for s in v}) == 2 for v in by_text.values())
    counts = [len(utts) for _, utts in jobs]
    assert max(counts) - min(counts) <= 1  # the least-used speaker goes next
    speakers = design_speakers(16, "en", random.Random(1), whispered=0.25)
    assert sum(s.gender == "female" for s in speakers) == 8
    assert {s.accent for s in speakers} == set(ENGLISH_ACCENTS)
    assert sum(s.quality == "whisper" for s in speakers) == 4
    assert all(s.variant in ("whisper", "whisperf") for s in speakers if s.quality == "whisper")


def test_text_bank_is_varied_plain_prose():
    bank = text_bank("en")
    assert len(bank) >= 300 and len(set(bank)) == len(bank)
    words = [w for s in bank for w in normalise_transcript(s).split()]
    assert len(set(words)) > 1200  # a real vocabulary, not a few templates
    for sentence in bank:
        assert not re.search(r"[0-9\-]|\b(Mr|Mrs|Dr|St)\.", sentence), sentence
        assert 4 <= len(sentence.split()) <= 30
    for language in ("de", "fr", "es", "it", "nl", "pt"):
        assert len(text_bank(language)) >= 10


def test_normalise_transcript():
    assert (
        normalise_transcript("Don't stop — it’s late, said the 'old' man.") == "DON'T STOP IT'S LATE SAID THE OLD MAN"
    )
    assert normalise_transcript("Über den Wolken!") == "ÜBER DEN WOLKEN"


def test_espeak_voices_and_errors():
    tts = engine()
    names = tts.voices()
    assert set(ENGLISH_ACCENTS) <= set(names) and tts.sample_rate == 22050
    with pytest.raises(ValueError, match="no voice 'xx-nowhere'"):
        tts.synthesize("hello", "xx-nowhere")
    with pytest.raises(ValueError, match=r"not available for synthesis; choose from"):
        check_languages(["en", "klingon"])


def test_accents_can_be_restricted():
    import random

    speakers = design_speakers(6, "en", random.Random(0), accents=["en-us", "en-gb-x-rp"])
    assert {s.accent for s in speakers} == {"en-us", "en-gb-x-rp"}
    with pytest.raises(ValueError, match=r"accents \['en-mars'\] are not en voices"):
        design_speakers(2, "en", random.Random(0), accents=["en-mars"])
    with pytest.raises(ValueError, match="are not voices of"):
        synthesize_corpus("/nonexistent/never", accents=["de"], languages=["en"])


def test_accent_and_gender_are_crossed_in_the_speaker_design():
    """With 2 L speakers and L accents, every accent must be spoken by both genders (not confounded)."""
    import random
    from collections import defaultdict

    from whisper_sae.audio.synth.voices import LANGUAGE_VOICES, design_speakers

    n_accents = len(LANGUAGE_VOICES["en"])
    for seed in range(3):
        speakers = design_speakers(2 * n_accents, "en", random.Random(seed))
        genders = defaultdict(set)
        for s in speakers:
            genders[s.voice].add(s.gender)
        assert len(genders) == n_accents
        assert all(g == {"female", "male"} for g in genders.values()), dict(genders)
        assert sum(s.gender == "female" for s in speakers) == n_accents
