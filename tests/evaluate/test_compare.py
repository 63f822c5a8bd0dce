"""``compare_saes`` / ``whisper-sae compare``: one-to-one feature matching by decoder direction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from whisper_sae.evaluate.compare import compare_saes, default_out
from whisper_sae.sae import SAEConfig, SparseAutoencoder

D = 48


def make_sae(width: int, seed: int, *, hook: str = "encoder.out", arch: str = "topk") -> SparseAutoencoder:
    torch.manual_seed(seed)
    return SparseAutoencoder(
        SAEConfig(
            d_in=D, d_sae=width, architecture=arch, k=4 if arch == "topk" else None, hook_name=hook, model_name="m"
        )
    ).eval()


def permuted(sae: SparseAutoencoder, perm: torch.Tensor) -> SparseAutoencoder:
    copy = SparseAutoencoder(sae.cfg)
    with torch.no_grad():
        copy.W_dec.copy_(sae.W_dec[perm] * 3.0)  # a scale changes no direction
        copy.W_enc.copy_(sae.W_enc[:, perm])
        copy.b_enc.copy_(sae.b_enc[perm])
        copy.b_dec.copy_(sae.b_dec)
    return copy.eval()


def test_an_sae_matches_itself_and_a_permuted_copy_completely():
    sae = make_sae(96, 0)
    assert compare_saes(sae, sae).fraction_above(0.9) == 1.0
    perm = torch.randperm(96, generator=torch.Generator().manual_seed(1))
    result = compare_saes(sae, permuted(sae, perm))
    assert result.fraction_above(0.9) == 1.0 and result.fraction_above(0.7) == 1.0
    # the matching found the permutation: A's feature perm[j] is B's feature j
    assert {(int(i), int(j)) for i, j in result.pairs} == {(int(perm[j]), j) for j in range(96)}
    np.testing.assert_allclose(result.cosine, 1.0, atol=1e-9)
    assert not result.splits["applies"]


def test_random_saes_share_almost_nothing():
    result = compare_saes(make_sae(96, 0), make_sae(96, 7))
    assert result.fraction_above(0.9) == 0.0
    assert result.fraction_above(0.7) <= 0.02
    assert 0.0 < float(result.cosine.mean()) < 0.5


def test_across_widths_the_wider_sae_splits_features():
    narrow = make_sae(32, 0)
    wide = SparseAutoencoder(
        SAEConfig(d_in=D, d_sae=64, architecture="topk", k=4, hook_name="encoder.out", model_name="m")
    )
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        dirs = narrow.W_dec / narrow.W_dec.norm(dim=1, keepdim=True)
        # features 0..31 copy the narrow ones; 32..39 are near copies of narrow features 0..7 (splits); the rest random
        wide.W_dec[:32] = dirs
        noise = torch.randn(8, D, generator=g)
        wide.W_dec[32:40] = dirs[:8] + 0.25 * noise / noise.norm(dim=1, keepdim=True)
        wide.W_dec[40:] = torch.randn(24, D, generator=g)
    result = compare_saes(wide.eval(), narrow)
    assert result.n_pairs == 32 and result.fraction_above(0.9) == 1.0
    s = result.splits
    assert s["applies"] and s["wide"] == "A" and s["n_split_features"] == 8 and s["n_narrow_split"] == 8
    families = {fam["narrow"]: sorted(fam["wide"]) for fam in s["largest"]}
    assert families == {n: [n, 32 + n] for n in range(8)}


def _analysis(folder, labels: list[int], vocab: list[str]):
    from whisper_sae.analysis import AnalysisResult

    n = len(labels)
    arrays = {
        "freq": np.full(n, 0.1),
        "fire_count": np.ones(n),
        "mean_act": np.ones(n),
        "max_act": np.ones(n),
        "phone_label": np.array(labels),
        "phone_f1": np.full(n, 0.6),
        "phone_precision": np.full(n, 0.6),
        "phone_recall": np.full(n, 0.6),
    }
    AnalysisResult(meta={}, utterances=[], arrays=arrays, phone_vocab=vocab).save(folder / "analysis")


def test_cli_writes_json_markdown_and_plot_beside_sae_a_with_label_agreement(tmp_path, capsys):
    from whisper_sae.cli import main

    sae = make_sae(16, 0)
    perm = torch.arange(16).flip(0)
    a, b = tmp_path / "seed0", tmp_path / "seed0-kl"
    sae.save_pretrained(a, training={"loss": "mse"})
    permuted(sae, perm).save_pretrained(b, training={"loss": "kl"})
    labels = [i % 4 for i in range(16)]
    _analysis(a, labels, ["AA", "B", "K", "S"])
    # B's feature j is A's feature perm[j]: the same labels when carried along; one deliberately differs
    b_labels = [labels[int(perm[j])] for j in range(16)]
    b_labels[0] = (b_labels[0] + 1) % 4
    _analysis(b, b_labels, ["AA", "B", "K", "S"])
    assert main(["compare", str(a), str(b)]) == 0
    out = default_out(a, b)
    assert out == a / "compare-seed0-kl"
    doc = json.loads((out / "compare.json").read_text())
    assert doc["matched_fraction"]["0.9"] == 1.0 and doc["meta"]["b"]["loss"] == "kl"
    assert doc["labels"]["available"] and doc["labels"]["phone"]["both_labelled"] == 16
    assert doc["labels"]["phone"]["agree"] == 15
    assert doc["labels"]["word"]["both_labelled"] == 0  # no word labels: counted as none, not as an error
    assert (out / "cosines.png").stat().st_size > 0 and "fraction with cosine > 0.9 | 1.000" in (
        out / "compare.md"
    ).read_text()
    assert "100.0% above 0.9" in capsys.readouterr().out


def test_a_broken_analysis_skips_the_labels_with_the_reason(tmp_path):
    sae = make_sae(16, 0)
    a, b = tmp_path / "a", tmp_path / "b"
    sae.save_pretrained(a)
    sae.save_pretrained(b)
    (a / "analysis").mkdir()
    (a / "analysis" / "analysis.json").write_text("{not json")
    (b / "analysis").mkdir()
    (b / "analysis" / "analysis.json").write_text("{}")
    result = compare_saes(a, b)
    assert result.fraction_above(0.9) == 1.0
    assert not result.labels["available"] and "could not be read" in result.labels["reason"]


def test_saes_of_different_widths_of_input_are_refused():
    other = SparseAutoencoder(SAEConfig(d_in=D + 1, d_sae=8, architecture="relu"))
    with pytest.raises(ValueError, match="different widths"):
        compare_saes(make_sae(8, 0), other)
