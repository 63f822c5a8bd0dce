"""analyze() end to end on a tiny random Whisper: its numbers equal a direct computation."""

from __future__ import annotations

import numpy as np
import torch

from whisper_sae.analysis import AnalysisResult, analyze, load_analysis
from whisper_sae.analysis.features.codes import utterance_codes
from whisper_sae.whisper import frames_for_duration, run_encoder

from ..conftest import aligned_utterances, make_sae


def _direct_codes(lw, sae, utt):
    acts = run_encoder(lw, lw.log_mel([utt.audio]), ["encoder.out"])["encoder.out"][0]
    n = frames_for_duration(utt.duration)
    with torch.no_grad():
        return sae.encode(acts[:n]).numpy()


def test_analyze_equals_direct_computation_and_round_trips(analysis_whisper, analysis_sae, aligned_utts, tmp_path):
    lw, sae = analysis_whisper, analysis_sae
    res = analyze(sae, aligned_utts, model=lw, top_n=3, batch_size=2, out=tmp_path / "an", progress=False)
    direct = [_direct_codes(lw, sae, u) for u in aligned_utts]
    allc = np.concatenate(direct)
    np.testing.assert_allclose(res.arrays["freq"], (allc > 0).mean(0), atol=1e-9)
    np.testing.assert_allclose(res.arrays["max_act"], allc.max(0), rtol=1e-4, atol=1e-5)
    assert res.summary["n_positions"] == sum(frames_for_duration(u.duration) for u in aligned_utts)
    # Top frames point at (utterance, frame) pairs whose direct code is the stored activation.
    for f in np.nonzero(allc.max(0) > 0)[0][:10]:
        for row in res.top_frames(int(f)):
            assert abs(direct[row["utt"]][row["pos"], f] - row["act"]) < 1e-4
            assert abs(row["time"] - (row["pos"] + 0.5) * 0.02) < 1e-6
    assert "phone_labels" in res.summary and set(res.phone_vocab) == {"s", "a"}
    assert set(res.word_vocab) == {"hi", "there"}
    back = load_analysis(tmp_path / "an")
    assert isinstance(back, AnalysisResult) and back.utterances == res.utterances
    for name, arr in res.arrays.items():
        np.testing.assert_array_equal(back.arrays[name], arr)
    assert back.summary == res.summary and back.feature_row(0) == res.feature_row(0)


def test_long_utterance_is_split_into_windows(analysis_whisper):
    lw, sae = analysis_whisper, make_sae()
    [long] = aligned_utterances(durations=(31.0,))
    [item] = list(utterance_codes(lw, sae, "encoder.out", [long]))
    assert item.codes.shape == (1500 + 50, 48)
    np.testing.assert_allclose(item.times[[0, 1500]], [0.01, 30.01])
    # The second window is computed on its own 30-s window, as Whisper would see it.
    tail = long.audio[30 * 16000 :]
    acts = run_encoder(lw, lw.log_mel([tail]), ["encoder.out"])["encoder.out"][0, :50]
    with torch.no_grad():
        np.testing.assert_allclose(item.codes[1500:], sae.encode(acts).numpy(), rtol=1e-4, atol=1e-5)


def test_decoder_hook_keeps_tokens(analysis_whisper, aligned_utts):
    lw = analysis_whisper
    sae = make_sae(hook="decoder.blocks.1")
    res = analyze(sae, aligned_utts[:2], model=lw, top_n=2, progress=False)
    tokens = lw.text_tokens("hi there") + [lw.eot_id]
    assert res.utterances[0]["tokens"] == tokens
    assert res.summary["n_positions"] == 2 * len(tokens)
    fired = np.nonzero(res.arrays["top_utt"][:, 0] >= 0)[0]
    assert len(fired) > 0
    for f in fired:
        assert res.arrays["top_token"][f, 0] == tokens[res.arrays["top_pos"][f, 0]]
    assert set(res.word_vocab) <= {"hi", "there", "<|endoftext|>"}


def test_analysis_from_a_store_equals_analysis_from_audio(analysis_whisper, aligned_utts, tmp_path):
    import json

    from whisper_sae.activations import extract

    lw, sae = analysis_whisper, make_sae()
    store = extract(lw, aligned_utts, ["encoder.out"], tmp_path / "store", dtype="float32", progress=False)
    align_dir = tmp_path / "align" / "nested"
    align_dir.mkdir(parents=True)
    for u in aligned_utts:
        (align_dir / f"{u.id}.json").write_text(json.dumps(u.alignment))
    from_audio = analyze(sae, aligned_utts, model=lw, top_n=3, progress=False)
    from_store = analyze(sae, store=store.path, alignments_dir=tmp_path / "align", top_n=3, progress=False)
    assert [r["id"] for r in from_store.utterances] == [r["id"] for r in from_audio.utterances]
    assert from_store.meta["store"] == str(store.path)
    for name in ("freq", "fire_count", "top_utt", "top_pos", "phone_label", "word_label"):
        np.testing.assert_array_equal(from_store.arrays[name], from_audio.arrays[name])
    for name in ("max_act", "top_act", "phone_f1", "word_f1"):
        np.testing.assert_allclose(from_store.arrays[name], from_audio.arrays[name], rtol=1e-4, atol=1e-5)
    assert from_store.summary["phone_labels"] == from_audio.summary["phone_labels"]


def test_unaligned_audio_gets_word_labels_from_whisper(analysis_whisper, aligned_utts):
    lw, sae = analysis_whisper, make_sae()
    for u in aligned_utts:
        u.alignment = None
    res = analyze(sae, aligned_utts[:2], model=lw, top_n=2, whisper_words=True, progress=False)
    assert [r["alignment_source"] for r in res.utterances] == ["whisper", "whisper"]
    assert "word_labels" in res.summary and "phone_labels" not in res.summary
    assert set(res.word_vocab) <= {"hi", "there"} and res.word_vocab
