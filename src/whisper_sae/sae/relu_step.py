"""The ReLU+L1 training step's forward and backward as one autograd Function, with few passes over [B, d_sae].

With AMX or a GPU the five matmuls of a ReLU step are fast and the step's time goes to the passes around
them (torch.profiler on ``benchmarks/train.py --profile``). So here:

- the matmuls run in ``compute_dtype`` on weights cast once per step, and nothing of [B, d_sae] is widened
  to fp32;
- the biases ride inside the matmuls as an extra input column of ones (padded to ``_PAD`` columns for the
  matrix units): the encoder bias and the L1 gradient (a per-feature constant) become one more row of the
  weight, the bias gradient and the codes' column sums come out of the weight-gradient matmuls, and the
  per-row L1 comes out of the decoder matmul as one more output column. ``addmm`` with a bias instead
  copied the broadcast bias into its [B, d_sae] output first. That is for bf16/fp16; in fp32 the matmuls
  dominate and the extra columns cost more than they save, so fp32 keeps ``addmm`` and the column sums;
- the input centring is folded into the encoder bias as in ``SparseAutoencoder.training_pre_acts`` (no
  input-gradient matmul), and the squared error is computed here too, so its gradient is one scaled copy
  of the saved residual, written straight into the compute dtype.

Same function and gradients as the autograd reference ``relu_l1_reference`` (tests/sae/test_relu_step.py).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

_PAD = 16
"""Extra input columns: column d holds the ones, the rest zeros (multiples of 16 suit AMX and AVX-512)."""


def _column_sums(t: Tensor) -> Tensor:
    """fp32 [n] sums over the rows of t [B, n]: in bf16 with fp32 accumulation inside (``sum(dtype=fp32)``
    would first copy t to fp32); fp16 sums could overflow, so they take the copy."""
    return t.sum(0).float() if t.dtype == torch.bfloat16 else t.sum(0, dtype=torch.float32)


def count_positive(codes: Tensor) -> Tensor:
    """Per-column count of rows with codes > 0, for codes >= 0 [B, n] (int64 [n]).

    ``count_nonzero`` writes a bool mask and widens it to int64 (two copies of [B, n]); the sign of a code
    is its firing indicator, and sums of up to 256 of them are exact in bf16 (2**24 in fp32), so the rows
    are summed in blocks of 256 in the codes' own dtype (a batched matmul by a row of ones, which runs on the
    matrix units: 1.4x the reduction's speed on AMX) and the blocks in fp32."""
    if codes.dtype == torch.float32 or codes.shape[0] <= 256:
        return codes.sign().sum(0, dtype=torch.float32 if codes.dtype == torch.float32 else None).long()
    whole = codes.shape[0] // 256 * 256
    blocks = codes[:whole].view(-1, 256, codes.shape[1]).sign()
    ones = codes.new_ones((blocks.shape[0], 1, 256))
    counts = torch.bmm(ones, blocks).sum((0, 1), dtype=torch.float32)
    if whole < codes.shape[0]:
        counts += codes[whole:].sign().sum(0).float()
    return counts.long()


def padded(t: Tensor, column, dtype) -> Tensor:
    """[n, d + _PAD] in ``dtype``: t [n, d], then ``column`` (a [n] tensor or a number; zeros for None), then
    zeros. A column-major t (``W_enc.T``, ``W_dec.T``) gives a column-major result, so that filling it is a
    plain copy, not a transposition; the matmuls take either layout as it is."""
    n, d = t.shape
    if t.stride(0) == 1 and t.stride(1) != 1:
        out = t.new_empty((d + _PAD, n), dtype=dtype).T
    else:
        out = t.new_empty((n, d + _PAD), dtype=dtype)
    out[:, :d] = t
    out[:, d:] = 0
    if column is not None:
        out[:, d] = column
    return out


