"""The store under misuse (issue 16): concurrent writers, damaged shards, all-bad corpora, another corpus on
resume, size limits below a shard, non-finite rows, file permissions, and stores read from elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import soundfile as sf
import torch

from whisper_sae.activations import ActivationStore, StoreWriter, extract
from whisper_sae.activations.store import StoreDamagedError
from whisper_sae.audio import load_corpus
from whisper_sae.cli import main
from whisper_sae.runtime.locks import FolderBusyError, exclusive, is_lock_file
from whisper_sae.whisper import frames_for_duration, patch

HOOKS = {"h": {"d_model": 4, "kind": "frame"}}


def small_store(path, n_utts=4, rows=5, shard_rows=6, dtype="float32"):
    with StoreWriter(path, hooks=HOOKS, corpus="mem", dtype=dtype, shard_rows=shard_rows) as w:
        for i in range(n_utts):
            idx = w.begin_utterance({"id": f"u{i}", "duration": 1.0})
            w.add("h", idx, torch.full((rows, 4), float(i)), torch.arange(rows))
            w.end_utterance(idx)
    return ActivationStore(path)


def wav_corpus(folder, utts):
    folder.mkdir(parents=True, exist_ok=True)
    for u in utts:
        sf.write(folder / f"{u.id}.wav", u.audio, 16000)
    return folder


# -- 1. one writer per store ------------------------------------------------------------------------


def test_second_writer_fails_naming_the_holder_process(tiny_random_whisper, make_utts, tmp_path):
    out = tmp_path / "store"
    code = textwrap.dedent(f"""
        import sys, time
        from whisper_sae.runtime.locks import exclusive
        with exclusive({str(out)!r}, "store"):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=f"pid {holder.pid}"):
            extract(tiny_random_whisper, make_utts([0.5]), ["encoder.out"], out, progress=False)
        assert not (out / "manifest.json").exists()  # refused before writing anything
    finally:
        holder.communicate("\n", timeout=30)
    store = extract(tiny_random_whisper, make_utts([0.5, 0.4]), ["encoder.out"], out, progress=False)
    assert len(store.utterances) == 2  # once the holder is gone, the store is writable again
    assert [f.name for f in out.iterdir() if is_lock_file(f.name)]  # the lock files stay, and readers skip them


def test_rank_locks_do_not_block_each_other_but_a_second_run_does(tmp_path):
    with exclusive(tmp_path, "store", suffix=".rank0"), exclusive(tmp_path, "store", suffix=".rank1"):
        with pytest.raises(FolderBusyError, match="store"):
            with exclusive(tmp_path, "store", suffix=".rank1"):
                pass


# -- 2. damaged shards -----------------------------------------------------------------------------


