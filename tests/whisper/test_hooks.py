"""Hook names, capture, patch (with and without KV cache), run_encoder and the teacher-forced decoder."""

from __future__ import annotations

import pytest
import torch

from whisper_sae.whisper import (
    HookPoint,
    UnknownHookError,
    capture,
    frames_for_duration,
    patch,
    run_decoder_teacher_forced,
    run_encoder,
    valid_hook_names,
)

from .conftest import tiny_config


def test_valid_names_follow_the_config():
    names = valid_hook_names(tiny_config(encoder_layers=3, decoder_layers=2), sub_blocks=False)
    assert names == [
        "encoder.blocks.0",
        "encoder.blocks.1",
        "encoder.blocks.2",
        "encoder.out",
        "decoder.blocks.0",
        "decoder.blocks.1",
        "decoder.out",
    ]


@pytest.mark.parametrize("bad", ["encoder.blocks.3", "decoder.blocks.2", "encoder.block.0", "decoder", "mlp.0"])
def test_unknown_hook_lists_the_valid_ones(bad):
    with pytest.raises(UnknownHookError) as info:
        HookPoint.parse(bad, tiny_config())
    message = str(info.value)
    assert repr(bad) in message
    assert all(name in message for name in valid_hook_names(tiny_config(), sub_blocks=False))


def test_parse_fields_and_depth():
    config = tiny_config(encoder_layers=3)
    assert HookPoint.parse("encoder.blocks.1", config) == HookPoint("encoder.blocks.1", "encoder", 1)
    assert HookPoint.parse("encoder.blocks.1", config).blocks_needed(config) == 2
    out = HookPoint.parse("encoder.out", config)
    assert (out.layer, out.kind, out.blocks_needed(config)) == (None, "frame", 3)
    assert HookPoint.parse("decoder.out", config).kind == "token"
    assert HookPoint.parse("encoder.blocks.01", config).name == "encoder.blocks.1"


@pytest.mark.parametrize(
    "seconds, frames",
    [(0.0, 0), (0.01, 1), (0.02, 1), (0.021, 2), (2.0, 100), (29.99, 1500), (30.0, 1500), (45.0, 1500)],
)
def test_frames_for_duration(seconds, frames):
    assert frames_for_duration(seconds) == frames


def _decoder_ids(lw, batch=2):
    return torch.tensor([lw.prompt_ids + [440, 2068, 7586]] * batch)


