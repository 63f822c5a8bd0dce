"""Bad input to `finetune`, `train --objective kl` and `compare`: each gives one clear sentence naming the bad thing.

Rows run the real CLI (``whisper_sae.cli.main``, which prints library errors as one line and returns 1) on a
tiny random Whisper, a parent SAE and a store made here.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
import torch

D = 32


@pytest.fixture
def setup(tmp_path, tiny_random_whisper_dir):
    """A parent TopK SAE of the tiny random Whisper's encoder.out, a 3-utterance corpus and a store without a corpus."""
    from whisper_sae.activations import StoreWriter
    from whisper_sae.sae import SAEConfig, SparseAutoencoder

    torch.manual_seed(0)
    cfg = SAEConfig(
        d_in=D,
        d_sae=64,
        architecture="topk",
        k=4,
        hook_name="encoder.out",
        model_name=tiny_random_whisper_dir.name,
        model_spec=str(tiny_random_whisper_dir),
    )
    parent = SparseAutoencoder(cfg).save_pretrained(tmp_path / "parent")
    chapter = tmp_path / "ls" / "train" / "1" / "2"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(chapter / f"1-2-{i:04d}.flac", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    (chapter / "1-2.trans.txt").write_text("".join(f"1-2-{i:04d} HELLO THERE\n" for i in range(3)))
    long_dir = tmp_path / "long" / "1" / "2"
    long_dir.mkdir(parents=True)
    sf.write(long_dir / "1-2-0000.flac", np.zeros(16000 * 31, dtype=np.float32), 16000)
    (long_dir / "1-2.trans.txt").write_text("1-2-0000 TOO LONG\n")
    store = tmp_path / "store"
    with StoreWriter(
        store,
        hooks={"encoder.blocks.0": {"d_model": D, "kind": "frame"}},
        model={"name": tiny_random_whisper_dir.name, "spec": str(tiny_random_whisper_dir), "d_model": D},
        settings={"mode": "padded"},
    ) as writer:
        for u in range(4):
            idx = writer.begin_utterance({"id": f"utt{u}", "duration": 1.0})
            writer.add("encoder.blocks.0", idx, torch.randn(50, D), torch.arange(50))
            writer.end_utterance(idx)
    return {
        "parent": parent,
        "corpus": tmp_path / "ls" / "train",
        "long": tmp_path / "long",
        "store": store,
        "tmp": tmp_path,
    }


def run_cli(args, capsys) -> tuple[int, str]:
    from whisper_sae.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    return code, capsys.readouterr().err


FT = ["--steps", "2", "--device", "cpu"]

FINETUNE_CASES = [
    (
        "missing SAE folder",
        lambda s: [s["tmp"] / "nope", "--corpus", s["corpus"]],
        r"SAE folder .*nope does not exist or lacks cfg.json",
    ),
    ("no corpus and no store", lambda s: [s["parent"]], r"give --corpus \(speech to fine-tune on\), or a --store"),
    (
        "store without a corpus",
        lambda s: [s["parent"], "--store", s["store"]],
        r"give --corpus \(speech to fine-tune on\), or a --store whose corpus is recorded",
    ),
    (
        "out is the parent",
        lambda s: [s["parent"], "--corpus", s["corpus"], "--out", s["parent"]],
        r"is the parent SAE's own folder",
    ),
    (
        "unknown objective",
        lambda s: [s["parent"], "--corpus", s["corpus"], "--objective", "ce"],
        r"argument --objective: invalid choice: 'ce'",
    ),
    (
        "negative mse weight",
        lambda s: [s["parent"], "--corpus", s["corpus"], "--mse-weight=-1"],
        r"mse_weight must be a finite number in \[0, inf\), got -1.0",
    ),
    (
        "zero utterances per step",
        lambda s: [s["parent"], "--corpus", s["corpus"], "--utterances-per-step", "0"],
        r"utterances_per_step must be an integer >= 1, got 0",
    ),
    (
        "zero steps",
        lambda s: [s["parent"], "--corpus", s["corpus"], "--steps", "0"],
        r"steps must be an integer >= 1, got 0",
    ),
    (
        "nan lr",
        lambda s: [s["parent"], "--corpus", s["corpus"], "--lr", "nan"],
        r"lr must be a finite number .* got nan",
    ),
    (
        "bad holdout",
        lambda s: [s["parent"], "--corpus", s["corpus"], "--holdout", "1.5"],
        r"holdout must be a finite number in \[0, 1\), got 1.5",
    ),
    (
        "store of another hook",
        lambda s: [s["parent"], "--corpus", s["corpus"], "--store", s["store"]],
        r"store .* has no hook 'encoder.out' \(it holds encoder.blocks.0\)",
    ),
    (
        "only utterances longer than 30 s",
        lambda s: [s["parent"], "--corpus", s["long"]],
        r"gave no utterance of at most 30 s to train on",
    ),
    ("missing corpus folder", lambda s: [s["parent"], "--corpus", s["tmp"] / "absent"], r"absent"),
]


@pytest.mark.parametrize("make_args, pattern", [c[1:] for c in FINETUNE_CASES], ids=[c[0] for c in FINETUNE_CASES])
def test_finetune_refuses(setup, capsys, make_args, pattern):
    args = make_args(setup)
    if "--steps" not in args:
        args = [*args, *FT]
    code, err = run_cli(["finetune", *args], capsys)
    assert code != 0
    assert re.search(pattern, err), err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1  # one sentence


def test_finetune_resume_refuses_another_objective(setup, capsys):
    out = setup["tmp"] / "ft"
    base = [
        "finetune",
        setup["parent"],
        "--corpus",
        setup["corpus"],
        "--out",
        out,
        "--steps",
        "4",
        "--device",
        "cpu",
        "--checkpoint-every",
        "1",
        "--utterances-per-step",
        "2",
    ]
    from whisper_sae.sae.kl_training import finetune

    finetune(setup["parent"], str(setup["corpus"]), out=out, steps=4, stop_after=1, device="cpu", utterances_per_step=2)
    code, err = run_cli([*base, "--resume", "--objective", "kl+mse"], capsys)
    assert code == 1 and re.search(
        r"cannot resume .*: it was started with objective='kl' \(now 'kl\+mse'\); use the same", err
    ), err


TRAIN_CASES = [
    (
        "KL flag with the MSE objective",
        ["--mse-weight", "2"],
        r"--mse-weight only apply with --objective kl or kl\+mse",
    ),
    ("corpus with the MSE objective", ["--corpus", "x"], r"--corpus only apply with --objective kl"),
    (
        "KL objective with a sweep",
        ["--objective", "kl", "--sweep", "k=2,4"],
        r"--objective kl trains one SAE at a time \(one hook, no --sweep\)",
    ),
    ("KL objective, store records no corpus", ["--objective", "kl"], r"records no corpus; give --corpus"),
]


@pytest.mark.parametrize("extra, pattern", [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_train_objective_refuses(setup, capsys, extra, pattern):
    args = [
        "train",
        "--store",
        setup["store"],
        "--hook",
        "encoder.blocks.0",
        "--out",
        setup["tmp"] / "o",
        "--arch",
        "topk",
        "--width",
        "16",
        "--k",
        "2",
        "--steps",
        "2",
        "--device",
        "cpu",
        *extra,
    ]
    code, err = run_cli(args, capsys)
    assert code == 1 and re.search(pattern, err), err


def test_compare_refuses(setup, capsys, tmp_path):
    from whisper_sae.sae import SAEConfig, SparseAutoencoder

    code, err = run_cli(["compare", setup["parent"], tmp_path / "none"], capsys)
    assert code == 1 and re.search(r"no SAE folder at .*none' and no shipped SAE of that name", err), err
    other = SparseAutoencoder(SAEConfig(d_in=D + 8, d_sae=8, architecture="relu")).save_pretrained(tmp_path / "wide")
    code, err = run_cli(["compare", setup["parent"], other], capsys)
    assert code == 1 and re.search(r"different widths \(A d_in=32, B d_in=40\)", err), err