def test_truncated_shard_is_named_by_info_verify_and_readers(tmp_path, capsys):
    store = small_store(tmp_path / "s")
    spec = store.manifest["hooks"]["h"]["shards"][1]
    assert spec["bytes"] > 0 and len(spec["blake2b"]) == 64
    shard = tmp_path / "s" / "h" / spec["file"]
    shard.write_bytes(shard.read_bytes()[:-40])
    assert main(["store", "info", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "damaged: 1 shard" in out and "(complete)" not in out
    assert main(["store", "info", "--verify", str(tmp_path / "s")]) == 1
    out = capsys.readouterr().out
    assert f"BAD {shard}" in out and "3 of 4 shards sound" in out
    store = ActivationStore(tmp_path / "s")
    with pytest.raises(StoreDamagedError, match=f"{spec['file']}.*truncated.*--verify"):
        store.read("h")
    with pytest.raises(StoreDamagedError, match=spec["file"]):
        list(store.batches("h", 2))


def test_altered_and_unreadable_shards(tmp_path, capsys):
    store = small_store(tmp_path / "s")
    files = [tmp_path / "s" / "h" / s["file"] for s in store.manifest["hooks"]["h"]["shards"]]
    data = bytearray(files[0].read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes: only the checksum sees it
    files[0].write_bytes(bytes(data))
    files[2].write_bytes(b"\0" * files[2].stat().st_size)  # right size, not safetensors
    bad = dict(store.verify())
    assert set(bad) == {files[0], files[2]} and "checksum" in bad[files[0]]
    with pytest.raises(StoreDamagedError, match=f"{files[2].name}.*cannot be read"):
        store.read("h")
    files[1].unlink()
    with pytest.raises(StoreDamagedError, match=f"{files[1].name} of store .* is missing"):
        store.read("h", utterances=[1])


def test_store_without_checksums_still_reads_and_verify_says_so(tmp_path, capsys):
    store = small_store(tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    for s in manifest["hooks"]["h"]["shards"]:
        del s["bytes"], s["blake2b"]
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    old = ActivationStore(tmp_path / "s")
    assert torch.equal(old.read("h")[0], store.read("h")[0])
    assert main(["store", "info", "--verify", str(tmp_path / "s")]) == 0
    assert "no checksum recorded" in capsys.readouterr().out


# -- 3. nothing extracted ----------------------------------------------------------------------------


def test_extract_where_every_file_is_bad_fails_and_keeps_the_skipped_list(tiny_random_whisper, tmp_path, capsys):
    corpus = tmp_path / "wavs"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"bad{i}.wav").write_bytes(b"RIFF not really a wave file")
    argv = [
        "extract",
        "--model",
        tiny_random_whisper.spec,
        "--corpus",
        str(corpus),
        "--hooks",
        "encoder.out",
        "--out",
        str(tmp_path / "s"),
        "--no-progress",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "all 3 were skipped" in err and "bad0" in err and "cannot decode" in err
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["utterances"]["n_skipped"] == 3


# -- 4. resume with other inputs ---------------------------------------------------------------------


def test_resume_with_another_corpus_is_refused(tiny_random_whisper, make_utts, tmp_path):
    a = wav_corpus(tmp_path / "a", make_utts([0.5, 0.5]))
    b = wav_corpus(tmp_path / "b", make_utts([0.5, 0.5], seed=1))
    extract(tiny_random_whisper, str(a), ["encoder.out"], tmp_path / "s", max_utterances=1, progress=False)
    with pytest.raises(ValueError, match=f"extracted from corpus '{a}', not '{b}'"):
        extract(tiny_random_whisper, str(b), ["encoder.out"], tmp_path / "s", progress=False)
    assert len(extract(tiny_random_whisper, str(a), ["encoder.out"], tmp_path / "s", progress=False).utterances) == 2


# -- 5. size limit -----------------------------------------------------------------------------------


def test_max_store_gb_below_one_shard_is_refused_before_writing(tiny_random_whisper, make_utts, tmp_path):
    with pytest.raises(ValueError, match="below one shard.*--shard-rows"):
        extract(
            tiny_random_whisper,
            make_utts([1.0]),
            ["encoder.out"],
            tmp_path / "s",
            max_store_gb=1e-6,
            shard_rows=100,
            progress=False,
        )  # 100 rows x 32 x 2 bytes = 6400 bytes > 1000
    assert not (tmp_path / "s" / "manifest.json").exists()


# -- 6. non-finite rows ------------------------------------------------------------------------------


def test_writer_refuses_nan_inf_and_fp16_overflow(tmp_path):
    with StoreWriter(tmp_path / "s", hooks=HOOKS, dtype="float16") as w:
        idx = w.begin_utterance({"id": "x"})
        for bad in (float("nan"), float("inf"), 70000.0):
            rows = torch.zeros(3, 4)
            rows[1, 2] = bad
            with pytest.raises(ValueError, match="'x'.*1 of 3 rows hold NaN or infinite"):
                w.add("h", idx, rows, torch.arange(3))
        w.add("h", idx, torch.full((3, 4), 65000.0), torch.arange(3))  # within fp16's range
        w.end_utterance(idx)


def test_extract_skips_an_utterance_whose_rows_overflow_fp16(tiny_random_whisper, make_utts, tmp_path, caplog):
    utts = make_utts([0.5, 0.5, 0.5])
    calls = []

    def blow_up_second(acts):  # a real patch on the real encoder: the 2nd forward pass overflows fp16
        calls.append(1)
        return acts * 1e9 if len(calls) == 2 else acts

    with patch(tiny_random_whisper, "encoder.blocks.0", blow_up_second):
        store = extract(tiny_random_whisper, utts, ["encoder.blocks.0"], tmp_path / "s", batch_size=1, progress=False)
    assert [u["id"] for u in store.utterances] == ["utt000", "utt002"]
    skipped = store.manifest["utterances"]["skipped"]
    assert [s["id"] for s in skipped] == ["utt001"] and "float16" in skipped[0]["reason"]
    assert "utt001" in caplog.text and store.manifest["info"]["last_run"]["nonfinite_utterances"] == 1
    assert torch.isfinite(store.read("encoder.blocks.0")[0]).all()


# -- 7. permissions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_store_files_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        store = small_store(tmp_path / "s")
    finally:
        os.umask(old)
    files = [p for p in store.path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o666 & ~umask)}


# -- 8. paths ----------------------------------------------------------------------------------------


def test_store_moved_with_its_corpus_or_read_from_elsewhere_finds_the_corpus(
    tiny_random_whisper, make_utts, tmp_path, monkeypatch
):
    work = tmp_path / "A"
    wav_corpus(work / "corpus", make_utts([0.5, 0.6]))
    monkeypatch.chdir(work)
    extract(tiny_random_whisper, "corpus", ["encoder.out"], "store", max_utterances=1, progress=False)
    assert json.loads((work / "store" / "manifest.json").read_text())["corpus"] == "../corpus"
    monkeypatch.chdir(tmp_path)
    store = ActivationStore(work / "store")
    assert [u.id for u in load_corpus(store.corpus)] == ["utt000", "utt001"]
    moved = shutil.move(str(work), str(tmp_path / "B"))
    store = ActivationStore(f"{moved}/store")
    assert os.path.samefile(store.corpus, tmp_path / "B" / "corpus")
    resumed = extract(tiny_random_whisper, store.corpus, ["encoder.out"], store.path, progress=False)
    assert len(resumed.utterances) == 2
    assert resumed.n_rows("encoder.out") == frames_for_duration(0.5) + frames_for_duration(0.6)
