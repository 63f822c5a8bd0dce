"""Extraction by 2 processes (torchrun, gloo) writes the same rows as 1 process, and resumes."""

from __future__ import annotations

import json

import pytest
import torch

from whisper_sae.activations import ActivationStore, StoreWriter, extract
from whisper_sae.activations.ranks import RankShard, merge_ranks, rank_dir

HOOKS = ["encoder.blocks.0", "encoder.out"]


def rows_by_key(store: ActivationStore, hook: str) -> dict:
    """{(utterance id, position): activation row} of a hook."""
    acts, index = store.read(hook)
    ids = {r["idx"]: r["id"] for r in store.utterances}
    return {(ids[int(u)], int(p)): a for a, u, p in zip(acts, index["utt"], index["pos"])}


def test_rank_shards_are_disjoint_and_cover():
    items = list(range(11))
    shares = [list(RankShard(items, r, 3)) for r in range(3)]
    assert sorted(sum(shares, [])) == items
    assert [len(RankShard(items, r, 3)) for r in range(3)] == [len(s) for s in shares] == [4, 4, 3]
    assert list(RankShard(items, 1, 3, limit=5)) == [1, 4]


def test_strided_writer_indices(tmp_path):
    hooks = {"h": {"d_model": 2, "kind": "frame"}}
    with StoreWriter(tmp_path / "s", hooks=hooks, index_offset=1, index_stride=3) as w:
        for uid in ("a", "b"):
            idx = w.begin_utterance({"id": uid})
            w.add("h", idx, torch.ones(2, 2), [0, 1])
            w.end_utterance(idx)
    with StoreWriter(tmp_path / "s", hooks=hooks, index_offset=1, index_stride=3) as w:  # resumed
        idx = w.begin_utterance({"id": "c"})
        w.add("h", idx, torch.ones(1, 2), [0])
        w.end_utterance(idx)
    assert [r["idx"] for r in ActivationStore(tmp_path / "s").utterances] == [1, 4, 7]
    with pytest.raises(ValueError, match="offset"):
        StoreWriter(tmp_path / "t", hooks=hooks, index_offset=3, index_stride=3)


def test_two_ranks_write_the_rows_of_one(tmp_path, dist_whisper_dir, dist_wav_corpus, run_torchrun):
    single = extract(
        str(dist_whisper_dir),
        str(dist_wav_corpus),
        HOOKS,
        tmp_path / "one",
        device="cpu",
        progress=False,
        shard_rows=40,
    )
    out = tmp_path / "two"
    common = [
        "extract",
        "--model",
        str(dist_whisper_dir),
        "--corpus",
        str(dist_wav_corpus),
        "--hooks",
        ",".join(HOOKS),
        "--out",
        str(out),
        "--shard-rows",
        "40",
        "--device",
        "cpu",
        "--no-progress",
    ]
    # A first run stopped after 3 utterances, then the full run: each rank resumes its own part.
    run_torchrun(common + ["--max-utterances", "3"])
    partial = ActivationStore(out)
    assert partial.manifest["utterances"]["n_done"] == 3
    run_torchrun(common)
    merged = ActivationStore(out)

    assert merged.manifest["complete"] and merged.manifest["settings"]["world_size"] == 2
    assert [r["id"] for r in merged.utterances] == [r["id"] for r in single.utterances]
    # With no bad files the strided indices are the corpus positions, as one process numbers them.
    assert [r["idx"] for r in merged.utterances] == [r["idx"] for r in single.utterances] == list(range(7))
    for r in (0, 1):
        sub = ActivationStore(rank_dir(out, r))
        assert {u["idx"] % 2 for u in sub.utterances} == {r}
    for hook in HOOKS:
        assert merged.n_rows(hook) == single.n_rows(hook)
        one, two = rows_by_key(single, hook), rows_by_key(merged, hook)
        assert one.keys() == two.keys()
        diff = max(float((one[k].float() - two[k].float()).abs().max()) for k in one)
        assert diff == 0.0, f"{hook}: rows differ by up to {diff}"
        # The training reader sees every rank's rows, each exactly once per epoch.
        seen = torch.cat(list(merged.batches(hook, 16, shuffle=True, drop_last=False)))
        assert seen.shape[0] == single.n_rows(hook)
        assert torch.allclose(seen.float().sum(0), single.read(hook)[0].sum(0), atol=1e-2)


def test_layout_mismatches_are_refused(tmp_path, dist_whisper_dir, dist_wav_corpus):
    out = tmp_path / "ranked"
    hooks = {"encoder.out": {"d_model": 32, "kind": "frame"}}
    for r in (0, 1):
        with StoreWriter(
            rank_dir(out, r), hooks=hooks, settings={"rank": r, "world_size": 2}, index_offset=r, index_stride=2
        ):
            pass
    merge_ranks(out, 2)
    assert json.loads((out / "manifest.json").read_text())["complete"]
    with pytest.raises(ValueError, match="nproc-per-node 2"):
        extract(str(dist_whisper_dir), str(dist_wav_corpus), ["encoder.out"], out, device="cpu", progress=False)


def test_max_store_gb_refuses_what_the_disk_cannot_hold(tmp_path, dist_whisper_dir, dist_wav_corpus):
    with pytest.raises(ValueError, match="free"):
        extract(
            str(dist_whisper_dir),
            str(dist_wav_corpus),
            ["encoder.out"],
            tmp_path / "big",
            device="cpu",
            max_store_gb=1e9,
            progress=False,
        )
    assert not (tmp_path / "big" / "manifest.json").exists()
