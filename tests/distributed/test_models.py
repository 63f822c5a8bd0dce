"""The released Whisper sizes: configs, hook names, an encoder pass on random weights, disk figures."""

from __future__ import annotations

import pytest
import torch

from whisper_sae.runtime.disk import check_free_space, gb_per_million_rows
from whisper_sae.runtime.models import SIZES, model_names, models_table, whisper_config
from whisper_sae.whisper import HookPoint, run_encoder, valid_hook_names
from whisper_sae.whisper.hooks import UnknownHookError


@pytest.mark.parametrize("name", ["base", "base.en", "small", "small.en", "medium", "medium.en", "large-v3"])
def test_configs_have_the_hook_names_of_their_depth(name):
    config = whisper_config(name)
    d, enc, dec, _, mels = SIZES[name.removesuffix(".en")]
    assert (config.d_model, config.encoder_layers, config.decoder_layers, config.num_mel_bins) == (d, enc, dec, mels)
    names = valid_hook_names(config, sub_blocks=False)
    assert len(names) == enc + dec + 2 and names[enc] == "encoder.out" and names[-1] == "decoder.out"
    # inside each block: attn_out, mlp_in, mlp_out (and cross_attn_out in the decoder)
    assert len(valid_hook_names(config)) == len(names) + 3 * enc + 4 * dec
    deepest = HookPoint.parse(f"encoder.blocks.{enc - 1}", config)
    assert (deepest.side, deepest.layer) == ("encoder", enc - 1)
    assert HookPoint.parse(f"decoder.blocks.{dec - 1}", config).layer == dec - 1
    with pytest.raises(UnknownHookError):
        HookPoint.parse(f"encoder.blocks.{enc}", config)


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="large-v3.en"):
        whisper_config("large-v3.en")


def _random_model(name: str):
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(whisper_config(name))
    model = model.to_empty(device="cpu").eval()
    torch.manual_seed(0)
    with torch.no_grad():  # only the encoder runs here; the decoder's memory is left as allocated
        for p in model.model.encoder.parameters():
            p.normal_(0, 0.02)
    return model


@pytest.mark.parametrize("name", ["base", "small"])
def test_encoder_runs_at_real_width(name):
    model = _random_model(name)
    features = torch.randn(1, model.config.num_mel_bins, 3000)
    acts = run_encoder(model, features, ["encoder.blocks.0", "encoder.blocks.1"])  # stops after block 1
    for hook in ("encoder.blocks.0", "encoder.blocks.1"):
        assert acts[hook].shape == (1, 1500, model.config.d_model)
        assert bool(torch.isfinite(acts[hook]).all())
    assert not torch.equal(acts["encoder.blocks.0"], acts["encoder.blocks.1"])


def test_models_table_disk_figures():
    table = models_table()
    assert len(table.splitlines()) == 2 + len(model_names())
    assert "| small | 768 | 12 / 12 |" in table and "| 1.536 |" in table
    # d_model x 2 bytes x 1e6 rows: large-v3 at 1280 wide takes 2.56 GB per million activations.
    assert gb_per_million_rows(1280) == pytest.approx(2.56)
    assert gb_per_million_rows(384, "float32", with_index=True) == pytest.approx((384 * 4 + 16) / 1e3)


def test_free_space_check(tmp_path):
    check_free_space(tmp_path / "new", 1e-6)
    with pytest.raises(ValueError, match="GB are free"):
        check_free_space(tmp_path / "new", 1e9)
