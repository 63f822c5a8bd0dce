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


# The 171 phone names eSpeak NG 1.52 gave (IPA mode, stress marks kept) on the first 120 sentences of the
# English text bank in its 8 English voices (en-us, en-us-nyc, en, en-gb-x-rp, en-gb-scotland, en-gb-x-gbclan,
# en-gb-x-gbcwmd, en-029).
ESPEAK_ENGLISH = (
    "_ t ə n d ð s l ɪ k ɹ w z m b p f v h a ˈɛ ˈɪ ɐ ɒ ɡ ˈɔː ˈiː ˈaɪ ; ˈa iː ˈɒ ˈeɪ ŋ r æ ˈʌ ʌ i ˈʊ ˈoʊ ʊ ʃ ˈɑː "
    "ˈeː tʃ ˈæ ˈuː ˈaʊ j dʒ əl ˈəʊ ˈoː ˌɒ θ ɛ aɪ ɚ ˌʌ ˈɜː ˈiə ˌɛ ɜ ɜː ᵻ ˌɪ ˌaʊ ˈɔɪ ˈʌʊ ˈæʊ e ɔː ɾ ɛə eɪ ˌoʊ ˈei ˈɔ "
    "ˌaɪ ˈaɪə ei ˌʊ eə uː ˌɔː oʊ ˌəʊ ˌoː ˈɛə ˈʌʉ eː ˈeə ˌæʊ ɔ ʉ ˈəu ˈʉː ˈɔːɹ ˌa ˈaː ˈɑə ˈɑːɹ əʊ oː aʊ ˈa: ˈaa ˈʉ "
    "ˌʌʊ t̪ ˈəɪ ɔɪ ˈɔə ˌuː ˌiə ʲ ʍ ˌʌʉ ˈoə ɑː ˌeə ˈʊə ˌeɪ ˌæ ˌi ˈɪɹ əɪ ʌʊ ˌɑː ˈo ˌɔ ˌe ˈe ɔə æʊ ˌɔːɹ ˌɜː ˌo ˌeː "
    "ˌoə ɛɹ ɔːɹ ʒ ˈʌɹ ˌɔɪ əu ˌɐ ˈəɹ ˈaɪɚ ˈɛɹ ˌiː ˌʉ ʌʉ ˈʊɹ ˈʉɹ ˈoɪ ˌɛɹ ˌɛə ˌa: ˌəu oə ˌaa ˌɪɹ a: ɑːɹ ˌəɪ aː ˌei ɑə aa"
).split()


def test_every_english_espeak_phone_maps():
    assert len(set(ESPEAK_ENGLISH)) == 171
    for name in ESPEAK_ENGLISH:
        arpabet = to_arpabet(name)
        assert arpabet is not None and all(p in ARPABET + ["SIL"] for p in arpabet.split()), name


def test_the_docs_list_every_table_entry():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "phones.md").read_text(encoding="utf-8")
    for ipa, arpabet in IPA_TO_ARPABET.items():
        assert f"| `{ipa}` | {arpabet} |" in doc, ipa
