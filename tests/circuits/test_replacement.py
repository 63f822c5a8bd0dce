"""Transcoders and crosscoders on a tiny random Whisper: a transcoder that is the MLP gives clean
Whisper; the error-term splice is exact; both train from a store (pairs of hooks of the same frames),
reconstruct, save and load, and splice into the WER / CE evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from whisper_sae.audio import Utterance
from whisper_sae.circuits.replacement import evaluate_replacement, reconstruction, spliced
from whisper_sae.sae import SAEConfig, SparseAutoencoder, train
from whisper_sae.sae.io import load_pretrained, save_pretrained
from whisper_sae.whisper import frames_for_duration, load_whisper, run_encoder

HOOKS = ["encoder.blocks.0", "encoder.blocks.0.mlp_in", "encoder.blocks.0.mlp_out", "encoder.blocks.1"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_random_whisper_writer):
    return tiny_random_whisper_writer(tmp_path_factory.mktemp("tc_model"), init_std=0.2)


@pytest.fixture(scope="module")
def lw(model_dir):
    return load_whisper(str(model_dir))


def clips(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(int((0.8 + 0.2 * i) * 16000)) / 16000
        audio = 0.2 * np.sin(2 * np.pi * (120 + 60 * i) * t) + 0.05 * rng.standard_normal(len(t))
        out.append(Utterance(id=f"u{i}", audio=audio.astype(np.float32), text="hello world"))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory, lw, model_dir):
    """A store of the tiny Whisper's activations at four hooks of the same frames (12 clips)."""
    from whisper_sae.activations import ActivationStore, StoreWriter

    path = tmp_path_factory.mktemp("tc_store") / "store"
    hooks = {h: {"d_model": lw.d_model, "kind": "frame"} for h in HOOKS}
    utts = clips(12, seed=3)
    with StoreWriter(
        path,
        hooks=hooks,
        model={"name": "tiny-random", "spec": str(model_dir), "d_model": lw.d_model},
        corpus="synthetic",
        settings={"mode": "padded"},
        shard_rows=512,
    ) as writer:
        for utt in utts:
            n = frames_for_duration(len(utt.audio) / 16000)
            acts = run_encoder(lw, lw.log_mel([utt.audio]), HOOKS, rows=n)
            idx = writer.begin_utterance({"id": utt.id, "duration": len(utt.audio) / 16000})
            for h in HOOKS:
                writer.add(h, idx, acts[h][0], torch.arange(n), torch.arange(n) * 0.02)
            writer.end_utterance(idx)
    return ActivationStore(path)


def mlp_transcoder(lw, block=0):
    """A ReLU transcoder whose weights are block ``block``'s MLP (with the model's GELU swapped for ReLU)."""
    layer = lw.model.model.encoder.layers[block]
    ffn = layer.fc1.out_features
    cfg = SAEConfig(
        d_in=lw.d_model,
        d_sae=ffn,
        architecture="relu",
        apply_b_dec_to_input=False,
        hook_name=f"encoder.blocks.{block}.mlp_in",
        hook_name_out=f"encoder.blocks.{block}.mlp_out",
        model_name="tiny-random",
    )
    tc = SparseAutoencoder(cfg)
    with torch.no_grad():
        tc.W_enc.copy_(layer.fc1.weight.T)
        tc.b_enc.copy_(layer.fc1.bias)
        tc.W_dec.copy_(layer.fc2.weight.T)
        tc.b_dec.copy_(layer.fc2.bias)
    return tc.eval()


def test_transcoder_that_is_the_mlp_gives_clean_whisper(model_dir):
    lw = load_whisper(str(model_dir))
    for layer in lw.model.model.encoder.layers:
        layer.activation_fn = nn.ReLU()  # a ReLU MLP is exactly a ReLU transcoder
    tc = mlp_transcoder(lw)
    utts = clips(2)
    features = lw.log_mel([u.audio for u in utts])
    real = [frames_for_duration(len(u.audio) / 16000) for u in utts]
    ids = torch.tensor([list(lw.prompt_ids) + lw.text_tokens(" hello world")] * 2)
    with torch.no_grad():
        clean = lw.model(input_features=features, decoder_input_ids=ids).logits
        with spliced(tc, lw, features, real):
            replaced = lw.model(input_features=features, decoder_input_ids=ids).logits
    torch.testing.assert_close(replaced, clean, rtol=1e-4, atol=1e-4)
    # A transcoder that is not the MLP moves the logits: the splice really replaces the MLP.
    with torch.no_grad():
        tc.W_dec.mul_(0.5)
        with spliced(tc, lw, features, real):
            halved = lw.model(input_features=features, decoder_input_ids=ids).logits
    assert (halved - clean).abs().max() > 1e-3
    y, y_hat, _ = reconstruction(mlp_transcoder(lw), lw, features, real)
    torch.testing.assert_close(y_hat, y, rtol=1e-4, atol=1e-4)


def test_transcoder_and_crosscoder_train_from_a_store_save_load_and_splice(store, lw, tmp_path):
    common = dict(arch="topk", width=64, k=8, batch_size=64, lr=3e-3, log_every=50, eval_every=100, device="cpu")
    tc_dir = train(
        store,
        "encoder.blocks.0.mlp_in",
        hook_out="encoder.blocks.0.mlp_out",
        skip=True,
        out=tmp_path / "tc",
        steps=300,
        **common,
    )
    cc_dir = train(
        store, "encoder.blocks.0,encoder.blocks.1", crosscoder=True, out=tmp_path / "cc", steps=300, **common
    )
    tc, cc = load_pretrained(tc_dir), load_pretrained(cc_dir)
    assert tc.cfg.kind == "transcoder" and tc.cfg.skip and tc.W_skip.shape == (lw.d_model, lw.d_model)
    assert cc.cfg.kind == "crosscoder" and cc.cfg.d_in == 2 * lw.d_model and cc.cfg.hook_names == HOOKS[::3]
    doc = json.loads((tc_dir / "cfg.json").read_text())
    assert doc["hook_name_out"] == "encoder.blocks.0.mlp_out" and doc["d_out"] == lw.d_model
    for folder in (tc_dir, cc_dir):
        held_out = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        val = [r for r in held_out if r["split"] == "val"]
        assert val[-1]["ev"] > 0.5, (folder.name, val[-1])  # it learned the map / the two layers
    # Round trip: what was saved is what loads.
    save_pretrained(tc, tmp_path / "tc2")
    again = load_pretrained(tmp_path / "tc2")
    x = torch.randn(5, lw.d_model)
    torch.testing.assert_close(again(x).x_hat, tc(x).x_hat)
    # Spliced into the evaluation: the error-term splice is Whisper itself.
    utts = clips(3, seed=9)
    for sae in (tc, cc):
        s = evaluate_replacement(sae, utts, model=lw, batch_size=2, progress=False)
        assert s["max_abs_logit_diff_error_term"] < 1e-3
        assert s["spliced_error"]["errors"] == s["clean"]["errors"]
        assert s["ev"] > 0.3 and s["l0"] <= 8


def test_bad_circuit_configs_are_refused():
    with pytest.raises(ValueError, match="apply_b_dec_to_input=False"):
        SAEConfig(d_in=8, d_sae=16, hook_name="encoder.blocks.0.mlp_in", hook_name_out="encoder.blocks.0.mlp_out")
    with pytest.raises(ValueError, match="two or more"):
        SAEConfig(d_in=8, d_sae=16, hook_names=["encoder.blocks.0"])
    with pytest.raises(ValueError, match="transcoder settings"):
        SAEConfig(d_in=8, d_sae=16, skip=True)
