"""The SAE module: config checks, each architecture's forward pass, the original checkpoint's layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from whisper_sae.sae import SAEConfig, SparseAutoencoder


def _sae(arch, d_in=16, d_sae=40, k=None, seed=0, **kw):
    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in, d_sae, arch, k=k, **kw))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_(0, 0.3)
        if arch == "batchtopk":
            sae.threshold.fill_(0.4)
    return sae


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(d_in=4, d_sae=8, architecture="gated"), "architecture 'gated'"),
        (dict(d_in=4, d_sae=8, architecture="topk"), "needs k"),
        (dict(d_in=4, d_sae=8, architecture="topk", k=9), "1..d_sae=8"),
        (dict(d_in=4, d_sae=8, architecture="relu", k=3), "only meaningful"),
        (dict(d_in=0, d_sae=8), "d_in must be a positive integer"),
    ],
)
def test_config_rejects_impossible_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SAEConfig(**kwargs)


def test_relu_matches_the_formula():
    sae = _sae("relu")
    x = torch.randn(8, 16)
    codes, x_hat = sae(x)  # the original's unpacking order: encoded, decoded
    expected = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    torch.testing.assert_close(codes, expected)
    torch.testing.assert_close(x_hat, expected @ sae.W_dec + sae.b_dec)


def test_training_pre_acts_is_the_same_function_with_the_same_gradients():
    """The training form folds b_dec into the bias; values and every parameter's gradient must match
    the plain (x - b_dec) @ W_enc + b_enc form."""
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=24, d_sae=64, architecture="relu"))
    with torch.no_grad():
        sae.b_dec.normal_(0, 2.0)
        sae.b_enc.normal_(0, 0.5)
    x = torch.randn(50, 24) * 3 + 1
    weights = torch.randn(50, 64)
    grads = []
    for fn in (sae.pre_acts, sae.training_pre_acts):
        sae.zero_grad()
        out = fn(x)
        (torch.relu(out) * weights).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in (sae.W_enc, sae.b_enc, sae.b_dec)]))
    torch.testing.assert_close(grads[1][0], grads[0][0], atol=1e-4, rtol=1e-5)
    for new, old in zip(grads[1][1], grads[0][1]):
        torch.testing.assert_close(new, old, atol=1e-3, rtol=1e-4)
    assert grads[0][1][2].abs().max() > 0.1  # b_dec really gets a gradient through the encoder


def test_topk_keeps_exactly_the_k_largest():
    sae = _sae("topk", k=5)
    x = torch.randn(32, 16)
    codes = sae.encode(x)
    pre = sae.pre_acts(x)
    assert ((codes > 0).sum(-1) <= 5).all()
    kth = pre.topk(5, dim=-1).values[:, -1:]
    on = codes > 0
    assert torch.equal(on, (pre >= kth) & (pre > 0))
    torch.testing.assert_close(codes[on], pre[on])


@pytest.mark.parametrize("arch", ["jumprelu", "batchtopk"])
def test_threshold_architectures_cut_below_the_threshold(arch):
    sae = _sae(arch, k=4 if arch == "batchtopk" else None)
    x = torch.randn(32, 16)
    pre = sae.pre_acts(x)
    threshold = sae.get_threshold()
    torch.testing.assert_close(sae.encode(x), torch.where(pre > threshold, pre, torch.zeros_like(pre)))


class _Original(nn.Module):
    """The original whisper-sae module, rebuilt here to make a checkpoint in its exact layout."""

    def __init__(self, input_dim, hidden_dim):
        super().__init__()
        self.encoder = nn.Linear(input_dim, hidden_dim)
        self.decoder = nn.Linear(hidden_dim, input_dim)

    def forward(self, x):
        encoded = torch.relu(self.encoder(x))
        return encoded, self.decoder(encoded)


def test_original_snippet_loads_a_pth_verbatim(tmp_path):
    torch.manual_seed(0)
    original = _Original(384, 1152)
    pth = tmp_path / "encoder_sae_tiny_100k_1152_space.pth"
    torch.save(original.state_dict(), pth)

    sae = SparseAutoencoder(input_dim=384, hidden_dim=1152)
    sae.load_state_dict(torch.load(pth))

    x = torch.randn(10, 384)
    encoded, decoded = original(x)
    ours_encoded, ours_decoded = sae(x)
    torch.testing.assert_close(ours_encoded, encoded)
    torch.testing.assert_close(ours_decoded, decoded)
    assert sae.cfg.apply_b_dec_to_input is False


def test_original_weights_into_an_sae_that_centres_its_input():
    torch.manual_seed(0)
    original = _Original(16, 40)
    sae = SparseAutoencoder(SAEConfig(16, 40, "relu", apply_b_dec_to_input=True))
    sae.load_state_dict(original.state_dict())
    x = torch.randn(10, 16)
    torch.testing.assert_close(sae(x).x_hat, original(x)[1], atol=1e-5, rtol=1e-5)


def test_original_state_dict_of_the_wrong_size_is_named():
    sae = SparseAutoencoder(input_dim=384, hidden_dim=1152)
    with pytest.raises(ValueError, match=r"encoder.weight has shape \[2304, 384\]"):
        sae.load_state_dict(_Original(384, 2304).state_dict())


def test_check_compatible():
    sae = _sae("relu", hook_name="encoder.out", model_name="tiny.en")
    sae.check_compatible(16, "encoder.out", "tiny.en")
    with pytest.raises(ValueError, match="width d_in=16.*have width 512"):
        sae.check_compatible(512, "encoder.out")
    with pytest.warns(UserWarning, match="applied to hook 'encoder.blocks.2'"):
        sae.check_compatible(16, "encoder.blocks.2")


def test_original_checkpoints_from_the_seed_folder(tmp_path):
    from pathlib import Path

    folder = Path(__file__).resolve().parents[3] / "shared" / "data" / "seed-checkpoints"
    pths = sorted(folder.glob("*.pth")) if folder.is_dir() else []
    if not pths:
        pytest.skip("the original checkpoints (../shared/data/seed-checkpoints) are not here")
    for pth in pths:
        sae = SparseAutoencoder(input_dim=384, hidden_dim=1152)
        sae.load_state_dict(torch.load(pth, weights_only=True))
        state = torch.load(pth, weights_only=True)
        x = torch.randn(4, 384)
        expected = torch.relu(x @ state["encoder.weight"].T + state["encoder.bias"])
        torch.testing.assert_close(sae.encode(x), expected, atol=1e-5, rtol=1e-5)
