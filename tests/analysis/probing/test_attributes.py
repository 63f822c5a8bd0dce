"""Bad attribute input: every case is an error naming the column and the counts, or a note saying
what was repaired or skipped — never a probe silently trained on one class."""

from __future__ import annotations

import pytest

from whisper_sae.analysis.probing.attributes import apply_metadata, resolve


def records(genders, speakers=None, **extra):
    speakers = speakers or [f"s{i}" for i in range(len(genders))]
    out = []
    for i, (g, s) in enumerate(zip(genders, speakers)):
        attrs = {} if g is None else {"gender": g}
        attrs.update({k: v[i] for k, v in extra.items()})
        out.append({"id": f"u{i}", "speaker": s, "text": None, "attributes": attrs})
    return out


def test_clean_column_resolves_with_counts():
    recs = records(["female", "male"] * 4)
    lab = resolve(recs, "gender")
    assert lab.kind == "categorical" and lab.classes == ["female", "male"]
    assert lab.counts == {"female": {"utterances": 4, "speakers": 4}, "male": {"utterances": 4, "speakers": 4}}
    assert lab.notes == [] and lab.mask.all()


def test_missing_column_names_it_and_lists_the_available_ones():
    recs = records(["female", "male"] * 4, accent=["us"] * 8)
    with pytest.raises(ValueError, match=r"'age' is not a column.*accent, gender, speaker"):
        resolve(recs, "age")


def test_constant_column_is_an_error_with_its_count():
    with pytest.raises(ValueError, match=r"'gender' is constant: all 6 labelled utterances are 'male'"):
        resolve(records(["male"] * 6), "gender")


def test_case_and_whitespace_are_merged_and_said():
    recs = records(["Female", " female", "FEMALE ", "male", "Male", "m"])
    lab = resolve(recs, "gender")
    assert lab.classes == ["female", "male"]
    assert lab.counts["female"]["utterances"] == 3 and lab.counts["male"]["utterances"] == 3
    merged = [n for n in lab.notes if "spellings merged" in n]
    assert len(merged) == 2 and "'FEMALE '" in merged[0] and "'m'" in merged[1]


def test_class_with_too_few_speakers_is_dropped_and_said():
    accents = ["us"] * 4 + ["gb"] * 4 + ["nz"] * 3
    speakers = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "i", "i"]
    recs = records([None] * 11, speakers, accent=accents)
    lab = resolve(recs, "accent", min_speakers=3)
    assert lab.classes == ["gb", "us"]
    assert lab.dropped == {"nz": {"utterances": 3, "speakers": 1}}
    assert any("class 'nz' dropped: 1 speakers, 3 utterances" in n for n in lab.notes)
    # The dropped utterances are skipped, not relabelled.
    assert lab.mask.tolist() == [True] * 8 + [False] * 3


def test_one_class_left_after_dropping_is_an_error_with_counts():
    recs = records(["female"] * 5 + ["male"] * 2, speakers=list("abcdexx"))
    with pytest.raises(
        ValueError,
        match=r"fewer than two classes.*'female': 5 utterances / 5 speakers; 'male': 2 utterances / 1 speakers",
    ):
        resolve(recs, "gender", min_speakers=3)


def test_missing_values_are_skipped_and_counted():
    recs = records(["female", None, "male", "", "female", "male", "nan", "male", "female"])
    lab = resolve(recs, "gender", min_speakers=2)
    assert "3 of 9 utterances have no value" in lab.notes[0]
    assert lab.mask.sum() == 6


def test_numbers_become_a_continuous_attribute():
    recs = records([None] * 6, rate=[120, 150, 180, 150, 175, 130])
    lab = resolve(recs, "rate")
    assert lab.kind == "continuous"
    assert list(lab.targets()) == [120.0, 150.0, 180.0, 150.0, 175.0, 130.0]
    with pytest.raises(ValueError, match=r"'rate' is constant"):
        resolve(records([None] * 6, rate=[150] * 6), "rate", categorical=False)


def test_speaker_attribute_uses_the_speaker_ids():
    recs = records([None] * 6, speakers=["a", "a", "b", "b", "c", "c"])
    lab = resolve(recs, "speaker")
    assert lab.classes == ["a", "b", "c"] and lab.column == "speaker"


def test_metadata_by_speaker_and_unmatched_ids(tmp_path):
    recs = records([None] * 4, speakers=["11", "11", "22", "33"])
    table = tmp_path / "SPEAKERS.TXT"
    table.write_text(
        "; ID |SEX| SUBSET |MINUTES| NAME\n11 | F | train | 25.0 | Ann\n22 | M | train | 25.0 | Bob\n"
        "99 | M | dev | 5.0 | Zed\n"
    )
    notes = apply_metadata(recs, table)
    assert [r["attributes"].get("gender") for r in recs] == ["female", "female", "male", None]
    assert any("1 of 4 utterances have no row" in n for n in notes)
    assert any("1 of its 3 ids match no utterance" in n and "'99'" in n for n in notes)


def test_metadata_matching_nothing_is_an_error(tmp_path):
    recs = records(["female", "male"])
    table = tmp_path / "meta.csv"
    table.write_text("id,accent\nx1,us\nx2,gb\n")
    with pytest.raises(ValueError, match=r"none of its 2 ids \('x1', 'x2'.*matches an utterance id \('u0', 'u1'\)"):
        apply_metadata(recs, table)


def test_rare_classes_are_pooled_into_a_named_class_and_said():
    # two classes with 3 speakers each, three with one or two: pooled they make 5 speakers
    langs = ["arabic"] * 3 + ["dutch"] * 3 + ["czech", "dari", "dari", "basque", "basque"]
    speakers = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]
    recs = records([None] * 11, speakers, native_language=langs)
    lab = resolve(recs, "native_language", min_speakers=3, merge_rare="other")
    assert lab.classes == ["arabic", "dutch", "other"]
    assert lab.counts["other"] == {"utterances": 5, "speakers": 5}
    assert lab.dropped == {} and lab.mask.all()
    assert any(
        "3 classes with fewer than 3 speakers pooled into 'other' (5 speakers): basque, czech, dari" in n
        for n in lab.notes
    )
    # without the option the same classes are dropped
    assert resolve(recs, "native_language", min_speakers=3).classes == ["arabic", "dutch"]


def test_a_pool_still_too_small_is_dropped_and_a_name_in_use_is_an_error():
    langs = ["arabic"] * 3 + ["dutch"] * 3 + ["czech", "dari"]
    recs = records([None] * 8, list("abcdefgh"), native_language=langs)
    lab = resolve(recs, "native_language", min_speakers=3, merge_rare="other")
    assert lab.classes == ["arabic", "dutch"] and lab.dropped == {"other": {"utterances": 2, "speakers": 2}}
    with pytest.raises(ValueError, match=r"already has a class 'dutch' with 3 speakers"):
        resolve(recs, "native_language", min_speakers=3, merge_rare="dutch")
