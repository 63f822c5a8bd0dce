"""Bad input to `train`, `convert` and the SAE library: each gives one clear sentence naming the bad thing.

Rows run the real CLI (``whisper_sae.cli.main``, which prints library errors as one line and returns 1)
or the library, on a tiny store made here.
"""

from __future__ import annotations

import pickle
import re

import pytest
import torch

D = 24


@pytest.fixture
def store(tmp_path):
    """20 utterances x 60 frames at encoder.out (width 24) of a model called 'synthetic'."""
    from whisper_sae.activations import StoreWriter

    path = tmp_path / "store"
    g = torch.Generator().manual_seed(0)
    with StoreWriter(
        path,
        hooks={"encoder.out": {"d_model": D, "kind": "frame"}},
        model={"name": "synthetic", "spec": "synthetic", "d_model": D},
        settings={"mode": "padded"},
    ) as writer:
        for u in range(20):
            idx = writer.begin_utterance({"id": f"utt{u}", "duration": 1.2})
            writer.add("encoder.out", idx, torch.randn(60, D, generator=g) + 1.0, torch.arange(60))
            writer.end_utterance(idx)
    return path


def train_args(store, out, *extra) -> list[str]:
    return [
        "train",
        "--store",
        str(store),
        "--out",
        str(out),
        "--arch",
        "relu",
        "--width",
        "48",
        "--steps",
        "20",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--autocast",
        "none",
        "--log-every",
        "5",
        "--eval-every",
        "10",
        "--checkpoint-every",
        "10",
        *extra,
    ]


def run_cli(args, capsys) -> tuple[int, str]:
    from whisper_sae.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    return code, capsys.readouterr().err


# -------------------------------------------------------------------------------- flags of `train`

FLAG_CASES = [
    ("epochs 0", ["--steps", None, "--epochs", "0"], r"epochs must be a finite number in \(0, inf\), got 0"),
    ("steps 0", ["--steps", "0"], r"steps must be an integer >= 1, got 0"),
    ("batch size 0", ["--batch-size", "0"], r"batch_size must be an integer >= 1, got 0"),
    ("negative lr", ["--lr=-1e-3"], r"lr must be a finite number in \(0, inf\), got -0.001"),
    ("infinite lr", ["--lr", "inf"], r"lr must be a finite number .* got inf"),
    ("nan lr", ["--lr", "nan"], r"lr must be a finite number .* got nan"),
    ("unknown arch", ["--arch", "gated"], r"argument --arch: invalid choice: 'gated'"),
    ("k > width", ["--arch", "topk", "--k", "64"], r"architecture 'topk' needs k, an integer in 1..d_sae=48"),
    ("holdout 1", ["--holdout", "1"], r"holdout must be a finite number in \[0, 1\), got 1.0"),
    ("one beta", ["--betas", "0.9"], r"betas must be two numbers in \[0, 1\), got \(0.9,\)"),
    ("beta 1", ["--betas", "0.9,1"], r"betas must be two numbers in \[0, 1\)"),
    (
        "zero bandwidth",
        ["--arch", "jumprelu", "--jumprelu-bandwidth", "0"],
        r"jumprelu bandwidth must be a finite positive number, got 0.0",
    ),
    ("negative coef", ["--coef", "-1"], r"coef must be a finite number in \[0, inf\), got -1.0"),
    ("text for an int", ["--width", "wide"], r"--width wants an int, got 'wide'"),
    ("bad autocast", ["--autocast", "fp8"], r"argument --autocast: invalid choice: 'fp8'"),
]


@pytest.mark.parametrize("extra, message", [c[1:] for c in FLAG_CASES], ids=[c[0] for c in FLAG_CASES])
def test_bad_train_flags(tmp_path, store, capsys, extra, message):
    args = train_args(store, tmp_path / "run")
    if extra[:2] == ["--steps", None]:  # replace --steps by the case's --epochs
        i = args.index("--steps")
        del args[i : i + 2]
        extra = extra[2:]
    code, err = run_cli(args + extra, capsys)
    assert code in (1, 2)
    assert re.search(message, err), err
    assert not (tmp_path / "run" / "cfg.json").exists()


# -------------------------------------------------------------------------------- the library, files on disk


def _unknown_arch(tmp_path, store):
    from whisper_sae.sae import train

    train(store, "encoder.out", out=tmp_path / "run", arch="gated", steps=5)


def _unknown_option(tmp_path, store):
    from whisper_sae.sae import train

    train(store, "encoder.out", out=tmp_path / "run", arch="jumprelu", jumprelu_bandwith=0.1, steps=5)


def _half_trained(tmp_path, store):
    from whisper_sae.cli import main

    assert main(train_args(store, tmp_path / "run") + ["--steps", "20"]) == 0  # a complete run keeps its checkpoint
    return tmp_path / "run" / "checkpoint"


