"""Derived two-class attributes (``probe --derive child=age<=12``): parsing, labelling, errors."""

import pytest

from whisper_sae.analysis.probing.attributes import resolve
from whisper_sae.analysis.probing.derive import apply_derivations, parse_derivation


def _records(values: list, column: str = "age") -> list[dict]:
    return [
        {"id": f"u{i}", "speaker": f"s{i}", "attributes": {} if v is None else {column: v}}
        for i, v in enumerate(values)
    ]


def test_parse_splits_name_column_operator_value():
    d = parse_derivation(" child = age <= 12 ")
    assert (d.name, d.column, d.op, d.value) == ("child", "age", "<=", "12")
    d = parse_derivation("native=native_language==english")
    assert (d.name, d.column, d.op, d.value) == ("native", "native_language", "==", "english")
    assert parse_derivation("big=x>3").op == ">"


@pytest.mark.parametrize("spec", ["child", "child=age", "=age<=3", "child=age<=", "child=age=12"])
def test_malformed_spec_is_an_error_naming_it(spec):
    with pytest.raises(ValueError, match="--derive"):
        parse_derivation(spec)


def test_numeric_threshold_labels_and_skips_missing():
    records = _records([8, 12, 13, "40", None, "nan"])
    notes = apply_derivations(records, ["child=age<=12"])
    got = [r["attributes"].get("child") for r in records]
    assert got == ["child", "child", "not child", "not child", None, None]
    assert "2 utterances 'child', 2 'not child', 2 without 'age'" in notes[0]


def test_numbers_compare_as_numbers_not_text():
    records = _records(["9", "100"])  # as text "100" < "9"
    apply_derivations(records, ["old=age>50"])
    assert [r["attributes"]["old"] for r in records] == ["not old", "old"]


def test_text_equality_ignores_case_and_spaces():
    records = _records([" English", "arabic", "ENGLISH "], column="native_language")
    apply_derivations(records, ["native=Native_Language==english"])
    assert [r["attributes"]["native"] for r in records] == ["native", "not native", "native"]
    apply_derivations(records, ["foreign=native_language!=english"])
    assert [r["attributes"]["foreign"] for r in records] == ["not foreign", "foreign", "not foreign"]


def test_order_operator_on_text_is_an_error():
    records = _records(["english"], column="native_language")
    with pytest.raises(ValueError, match="not a number"):
        apply_derivations(records, ["x=native_language<=english"])


def test_unknown_column_lists_the_columns():
    with pytest.raises(ValueError, match="no column 'years'.*age"):
        apply_derivations(_records([3, 40]), ["child=years<=12"])


def test_derived_attribute_resolves_as_two_classes_with_speaker_counts():
    records = _records([5, 6, 7, 30, 40, 50, 60])
    apply_derivations(records, ["child=age<=12"])
    labels = resolve(records, "child", min_speakers=3)
    assert labels.kind == "categorical"
    assert labels.classes == ["child", "not child"]
    assert labels.counts["child"]["speakers"] == 3 and labels.counts["not child"]["speakers"] == 4
