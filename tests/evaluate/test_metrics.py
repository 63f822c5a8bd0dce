"""Metrics on hand-made strings and tensors whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch

from whisper_sae.evaluate.metrics import (
    ReconstructionAccumulator,
    ce_recovered,
    corpus_wer,
    normalize_text,
    plot_feature_density,
    reconstruction_metrics,
    word_errors,
)


def test_normalizer_removes_case_punctuation_and_standardises_spelling():
    assert normalize_text("Hello, World!") == "hello world"
    assert normalize_text("  It's   fine. ") == normalize_text("it is fine")
    assert normalize_text(None) == ""
    assert normalize_text("") == ""


def test_word_errors_counts_each_kind():
    e = word_errors("alpha bravo charlie delta echo", "bravo charly delta echo foxtrot")
    # alpha deleted, charlie -> charly substituted, foxtrot inserted (any other alignment costs more)
    assert (e.substitutions, e.deletions, e.insertions, e.ref_words) == (1, 1, 1, 5)
    assert e.wer == pytest.approx(3 / 5)


def test_word_errors_punctuation_and_case_do_not_count():
    assert word_errors("Hello, world.", "hello world").errors == 0


def test_word_errors_empty_sides():
    # (number words would be joined into digits by the normaliser, so use plain words)
    assert word_errors("red green blue", "").deletions == 3
    assert word_errors("red green blue", None).wer == 1.0
    e = word_errors("", "some words")
    assert (e.insertions, e.ref_words) == (2, 0) and e.wer == math.inf
    assert word_errors("", "").wer == 0.0
    assert word_errors(None, None).errors == 0


def test_corpus_wer_pools_errors_over_reference_words():
    # 1 error in 1 word and 0 errors in 9 words: pooled 1/10, not the mean of rates (0.5).
    refs = ["yes", "a b c d e f g h i"]
    hyps = ["no", "a b c d e f g h i"]
    assert corpus_wer(refs, hyps) == pytest.approx(0.1)
    assert math.isnan(corpus_wer([""], ["x"]))
    with pytest.raises(ValueError, match="2 references and 1 hypotheses"):
        corpus_wer(["a", "b"], ["a"])


def test_perfect_reconstruction():
    x = torch.randn(50, 8)
    codes = torch.relu(torch.randn(50, 16))
    m = reconstruction_metrics(x, x.clone(), codes)
    assert m.mse == 0 and m.fvu == 0 and m.explained_variance == 1
    assert m.cosine == pytest.approx(1.0)


def test_mean_reconstruction_explains_nothing():
    # Predicting every row by the held-out mean leaves exactly the total variance: FVU = 1.
    x = torch.randn(200, 6) * torch.arange(1, 7) + 3.0
    x_hat = x.mean(0, keepdim=True).expand_as(x)
    m = reconstruction_metrics(x, x_hat, torch.zeros(200, 4))
    assert m.fvu == pytest.approx(1.0, abs=1e-9)
    assert m.explained_variance == pytest.approx(0.0, abs=1e-9)


def test_known_values_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    x_hat = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 0.0]])
    # squared errors per row: 0, 1, 4, 1 -> sse 6 over 8 elements
    # total variance around the mean (0, 0): 4
    # cosines: 1, 1, -1, 0 (zero vector: cosine 0)
    codes = torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [3.0, 0.5, 0], [4.0, 0, 0]])
    m = reconstruction_metrics(x, x_hat, codes, dense_threshold=0.5)
    assert m.mse == pytest.approx(6 / 8)
    assert m.fvu == pytest.approx(6 / 4)
    assert m.explained_variance == pytest.approx(1 - 6 / 4)
    assert m.cosine == pytest.approx(1 / 4)
    assert m.l0 == pytest.approx(5 / 4)
    # feature 0 fires on all rows (dense), feature 1 on 1/4, feature 2 never (dead)
    assert m.dead_fraction == pytest.approx(1 / 3)
    assert m.dense_fraction == pytest.approx(1 / 3)


def test_accumulating_in_batches_equals_one_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g) + 1000.0  # large offset: the shifted variance must hold up
    x_hat = x + 0.1 * torch.randn(300, 5, generator=g)
    codes = torch.relu(torch.randn(300, 7, generator=g))
    whole = reconstruction_metrics(x, x_hat, codes)
    acc = ReconstructionAccumulator(7)
    for i in range(0, 300, 64):
        acc.update(x[i : i + 64], x_hat[i : i + 64], codes[i : i + 64])
    parts = acc.result()
    for field in ("mse", "fvu", "cosine", "l0", "dead_fraction", "dense_fraction"):
        assert getattr(parts, field) == pytest.approx(getattr(whole, field), rel=1e-9)
    # the variance here is 1 per dimension (offset removed), noise variance 0.01: FVU near 0.01
    assert parts.fvu == pytest.approx(0.01, rel=0.2)


def test_accumulator_rejects_bad_shapes_and_empty():
    acc = ReconstructionAccumulator(4)
    with pytest.raises(ValueError, match="d_sae"):
        acc.update(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="no rows"):
        acc.result()


def test_ce_recovered():
    assert ce_recovered(1.0, 1.0, 5.0) == 1.0
    assert ce_recovered(1.0, 5.0, 5.0) == 0.0
    assert ce_recovered(1.0, 2.0, 5.0) == pytest.approx(0.75)
    assert math.isnan(ce_recovered(1.0, 2.0, 1.0))


def test_density_plot_written(tmp_path):
    freq = torch.tensor([0.0, 0.0, 1e-3, 1e-2, 0.5])
    path = plot_feature_density(freq, tmp_path / "density.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
