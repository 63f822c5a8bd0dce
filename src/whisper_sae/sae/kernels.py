"""TopK encode and sparse decode as autograd functions whose backward passes use the sparsity.

A dense SAE step costs about five B x d_in x d_sae matmuls; with k active features per row only the
encoder's forward matmul has to be dense. The rest is k-sparse: the decoder is an ``embedding_bag``
(a weighted sum of k rows of W_dec), the codes' gradient is a sampled product (CSR ``sampled_addmm``),
and the weight gradients are sparse-dense products whose sparse side is the B x k picks regrouped by
feature (one sort, then a CSR ``[d_sae, B] @ [B, d_in]`` product, which MKL runs faster than the unsorted
COO product: ``python benchmarks/kernels.py``). The input centring (x - b_dec) is folded into the
encoder's bias as in ``relu_step.py``, so no [B, d_in] input gradient is formed for b_dec.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from .relu_step import padded


def _row_ids(batch: int, k: int, device) -> Tensor:
    return torch.arange(batch, device=device).repeat_interleave(k)


def _csr(crow: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the kernels are what we need
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, cols, values, shape, check_invariants=False)


_GROUPS = 16


def topk_rows(pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest entries of each row of pre [B, n] (unsorted): the values of ``pre.topk(k)``, and indices
    that hold them (among tied values either may be picked).

    On a CPU torch's top-k costs ~12 us a row at n = 3072 whatever k. Here each row is cut into n / 16
    strided chunks (entries j, j + n/16, ...): a row's top k lie in the k chunks with the largest maxima,
    so a top-k over the chunk maxima and one over those k chunks' 16 k entries find them, in less time than
    ``pre.topk`` from width 1152 up (``python benchmarks/kernels.py``). Elsewhere (CUDA, n not a multiple of
    16, fewer than k chunks) it is ``pre.topk``."""
    batch, n = pre.shape
    width = n // _GROUPS
    if pre.device.type != "cpu" or n % _GROUPS or width < k or k == 0:
        return pre.topk(k, dim=-1, sorted=False)
    view = pre.view(batch, _GROUPS, width)  # chunk j: column j of the view
    chunks = view.amax(1).topk(k, dim=-1, sorted=False).indices  # [B, k]
    candidates = view.gather(2, chunks[:, None, :].expand(batch, _GROUPS, k))  # [B, 16, k]
    values, picks = candidates.view(batch, -1).topk(k, dim=-1, sorted=False)
    return values, torch.div(picks, k, rounding_mode="floor") * width + chunks.gather(1, picks % k)


class ByFeature:
    """The picks ``indices`` [B, k] regrouped by feature: sums over the rows that picked each feature, as a
    CSR ``[n, B]`` matrix times a dense ``[B, m]`` one (grad of W_enc from x, grad of W_dec from g_out).

    The sort runs on first use and is kept, so the encoder's and the decoder's backward share it: pass an
    unbound ``ByFeature()`` to ``topk_encode(groups=)``, which binds it to its picks, then to
    ``sparse_decode(groups=)``."""

    def __init__(self, indices: Tensor | None = None, n: int | None = None):
        self.bind(indices, n)

    def bind(self, indices: Tensor, n: int) -> None:
        self.indices, self.n, self._sorted = indices, n, None

    def holds(self, indices: Tensor) -> bool:
        return self.indices is indices

    def _sort(self):
        if self._sorted is None:
            batch, k = self.indices.shape
            flat = self.indices.reshape(-1)
            order = flat.argsort()
            crow = torch.zeros(self.n + 1, dtype=torch.long, device=flat.device)
            torch.cumsum(torch.bincount(flat, minlength=self.n), 0, out=crow[1:])
            rows = torch.div(order, max(k, 1), rounding_mode="floor")
            self._sorted = (order, crow, rows, (self.n, batch))
        return self._sorted

    def sum_rows(self, weights: Tensor, dense: Tensor) -> Tensor:
        """[n, m]: for each feature i, sum over picks (b, j) with indices[b, j] = i of weights[b, j] dense[b]."""
        order, crow, rows, shape = self._sort()
        values = weights.reshape(-1)[order].to(dense.dtype)
        return torch.sparse.mm(_csr(crow, rows, values, shape), dense)


