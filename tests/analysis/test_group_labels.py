"""Per-group (per-language) label F1 on tiny hand-made codes and alignments."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_sae.analysis.features.group_labels import GroupedLabelF1, plain_phone

TIMES = (np.arange(10) + 0.5) * 0.02  # ten 20-ms frames


def _codes(on: dict[int, list[int]], d_sae: int = 4) -> np.ndarray:
    codes = np.zeros((10, d_sae), np.float32)
    for feature, frames in on.items():
        codes[frames, feature] = 1.0
    return codes


# /a/ on frames 0-4, /s/ on frames 5-9 (stress marks and the pause are normalised away)
PHONES = [
    {"phone": "ˈa", "start": 0.0, "end": 0.1},
    {"phone": "s", "start": 0.1, "end": 0.2},
    {"phone": "_:", "start": 0.2, "end": 0.3},
]


def test_plain_phone_strips_stress_and_drops_pauses():
    assert plain_phone("ˈa") == "a" and plain_phone("ˌɛː") == "ɛː" and plain_phone("_:") == ""


def test_shared_feature_scores_in_both_groups_and_a_private_one_only_in_its_own():
    g = GroupedLabelF1(4)
    # es: feature 0 fires exactly on /a/; en: feature 0 fires on /a/ frames 0-2 only, feature 1 on all of /a/
    g.update("es", _codes({0: [0, 1, 2, 3, 4], 2: [5, 6, 7, 8, 9]}), TIMES, PHONES)
    g.update("en", _codes({0: [0, 1, 2], 1: [0, 1, 2, 3, 4], 3: [5, 6]}), TIMES, PHONES)
    assert g.groups == ["en", "es"]
    assert g.label_frames("es") == {"a": 5, "s": 5}
    np.testing.assert_allclose(g.f1("es", "a"), [1.0, 0.0, 0.0, 0.0])
    # en feature 0: precision 3/3, recall 3/5 -> F1 0.75
    np.testing.assert_allclose(g.f1("en", "a"), [0.75, 1.0, 0.0, 0.0])
    out = g.compare("a", min_frames=5)
    assert out["best_feature"] == {"en": 1, "es": 0} and not out["same_best"]
    assert out["cross"]["es"]["en"] == pytest.approx(0.75)  # es's best /a/ feature, scored on English
    assert out["cross"]["en"]["es"] == 0.0
    s = g.compare("s", min_frames=5)
    assert s["best_feature"] == {"en": 3, "es": 2}
    assert s["cross"]["en"]["en"] == pytest.approx(2 * 1 * 0.4 / 1.4)
    assert g.shared_labels(min_frames=5) == ["a", "s"]
    assert g.shared_labels(min_frames=6) == []


def test_labels_first_seen_later_grow_every_group():
    g = GroupedLabelF1(2)
    g.update("de", _codes({0: [0]}, 2), TIMES, [{"phone": "a", "start": 0.0, "end": 0.2}])
    g.update("fr", _codes({1: [0, 1]}, 2), TIMES, [{"phone": "y", "start": 0.0, "end": 0.04}])
    assert g.f1("de", "y").tolist() == [0.0, 0.0]
    assert g.f1("fr", "y").tolist() == [0.0, 1.0]
    g.update("de", _codes({1: [9]}, 2), TIMES, [{"phone": "y", "start": 0.18, "end": 0.2}])
    assert g.f1("de", "y")[1] == pytest.approx(1.0)


def test_bad_input_names_the_problem():
    g = GroupedLabelF1(4)
    with pytest.raises(ValueError, match=r"\[frames, 4\]"):
        g.update("en", np.zeros((10, 3)), TIMES, PHONES)
    with pytest.raises(ValueError, match="frame times"):
        g.update("en", np.zeros((9, 4)), TIMES, PHONES)
    g.update("en", _codes({}), TIMES, PHONES)
    with pytest.raises(KeyError, match="'xx'"):
        g.f1("xx", "a")
    with pytest.raises(KeyError, match="'q'"):
        g.f1("en", "q")
