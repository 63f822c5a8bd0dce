"""The store: round trip, shuffled coverage, hold-out split, and resume after a crash at any point."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from whisper_sae.activations import ActivationStore, StoreWriter

HOOKS = {"encoder.blocks.1": {"d_model": 6, "kind": "frame"}, "decoder.out": {"d_model": 4, "kind": "token"}}


def utterance_rows(i: int, hook: str):
    """Deterministic rows for utterance number i; lengths vary so utterances straddle shards."""
    g = torch.Generator().manual_seed(1000 * i + len(hook))
    n = 1 + (7 * i + len(hook)) % 13
    acts = torch.randn(n, HOOKS[hook]["d_model"], generator=g)
    acts[:, 0] = 1000 * i + torch.arange(n)  # a unique row id, exact in fp32
    token = torch.arange(n) + 50 if HOOKS[hook]["kind"] == "token" else None
    time = torch.arange(n) * 0.02 if HOOKS[hook]["kind"] == "frame" else None
    return acts, torch.arange(n), time, token


def write(path, ids, *, fail_after=None, dtype="float32", shard_rows=7, background=True, commit_every_s=None):
    with StoreWriter(
        path,
        hooks=HOOKS,
        model={"name": "fake"},
        corpus="mem",
        settings={"mode": "padded"},
        dtype=dtype,
        shard_rows=shard_rows,
        background=background,
        commit_every_s=commit_every_s,
    ) as w:
        done = w.done_ids
        for count, i in enumerate(ids):
            if f"u{i}" in done:
                continue
            if fail_after is not None and count == fail_after:
                raise KeyboardInterrupt
            idx = w.begin_utterance({"id": f"u{i}", "duration": 1.0})
            for hook in HOOKS:
                acts, pos, time, token = utterance_rows(i, hook)
                # add in two calls, as extraction does for utterances split over windows
                h = len(acts) // 2
                w.add(
                    hook,
                    idx,
                    acts[:h],
                    pos[:h],
                    None if time is None else time[:h],
                    None if token is None else token[:h],
                )
                w.add(
                    hook,
                    idx,
                    acts[h:],
                    pos[h:],
                    None if time is None else time[h:],
                    None if token is None else token[h:],
                )
            w.end_utterance(idx)


def test_round_trip_exact_in_fp32_and_index_columns(tmp_path):
    write(tmp_path / "s", range(10))
    store = ActivationStore(tmp_path / "s")
    assert [u["id"] for u in store.utterances] == [f"u{i}" for i in range(10)]
    assert store.manifest["complete"]
    for hook in HOOKS:
        acts, index = store.read(hook)
        expected = [utterance_rows(i, hook) for i in range(10)]
        assert torch.equal(acts, torch.cat([e[0] for e in expected]))
        assert torch.equal(
            index["utt"].long(), torch.cat([torch.full((len(e[0]),), i) for i, e in enumerate(expected)])
        )
        assert torch.equal(index["pos"].long(), torch.cat([e[1] for e in expected]))
        assert store.n_rows(hook) == len(acts)
        shards = store.manifest["hooks"][hook]["shards"]
        assert all(s["rows"] == 7 for s in shards[:-1]) and 0 < shards[-1]["rows"] <= 7
        if HOOKS[hook]["kind"] == "token":
            assert torch.equal(index["token"].long(), torch.cat([e[3] for e in expected]))
            assert torch.isnan(index["time"]).all()
        else:
            assert (index["token"] == -1).all()
    sub, sub_index = store.read("decoder.out", utterances=[3, 7])
    assert set(sub_index["utt"].tolist()) == {3, 7}
    assert len(sub) == len(utterance_rows(3, "decoder.out")[0]) + len(utterance_rows(7, "decoder.out")[0])


@pytest.mark.parametrize("dtype,tol", [("float16", 1e-3), ("bfloat16", 8e-3)])
def test_half_precision_round_trip(tmp_path, dtype, tol):
    write(tmp_path / "s", range(4), dtype=dtype)
    acts, _ = ActivationStore(tmp_path / "s").read("encoder.blocks.1")
    ref = torch.cat([utterance_rows(i, "encoder.blocks.1")[0] for i in range(4)])
    assert torch.allclose(acts[:, 1:], ref[:, 1:], rtol=tol, atol=tol)


@pytest.mark.parametrize("buffer_rows", [1, 20, 10_000])
def test_shuffled_batches_cover_every_row_once_per_epoch(tmp_path, buffer_rows):
    write(tmp_path / "s", range(12))
    store = ActivationStore(tmp_path / "s")
    all_ids = sorted(store.read("encoder.blocks.1")[0][:, 0].tolist())
    seen = [b[:, 0] for b in store.batches("encoder.blocks.1", 5, drop_last=False, buffer_rows=buffer_rows)]
    assert all(len(b) == 5 for b in seen[:-1])
    ids = torch.cat(seen).tolist()
    assert sorted(ids) == all_ids and ids != all_ids  # every row once, not in store order
    # looping: the first two epochs' worth of rows holds every row exactly twice
    it = store.batches("encoder.blocks.1", 1, loop=True, seed=3, buffer_rows=buffer_rows)
    two = sorted(next(it)[0, 0].item() for _ in range(2 * len(all_ids)))
    assert two == sorted(all_ids * 2)
    unshuffled = torch.cat(list(store.batches("encoder.blocks.1", 4, shuffle=False, drop_last=False)))
    assert unshuffled[:, 0].tolist() == store.read("encoder.blocks.1")[0][:, 0].tolist()


def _concatenate_and_permute(store, hook, batch_size, *, seed, buffer_rows, epochs):
    """The reader as first written (every group concatenated, then a permuted copy): the order to keep."""
    shards = store._shards(hook, None)
    per_buffer = max(1, buffer_rows // store.settings["shard_rows"])
    gen = torch.Generator().manual_seed(seed)
    carry = torch.zeros(0, store.d_model(hook))
    for _ in range(epochs):
        order = torch.randperm(len(shards), generator=gen).tolist()
        for start in range(0, len(order), per_buffer):
            rows = torch.cat([carry, *[store._load(*shards[i])["acts"] for i in order[start : start + per_buffer]]])
            rows = rows[torch.randperm(len(rows), generator=gen)]
            n_full = len(rows) // batch_size * batch_size
            yield from rows[:n_full].split(batch_size)
            carry = rows[n_full:]


@pytest.mark.parametrize("buffer_rows", [1, 20, 10_000])
def test_the_buffered_reader_keeps_the_order_of_the_concatenating_one(tmp_path, buffer_rows):
    write(tmp_path / "s", range(15))
    store = ActivationStore(tmp_path / "s")
    ref = list(_concatenate_and_permute(store, "decoder.out", 4, seed=5, buffer_rows=buffer_rows, epochs=2))
    it = store.batches("decoder.out", 4, seed=5, loop=True, buffer_rows=buffer_rows)
    ours = [next(it) for _ in ref]
    assert len(ref) > 10 and all(torch.equal(a, b) for a, b in zip(ours, ref))


def test_the_shuffle_buffer_holds_a_bounded_number_of_rows_whatever_the_store_size(tmp_path):
    """Memory is one buffer of ~buffer_rows rows (+ a shard being read), the same for a store 4x larger;
    batches handed out stay intact while the buffer is refilled."""
    shard_rows, buffer_rows, batch = 7, 21, 5
    peaks = []
    for n_utts in (10, 40):
        write(tmp_path / f"s{n_utts}", range(n_utts), shard_rows=shard_rows)
        store = ActivationStore(tmp_path / f"s{n_utts}")
        stream = store.batches("encoder.blocks.1", batch, drop_last=False, buffer_rows=buffer_rows)
        kept = [b.clone() for b in stream]
        assert stream.peak_rows <= buffer_rows + batch - 1 + shard_rows < store.n_rows("encoder.blocks.1")
        assert stream.capacity <= buffer_rows + batch - 1
        peaks.append(stream.peak_rows)
        again = list(store.batches("encoder.blocks.1", batch, drop_last=False, buffer_rows=buffer_rows))
        assert all(torch.equal(a, b) for a, b in zip(kept, again))  # no batch was a view of the reused buffer
        assert sorted(torch.cat(again)[:, 0].tolist()) == sorted(store.read("encoder.blocks.1")[0][:, 0].tolist())
    assert peaks[0] == peaks[1]


def test_read_stops_at_max_rows(tmp_path):
    write(tmp_path / "s", range(12))
    store = ActivationStore(tmp_path / "s")
    everything, index = store.read("encoder.blocks.1")
    first, first_index = store.read("encoder.blocks.1", max_rows=9)
    assert torch.equal(first, everything[:9]) and torch.equal(first_index["utt"], index["utt"][:9])


def test_holdout_split_is_disjoint_by_utterance(tmp_path):
    write(tmp_path / "s", range(20))
    store = ActivationStore(tmp_path / "s")
    train, val = store.split_utterances(holdout=0.25, seed=1)
    assert len(val) == 5 and set(train).isdisjoint(val) and set(train) | set(val) == set(range(20))
    assert np.array_equal(store.split_utterances(holdout=0.25, seed=1)[1], val)
    rows = torch.cat(list(store.batches("decoder.out", 3, utterances=val, drop_last=False)))
    _, index = store.read("decoder.out")
    utt_of_row = {int(r): int(u) for r, u in zip(store.read("decoder.out")[0][:, 0], index["utt"])}
    assert {utt_of_row[int(r)] for r in rows[:, 0]} == set(val.tolist())
    assert len(rows) == sum(len(utterance_rows(i, "decoder.out")[0]) for i in val.tolist())


def _snapshot(path):
    store = ActivationStore(path)
    out = {h: store.read(h) for h in HOOKS}
    shards = {h: [s["rows"] for s in store.manifest["hooks"][h]["shards"]] for h in HOOKS}
    return out, shards, [(u["idx"], u["id"]) for u in store.utterances]


@pytest.mark.parametrize("background", [True, False])
@pytest.mark.parametrize("fail_after", [1, 2, 3, 5, 8, 11])
def test_resume_after_interruption_equals_uninterrupted(tmp_path, fail_after, background):
    ids = list(range(14))
    write(tmp_path / "ref", ids, background=not background)
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "cut", ids, fail_after=fail_after, background=background)
    cut = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert not cut["complete"]
    write(tmp_path / "cut", ids, background=background)
    (ref, ref_shards, ref_utts), (got, got_shards, got_utts) = _snapshot(tmp_path / "ref"), _snapshot(tmp_path / "cut")
    assert got_utts == ref_utts and got_shards == ref_shards
    for h in HOOKS:
        assert torch.equal(got[h][0], ref[h][0])
        for k in ref[h][1]:
            assert torch.equal(got[h][1][k], ref[h][1][k]) or k == "time"


@pytest.mark.parametrize("commit_every_s", [None, 1e-9])
def test_a_slow_hook_is_committed_on_time_so_a_kill_loses_little(tmp_path, commit_every_s):
    """Shards of 10,000 rows never fill here (as decoder.out's fill after hours): without a time limit a kill
    loses every utterance; with one, each ended utterance is on disk, and the resumed store equals a whole one."""
    ids = list(range(9))
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "cut", ids, fail_after=5, shard_rows=10_000, commit_every_s=commit_every_s)
    assert len(ActivationStore(tmp_path / "cut").utterances) == (0 if commit_every_s is None else 5)
    write(tmp_path / "cut", ids, shard_rows=10_000, commit_every_s=commit_every_s)
    write(tmp_path / "ref", ids, shard_rows=10_000)
    (ref, _, ref_utts), (got, got_shards, got_utts) = _snapshot(tmp_path / "ref"), _snapshot(tmp_path / "cut")
    assert sorted(got_utts) == sorted(ref_utts)
    if commit_every_s is not None:
        assert len(got_shards["decoder.out"]) > 1  # shorter shards, cut on time
    for h in HOOKS:
        order = torch.argsort(got[h][0][:, 0])
        assert torch.equal(got[h][0][order], ref[h][0][torch.argsort(ref[h][0][:, 0])])


def test_crash_between_shard_and_manifest_is_repaired(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "s", range(10), fail_after=6)
    hook_dir = tmp_path / "s" / "decoder.out"
    n_shards = len(list(hook_dir.iterdir()))
    # what a kill after the rename but before the manifest update leaves behind
    (hook_dir / f"shard_{n_shards:05d}.safetensors").write_bytes(b"half a shard")
    with open(tmp_path / "s" / "utterances.jsonl", "a") as f:
        f.write(json.dumps({"idx": 99, "id": "ghost"}) + "\n")
    write(tmp_path / "s", range(10))
    write(tmp_path / "ref", range(10))
    got, ref = _snapshot(tmp_path / "s"), _snapshot(tmp_path / "ref")
    assert got[2] == ref[2]
    for h in HOOKS:
        assert torch.equal(got[0][h][0], ref[0][h][0])


def test_resume_refuses_other_settings(tmp_path):
    write(tmp_path / "s", range(3))
    with pytest.raises(ValueError, match="shard_rows"):
        write(tmp_path / "s", range(3), shard_rows=5)
    with pytest.raises(ValueError, match="dtype"):
        write(tmp_path / "s", range(3), dtype="float16")


def test_writer_thread_error_surfaces_in_the_caller_and_the_store_resumes(tmp_path):
    """A commit that fails in the writer thread is raised again in the caller, the same exception
    with its message; no later commit is written (the manifest never counts a missing shard), and a
    rerun completes the store as if nothing had happened."""
    ids = list(range(14))
    write(tmp_path / "ref", ids)
    hook_dir = tmp_path / "s" / "decoder.out"
    with pytest.raises(NotADirectoryError) as caught:
        with StoreWriter(
            tmp_path / "s",
            hooks=HOOKS,
            model={"name": "fake"},
            corpus="mem",
            settings={"mode": "padded"},
            dtype="float32",
            shard_rows=7,
        ) as w:
            hook_dir.rmdir()
            hook_dir.write_text("not a folder")  # the shard's rename into it fails in the thread
            for i in ids:
                idx = w.begin_utterance({"id": f"u{i}", "duration": 1.0})
                for hook in HOOKS:
                    acts, pos, time, token = utterance_rows(i, hook)
                    w.add(hook, idx, acts, pos, time, token)
                w.end_utterance(idx)
    assert "decoder.out" in str(caught.value) and "Not a directory" in str(caught.value)
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["hooks"]["decoder.out"]["n_shards"] == 0 and not manifest["complete"]
    hook_dir.unlink()
    hook_dir.mkdir()
    write(tmp_path / "s", ids)
    (ref, ref_shards, ref_utts), (got, got_shards, got_utts) = _snapshot(tmp_path / "ref"), _snapshot(tmp_path / "s")
    assert got_utts == ref_utts and got_shards == ref_shards
    for h in HOOKS:
        assert torch.equal(got[h][0], ref[h][0])


def test_close_raises_a_writer_thread_error(tmp_path):
    w = StoreWriter(tmp_path / "s", hooks=HOOKS, corpus="mem", dtype="float32", shard_rows=1000)
    idx = w.begin_utterance({"id": "u0"})
    for hook in HOOKS:
        acts, pos, time, token = utterance_rows(0, hook)
        w.add(hook, idx, acts, pos, time, token)
    w.end_utterance(idx)
    (tmp_path / "s" / "encoder.blocks.1").rmdir()
    (tmp_path / "s" / "encoder.blocks.1").write_text("")
    with pytest.raises(NotADirectoryError, match="encoder.blocks.1"):
        w.close()
    assert not w._thread.is_alive()
