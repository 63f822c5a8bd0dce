"""TopK encode and sparse decode as autograd functions whose backward passes use the sparsity.

A dense SAE step costs about five B x d_in x d_sae matmuls; with k active features per row only the
encoder's forward matmul has to be dense. The rest is k-sparse: the decoder is an ``embedding_bag``
(a weighted sum of k rows of W_dec), the codes' gradient is a sampled product (CSR ``sampled_addmm``),
and the weight gradients are sparse-dense products whose sparse side is the B x k picks regrouped by
feature (one sort, then a CSR ``[d_sae, B] @ [B, d_in]`` product, which MKL runs 3x faster than the
unsorted COO product on 2 CPU cores; see benchmarks/train.py). The input centring (x - b_dec) is folded into the
encoder's bias as in ``relu_step.py``, so no [B, d_in] input gradient is formed for b_dec.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function


def _row_ids(batch: int, k: int, device) -> Tensor:
    return torch.arange(batch, device=device).repeat_interleave(k)


def _csr(crow: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the kernels are what we need
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, cols, values, shape, check_invariants=False)


class _ByFeature:
    """The picks ``indices`` [B, k] regrouped by feature: sums over the rows that picked each feature, as a
    CSR ``[n, B]`` matrix times a dense ``[B, m]`` one (grad of W_enc from x, grad of W_dec from g_out)."""

    def __init__(self, indices: Tensor, n: int):
        batch, k = indices.shape
        flat = indices.reshape(-1)
        self.order = flat.argsort()
        self.crow = torch.zeros(n + 1, dtype=torch.long, device=flat.device)
        torch.cumsum(torch.bincount(flat, minlength=n), 0, out=self.crow[1:])
        self.rows = torch.div(self.order, max(k, 1), rounding_mode="floor")
        self.shape = (n, batch)

    def sum_rows(self, weights: Tensor, dense: Tensor) -> Tensor:
        """[n, m]: for each feature i, sum over picks (b, j) with indices[b, j] = i of weights[b, j] dense[b]."""
        values = weights.reshape(-1)[self.order].to(dense.dtype)
        return torch.sparse.mm(_csr(self.crow, self.rows, values, self.shape), dense)


class _TopKEncode(Function):
    """(x [B, d], b_dec [d] or None, W_enc [d, n], b_enc [n]) -> top-k values (ReLU'd) of
    (x - b_dec) W_enc + b_enc and their indices, plus the AuxK picks among ``dead`` features.
    Backward touches only the picked entries of the pre-activations."""

    @staticmethod
    def forward(ctx, x, b_dec, W_enc, b_enc, k: int, compute_dtype, dead, k_aux: int):
        with torch.autocast(x.device.type, enabled=False):
            # (x - b_dec) W + b == x W + (b - b_dec W): b_dec's gradient is then -W_enc grad_b_enc.
            bias = b_enc - b_dec @ W_enc if b_dec is not None else b_enc
            # The bias rides in the matmul (no pass over [B, n] to add it); in bf16 the top-k is taken on the
            # bf16 pre-activations (rounded once, from fp32 accumulators) and the picks are widened.
            pre = torch.addmm(bias.to(compute_dtype), x.to(compute_dtype), W_enc.to(compute_dtype))
            values, indices = pre.topk(k, dim=-1, sorted=False)
            values = values.float().clamp_min_(0)
            if dead is not None and k_aux > 0:
                # Only the dead columns compete for the AuxK picks: a top-k over those, not over all n.
                dead_ids = dead.nonzero().squeeze(1)
                aux_values, picks = pre.index_select(1, dead_ids).topk(k_aux, dim=-1, sorted=False)
                aux_values, aux_indices = aux_values.float().clamp_min_(0), dead_ids[picks]
            else:
                aux_values = values.new_zeros(pre.shape[0], 0)
                aux_indices = indices.new_zeros(pre.shape[0], 0)
        centre = b_dec if b_dec is not None else x.new_zeros(0)
        ctx.save_for_backward(x, centre, W_enc, values, indices, aux_values, aux_indices)
        ctx.centred = b_dec is not None
        ctx.mark_non_differentiable(indices, aux_indices)
        return values, indices, aux_values, aux_indices

    @staticmethod
    def backward(ctx, g_values, _g_idx, g_aux, _g_aux_idx):
        x, b_dec, W_enc, values, indices, aux_values, aux_indices = ctx.saved_tensors
        n = W_enc.shape[1]
        g = g_values * (values > 0)  # the ReLU on the picked values
        idx = indices
        if aux_indices.shape[1] > 0 and g_aux is not None:
            g = torch.cat([g, g_aux * (aux_values > 0)], dim=1)
            idx = torch.cat([indices, aux_indices], dim=1)
        g = g.float()
        grad_x = grad_b_dec = grad_w = grad_b = None
        with torch.autocast(x.device.type, enabled=False):
            grad_b = torch.zeros(n, device=x.device).index_add_(0, idx.reshape(-1), g.reshape(-1))
            if ctx.needs_input_grad[2]:
                grad_w = _ByFeature(idx, n).sum_rows(g, x.float()).T
                if ctx.centred:
                    grad_w.addr_(b_dec, grad_b, alpha=-1.0)
            if ctx.needs_input_grad[1]:
                grad_b_dec = -(W_enc @ grad_b)
            if ctx.needs_input_grad[0]:
                rows = _row_ids(x.shape[0], idx.shape[1], x.device)
                pattern = torch.sparse_coo_tensor(
                    torch.stack([rows, idx.reshape(-1)]), g.reshape(-1), (x.shape[0], n), check_invariants=False
                )
                grad_x = torch.sparse.mm(pattern, W_enc.T.float())
        return grad_x, grad_b_dec, grad_w, (grad_b if ctx.needs_input_grad[3] else None), None, None, None, None


class _SparseDecode(Function):
    """(values [B, k], indices [B, k], W_dec [n, d]) -> sum_j values[:, j] * W_dec[indices[:, j]]."""

    @staticmethod
    def forward(ctx, values, indices, W_dec):
        ctx.save_for_backward(values, indices, W_dec)
        with torch.autocast(values.device.type, enabled=False):
            return F.embedding_bag(indices, W_dec, mode="sum", per_sample_weights=values.to(W_dec.dtype))

    @staticmethod
    def backward(ctx, g_out):
        values, indices, W_dec = ctx.saved_tensors
        batch, k = indices.shape
        n = W_dec.shape[0]
        g_out = g_out.float()
        grad_values = grad_w = None
        if ctx.needs_input_grad[0] and k > 0:
            # <g_out[b], W_dec[indices[b, j]]> for the B*k picked pairs only.
            crow = torch.arange(0, batch * k + 1, k, device=indices.device)
            pattern = _csr(crow, indices.reshape(-1), values.new_zeros(batch * k).float(), (batch, n))
            grad_values = torch.sparse.sampled_addmm(pattern, g_out, W_dec.T, beta=0.0).values().view(batch, k)
        elif ctx.needs_input_grad[0]:
            grad_values = values.new_zeros(batch, 0)
        if ctx.needs_input_grad[2]:
            grad_w = _ByFeature(indices, n).sum_rows(values, g_out)
        return grad_values, None, grad_w


def topk_encode(
    x: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    k: int,
    *,
    b_dec: Tensor | None = None,
    compute_dtype=torch.float32,
    dead: Tensor | None = None,
    k_aux: int = 0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top-k codes of (x - b_dec) W_enc + b_enc (no centring without ``b_dec``): (values, indices, aux_values,
    aux_indices); values are fp32, and in bf16 ``compute_dtype`` the picks are made on bf16 pre-activations."""
    return _TopKEncode.apply(x, b_dec, W_enc, b_enc, k, compute_dtype, dead, k_aux)


def sparse_decode(values: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
    """sum_j values[:, j] * W_dec[indices[:, j]]  [B, d_in] (no bias)."""
    return _SparseDecode.apply(values, indices, W_dec)
