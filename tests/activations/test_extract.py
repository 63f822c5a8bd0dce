"""Extraction with a tiny random Whisper: which rows are stored, and that they are Whisper's own values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from whisper_sae.activations import extract
from whisper_sae.audio import Utterance
from whisper_sae.whisper import UnknownHookError, frames_for_duration


def direct_encoder(lw, audio: np.ndarray):
    """Whisper's own encoder on one padded window: (after block 0, encoder.out), each [1500, d]."""
    features = lw.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        out = lw.model.model.encoder(features, output_hidden_states=True)
    return out.hidden_states[1][0], out.last_hidden_state[0]


def test_padding_never_stored_and_values_equal_whisper(tiny_random_whisper, make_utts, tmp_path):
    lw = tiny_random_whisper
    utts = make_utts([0.5, 1.37, 3.0, 35.2])
    store = extract(
        lw, utts, ["encoder.blocks.0", "encoder.out"], tmp_path / "s", dtype="float32", batch_size=2, progress=False
    )
    expected = [frames_for_duration(u.duration) for u in utts[:3]] + [1500 + frames_for_duration(5.2)]
    for hook in ("encoder.blocks.0", "encoder.out"):
        acts, index = store.read(hook)
        assert store.n_rows(hook) == len(acts) == sum(expected)
        counts = torch.bincount(index["utt"].long()).tolist()
        assert counts == expected
        for i in range(4):
            pos = index["pos"][index["utt"] == i]
            assert torch.equal(pos, torch.arange(expected[i], dtype=torch.int32))
        assert torch.allclose(index["time"], index["pos"].float() * 0.02)
    for i, u in enumerate(utts):
        pieces = [u.audio[k : k + 480000] for k in range(0, len(u.audio), 480000)]
        ref0 = torch.cat([direct_encoder(lw, p)[0][: frames_for_duration(len(p) / 16000)] for p in pieces])
        ref_out = torch.cat([direct_encoder(lw, p)[1][: frames_for_duration(len(p) / 16000)] for p in pieces])
        got0, _ = store.read("encoder.blocks.0", utterances=[i])
        got_out, _ = store.read("encoder.out", utterances=[i])
        assert torch.allclose(got0, ref0, atol=1e-5) and torch.allclose(got_out, ref_out, atol=1e-5)
    assert [u["n_windows"] for u in store.utterances] == [1, 1, 1, 2]
    assert store.manifest["settings"]["mode"] == "padded" and store.manifest["settings"]["autocast"] is None