def _resume(tmp_path, store, *extra):
    from whisper_sae.sae import train

    options = dict(arch="relu", width=48, steps=20, batch_size=64, device="cpu", autocast="none", checkpoint_every=10)
    options.update(extra)
    train(store, "encoder.out", out=tmp_path / "run", resume=True, **options)


def _corrupt_json(tmp_path, store):
    folder = _half_trained(tmp_path, store)
    (folder / "state.json").write_text("{not json")
    _resume(tmp_path, store)


def _corrupt_tensors(tmp_path, store):
    folder = _half_trained(tmp_path, store)
    tensors = next(folder.glob("state-*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:100])
    _resume(tmp_path, store)


class _RunsCode:
    """Unpickling this creates the file 'unpickled' (it stands for any code a pickle can run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_checkpoint(tmp_path, store):
    folder = tmp_path / "run" / "checkpoint"
    folder.mkdir(parents=True)
    (folder / "state.pt").write_bytes(pickle.dumps({"step": 3, "evil": _RunsCode(tmp_path / "unpickled")}))
    try:
        _resume(tmp_path, store)
    finally:
        assert not (tmp_path / "unpickled").exists(), "the pickle checkpoint was unpickled"


def _other_width(tmp_path, store):
    _half_trained(tmp_path, store)
    _resume(tmp_path, store, ("width", 64))


def _busy_folder(tmp_path, store):
    from whisper_sae.runtime.locks import exclusive
    from whisper_sae.sae import train

    with exclusive(tmp_path / "run", "SAE folder"):
        train(
            store,
            "encoder.out",
            out=tmp_path / "run",
            arch="relu",
            width=48,
            steps=5,
            batch_size=64,
            device="cpu",
            autocast="none",
        )


def _original(tmp_path, d_in=384):
    torch.save(
        {
            "encoder.weight": torch.randn(12, d_in),
            "encoder.bias": torch.randn(12),
            "decoder.weight": torch.randn(d_in, 12),
            "decoder.bias": torch.randn(d_in),
        },
        tmp_path / "o.pth",
    )
    return tmp_path / "o.pth"


def _convert(tmp_path, store, **kw):
    from whisper_sae.sae import convert_original

    convert_original(_original(tmp_path, kw.pop("d_in", 384)), tmp_path / "c", **kw)


def _convert_pickle(tmp_path, store):
    from whisper_sae.sae import convert_original

    (tmp_path / "o.pth").write_bytes(pickle.dumps(_RunsCode(tmp_path / "unpickled")))
    try:
        convert_original(tmp_path / "o.pth", tmp_path / "c")
    finally:
        assert not (tmp_path / "unpickled").exists()


FILE_CASES = [
    (
        "unknown arch",
        _unknown_arch,
        ValueError,
        r"architecture 'gated' is not known; valid architectures are relu, topk, batchtopk, jumprelu",
    ),
    (
        "unknown arch option",
        _unknown_option,
        ValueError,
        r"unknown training option 'jumprelu_bandwith'|no training option\(s\) \['bandwith'\]",
    ),
    ("corrupt checkpoint json", _corrupt_json, ValueError, r"training checkpoint .*state\.json cannot be read"),
    (
        "corrupt checkpoint tensors",
        _corrupt_tensors,
        ValueError,
        r"checkpoint tensors .*state-000000020\.safetensors cannot be read",
    ),
    (
        "pickle checkpoint",
        _pickle_checkpoint,
        ValueError,
        r"state\.pt is a pickle checkpoint .* not loaded, because unpickling",
    ),
    ("resume another width", _other_width, ValueError, r"cannot resume .*d_sae 48 \(now 64\)"),
    ("busy SAE folder", _busy_folder, RuntimeError, r"SAE folder .*run is being written by pid \d+"),
    (
        "convert unknown hook",
        lambda t, s: _convert(t, s, hook_name="encoder.blocks.9", model_name="tiny"),
        ValueError,
        r"Unknown hook 'encoder.blocks.9' .* valid hooks: encoder.blocks.0, .*decoder.out",
    ),
    (
        "convert unknown model",
        lambda t, s: _convert(t, s, model_name="huge"),
        ValueError,
        r"Whisper model 'huge' is not known; give one of tiny, tiny.en",
    ),
    (
        "convert width of another model",
        lambda t, s: _convert(t, s, d_in=512, model_name="tiny.en"),
        ValueError,
        r"d_in=512, but tiny.en has d_model=384",
    ),
    ("convert a pickle", _convert_pickle, ValueError, r"o\.pth is not a plain state dict of tensors"),
]


@pytest.mark.parametrize("case, error, message", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_files_and_calls(tmp_path, store, case, error, message):
    with pytest.raises(error, match=message):
        case(tmp_path, store)


def test_convert_cli_names_the_bad_hook(tmp_path, capsys):
    code, err = run_cli(["convert", _original(tmp_path), "--out", tmp_path / "c", "--hook", "encoder.out9"], capsys)
    assert code == 1 and "Unknown hook 'encoder.out9'" in err and "valid hooks: encoder.blocks.0" in err
    assert not (tmp_path / "c").exists()
