"""Hooks inside blocks (attn_out, cross_attn_out, mlp_in, mlp_out): names, values against a hand-written
block, patching (plain forward and generate()), run_encoder and extraction."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from whisper_sae.activations import extract
from whisper_sae.whisper import HookPoint, UnknownHookError, capture, patch, run_encoder, valid_hook_names

from .conftest import tiny_config

SUBS = {"encoder": ["attn_out", "mlp_in", "mlp_out"], "decoder": ["attn_out", "cross_attn_out", "mlp_in", "mlp_out"]}


def test_names_inside_blocks_follow_the_config():
    names = valid_hook_names(tiny_config(encoder_layers=2, decoder_layers=1))
    assert names == [
        "encoder.blocks.0",
        "encoder.blocks.0.attn_out",
        "encoder.blocks.0.mlp_in",
        "encoder.blocks.0.mlp_out",
        "encoder.blocks.1",
        "encoder.blocks.1.attn_out",
        "encoder.blocks.1.mlp_in",
        "encoder.blocks.1.mlp_out",
        "encoder.out",
        "decoder.blocks.0",
        "decoder.blocks.0.attn_out",
        "decoder.blocks.0.cross_attn_out",
        "decoder.blocks.0.mlp_in",
        "decoder.blocks.0.mlp_out",
        "decoder.out",
    ]
    for name in names:
        assert HookPoint.parse(name, tiny_config(encoder_layers=2, decoder_layers=1)).name == name


def test_parse_sub_block_fields():
    config = tiny_config(encoder_layers=3)
    point = HookPoint.parse("encoder.blocks.01.mlp_out", config)
    assert point == HookPoint("encoder.blocks.1.mlp_out", "encoder", 1, "mlp_out")
    assert (point.kind, point.blocks_needed(config)) == ("frame", 2)
    assert HookPoint.parse("decoder.blocks.1.cross_attn_out", config).kind == "token"
    assert HookPoint.parse("encoder.blocks.2", config).sub is None


@pytest.mark.parametrize(
    "bad",
    [
        "encoder.blocks.0.cross_attn_out",
        "encoder.blocks.0.mlp",
        "encoder.blocks.0.fc2",
        "decoder.blocks.0.mlp_out.x",
        "encoder.blocks.3.mlp_in",
        "encoder.out.mlp_in",
        "decoder.blocks.2.attn_out",
        "encoder.blocks.N.mlp_out",
    ],
)
def test_unknown_sub_names_list_the_valid_ones(bad):
    with pytest.raises(UnknownHookError) as info:
        HookPoint.parse(bad, tiny_config())
    message = str(info.value)
    assert repr(bad) in message
    assert all(name in message for name in valid_hook_names(tiny_config(), sub_blocks=False))
    assert "encoder.blocks.N.{attn_out, mlp_in, mlp_out}" in message
    assert "decoder.blocks.N.{attn_out, cross_attn_out, mlp_in, mlp_out}" in message


# ------------------------------------------------------------------ a block written out by hand


def _layer_norm(ln, x):
    return F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, ln.eps)


def _attention(attn, x, kv, causal: bool):
    """Multi-head attention from the weights: q/k/v projections, softmax(q k^T / sqrt(d_head)) v, out_proj."""
    heads = attn.num_heads
    b, t, d = x.shape
    d_head = d // heads
    q = F.linear(x, attn.q_proj.weight, attn.q_proj.bias).view(b, t, heads, d_head).transpose(1, 2)
    k = F.linear(kv, attn.k_proj.weight, attn.k_proj.bias).view(b, kv.shape[1], heads, d_head).transpose(1, 2)
    v = F.linear(kv, attn.v_proj.weight, attn.v_proj.bias).view(b, kv.shape[1], heads, d_head).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d_head)
    if causal:
        scores = scores.masked_fill(torch.ones(t, kv.shape[1], dtype=torch.bool).triu(1), -math.inf)
    mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return F.linear(mixed, attn.out_proj.weight, attn.out_proj.bias)


def _manual_block(layer, x, encoder_hidden=None):
    """{sub: value} and the block output, for an encoder block (encoder_hidden None) or a decoder block."""
    out = {
        "attn_out": _attention(
            layer.self_attn,
            _layer_norm(layer.self_attn_layer_norm, x),
            _layer_norm(layer.self_attn_layer_norm, x),
            causal=encoder_hidden is not None,
        )
    }
    y = x + out["attn_out"]
    if encoder_hidden is not None:
        out["cross_attn_out"] = _attention(
            layer.encoder_attn, _layer_norm(layer.encoder_attn_layer_norm, y), encoder_hidden, causal=False
        )
        y = y + out["cross_attn_out"]
    out["mlp_in"] = _layer_norm(layer.final_layer_norm, y)
    hidden = F.gelu(F.linear(out["mlp_in"], layer.fc1.weight, layer.fc1.bias))
    out["mlp_out"] = F.linear(hidden, layer.fc2.weight, layer.fc2.bias)
    return out, y + out["mlp_out"]


def _ids(lw, batch=2):
    return torch.tensor([lw.prompt_ids + [440, 2068, 7586]] * batch)


@pytest.mark.parametrize("side", ["encoder", "decoder"])
def test_capture_inside_blocks_equals_the_block_by_hand(tiny_lw, features, side):
    ids, layer_index = _ids(tiny_lw), 1
    names = [f"{side}.blocks.{layer_index}.{sub}" for sub in SUBS[side]]
    before, after = f"{side}.blocks.{layer_index - 1}", f"{side}.blocks.{layer_index}"
    with torch.no_grad(), capture(tiny_lw, names + [before, after, "encoder.out"]) as acts:
        tiny_lw.model(input_features=features, decoder_input_ids=ids)
    layer = getattr(tiny_lw.model.model, side).layers[layer_index]
    with torch.no_grad():
        manual, block_out = _manual_block(layer, acts[before], acts["encoder.out"] if side == "decoder" else None)
    for sub in SUBS[side]:
        name = f"{side}.blocks.{layer_index}.{sub}"
        assert acts[name].shape == acts[after].shape, name
        torch.testing.assert_close(acts[name], manual[sub], rtol=1e-4, atol=1e-4, msg=name)
    torch.testing.assert_close(acts[after], block_out, rtol=1e-4, atol=1e-4)
    # What the sublayers write adds up to the block's change of the residual stream.
    written = sum(acts[n] for n in names if not n.endswith("mlp_in"))
    torch.testing.assert_close(acts[after], acts[before] + written, rtol=1e-5, atol=1e-5)


def test_patch_inside_blocks_identity_keeps_logits_and_zeros_change_them(tiny_lw, features):
    model, ids, features = tiny_lw.model, _ids(tiny_lw, batch=1), features[:1]
    with torch.no_grad():
        clean = model(input_features=features, decoder_input_ids=ids).logits
        for name in [n for n in valid_hook_names(tiny_lw) if n.count(".") == 3]:
            with patch(tiny_lw, name, lambda a: a.clone()):
                same = model(input_features=features, decoder_input_ids=ids).logits
            torch.testing.assert_close(same, clean, rtol=0, atol=0, msg=name)
            with patch(tiny_lw, name, torch.zeros_like):
                changed = model(input_features=features, decoder_input_ids=ids).logits
            assert (changed - clean).abs().max() > 1e-3, name
        torch.testing.assert_close(model(input_features=features, decoder_input_ids=ids).logits, clean)


def test_patch_inside_decoder_blocks_applies_during_generate(tiny_lw, features):
    features, steps = features[:1], []

    def record(acts):
        steps.append(acts.shape[1])
        return acts

    kw = dict(max_new_tokens=5, min_new_tokens=5)
    with torch.no_grad():
        with capture(tiny_lw, ["decoder.out"]) as plain_acts:
            plain = tiny_lw.model.generate(features, **kw)
        with patch(tiny_lw, "decoder.blocks.1.mlp_out", record):
            same = tiny_lw.model.generate(features, **kw)
        with patch(tiny_lw, "decoder.blocks.1.mlp_out", torch.zeros_like), capture(tiny_lw, ["decoder.out"]) as zeroed:
            tiny_lw.model.generate(features, **kw)
    assert torch.equal(same, plain)
    assert len(steps) == 5 and set(steps[1:]) == {1}  # KV cache: one position per step after the prompt
    n_prompt = len(tiny_lw.prompt_ids)
    assert (zeroed["decoder.out"][:, :n_prompt] - plain_acts["decoder.out"][:, :n_prompt]).abs().max() > 1e-3
    # capture concatenates the cached steps, as for whole blocks
    with torch.no_grad(), capture(tiny_lw, ["decoder.blocks.0.cross_attn_out", "decoder.blocks.0"]) as acts:
        tiny_lw.model.generate(features, max_new_tokens=4, min_new_tokens=4)
    assert acts["decoder.blocks.0.cross_attn_out"].shape == acts["decoder.blocks.0"].shape


@pytest.mark.parametrize("rows", [None, 37])
def test_run_encoder_inside_blocks_equals_capture(tiny_lw, features, rows):
    names = ["encoder.blocks.1.mlp_out", "encoder.blocks.1.attn_out", "encoder.blocks.0.mlp_in", "encoder.blocks.1"]
    with torch.no_grad(), capture(tiny_lw, names) as ref:
        tiny_lw.model.model.encoder(features)
    cut = rows or 1500
    for hooks in (names, ["encoder.blocks.1.mlp_out"], ["encoder.blocks.0.attn_out", "encoder.out"]):
        got = run_encoder(tiny_lw, features, hooks, rows=rows)
        assert list(got) == hooks
        for name in hooks:
            want = ref[name] if name in ref else run_encoder(tiny_lw, features, [name])[name]
            assert got[name].shape == (features.shape[0], cut, tiny_lw.d_model)
            torch.testing.assert_close(got[name], want[:, :cut], rtol=0, atol=1e-6, msg=name)


def test_run_encoder_stops_after_the_block_holding_the_deepest_sub_hook(tiny_lw, features):
    calls = []
    handles = [
        layer.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
        for i, layer in enumerate(tiny_lw.model.model.encoder.layers)
    ]
    try:
        run_encoder(tiny_lw, features, ["encoder.blocks.1.mlp_out"])
    finally:
        for handle in handles:
            handle.remove()
    assert calls == [0, 1]
    with pytest.raises(ValueError, match="run_decoder_teacher_forced"):
        run_encoder(tiny_lw, features, ["decoder.blocks.0.mlp_out"])


def test_extraction_stores_the_mlp_output(tiny_random_whisper_dir, tmp_path):
    """extract() at encoder.blocks.1.mlp_out (the deepest block, computed for real frames only) stores
    what capture sees on a full forward pass of Whisper's own encoder."""
    import numpy as np

    from whisper_sae.audio import Utterance
    from whisper_sae.whisper import frames_for_duration, load_whisper

    lw = load_whisper(tiny_random_whisper_dir)
    rng = np.random.default_rng(0)
    utts = [
        Utterance(id=f"u{i}", audio=(0.1 * rng.standard_normal(int(d * 16000))).astype(np.float32))
        for i, d in enumerate([0.7, 2.3])
    ]
    hooks = ["encoder.blocks.1.mlp_out", "encoder.blocks.0.attn_out"]
    store = extract(lw, utts, hooks, tmp_path / "s", dtype="float32", batch_size=2, progress=False)
    for i, u in enumerate(utts):
        with torch.no_grad(), capture(lw, hooks) as ref:
            lw.model.model.encoder(lw.log_mel([u.audio]))
        n = frames_for_duration(u.duration)
        for hook in hooks:
            got, _ = store.read(hook, utterances=[i])
            assert got.shape == (n, lw.d_model)
            torch.testing.assert_close(got, ref[hook][0, :n], rtol=0, atol=1e-5)


def test_patch_inside_the_deepest_block_sees_every_frame_with_rows(tiny_lw, features):
    """With rows=N the deepest block normally computes N rows only; a patch inside it (like one on the
    block itself) makes it run whole, so the patch function sees all 1500 frames and applies."""
    seen = []

    def zero(acts):
        seen.append(acts.shape[1])
        return torch.zeros_like(acts)

    full = run_encoder(tiny_lw, features, ["encoder.blocks.1", "encoder.blocks.1.attn_out"])
    with patch(tiny_lw, "encoder.blocks.1.mlp_out", zero):
        got = run_encoder(tiny_lw, features, ["encoder.blocks.1"], rows=20)
    assert seen == [1500]
    # zeroing the MLP's output leaves the residual after attention: block input + attn_out
    before = run_encoder(tiny_lw, features, ["encoder.blocks.0"])["encoder.blocks.0"]
    torch.testing.assert_close(
        got["encoder.blocks.1"], (before + full["encoder.blocks.1.attn_out"])[:, :20], rtol=0, atol=1e-5
    )