class _TopKEncode(Function):
    """(x [B, d], b_dec [d] or None, W_enc [d, n], b_enc [n]) -> top-k values (ReLU'd) of
    (x - b_dec) W_enc + b_enc and their indices, plus the AuxK picks among ``dead`` features.
    Backward touches only the picked entries of the pre-activations."""

    @staticmethod
    def forward(ctx, x, b_dec, W_enc, b_enc, k: int, compute_dtype, dead, k_aux: int, groups):
        with torch.autocast(x.device.type, enabled=False):
            # (x - b_dec) W + b == x W + (b - b_dec W): b_dec's gradient is then -W_enc grad_b_enc.
            bias = b_enc - b_dec @ W_enc if b_dec is not None else b_enc
            # The bias rides in the matmul as one more weight row against a column of ones (addmm would first
            # copy the broadcast bias into its [B, n] output); in bf16 the top-k is taken on the bf16
            # pre-activations (rounded once, from fp32 accumulators) and the picks are widened.
            pre = padded(x, 1, compute_dtype) @ padded(W_enc.T, bias, compute_dtype).T
            values, indices = topk_rows(pre, k)
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
        if groups is not None:
            groups.bind(indices, pre.shape[1])
        ctx.centred, ctx.groups = b_dec is not None, groups
        ctx.mark_non_differentiable(indices, aux_indices)
        return values, indices, aux_values, aux_indices

    @staticmethod
    def backward(ctx, g_values, _g_idx, g_aux, _g_aux_idx):
        x, b_dec, W_enc, values, indices, aux_values, aux_indices = ctx.saved_tensors
        n = W_enc.shape[1]
        g_main = (g_values * (values > 0)).float()  # the ReLU on the picked values
        g, idx = g_main, indices
        with_aux = aux_indices.shape[1] > 0 and g_aux is not None
        if with_aux:
            g_extra = (g_aux * (aux_values > 0)).float()
            g, idx = torch.cat([g_main, g_extra], dim=1), torch.cat([indices, aux_indices], dim=1)
        grad_x = grad_b_dec = grad_w = grad_b = None
        with torch.autocast(x.device.type, enabled=False):
            grad_b = torch.zeros(n, device=x.device).index_add_(0, idx.reshape(-1), g.reshape(-1))
            if ctx.needs_input_grad[2]:
                rows = x.float()
                grad_w = (ctx.groups or ByFeature(indices, n)).sum_rows(g_main, rows)  # the decoder's sort
                if with_aux:
                    grad_w += ByFeature(aux_indices, n).sum_rows(g_extra, rows)
                grad_w = grad_w.T
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
        grad_b = grad_b if ctx.needs_input_grad[3] else None
        return grad_x, grad_b_dec, grad_w, grad_b, None, None, None, None, None


class _SparseDecode(Function):
    """(values [B, k], indices [B, k], W_dec [n, d]) -> sum_j values[:, j] * W_dec[indices[:, j]]."""

    @staticmethod
    def forward(ctx, values, indices, W_dec, groups):
        ctx.save_for_backward(values, indices, W_dec)
        ctx.groups = groups if groups is not None and groups.holds(indices) else None
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
            grad_w = (ctx.groups or ByFeature(indices, n)).sum_rows(values, g_out)
        return grad_values, None, grad_w, None


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
    groups: ByFeature | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top-k codes of (x - b_dec) W_enc + b_enc (no centring without ``b_dec``): (values, indices, aux_values,
    aux_indices); values are fp32, and in bf16 ``compute_dtype`` the picks are made on bf16 pre-activations.
    ``groups``: an unbound ``ByFeature()``, bound here to the picks, for ``sparse_decode`` to share."""
    return _TopKEncode.apply(x, b_dec, W_enc, b_enc, k, compute_dtype, dead, k_aux, groups)


def sparse_decode(values: Tensor, indices: Tensor, W_dec: Tensor, groups: ByFeature | None = None) -> Tensor:
    """sum_j values[:, j] * W_dec[indices[:, j]]  [B, d_in] (no bias); ``groups``: the ``ByFeature`` that
    ``topk_encode`` bound to these indices, whose sort the two backward passes then share."""
    return _SparseDecode.apply(values, indices, W_dec, groups)
