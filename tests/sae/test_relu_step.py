"""The fused ReLU+L1 step (sae/relu_step.py) is the plain autograd computation: same values, same gradients,
same weights after a run of Adam steps."""

from __future__ import annotations

import pytest
import torch

from whisper_sae.sae import SAEConfig
from whisper_sae.sae.architectures.base import mse
from whisper_sae.sae.model import SparseAutoencoder
from whisper_sae.sae.relu_step import count_positive, relu_l1, relu_l1_reference


def _params(d=12, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(d, n), (n,), (n, d), (d,)]
    return [(torch.randn(*s, generator=g) * 0.5).requires_grad_() for s in shapes]


@pytest.mark.parametrize("centre_input", [True, False])
def test_values_and_gradients_match_autograd(centre_input):
    params = _params()
    x = (torch.randn(64, 12, generator=torch.Generator().manual_seed(1)) + 0.3).requires_grad_()
    results = []
    for fn in (relu_l1, relu_l1_reference):
        x_hat, err, l1, fired = fn(x, *params, centre_input=centre_input)
        loss = err + 0.7 * l1 + 0.3 * x_hat.sum()  # x_hat also used on its own, as the KL trainer does
        grads = torch.autograd.grad(loss, [x, *params])
        results.append((x_hat, err, l1, fired, grads))
    (x_hat, err, l1, fired, grads), (ref_hat, ref_err, ref_l1, ref_fired, ref_grads) = results
    torch.testing.assert_close(x_hat, ref_hat, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(err, ref_err, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(err, mse(x_hat, x.detach()), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(l1, ref_l1, rtol=1e-5, atol=1e-6)
    assert torch.equal(fired, ref_fired) and 0 < int(fired.sum()) < 64 * 40
    for name, ours, reference in zip(["x", "W_enc", "b_enc", "W_dec", "b_dec"], grads, ref_grads):
        torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5, msg=f"gradient of {name}")


def test_the_l1_alone_and_the_reconstruction_alone_backpropagate():
    params = _params(seed=3)
    x = torch.randn(32, 12, generator=torch.Generator().manual_seed(4))
    for pick in (2, 1, 0):  # l1 only (x_hat gets no gradient), err only, then x_hat only (l1 gets none)
        ours = torch.autograd.grad(relu_l1(x, *params)[pick].sum(), params)
        reference = torch.autograd.grad(relu_l1_reference(x, *params)[pick].sum(), params)
        for a, b in zip(ours, reference):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bf16_compute_stays_close_to_fp32():
    params = _params(d=64, n=192, seed=5)
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(6))
    loss16 = relu_l1(x, *params, compute_dtype=torch.bfloat16)
    loss32 = relu_l1_reference(x, *params)
    assert loss16[0].dtype == torch.bfloat16
    cos = torch.nn.functional.cosine_similarity(loss16[0].float().flatten(), loss32[0].flatten(), dim=0)
    assert cos > 0.999
    for part in (1, 2):  # the squared error and the L1
        assert abs(float(loss16[part].detach()) / float(loss32[part].detach()) - 1) < 0.01


def test_adam_steps_reach_the_same_weights_as_the_autograd_path():
    """40 Adam steps with the fused step land where 40 steps of the plain computation land."""
    cfg = SAEConfig(d_in=16, d_sae=48, architecture="relu")
    x_all = torch.randn(40, 128, 16, generator=torch.Generator().manual_seed(7)) * 2 + 0.5
    weights = []
    for fn in (relu_l1, relu_l1_reference):
        torch.manual_seed(0)
        sae = SparseAutoencoder(cfg)
        opt = torch.optim.Adam(sae.parameters(), lr=3e-3)
        for x in x_all:
            _, err, l1, _ = fn(x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)
            loss = err + 0.2 * l1
            opt.zero_grad()
            loss.backward()
            opt.step()
        weights.append({k: v.detach().clone() for k, v in sae.state_dict().items()})
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=1e-4, atol=2e-5, msg=key)
    assert not torch.allclose(weights[0]["W_enc"], SparseAutoencoder(cfg).W_enc)  # it trained


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [100, 1000])
def test_count_positive_counts_exactly(dtype, rows):
    codes = torch.relu(torch.randn(rows, 30, generator=torch.Generator().manual_seed(rows)) + 1.5).to(dtype)
    codes[:, 3] = 0
    counts = count_positive(codes)
    assert torch.equal(counts, (codes > 0).sum(0)) and int(counts.max()) > min(256, rows - 10)


def test_bf16_gradients_stay_close_to_fp32():
    """The bf16 step's gradients (biases through the ones column, the L1's through the extra decoder row)
    point where the fp32 autograd gradients point."""
    params = _params(d=64, n=192, seed=8)
    x = torch.randn(512, 64, generator=torch.Generator().manual_seed(9)) + 0.2
    grads = []
    for fn, kwargs in ((relu_l1, {"compute_dtype": torch.bfloat16}), (relu_l1_reference, {})):
        _, err, l1, _ = fn(x, *params, **kwargs)
        grads.append(torch.autograd.grad(err + 0.5 * l1, params))
    for name, ours, reference in zip(["W_enc", "b_enc", "W_dec", "b_dec"], *grads):
        cos = torch.nn.functional.cosine_similarity(ours.flatten(), reference.flatten(), dim=0)
        assert cos > 0.995, (name, float(cos))
