"""Labels from alignments: precision, recall and F1 against hand-counted frames."""

from __future__ import annotations

import numpy as np

from whisper_sae.analysis.features.labels import AlignmentLabeler, f1_summary, frame_labels, normalize_word


def _alignment():
    return {
        "phones": [
            {"phone": "s", "start": 0.0, "end": 0.1},
            {"phone": "a", "start": 0.1, "end": 0.3},
            {"phone": "s", "start": 0.3, "end": 0.4},
        ],
        "words": [{"word": "Sas,", "start": 0.0, "end": 0.4}],
    }


def test_frame_labels_use_frame_centres():
    times = (np.arange(25) + 0.5) * 0.02
    labels = frame_labels(_alignment()["phones"], "phone", times)
    assert labels[:5] == ["s"] * 5 and labels[5:15] == ["a"] * 10 and labels[15:20] == ["s"] * 5
    assert labels[20:] == [None] * 5
    assert frame_labels(_alignment()["words"], "word", times)[:20] == ["sas"] * 20
    assert normalize_word("STUFF") == normalize_word("stuff,") == "stuff"


def test_precision_recall_f1_by_hand():
    times = (np.arange(25) + 0.5) * 0.02
    codes = np.zeros((25, 3), np.float32)
    codes[0:5, 0] = 1.0  # fires on the first /s/ only: precision 1, recall 5/10
    codes[5:15, 1] = 2.0  # exactly /a/
    codes[12:25, 1] = 2.0  # plus 10 more frames: 3 of /a/ already, 5 of /s/, 5 silent
    lab = AlignmentLabeler(3)
    lab.update(codes, times, _alignment())
    res = lab.result()
    vocab = res["phone_vocab"]
    assert vocab[res["phone_label"][0]] == "s"
    assert res["phone_precision"][0] == 1.0 and res["phone_recall"][0] == 0.5
    np.testing.assert_allclose(res["phone_f1"][0], 2 * 0.5 / 1.5)
    # feature 1 fires on frames 5..24 (20 frames): 10 of /a/ -> P 0.5, R 1.0
    assert vocab[res["phone_label"][1]] == "a"
    np.testing.assert_allclose([res["phone_precision"][1], res["phone_recall"][1]], [0.5, 1.0])
    assert res["phone_label"][2] == -1 and res["phone_f1"][2] == 0
    # Words: feature 0 fires on 5 of the 20 word frames.
    np.testing.assert_allclose(res["word_recall"][0], 5 / 20)


def test_counts_accumulate_over_utterances_and_compaction():
    rng = np.random.default_rng(0)
    lab = AlignmentLabeler(4)
    times = (np.arange(25) + 0.5) * 0.02
    all_codes = []
    for _ in range(20):
        codes = (rng.random((25, 4)) < 0.3).astype(np.float32)
        lab.update(codes, times, _alignment())
        all_codes.append(codes)
    lab.phones._compact()  # compaction in the middle must not change the counts
    lab.update(all_codes[0], times, _alignment())
    all_codes.append(all_codes[0])
    res = lab.result()
    phone = np.array([frame_labels(_alignment()["phones"], "phone", times)] * len(all_codes)).ravel()
    codes = np.concatenate(all_codes) > 0
    for f in range(4):
        best = res["phone_vocab"][res["phone_label"][f]]
        tp = (codes[:, f] & (phone == best)).sum()
        np.testing.assert_allclose(res["phone_precision"][f], tp / codes[:, f].sum(), rtol=1e-6)
        np.testing.assert_allclose(res["phone_recall"][f], tp / (phone == best).sum(), rtol=1e-6)


def test_f1_summary_counts_alive_features_only():
    f1 = np.array([0.95, 0.75, 0.55, 0.2, 0.99])
    alive = np.array([1, 1, 1, 1, 0], bool)
    s = f1_summary(f1, alive)
    assert (s["n_alive"], s["f1>0.5"], s["f1>0.7"], s["f1>0.9"]) == (4, 3, 2, 1)
