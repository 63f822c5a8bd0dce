"""Training by 2 processes (torchrun, gloo) matches 1 process on the same data and seed.

Data parallel: 2 ranks with 32 rows each of every 64-row batch take the same steps as 1 process with
64-row batches (the gradients are averaged; only the order of floating-point sums differs), so the
weights agree to TOLERANCE. One SAE per rank (--distribute saes): each SAE is the one a single
process trains on that hook alone (equal up to the summation order of different thread counts).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from whisper_sae.runtime import DataParallel, World, plan_training, rank_slice, shard_items
from whisper_sae.sae import train

TOLERANCE = 1e-5  # max |difference| of any weight, in the weights' own units (typical weights ~0.1-1)
COMMON = dict(
    width=64,
    k=4,
    steps=30,
    batch_size=64,
    device="cpu",
    autocast="none",
    seed=0,
    log_every=10,
    eval_every=30,
    checkpoint_every=30,
)


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "sae_weights.safetensors"))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def cli_args(store, out, **kw) -> list[str]:
    args = ["train", "--store", str(store), "--out", str(out)]
    for key, value in kw.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def test_rank_slices_partition_each_batch():
    batches = [torch.arange(12).reshape(6, 2) + 100 * i for i in range(3)]
    parts = [list(rank_slice(batches, World(r, 3))) for r in range(3)]
    for i, batch in enumerate(batches):
        assert torch.equal(torch.cat([parts[r][i] for r in range(3)]), batch)
    with pytest.raises(ValueError, match="multiple of 4"):
        next(rank_slice(batches, World(1, 4)))


def test_plans():
    specs = ["a", "b", "c"]
    assert shard_items(specs, World(1, 2)) == ["b"]
    data = plan_training(specs, World(1, 2), "data")
    assert data.specs == specs and data.split_batches and data.parallel.size == 2
    saes = plan_training(specs, World(0, 2), "saes")
    assert saes.specs == ["a", "c"] and not saes.split_batches and saes.parallel.size == 1
    assert "rank00000" in str(saes.checkpoint)
    one = DataParallel(World())
    x = torch.randn(3, 2)
    assert one.gather_rows(x) is x and one.sum(x) is x and one.global_rows(5) == 5


@pytest.mark.parametrize("arch", ["topk", "relu"])
def test_data_parallel_matches_one_process(tmp_path, random_store, run_torchrun, arch):
    settings = dict(COMMON, arch=arch, hook="encoder.out")
    one = train(random_store, out=tmp_path / "one", **settings)
    # relu resamples dead features every steps // 6 steps: the ranks must resample identically too.
    run_torchrun(cli_args(random_store, tmp_path / "two", **settings))
    diff = max_diff(weights(one), weights(tmp_path / "two"))
    assert diff < TOLERANCE, f"{arch}: 2-process weights differ from 1-process by {diff:.2e}"
    assert not (tmp_path / "two" / "checkpoint" / "rank00001-of-00002").exists()


def test_one_sae_per_rank_matches_training_it_alone(tmp_path, random_store, run_torchrun):
    hooks = ["encoder.blocks.0", "encoder.out"]
    settings = dict(COMMON, arch="topk")
    run_torchrun(cli_args(random_store, tmp_path / "two", hook=",".join(hooks), distribute="saes", **settings))
    for hook in hooks:
        alone = train(random_store, out=tmp_path / hook, hook=hook, **settings)
        # The same computation; only the thread count (1 per rank vs this process's) can reorder sums.
        assert max_diff(weights(alone), weights(tmp_path / "two" / hook)) < 1e-6
        assert (tmp_path / "two" / hook / "metrics.jsonl").stat().st_size > 0
