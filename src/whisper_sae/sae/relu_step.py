"""The ReLU+L1 training step's forward and backward as one autograd Function, with fewer passes over [B, d_sae].

With AMX or a GPU the five matmuls of a ReLU step are fast and the step's time goes to elementwise passes
over the [B, d_sae] codes: under autograd and autocast the L1 term alone cast the codes to fp32 and back,
and its gradient was materialised as a [B, d_sae] broadcast before being added to the decoder's
(torch.profiler on benchmarks/train.py). Here the L1 gradient, a per-feature constant, rides as the bias of
the decoder-gradient matmul, the L1 sum and the firing counts read the codes once each, and the matmuls run
in ``compute_dtype`` on weights cast once per step, and nothing of [B, d_sae] is widened to fp32 (sums run in
the codes' dtype with fp32 accumulation); the bias is folded as in
``SparseAutoencoder.training_pre_acts`` (no input-gradient matmul).

Same function and gradients as the autograd reference ``relu_l1_reference`` (tests/sae/test_relu_step.py).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function


def _column_sums(t: Tensor) -> Tensor:
    """fp32 [n] sums over the rows of t [B, n]: in bf16 with fp32 accumulation inside (``sum(dtype=fp32)``
    would first copy t to fp32); fp16 sums could overflow, so they take the copy."""
    return t.sum(0).float() if t.dtype == torch.bfloat16 else t.sum(0, dtype=torch.float32)


def count_positive(codes: Tensor) -> Tensor:
    """Per-column count of rows with codes > 0, for codes >= 0 [B, n] (int64 [n]).

    ``count_nonzero`` writes a bool mask and widens it to int64 (two copies of [B, n]); the sign of a code
    is its firing indicator, and sums of up to 256 of them are exact in bf16 (2**24 in fp32), so the rows
    are summed in blocks of 256 in the codes' own dtype and the blocks in fp32."""
    if codes.dtype == torch.float32 or codes.shape[0] <= 256:
        return codes.sign().sum(0, dtype=torch.float32 if codes.dtype == torch.float32 else None).long()
    whole = codes.shape[0] // 256 * 256
    counts = codes[:whole].view(-1, 256, codes.shape[1]).sign().sum(1).sum(0, dtype=torch.float32)
    if whole < codes.shape[0]:
        counts += codes[whole:].sign().sum(0).float()
    return counts.long()


class _ReLUL1(Function):
    """(x [B, d], W_enc [d, n], b_enc [n], W_dec [n, d], b_dec [d]) -> (x_hat [B, d] in compute_dtype,
    l1 = sum_b sum_i codes_bi ||W_dec_i|| / B, fired [n] counts of rows with codes > 0)."""

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, W_dec, b_dec, centre_input: bool, compute_dtype):
        with torch.autocast(x.device.type, enabled=False):
            # (x - b_dec) W + b == x W + (b - b_dec W): b_dec's gradient then needs no [B, d_sae] x [d_sae, d_in] matmul.
            bias = b_enc - b_dec @ W_enc if centre_input else b_enc
            enc, dec, xc = W_enc.to(compute_dtype), W_dec.to(compute_dtype), x.to(compute_dtype)
            codes = torch.addmm(bias.to(compute_dtype), xc, enc).relu_()
            x_hat = torch.addmm(b_dec.to(compute_dtype), codes, dec)
            colsum = _column_sums(codes)
            norms = W_dec.norm(dim=1)
            l1 = colsum @ norms / x.shape[0]
            fired = count_positive(codes)
        ctx.save_for_backward(xc, enc, dec, codes, colsum, norms, W_enc, W_dec, b_dec)
        ctx.centre_input = centre_input
        ctx.mark_non_differentiable(fired)
        return x_hat, l1, fired

    @staticmethod
    def backward(ctx, g_xhat, g_l1, _g_fired):
        xc, enc, dec, codes, colsum, norms, W_enc, W_dec, b_dec = ctx.saved_tensors
        batch = codes.shape[0]
        c = codes.dtype
        with torch.autocast(xc.device.type, enabled=False):
            # dL1/dcodes_bi = g_l1 ||W_dec_i|| / B for every row b: the bias of the decoder-gradient matmul.
            per_feature = g_l1 * norms / batch if g_l1 is not None else None
            if g_xhat is not None:
                gx = g_xhat.to(c)
                if per_feature is not None:
                    grad_codes = torch.addmm(per_feature.to(c), gx, dec.T)
                else:
                    grad_codes = gx @ dec.T
            else:
                grad_codes = per_feature.to(c).expand(batch, -1)
            grad_pre = torch.ops.aten.threshold_backward(grad_codes, codes, 0)  # ReLU: zero where codes == 0
            grad_x = grad_W_enc = grad_b_enc = grad_W_dec = grad_b_dec = None
            grad_bias = _column_sums(grad_pre)
            if ctx.needs_input_grad[0]:
                grad_x = (grad_pre @ enc.T).float()
            if ctx.needs_input_grad[1]:
                grad_W_enc = (xc.T @ grad_pre).float()
                if ctx.centre_input:
                    grad_W_enc.addr_(b_dec, grad_bias, alpha=-1.0)
            if ctx.needs_input_grad[2]:
                grad_b_enc = grad_bias
            if ctx.needs_input_grad[3]:
                grad_W_dec = (codes.T @ gx).float() if g_xhat is not None else torch.zeros_like(W_dec)
                if per_feature is not None:
                    # d||W_dec_i|| / dW_dec_i = W_dec_i / ||W_dec_i||, weighted by the feature's summed codes.
                    scale = g_l1 * colsum / (batch * norms.clamp_min(1e-12))
                    grad_W_dec.addcmul_(scale[:, None], W_dec)
            if ctx.needs_input_grad[4]:
                grad_b_dec = g_xhat.float().sum(0) if g_xhat is not None else torch.zeros_like(b_dec)
                if ctx.centre_input:
                    grad_b_dec = grad_b_dec - W_enc @ grad_bias
        return grad_x, grad_W_enc, grad_b_enc, grad_W_dec, grad_b_dec, None, None


def relu_l1(
    x: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    *,
    centre_input: bool = True,
    compute_dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor, Tensor]:
    """A ReLU SAE's training forward on rows x [B, d_in]: (x_hat [B, d_in] in ``compute_dtype``, the
    decoder-norm-weighted L1 of the codes averaged over rows, per-feature counts of rows it fired on).
    ``centre_input`` subtracts b_dec from x before encoding (``SAEConfig.apply_b_dec_to_input``)."""
    return _ReLUL1.apply(x, W_enc, b_enc, W_dec, b_dec, centre_input, compute_dtype)


def relu_l1_reference(x, W_enc, b_enc, W_dec, b_dec, *, centre_input: bool = True):
    """The same three results written plainly for autograd (the test's reference)."""
    pre = (x - b_dec if centre_input else x) @ W_enc + b_enc
    codes = torch.relu(pre)
    x_hat = codes @ W_dec + b_dec
    l1 = (codes * W_dec.norm(dim=1)).sum(-1).mean()
    return x_hat, l1, (codes > 0).sum(0)
