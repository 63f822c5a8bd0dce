"""Bad inputs to extraction and the activation store → one clear error naming the bad thing (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from whisper_sae.activations import ActivationStore, StoreWriter, extract
from whisper_sae.activations.extraction import ExtractionFailedError
from whisper_sae.activations.store import StoreDamagedError
from whisper_sae.audio import Utterance, load_corpus
from whisper_sae.audio.textfile import TextEncodingError
from whisper_sae.runtime.locks import FolderBusyError, exclusive

HOOKS = {"h": {"d_model": 4, "kind": "frame"}}


@pytest.fixture(scope="module")
def lw(tiny_random_whisper_dir):
    from whisper_sae.whisper import load_whisper

    return load_whisper(tiny_random_whisper_dir)


def utts(n=2, seconds=0.4, seed=0):
    rng = np.random.default_rng(seed)
    return [
        Utterance(id=f"u{i}", audio=(0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32))
        for i in range(n)
    ]


def wavs(folder, n=2, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for u in utts(n, seed=seed):
        sf.write(folder / f"{u.id}.wav", u.audio, 16000)
    return str(folder)


def small_store(path):
    with StoreWriter(path, hooks=HOOKS, corpus="mem", dtype="float32", shard_rows=4) as w:
        for i in range(3):
            idx = w.begin_utterance({"id": f"u{i}"})
            w.add("h", idx, torch.ones(3, 4), torch.arange(3))
            w.end_utterance(idx)
    return ActivationStore(path)


def first_shard(store: ActivationStore):
    return store.path / "h" / store.manifest["hooks"]["h"]["shards"][0]["file"]


# -- each case: (tmp_path, lw) -> the call that must fail ------------------------------------------


def locked_store(tmp, lw):
    with exclusive(tmp / "s", "store"):
        extract(lw, utts(), ["encoder.out"], tmp / "s", progress=False)


def truncated_shard(tmp, lw):
    store = small_store(tmp / "s")
    first_shard(store).write_bytes(first_shard(store).read_bytes()[:50])
    store.read("h")


def missing_shard(tmp, lw):
    store = small_store(tmp / "s")
    first_shard(store).unlink()
    next(store.batches("h", 2))


def garbage_shard(tmp, lw):
    store = small_store(tmp / "s")
    first_shard(store).write_bytes(b"x" * first_shard(store).stat().st_size)
    store.read("h")


def every_file_bad(tmp, lw):
    (tmp / "c").mkdir()
    for i in range(2):
        (tmp / "c" / f"b{i}.flac").write_bytes(b"fLaC garbage")
    extract(lw, str(tmp / "c"), ["encoder.out"], tmp / "s", progress=False)


def resume_other_corpus(tmp, lw):
    extract(lw, wavs(tmp / "a"), ["encoder.out"], tmp / "s", max_utterances=1, progress=False)
    extract(lw, wavs(tmp / "b", seed=1), ["encoder.out"], tmp / "s", progress=False)


def resume_other_model(tmp, lw):
    with StoreWriter(tmp / "s", hooks=HOOKS, model={"name": "tiny.en"}):
        pass
    StoreWriter(tmp / "s", hooks=HOOKS, model={"name": "base.en"})


def resume_other_hooks(tmp, lw):
    extract(lw, utts(), ["encoder.out"], tmp / "s", max_utterances=1, progress=False)
    extract(lw, utts(), ["encoder.blocks.0"], tmp / "s", progress=False)


def resume_other_mode(tmp, lw):
    extract(lw, utts(), ["encoder.out"], tmp / "s", max_utterances=1, progress=False)
    extract(lw, utts(), ["encoder.out"], tmp / "s", mode="packed", progress=False)


def limit_below_one_shard(tmp, lw):
    extract(lw, utts(), ["encoder.out"], tmp / "s", max_store_gb=1e-9, progress=False)


def nan_rows(tmp, lw):
    with StoreWriter(tmp / "s", hooks=HOOKS) as w:
        w.add("h", w.begin_utterance({"id": "nan-utt"}), torch.full((2, 4), float("nan")), [0, 1])


def fp16_overflow(tmp, lw):
    with StoreWriter(tmp / "s", hooks=HOOKS, dtype="float16") as w:
        w.add("h", w.begin_utterance({"id": "loud-utt"}), torch.full((2, 4), 1e5), [0, 1])


def latin1_transcript(tmp, lw):
    wavs(tmp / "c")
    (tmp / "c" / "x.trans.txt").write_bytes("u0 GARÇON\n".encode("latin-1"))
    list(load_corpus(tmp / "c"))


def not_a_store(tmp, lw):
    (tmp / "empty").mkdir()
    ActivationStore(tmp / "empty")


CASES = [
    (locked_store, FolderBusyError, r"store .*/s is being written by pid \d+"),
    (truncated_shard, StoreDamagedError, r"shard_00000.safetensors of store .*truncated.*store info --verify"),
    (missing_shard, StoreDamagedError, r"shard_00000.safetensors of store .* is missing"),
    (garbage_shard, StoreDamagedError, r"shard_00000.safetensors of store .* cannot be read"),
    (every_file_bad, ExtractionFailedError, r"all 2 were skipped \(first: b0: .*cannot decode"),
    (resume_other_corpus, ValueError, r"extracted from corpus '.*/a', not '.*/b'; resume with the same --corpus"),
    (resume_other_model, ValueError, r"model name 'tiny.en', not 'base.en'"),
    (resume_other_hooks, ValueError, r"holds hooks \['encoder.out'\], not \['encoder.blocks.0'\]"),
    (resume_other_mode, ValueError, r"mode='padded', not 'packed'"),
    (limit_below_one_shard, ValueError, r"--max-store-gb 1e-09 is below one shard per hook"),
    (nan_rows, ValueError, r"'nan-utt', hook 'h': 2 of 2 rows hold NaN"),
    (fp16_overflow, ValueError, r"'loud-utt', hook 'h': 2 of 2 rows .*float16's range"),
    (latin1_transcript, TextEncodingError, r"x.trans.txt is not valid UTF-8"),
    (not_a_store, FileNotFoundError, r"empty is not an activation store"),
]


@pytest.mark.parametrize("case, error, message", CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_store_input_gives_a_clear_error(case, error, message, tmp_path, lw):
    with pytest.raises(error, match=message):
        case(tmp_path, lw)
