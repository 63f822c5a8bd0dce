"""The IPA → ARPAbet mapping the dashboard shows phone labels in."""

from __future__ import annotations

import pytest

from whisper_sae.analysis.phones import ARPABET, IPA_TO_ARPABET, display_phone, is_arpabet, to_arpabet


@pytest.mark.parametrize(
    ("ipa", "arpabet"),
    [
        ("ð", "DH"),
        ("θ", "TH"),
        ("ŋ", "NG"),
        ("tʃ", "CH"),
        ("dʒ", "JH"),
        ("ɹ", "R"),
        ("ɡ", "G"),
        ("ˈaʊ", "AW"),  # stress mark dropped
        ("ˌoʊ", "OW"),
        ("ˈəʊ", "OW"),  # RP "goat"
        ("ˈɒ", "AA"),  # RP "lot" and US "lot" agree
        ("ˈɑː", "AA"),
        ("ˈa:", "AA"),  # ASCII length mark read as ː, not dropped ("a" alone is AE)
        ("a", "AE"),
        ("ɚ", "ER"),
        ("ˈɜː", "ER"),
        ("ɾ", "T"),  # US flap
        ("t̪", "T"),  # combining dental mark dropped
        ("ʍ", "W"),
        (";", "Y"),
        ("ˈɔːɹ", "AO R"),  # split greedily: ɔː + ɹ
        ("ˈaɪə", "AY AH"),
        ("əl", "AH L"),
        ("ˈiə", "IH R"),  # non-rhotic "near" keeps the dictionary's R
        ("_", "SIL"),
        ("_:", "SIL"),
    ],
)
def test_espeak_ipa_maps_to_arpabet(ipa, arpabet):
    assert to_arpabet(ipa) == arpabet


def test_arpabet_labels_pass_through_and_unknown_symbols_map_to_none():
    assert to_arpabet("DH") == "DH" and to_arpabet("AH0") == "AH0" and is_arpabet("SIL")
    assert not is_arpabet("QQ") and to_arpabet("ç") is None and to_arpabet("ˈyː") is None


def test_every_table_value_is_arpabet():
    assert len(ARPABET) == 39
    for ipa, arpabet in IPA_TO_ARPABET.items():
        assert all(part in ARPABET for part in arpabet.split()), ipa


def test_display_keeps_the_ipa_only_when_it_was_mapped():
    assert display_phone("ˈaʊ") == ("AW", "ˈaʊ")
    assert display_phone("AW") == ("AW", None)
    assert display_phone("ç") == ("ç", None)
    assert display_phone(None) == ("", None)
