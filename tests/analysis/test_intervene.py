"""Interventions change exactly one feature's contribution, only on the chosen frames."""

from __future__ import annotations

import pytest
import torch

from whisper_sae.analysis.interventions import _frame_mask, edit_fn, intervene, parse_frames

from .conftest import make_sae


def test_ablation_removes_exactly_the_features_decoder_direction():
    sae = make_sae(d_in=8, d_sae=16, k=3)
    torch.manual_seed(1)
    x = torch.randn(2, 10, 8)
    codes = sae.encode(x)
    f = int(codes.reshape(-1, 16).gt(0).sum(0).argmax())
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 2:6] = True
    out = edit_fn(sae, f, "ablate", None, mask)(x)
    expected = x - (codes[..., f] * mask)[..., None] * sae.W_dec[f]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[1], x[1])  # outside the mask: bit-for-bit unchanged (difference is 0)


def test_clamp_sets_the_feature_and_keeps_the_error_term():
    sae = make_sae(d_in=8, d_sae=16, k=3)
    x = torch.randn(1, 5, 8)
    out = edit_fn(sae, 4, "clamp", 7.5, None)(x)
    codes = sae.encode(x)
    torch.testing.assert_close(
        out - x, ((7.5 - codes[..., 4])[..., None] * sae.W_dec[4]).detach(), rtol=1e-5, atol=1e-5
    )


def test_bad_arguments_are_sentences():
    sae = make_sae()
    with pytest.raises(ValueError, match="valid modes are ablate, clamp"):
        edit_fn(sae, 0, "zero", None, None)
    with pytest.raises(ValueError, match="needs a value"):
        edit_fn(sae, 0, "clamp", None, None)
    with pytest.raises(ValueError, match="features 0..47"):
        edit_fn(sae, [1, 48], "ablate", None, None)
    with pytest.raises(ValueError, match="features 0..47"):
        edit_fn(sae, 48, "ablate", None, None)
    with pytest.raises(ValueError, match="t0:t1"):
        parse_frames("1-2")
    assert parse_frames("0.5:") == (0.5, float("inf")) and parse_frames(":1") == (0.0, 1.0)


def test_frame_mask_covers_real_frames_in_the_window():
    mask = _frame_mask([50, 100], (0.5, 1.5), 1500)
    assert mask[0].nonzero().ravel().tolist() == list(range(25, 50))
    assert mask[1].nonzero().ravel().tolist() == list(range(25, 75))


def test_intervene_outside_the_clip_changes_nothing(analysis_whisper, aligned_utts):
    lw, sae = analysis_whisper, make_sae()
    audios = [u.audio for u in aligned_utts[:2]]  # 1.0 s and 2.3 s
    # Frames past the end of the first clip (inside the second): nothing of the first clip is edited,
    # so its transcripts must match exactly.
    results = intervene(sae, lw, audios, 3, "clamp", 50.0, frames="1.5:2.0", max_new_tokens=8)
    assert results[0].before == results[0].after and len(results) == 2
    # Frames past the end of every clip would edit nothing at all: refused rather than silently a no-op.
    with pytest.raises(ValueError, match=r"frames 20:30 s lie outside every clip \(the longest is 2.30 s\)"):
        intervene(sae, lw, audios, 3, "clamp", 50.0, frames="20:30", max_new_tokens=8)
    clamped = intervene(sae, lw, audios, 3, "clamp", 1e4, max_new_tokens=8)
    assert [r.before for r in clamped] == [r.before for r in results]


def test_several_features_are_edited_together():
    sae = make_sae(d_in=8, d_sae=16, k=3)
    x = torch.randn(1, 6, 8)
    codes = sae.encode(x)
    out = edit_fn(sae, [2, 5], "ablate", None, None)(x)
    expected = x - codes[..., 2:3] * sae.W_dec[2] - codes[..., 5:6] * sae.W_dec[5]
    torch.testing.assert_close(out, expected.detach(), rtol=1e-5, atol=1e-5)


def test_scale_multiplies_the_features_contribution_and_edits_stack():
    from whisper_sae.analysis.interventions import Edit, edited

    sae = make_sae(d_in=8, d_sae=16, k=3)
    torch.manual_seed(2)
    x = torch.randn(1, 6, 8)
    codes = sae.encode(x)
    f = int(codes.reshape(-1, 16).gt(0).sum(0).argmax())
    out = edit_fn(sae, f, "scale", 3.0, None)(x)
    torch.testing.assert_close(out - x, (2.0 * codes[..., f : f + 1] * sae.W_dec[f]).detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(edit_fn(sae, f, "scale", 1.0, None)(x), x, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="mode 'scale' needs a value"):
        edit_fn(sae, f, "scale", None, None)
    with pytest.raises(ValueError, match="must be a finite number"):
        edit_fn(sae, f, "clamp", float("nan"), None)
    assert callable(edited) and Edit(sae, f).mode == "ablate"


def test_a_stack_of_edits_is_what_intervene_does_for_one(analysis_whisper, aligned_utts):
    from whisper_sae.analysis.interventions import Edit, check_edit, transcribe_edited

    lw, sae = analysis_whisper, make_sae()
    audios = [u.audio for u in aligned_utts[:2]]
    one = intervene(sae, lw, audios, [3, 5], "clamp", 80.0, frames="0.2:0.9", max_new_tokens=8)
    edit = check_edit(lw, Edit(sae, [3, 5], "clamp", 80.0, "0.2:0.9"), audios)
    assert edit.frames == (0.2, 0.9) and edit.hook == "encoder.out"
    assert transcribe_edited(lw, audios, [edit], max_new_tokens=8) == [r.after for r in one]
    with pytest.raises(ValueError, match="frames selects encoder frames"):
        check_edit(lw, Edit(make_sae(hook="decoder.blocks.0"), 1, frames=(0.1, 0.5)), audios)
