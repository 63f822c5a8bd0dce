"""The splice functions on plain tensors: which positions change, and to what."""

from __future__ import annotations

import pytest
import torch

from whisper_sae.evaluate.splice import condition_transform, frame_mask, splice_fn


class _ScaleSAE:
    """Stands in for an SAE: codes are 2x, the reconstruction halves them and adds 1."""

    def encode(self, x):
        return 2 * x

    def decode(self, codes):
        return codes / 2 + 1


def test_frame_mask():
    m = frame_mask([2, 0, 4], 4)
    assert m.tolist() == [[True, True, False, False], [False] * 4, [True] * 4]


def test_padding_positions_are_untouched_bit_for_bit():
    acts = torch.randn(3, 6, 4)
    mask = frame_mask([2, 6, 0], 6)
    out = splice_fn(condition_transform("spliced", _ScaleSAE()), mask)(acts)
    assert torch.equal(out[~mask], acts[~mask])
    assert torch.allclose(out[mask], acts[mask] + 1)
    assert not torch.equal(acts, out)  # the input itself was not modified in place
    assert torch.equal(acts.clone(), acts)


def test_no_mask_transforms_every_position():
    acts = torch.randn(2, 1, 4)  # one generated step, as the KV cache delivers it
    out = splice_fn(condition_transform("zero", _ScaleSAE()))(acts)
    assert torch.equal(out, torch.zeros_like(acts))


def test_error_term_gives_back_the_input():
    acts = torch.randn(2, 5, 8) * 10
    out = splice_fn(condition_transform("spliced_error", _ScaleSAE()), frame_mask([5, 3], 5))(acts)
    assert torch.allclose(out, acts, atol=1e-5, rtol=0)


def test_mean_ablation_writes_the_mean_on_real_positions_only():
    acts = torch.randn(2, 3, 4)
    mean = torch.arange(4.0)
    mask = frame_mask([1, 3], 3)
    out = splice_fn(condition_transform("mean", None, mean), mask)(acts)
    assert torch.equal(out[mask], mean.expand(4, 4))
    assert torch.equal(out[~mask], acts[~mask])


def test_half_precision_activations_keep_their_dtype():
    acts = torch.randn(1, 4, 4, dtype=torch.bfloat16)
    out = splice_fn(condition_transform("spliced", _ScaleSAE()), frame_mask([2], 4))(acts)
    assert out.dtype == torch.bfloat16


def test_wrong_batch_is_a_clear_error():
    with pytest.raises(RuntimeError, match="mask"):
        splice_fn(condition_transform("zero", None), frame_mask([1, 1], 3))(torch.zeros(3, 3, 2))


def test_unknown_condition():
    with pytest.raises(ValueError, match="valid conditions are clean, spliced"):
        condition_transform("half", None)
    with pytest.raises(ValueError, match="mean=None"):
        condition_transform("mean", None)
