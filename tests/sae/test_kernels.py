"""The sparse TopK kernels give the same loss and gradients as the dense computation."""

from __future__ import annotations

import pytest
import torch

from whisper_sae.sae.kernels import ByFeature, sparse_decode, topk_encode

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("centre", ["folded", "outside", "folded, one sort shared"])
def test_sparse_topk_step_matches_dense_autograd(device, centre):
    torch.manual_seed(0)
    batch, d, n, k, k_aux = 64, 16, 48, 5, 4
    x = torch.randn(batch, d, device=device)
    params = [
        torch.randn(d, n, device=device, requires_grad=True),
        torch.randn(n, device=device, requires_grad=True),
        torch.randn(n, d, device=device, requires_grad=True),
        torch.randn(d, device=device, requires_grad=True),
    ]
    dead = torch.zeros(n, dtype=torch.bool, device=device)
    dead[:12] = True

    def sparse(W_enc, b_enc, W_dec, b_dec):
        groups = ByFeature() if "shared" in centre else None  # the decoder's sort reused by the encoder
        if centre.startswith("folded"):  # b_dec folded into the encoder bias: no [B, d] input gradient
            values, idx, aux_values, aux_idx = topk_encode(
                x, W_enc, b_enc, k, b_dec=b_dec, dead=dead, k_aux=k_aux, groups=groups
            )
        else:  # the centred rows as input: the gradient reaches b_dec through x
            values, idx, aux_values, aux_idx = topk_encode(x - b_dec, W_enc, b_enc, k, dead=dead, k_aux=k_aux)
        x_hat = sparse_decode(values, idx, W_dec, groups) + b_dec
        assert groups is None or groups.holds(idx)
        return (x_hat - x).pow(2).sum() + (sparse_decode(aux_values, aux_idx, W_dec) - 1).pow(2).sum()

    def dense(W_enc, b_enc, W_dec, b_dec):
        pre = (x - b_dec) @ W_enc + b_enc
        top = pre.topk(k)
        codes = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
        aux = pre.masked_fill(~dead, float("-inf")).topk(k_aux)
        aux_codes = torch.zeros_like(pre).scatter(1, aux.indices, aux.values.relu())
        return (codes @ W_dec + b_dec - x).pow(2).sum() + (aux_codes @ W_dec - 1).pow(2).sum()

    results = []
    for fn in (sparse, dense):
        loss = fn(*params)
        grads = torch.autograd.grad(loss, params)
        results.append((loss, grads))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-3)
    for ours, reference in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-3)


def test_bf16_topk_step_picks_from_bf16_pre_activations_and_keeps_gradients_close():
    """In bf16 the picks are the top k of the bf16-rounded pre-activations; values and gradients stay within
    bf16 rounding of the fp32 computation on the same picks."""
    torch.manual_seed(1)
    batch, d, n, k = 256, 32, 128, 8
    x = torch.randn(batch, d)
    W_enc, b_enc = torch.randn(d, n, requires_grad=True), torch.randn(n, requires_grad=True)
    W_dec, b_dec = torch.randn(n, d, requires_grad=True), torch.randn(d, requires_grad=True)
    values, idx, _, _ = topk_encode(x, W_enc, b_enc, k, b_dec=b_dec, compute_dtype=torch.bfloat16)
    pre_bf16 = torch.addmm((b_enc - b_dec @ W_enc).bfloat16(), x.bfloat16(), W_enc.bfloat16())
    kth = pre_bf16.topk(k).values[:, -1:]
    picked = pre_bf16.gather(1, idx)
    assert bool((picked >= kth).all())  # every pick is among the bf16 top k (ties may pick either)
    loss = (sparse_decode(values, idx, W_dec) + b_dec - x).pow(2).sum()
    grads = torch.autograd.grad(loss, [W_enc, b_enc, W_dec, b_dec])

    pre = (x - b_dec) @ W_enc + b_enc  # fp32 reference on the same picks
    codes = torch.zeros_like(pre).scatter(1, idx, pre.gather(1, idx).relu())
    torch.testing.assert_close(values, pre.gather(1, idx).relu(), rtol=2e-2, atol=5e-2)
    reference = torch.autograd.grad((codes @ W_dec + b_dec - x).pow(2).sum(), [W_enc, b_enc, W_dec, b_dec])
    for ours, ref in zip(grads, reference):
        assert float((ours - ref).norm() / ref.norm()) < 2e-2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n, k", [(3072, 32), (1152, 64), (160, 10), (100, 8), (64, 5)])
def test_topk_rows_finds_the_values_of_torch_topk(dtype, n, k):
    """Chunked top-k (n a multiple of 16 with >= k chunks) and the fallback both return the k largest values
    of each row, and indices that hold them; bf16 rows have many ties."""
    from whisper_sae.sae.kernels import topk_rows

    g = torch.Generator().manual_seed(n + k)
    pre = (torch.randn(300, n, generator=g) * 2 + torch.randn(n, generator=g)).to(dtype)
    pre[7] = 0.5  # a row of ties
    pre[9, ::17] = 40.0  # a row whose top entries crowd a few chunks
    values, indices = topk_rows(pre, k)
    reference = pre.topk(k, dim=-1).values
    assert torch.equal(values.sort(-1, descending=True).values, reference)
    assert torch.equal(pre.gather(1, indices), values)
    assert all(len(set(row.tolist())) == k for row in indices)  # no index twice
