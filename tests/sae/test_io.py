"""SAE folders: round trips, SAELens reading what we write, clear errors, the original-checkpoint converter."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from whisper_sae.sae import SAEConfig, SparseAutoencoder, convert_original

ARCHS = [("relu", None), ("topk", 6), ("batchtopk", 6), ("jumprelu", None)]


def _sae(arch, k, d_in=16, d_sae=48):
    torch.manual_seed(1)
    sae = SparseAutoencoder(SAEConfig(d_in, d_sae, arch, k=k, hook_name="encoder.out", model_name="tiny.en"))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.2)
        sae.b_dec.normal_(0, 0.5)
        if arch == "jumprelu":
            sae.log_threshold.copy_(torch.rand(d_sae).mul(0.5).add(0.05).log())
        if arch == "batchtopk":
            sae.threshold.fill_(0.3)
    return sae


@pytest.mark.parametrize("arch, k", ARCHS)
def test_save_and_load_give_the_same_function(tmp_path, arch, k):
    sae = _sae(arch, k)
    sae.save_pretrained(tmp_path / "sae")
    loaded = SparseAutoencoder.from_pretrained(tmp_path / "sae")
    assert loaded.cfg == sae.cfg
    x = torch.randn(20, 16)
    torch.testing.assert_close(loaded(x).codes, sae(x).codes, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(loaded(x).x_hat, sae(x).x_hat, atol=1e-6, rtol=1e-6)
    doc = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert doc["hook_name"] == "encoder.out" and doc["whisper_sae"]["architecture"] == arch


@pytest.mark.parametrize("arch, k", ARCHS)
def test_saelens_reads_our_folders(tmp_path, arch, k):
    sae_lens = pytest.importorskip("sae_lens")
    sae = _sae(arch, k)
    sae.save_pretrained(tmp_path / "sae")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "sae"), device="cpu")
    x = torch.randn(20, 16)
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(theirs(x), sae(x).x_hat, atol=1e-5, rtol=1e-5)


def _write(tmp_path, mutate):
    _sae("relu", None).save_pretrained(tmp_path / "sae")
    cfg_path = tmp_path / "sae" / "cfg.json"
    doc = json.loads(cfg_path.read_text())
    mutate(doc)
    cfg_path.write_text(json.dumps(doc))
    return tmp_path / "sae"


def test_unknown_key_is_named(tmp_path):
    path = _write(tmp_path, lambda d: d.update(temperature=3))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['temperature'\]"):
        SparseAutoencoder.from_pretrained(path)


def test_missing_key_is_named(tmp_path):
    path = _write(tmp_path, lambda d: d.pop("d_sae"))
    with pytest.raises(ValueError, match=r"lacks the required key\(s\) \['d_sae'\]"):
        SparseAutoencoder.from_pretrained(path)


def test_weights_of_another_width_are_named(tmp_path):
    path = _write(tmp_path, lambda d: d.update(d_sae=64))
    with pytest.raises(ValueError, match=r"W_enc has shape \[16, 48\] but cfg.json \(d_in=16, d_sae=64\)"):
        SparseAutoencoder.from_pretrained(path)


def test_not_an_sae_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cfg.json"):
        SparseAutoencoder.from_pretrained(tmp_path)


def test_we_read_folders_saelens_writes(tmp_path):
    pytest.importorskip("sae_lens")
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    torch.manual_seed(0)
    theirs = TopKSAE(TopKSAEConfig(d_in=16, d_sae=48, k=5))
    with torch.no_grad():
        theirs.b_enc.normal_(0, 0.2)
        theirs.b_dec.normal_(0, 0.2)
    theirs.save_model(str(tmp_path / "theirs"))
    ours = SparseAutoencoder.from_pretrained(tmp_path / "theirs")
    x = torch.randn(20, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).x_hat, theirs(x), atol=1e-5, rtol=1e-5)


def test_convert_original_checkpoint(tmp_path):
    torch.manual_seed(0)
    encoder, decoder = nn.Linear(384, 96), nn.Linear(96, 384)  # tiny's width, as the original checkpoints
    state = {
        "encoder.weight": encoder.weight.data,
        "encoder.bias": encoder.bias.data,
        "decoder.weight": decoder.weight.data,
        "decoder.bias": decoder.bias.data,
    }
    torch.save(state, tmp_path / "orig.pth")
    out = convert_original(tmp_path / "orig.pth", tmp_path / "converted", hook_name="decoder.out")
    sae = SparseAutoencoder.from_pretrained(out)
    x = torch.randn(7, 384)
    torch.testing.assert_close(sae(x).x_hat, decoder(torch.relu(encoder(x))), atol=1e-5, rtol=1e-5)
    assert sae.cfg.hook_name == "decoder.out" and sae.cfg.apply_b_dec_to_input is False


def test_convert_cli(tmp_path):
    from whisper_sae.cli import main

    torch.save(
        {
            "encoder.weight": torch.randn(12, 384),
            "encoder.bias": torch.randn(12),
            "decoder.weight": torch.randn(384, 12),
            "decoder.bias": torch.randn(384),
        },
        tmp_path / "o.pth",
    )
    assert main(["convert", str(tmp_path / "o.pth"), "--out", str(tmp_path / "c")]) == 0
    cfg = SparseAutoencoder.from_pretrained(tmp_path / "c").cfg
    assert (cfg.d_sae, cfg.hook_name, cfg.model_name) == (12, "encoder.out", "openai/whisper-tiny")
    assert (
        main(
            [
                "convert",
                str(tmp_path / "o.pth"),
                "--out",
                str(tmp_path / "e"),
                "--hook",
                "decoder.blocks.3",
                "--model",
                "tiny.en",
            ]
        )
        == 0
    )
    assert SparseAutoencoder.from_pretrained(tmp_path / "e").cfg.hook_name == "decoder.blocks.3"
    torch.save({"W": torch.zeros(2)}, tmp_path / "bad.pth")
    assert main(["convert", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "d")]) == 1


def test_saved_files_honour_the_umask(tmp_path):
    """safetensors' save_file makes 0600 files; an SAE folder must be readable as the umask says (0644 under 022)."""
    import os
    import stat

    from whisper_sae.sae import SparseAutoencoder, save_pretrained

    old = os.umask(0o022)
    try:
        folder = save_pretrained(SparseAutoencoder(input_dim=8, hidden_dim=16), tmp_path / "sae")
    finally:
        os.umask(old)
    for name in ("cfg.json", "sae_weights.safetensors"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o644, name
