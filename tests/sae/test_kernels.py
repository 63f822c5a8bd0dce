"""The sparse TopK kernels give the same loss and gradients as the dense computation."""

from __future__ import annotations

import pytest
import torch

from whisper_sae.sae.kernels import sparse_decode, topk_encode

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_sparse_topk_step_matches_dense_autograd(device):
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
        values, idx, aux_values, aux_idx = topk_encode(x - b_dec, W_enc, b_enc, k, dead=dead, k_aux=k_aux)
        x_hat = sparse_decode(values, idx, W_dec) + b_dec
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