@pytest.mark.parametrize("mode", ["padded", "packed"])
def test_real_frames_only_in_the_deepest_block_changes_no_value(tiny_random_whisper, make_utts, tmp_path, mode):
    """The default computes the deepest block for the stored frames only; pad_rows=True computes every
    row as the plain encoder does. The stores must hold the same rows with the same values."""
    utts = make_utts([0.5, 2.7, 1.1, 31.0])
    kw = dict(dtype="float32", batch_size=2, mode=mode, progress=False)
    fast = extract(tiny_random_whisper, utts, ["encoder.blocks.1"], tmp_path / "fast", **kw)
    full = extract(tiny_random_whisper, utts, ["encoder.blocks.1"], tmp_path / "full", pad_rows=True, **kw)
    a, ia = fast.read("encoder.blocks.1")
    b, ib = full.read("encoder.blocks.1")
    assert torch.equal(ia["utt"], ib["utt"]) and torch.equal(ia["pos"], ib["pos"])
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_packed_rows_map_back_to_their_utterances(tiny_random_whisper, make_utts, tmp_path):
    lw = tiny_random_whisper
    utts = make_utts([2.0, 1.01, 3.5])
    padded = extract(lw, utts, ["encoder.out"], tmp_path / "padded", dtype="float32", progress=False)
    packed = extract(lw, utts, ["encoder.out"], tmp_path / "packed", mode="packed", dtype="float32", progress=False)
    a_pad, i_pad = padded.read("encoder.out")
    a_pack, i_pack = packed.read("encoder.out")
    for k in ("utt", "pos"):
        assert torch.equal(i_pad[k], i_pack[k])
    # the packed window is the three clips back to back on the 20-ms grid
    window = np.zeros(480000, dtype=np.float32)
    starts = [0, 32000, 32000 + 16320]
    for s, u in zip(starts, utts):
        window[s : s + len(u.audio)] = u.audio
    _, ref = direct_encoder(lw, window[: starts[-1] + len(utts[-1].audio)])
    ref_rows = torch.cat([ref[s // 320 : s // 320 + frames_for_duration(u.duration)] for s, u in zip(starts, utts)])
    assert torch.allclose(a_pack, ref_rows, atol=1e-5)
    assert not torch.allclose(a_pack, a_pad, atol=1e-3)  # packing changes the computation
    assert packed.manifest["settings"]["mode"] == "packed"


def test_decoder_rows_are_tokens_with_ids_kept(tiny_random_whisper, make_utts, tmp_path):
    lw = tiny_random_whisper
    texts = ["Hello there.", "The quick brown fox jumps over the lazy dog", ""]
    utts = make_utts([1.0, 2.5, 0.7], texts=texts)
    store = extract(
        lw,
        utts,
        ["decoder.blocks.0", "decoder.out", "encoder.blocks.1"],
        tmp_path / "s",
        dtype="float32",
        batch_size=2,
        progress=False,
    )
    acts, index = store.read("decoder.out")
    for i, text in enumerate(texts):
        ids = [*lw.prompt_ids, *(lw.text_tokens(text) if text else []), lw.eot_id]
        mine = index["utt"] == i
        assert index["token"][mine].tolist() == ids
        assert index["pos"][mine].tolist() == list(range(len(ids)))
        with torch.no_grad():
            features = lw.log_mel([utts[i].audio])
            enc = lw.model.model.encoder(features).last_hidden_state
            ref = lw.model.model.decoder(input_ids=torch.tensor([ids]), encoder_hidden_states=enc).last_hidden_state[0]
        assert torch.allclose(acts[mine], ref, atol=1e-5)
    assert store.n_rows("decoder.blocks.0") == store.n_rows("decoder.out") == len(acts)
    assert (store.read("encoder.blocks.1")[1]["token"] == -1).all()
    assert {u["decoder_text"] for u in store.utterances} == {"reference"}
    assert store.kind("decoder.out") == "token" and store.kind("encoder.blocks.1") == "frame"


def test_missing_transcript_is_transcribed_first(tiny_random_whisper, make_utts, tmp_path):
    lw = tiny_random_whisper
    utts = make_utts([1.0, 1.5], texts=[None, "Some words."])
    store = extract(lw, utts, ["decoder.out"], tmp_path / "s", dtype="float32", progress=False)
    _, index = store.read("decoder.out")
    said = lw.transcribe([utts[0].audio])[0]
    expected = [*lw.prompt_ids, *(lw.text_tokens(said) if said else []), lw.eot_id][: lw.config.max_target_positions]
    assert index["token"][index["utt"] == 0].tolist() == expected
    assert [u["decoder_text"] for u in store.utterances] == ["model", "reference"]


def test_bad_utterances_are_skipped_and_counted(tiny_random_whisper, make_utts, tmp_path):
    good = make_utts([1.0, 2.0])
    bad = [
        Utterance(id="empty", audio=np.zeros(0, dtype=np.float32)),
        Utterance(id="nan", audio=np.full(16000, np.nan, dtype=np.float32)),
        Utterance(id="8k", audio=np.zeros(8000, dtype=np.float32), sample_rate=8000),
    ]
    store = extract(tiny_random_whisper, [good[0], *bad, good[1]], ["encoder.out"], tmp_path / "s", progress=False)
    u = store.manifest["utterances"]
    assert u["n_done"] == 2 and u["n_skipped"] == 3
    assert {s["id"] for s in u["skipped"]} == {"empty", "nan", "8k"}
    assert "8000 Hz" in next(s["reason"] for s in u["skipped"] if s["id"] == "8k")
    assert store.n_rows("encoder.out") == frames_for_duration(1.0) + frames_for_duration(2.0)


class Stop(Exception):
    pass


@pytest.mark.parametrize("stop_after", [1, 3, 4])
def test_resume_after_kill_equals_uninterrupted(tiny_random_whisper, make_utts, tmp_path, stop_after):
    lw = tiny_random_whisper
    utts = make_utts([1.0, 2.3, 0.4, 3.1, 1.7, 0.9], texts=["a b", "c", "d e f", "g", "h i", "j"])
    hooks = ["encoder.blocks.0", "decoder.out"]
    kw = dict(dtype="float32", shard_rows=64, batch_size=2, progress=False)
    ref = extract(lw, utts, hooks, tmp_path / "ref", **kw)

    def killer(n):
        if n == stop_after:
            raise Stop

    with pytest.raises(Stop):
        extract(lw, utts, hooks, tmp_path / "cut", on_utterance=killer, **kw)
    assert json.loads((tmp_path / "cut" / "manifest.json").read_text())["complete"] is False
    got = extract(lw, utts, hooks, tmp_path / "cut", **kw)
    assert [u["id"] for u in got.utterances] == [u["id"] for u in ref.utterances]
    for hook in hooks:
        a_ref, i_ref = ref.read(hook)
        a_got, i_got = got.read(hook)
        assert len(a_got) == len(a_ref)
        for k in ("utt", "pos", "token"):
            assert torch.equal(i_got[k], i_ref[k])
        assert torch.allclose(a_got, a_ref, atol=1e-5)


def test_clear_errors(tiny_random_whisper, make_utts, tmp_path):
    utts = make_utts([1.0])
    with pytest.raises(UnknownHookError, match="encoder.blocks.1"):
        extract(tiny_random_whisper, utts, ["encoder.blocks.7"], tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="padded"):
        extract(tiny_random_whisper, utts, ["decoder.out"], tmp_path / "b", mode="packed", progress=False)
    with pytest.raises(ValueError, match="bf16"):
        extract(tiny_random_whisper, utts, ["encoder.out"], tmp_path / "c", autocast="int4", progress=False)


def test_all_capitals_reference_is_sentence_cased():
    from whisper_sae.activations.decoder_text import as_whisper_writes

    assert as_whisper_writes("HE HOPED I'D GO AND I WENT") == "He hoped I'd go and I went"
    assert as_whisper_writes("Already Mixed case.") == "Already Mixed case."
    assert as_whisper_writes("123") == "123"