class _ReLUL1(Function):
    """(x [B, d], W_enc [d, n], b_enc [n], W_dec [n, d], b_dec [d]) -> (x_hat [B, d] in compute_dtype,
    err = sum_b ||x_hat_b - x_b||^2 / B, l1 = sum_b sum_i codes_bi ||W_dec_i|| / B, fired [n] counts of rows
    with codes > 0)."""

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, W_dec, b_dec, centre_input: bool, compute_dtype):
        c = compute_dtype
        batch, d = x.shape
        with torch.autocast(x.device.type, enabled=False):
            # (x - b_dec) W + b == x W + (b - b_dec W): b_dec's gradient then needs no [B, d_sae] x [d_sae, d_in] matmul.
            bias = b_enc - b_dec @ W_enc if centre_input else b_enc
            norms = W_dec.norm(dim=1)
            if c != torch.float32:  # biases and the L1 inside the matmuls (the ones column)
                xa = padded(x, 1, c)
                codes = (xa @ padded(W_enc.T, bias, c).T).relu_()
                # The decoder with the norms as one more output column: that column is each row's L1.
                dec = padded(W_dec, norms, c)
                out = torch.addmm(torch.cat([b_dec, b_dec.new_zeros(_PAD)]).to(c), codes, dec)
                x_hat = out[:, :d]
                l1 = out[:, d].float().sum() / batch
                colsum = None  # comes out of the decoder-gradient matmul
            else:  # fp32: the extra columns cost more matmul time than the passes they save (2 cores, AVX2)
                xa = x
                codes = torch.addmm(bias, x, W_enc).relu_()
                x_hat = torch.addmm(b_dec, codes, W_dec)
                colsum = _column_sums(codes)
                l1 = colsum @ norms / batch
            residual = torch.sub(x_hat, x)  # fp32
            err = torch.dot(residual.view(-1), residual.view(-1)) / batch
            fired = count_positive(codes)
        ctx.save_for_backward(xa, codes, residual, norms, W_enc, W_dec, b_dec, colsum)
        ctx.centre_input, ctx.compute_dtype = centre_input, c
        ctx.mark_non_differentiable(fired)
        ctx.set_materialize_grads(False)  # an unused output's gradient comes as None, not a [B, d] of zeros
        return x_hat, err, l1, fired

    @staticmethod
    def backward(ctx, g_xhat, g_err, g_l1, _g_fired):
        xa, codes, residual, norms, W_enc, W_dec, b_dec, colsum = ctx.saved_tensors
        c, (batch, d) = ctx.compute_dtype, residual.shape
        pad = _PAD if c != torch.float32 else 0
        grad_x = grad_W_enc = grad_b_enc = grad_W_dec = grad_b_dec = None
        with torch.autocast(xa.device.type, enabled=False):
            # The gradient reaching x_hat, [B, d] in c (with the ones column), and its column sums (b_dec's).
            g_rows = None
            if g_err is not None:
                scale = 2 * g_err / batch
                g_rows = residual.new_empty((batch, d + pad), dtype=c)
                torch.mul(residual, scale, out=g_rows[:, :d])
                sum_rows = residual.sum(0) * scale
                if g_xhat is not None:
                    g_rows[:, :d] += g_xhat
                    sum_rows += g_xhat.float().sum(0)
            elif g_xhat is not None:
                g_rows = residual.new_empty((batch, d + pad), dtype=c)
                g_rows[:, :d] = g_xhat
                sum_rows = g_xhat.float().sum(0)
            if g_rows is not None and pad:
                g_rows[:, d] = 1
                g_rows[:, d + 1 :] = 0
            # dL1/dcodes_bi = g_l1 ||W_dec_i|| / B for every row b: the extra row of the decoder's transpose.
            per_feature = g_l1 * norms / batch if g_l1 is not None else None
            if g_rows is not None and pad:
                grad_codes = g_rows @ padded(W_dec, per_feature, c).T
            elif g_rows is not None:
                grad_codes = torch.addmm(per_feature, g_rows, W_dec.T) if per_feature is not None else g_rows @ W_dec.T
            else:
                grad_codes = per_feature.to(c).expand(batch, -1)
            grad_pre = torch.ops.aten.threshold_backward(grad_codes, codes, 0)  # ReLU: zero where codes == 0
            grad_enc = xa.T @ grad_pre  # [d (+ _PAD), n]: W_enc's gradient, then the bias's (the ones column)
            grad_bias = grad_enc[d].float() if pad else _column_sums(grad_pre)
            if ctx.needs_input_grad[0]:
                grad_x = (grad_pre @ W_enc.T.to(c)).float()
                if g_err is not None:  # err = ||x_hat - x||^2 / B also depends on x directly
                    grad_x -= residual * (2 * g_err / batch)
            if ctx.needs_input_grad[1]:
                grad_W_enc = grad_enc[:d].float()
                if ctx.centre_input:
                    grad_W_enc.addr_(b_dec, grad_bias, alpha=-1.0)
            if ctx.needs_input_grad[2]:
                grad_b_enc = grad_bias
            if ctx.needs_input_grad[3]:
                if g_rows is not None:
                    grad_dec = codes.T @ g_rows  # [n, d (+ _PAD)]: W_dec's gradient, then the codes' column sums
                    grad_W_dec = grad_dec[:, :d].float()
                    if pad:
                        colsum = grad_dec[:, d].float()
                else:
                    grad_W_dec, colsum = torch.zeros_like(W_dec), _column_sums(codes)
                if per_feature is not None:
                    # d||W_dec_i|| / dW_dec_i = W_dec_i / ||W_dec_i||, weighted by the feature's summed codes.
                    weight = g_l1 * colsum / (batch * norms.clamp_min(1e-12))
                    grad_W_dec.addcmul_(weight[:, None], W_dec)
            if ctx.needs_input_grad[4]:
                grad_b_dec = sum_rows if g_rows is not None else torch.zeros_like(b_dec)
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
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A ReLU SAE's training forward on rows x [B, d_in]: (x_hat [B, d_in] in ``compute_dtype``, its squared
    error summed over features and averaged over rows (fp32), the decoder-norm-weighted L1 of the codes
    averaged over rows, per-feature counts of rows it fired on). ``centre_input`` subtracts b_dec from x
    before encoding (``SAEConfig.apply_b_dec_to_input``)."""
    return _ReLUL1.apply(x, W_enc, b_enc, W_dec, b_dec, centre_input, compute_dtype)


def relu_l1_reference(x, W_enc, b_enc, W_dec, b_dec, *, centre_input: bool = True):
    """The same four results written plainly for autograd (the test's reference)."""
    pre = (x - b_dec if centre_input else x) @ W_enc + b_enc
    codes = torch.relu(pre)
    x_hat = codes @ W_dec + b_dec
    err = (x_hat - x).pow(2).sum(-1).mean()
    l1 = (codes * W_dec.norm(dim=1)).sum(-1).mean()
    return x_hat, err, l1, (codes > 0).sum(0)