def test_capture_shapes_and_values(tiny_lw, features):
    model, ids = tiny_lw.model, _decoder_ids(tiny_lw)
    with torch.no_grad(), capture(tiny_lw, valid_hook_names(tiny_lw)) as acts:
        out = model(input_features=features, decoder_input_ids=ids, output_hidden_states=True)
    for name in valid_hook_names(tiny_lw):
        length = 1500 if name.startswith("encoder") else ids.shape[1]
        assert acts[name].shape == (2, length, tiny_lw.d_model), name
    torch.testing.assert_close(acts["encoder.out"], out.encoder_last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(acts["decoder.out"], out.decoder_hidden_states[-1], rtol=0, atol=0)
    torch.testing.assert_close(acts["decoder.blocks.0"], out.decoder_hidden_states[1], rtol=0, atol=0)


def test_patch_identity_changes_nothing_and_zeroing_changes_logits(tiny_lw, features):
    model, ids, features = tiny_lw.model, _decoder_ids(tiny_lw, batch=1), features[:1]
    direction = torch.randn(tiny_lw.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean = model(input_features=features, decoder_input_ids=ids).logits
        for name in ["encoder.blocks.0", "encoder.blocks.2", "encoder.out", "decoder.blocks.0", "decoder.out"]:
            with patch(tiny_lw, name, lambda a: a.clone()):
                same = model(input_features=features, decoder_input_ids=ids).logits
            torch.testing.assert_close(same, clean, rtol=0, atol=0)
            # A fixed direction, not a scale or a constant: the final layer norm would cancel those.
            with patch(tiny_lw, name, lambda a: a + direction):
                changed = model(input_features=features, decoder_input_ids=ids).logits
            assert (changed - clean).abs().max() > 1e-3, name
        # Leaving the context removes the hook.
        torch.testing.assert_close(model(input_features=features, decoder_input_ids=ids).logits, clean)


def test_patch_rejects_wrong_shape(tiny_lw, features):
    with patch(tiny_lw, "encoder.out", lambda a: a[:, :10]), pytest.raises(ValueError, match="shape"):
        run_encoder(tiny_lw, features, ["encoder.out"])


def test_decoder_patch_sees_one_position_per_step_with_kv_cache(tiny_lw, features):
    features, shapes = features[:1], []

    def record(acts):
        shapes.append(acts.shape[1])
        return acts

    plain = tiny_lw.greedy_tokens(features, tiny_lw.prompt_ids, max_new_tokens=6)
    with patch(tiny_lw, "decoder.blocks.1", record):
        patched = tiny_lw.greedy_tokens(features, tiny_lw.prompt_ids, max_new_tokens=6)
    assert patched == plain
    assert shapes[0] == len(tiny_lw.prompt_ids) and set(shapes[1:]) == {1}

    # The same through transformers' generate(), which keeps its own KV cache.
    shapes.clear()
    with patch(tiny_lw, "decoder.out", record), torch.no_grad():
        tiny_lw.model.generate(features, max_new_tokens=4, min_new_tokens=4)
    assert len(shapes) == 4 and set(shapes[1:]) == {1}


def test_capture_concatenates_cached_steps_into_the_whole_sequence(tiny_lw, features):
    steps = 5
    with capture(tiny_lw, ["decoder.out"]) as acts:
        tokens = tiny_lw.greedy_tokens(features[:1], tiny_lw.prompt_ids, max_new_tokens=steps)[0]
    n_fed = len(tiny_lw.prompt_ids) + len(tokens) - (len(tokens) == steps)
    assert acts["decoder.out"].shape[1] == n_fed
    # Teacher forcing on the same tokens gives the same activations as the cached steps.
    forced_ids = [tiny_lw.prompt_ids + tokens[: n_fed - len(tiny_lw.prompt_ids)]]
    hidden = tiny_lw.model.model.encoder(features[:1]).last_hidden_state
    forced = run_decoder_teacher_forced(tiny_lw, hidden, forced_ids, ["decoder.out"])
    torch.testing.assert_close(forced["decoder.out"], acts["decoder.out"], rtol=1e-4, atol=1e-4)


def test_run_encoder_equals_full_forward(tiny_lw, features):
    with torch.no_grad():
        full = tiny_lw.model.model.encoder(features, output_hidden_states=True)
    # hidden_states[i + 1] is block i's output, except the last, which transformers reports after the final norm.
    for i in range(tiny_lw.n_encoder_layers - 1):
        got = run_encoder(tiny_lw, features, [f"encoder.blocks.{i}"])
        torch.testing.assert_close(got[f"encoder.blocks.{i}"], full.hidden_states[i + 1], rtol=0, atol=0)
    both = run_encoder(tiny_lw, features, ["encoder.out", "encoder.blocks.0"])
    torch.testing.assert_close(both["encoder.out"], full.last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(both["encoder.blocks.0"], full.hidden_states[1], rtol=0, atol=0)


def test_run_encoder_stops_after_the_deepest_hook(tiny_lw, features):
    calls = []
    handles = [
        layer.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
        for i, layer in enumerate(tiny_lw.model.model.encoder.layers)
    ]
    try:
        run_encoder(tiny_lw, features, ["encoder.blocks.1", "encoder.blocks.0"])
        assert calls == [0, 1]
        calls.clear()
        run_encoder(tiny_lw, features, ["encoder.blocks.0"], stop_after_deepest=False)
        assert calls == list(range(tiny_lw.n_encoder_layers))
    finally:
        for handle in handles:
            handle.remove()


def test_run_encoder_rows_computes_the_same_frames(tiny_lw, features):
    """rows=N returns frames :N of every hook, the deepest block computed for those rows only; a
    patch on that block still applies (the block then runs whole, so its hook sees all frames)."""
    last = f"encoder.blocks.{tiny_lw.n_encoder_layers - 1}"
    hooks = ["encoder.blocks.0", last, "encoder.out"]
    full = run_encoder(tiny_lw, features, hooks)
    for rows in (1, 37, 1499):
        part = run_encoder(tiny_lw, features, hooks, rows=rows)
        for name in hooks:
            assert part[name].shape == (features.shape[0], rows, tiny_lw.d_model)
            # the same function; fp32 matmuls of other shapes round differently (values are O(1))
            torch.testing.assert_close(part[name], full[name][:, :rows], rtol=0, atol=1e-5)
    calls = []
    layer = tiny_lw.model.model.encoder.layers[0]
    handle = layer.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[1]))
    try:
        run_encoder(tiny_lw, features, ["encoder.blocks.1"], rows=10)  # block 0 is not the deepest: runs whole
        assert calls == [1500]
    finally:
        handle.remove()
    seen = []

    def double(acts):
        seen.append(acts.shape[1])
        return acts * 2

    with patch(tiny_lw, last, double):
        patched = run_encoder(tiny_lw, features, [last], rows=20)
    assert seen == [1500]
    torch.testing.assert_close(patched[last], 2 * full[last][:, :20], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="rows must be 1 to 1500"):
        run_encoder(tiny_lw, features, ["encoder.out"], rows=0)


def test_rows_path_in_row_blocks_equals_the_full_block(tiny_lw, features, monkeypatch):
    """On a CPU the deepest block's MLP runs over blocks of rows; block edges inside a batch of two
    windows (and a last, short block) must give the rows of the plain block, to float rounding."""
    from whisper_sae.whisper import hooks

    last = f"encoder.blocks.{tiny_lw.n_encoder_layers - 1}"
    full = run_encoder(tiny_lw, features, [last, "encoder.out"])
    monkeypatch.setattr(hooks, "CPU_MLP_ROWS", 32)  # 16 rows per block for a batch of 2
    for rows in (15, 16, 17, 333, 1500):
        part = run_encoder(tiny_lw, features, [last, "encoder.out"], rows=rows)
        for name in (last, "encoder.out"):
            torch.testing.assert_close(part[name], full[name][:, :rows], rtol=0, atol=1e-5)


def test_run_encoder_rejects_decoder_hooks_and_bad_features(tiny_lw, features):
    with pytest.raises(ValueError, match="run_decoder_teacher_forced"):
        run_encoder(tiny_lw, features, ["decoder.out"])
    with pytest.raises(ValueError, match="3000"):
        run_encoder(tiny_lw, features[:, :, :1000], ["encoder.out"])


def test_run_encoder_bf16_autocast_stays_close(tiny_lw, features):
    exact = run_encoder(tiny_lw, features, ["encoder.out"])["encoder.out"]
    fast = run_encoder(tiny_lw, features, ["encoder.out"], autocast_dtype=torch.bfloat16)["encoder.out"]
    assert fast.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(exact, fast, dim=-1)
    assert cosine.mean() > 0.99


def test_teacher_forced_rows_match_unpadded_runs_and_logits(tiny_lw, features):
    hidden = tiny_lw.model.model.encoder(features).last_hidden_state
    seqs = [tiny_lw.prompt_ids + [440, 2068, 7586, tiny_lw.eot_id], tiny_lw.prompt_ids + [1374, tiny_lw.eot_id]]
    batch = run_decoder_teacher_forced(tiny_lw, hidden, seqs, ["decoder.blocks.0", "decoder.out"], return_logits=True)
    assert batch["decoder.out"].shape == (2, len(seqs[0]), tiny_lw.d_model)
    for b, seq in enumerate(seqs):
        with torch.no_grad():
            ref = tiny_lw.model(
                encoder_outputs=(hidden[b : b + 1],), decoder_input_ids=torch.tensor([seq]), output_hidden_states=True
            )
        n = len(seq)
        torch.testing.assert_close(batch["decoder.out"][b, :n], ref.decoder_hidden_states[-1][0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            batch["decoder.blocks.0"][b, :n], ref.decoder_hidden_states[1][0], rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(batch["logits"][b, :n], ref.logits[0], rtol=1e-4, atol=1e-4)


def test_teacher_forced_rejects_encoder_hooks_and_overlong_sequences(tiny_lw, features):
    hidden = torch.zeros(1, 1500, tiny_lw.d_model)
    with pytest.raises(ValueError, match="run_encoder"):
        run_decoder_teacher_forced(tiny_lw, hidden, [[50257]], ["encoder.out"])
    with pytest.raises(ValueError, match="64"):
        run_decoder_teacher_forced(tiny_lw, hidden, [[50257] * 65], ["decoder.out"])
