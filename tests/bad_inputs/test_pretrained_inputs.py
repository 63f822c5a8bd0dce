"""Bad input to the shipped-SAE names, hf:// specs, `pretrained`, `push` and the ship script: each gives one
clear sentence naming the bad thing. CLI rows run ``whisper_sae.cli.main`` (library errors printed as one
line, exit 1); nothing reaches the network (the Hub cache is an empty folder, used offline)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from whisper_sae.sae import SAEConfig, SparseAutoencoder

REPO = Path(__file__).resolve().parents[2]
SHIPPED = "tiny/encoder.out-original"


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """A small SAE folder, an occupied export folder, an empty offline Hub cache; cwd is tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    sae = SparseAutoencoder(
        SAEConfig(d_in=8, d_sae=16, architecture="relu", hook_name="encoder.out", model_name="tiny.en")
    )
    sae.save_pretrained(tmp_path / "sae")
    bad = SparseAutoencoder(
        SAEConfig(d_in=8, d_sae=16, architecture="relu", hook_name="encoder.out", model_name="tiny.en")
    )
    with torch.no_grad():
        bad.W_dec[0, 0] = 1e6  # beyond fp16
    bad.save_pretrained(tmp_path / "huge")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "cfg.json").write_text("{}")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "partial.json").write_text(json.dumps({"reconstruction": {"l0": 3}}))
    from whisper_sae.pretrained.ship import add

    add(tmp_path / "sae", "tiny.en/encoder.out-16", root=tmp_path / "shipped")
    return tmp_path


def cli(*args):
    def run(tmp, capsys):
        from whisper_sae.cli import main

        try:
            code = main([str(a).replace("TMP", str(tmp)) for a in args])
        except SystemExit as exit_:
            code = exit_.code
        err = capsys.readouterr().err
        assert code not in (0, None), "the command should have failed"
        return err

    return run


def lib(fn):
    def run(tmp, capsys):
        with pytest.raises((ValueError, FileNotFoundError, RuntimeError)) as info:
            fn(tmp)
        return str(info.value)

    return run


def script(*args):
    def run(tmp, capsys):
        spec = importlib.util.spec_from_file_location("ship_pretrained", REPO / "scripts" / "ship_pretrained.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.main([str(a).replace("TMP", str(tmp)) for a in args]) == 1
        return capsys.readouterr().err

    return run


def _load(spec):
    return lib(lambda tmp: SparseAutoencoder.from_pretrained(spec))


def _add(name, source="sae", **kw):
    def go(tmp):
        from whisper_sae.pretrained.ship import add

        return add(tmp / source, name, root=tmp / "shipped", **kw)

    return go


def _evaluate(tmp):
    from whisper_sae.evaluate import evaluate

    return evaluate("tiny/encoder.out-typo", [], progress=False)


CASES = [
    (
        "unknown name",
        _load("tiny/encoder.out-typo"),
        r"no SAE folder at 'tiny/encoder.out-typo' and no shipped SAE of that name; .* shipped name \(.*tiny/encoder.out-original",
    ),
    ("unknown name in evaluate", lib(_evaluate), r"no SAE folder at 'tiny/encoder.out-typo' and no shipped SAE"),
    (
        "info of an unknown name",
        cli("pretrained", "info", "nope"),
        r"whisper-sae pretrained info: error: no shipped SAE is named 'nope'; shipped SAEs: .*tiny/encoder.out-original",
    ),
    ("export of an unknown name", cli("pretrained", "export", "nope", "TMP/x"), r"no shipped SAE is named 'nope'"),
    (
        "export over an SAE",
        cli("pretrained", "export", SHIPPED, "TMP/taken"),
        r"TMP/taken already holds an SAE \(cfg.json\); choose an empty or new folder",
    ),
    ("pretrained without action", cli("pretrained"), r"the following arguments are required: ACTION"),
    ("hf:// alone", _load("hf://"), r"'hf://' names no repository; write hf://ORG/REPO\[/SUBDIR\]"),
    ("hf:// without repo", _load("hf://org"), r"'hf://org' names no repository"),
    ("hf:// empty revision", _load("hf://org/repo@/x"), r"'hf://org/repo@/x' has an empty revision after '@'"),
    ("hf:// bad repo id", _load("hf://org/re po"), r"Hub repository 'org/re po' is not of the form ORG/REPO"),
    (
        "hf:// subdir with ..",
        _load("hf://org/repo/../x"),
        r"subfolder '../x' must be a relative path without '.', '..'",
    ),
    (
        "hf:// not cached offline",
        _load("hf://org/absent/x"),
        r"could not get hf://org/absent/x from the Hugging Face Hub \(.*\); HF_HUB_OFFLINE is set and the SAE is not in",
    ),
    (
        "push to a repo without org",
        cli("push", "TMP/sae", "justrepo"),
        r"Hub repository 'justrepo' is not of the form ORG/REPO",
    ),
    (
        "push --subdir ..",
        cli("push", "TMP/sae", "org/repo", "--subdir", "../up"),
        r"--subdir: subfolder '../up' must be a relative path",
    ),
    (
        "push a missing folder",
        cli("push", "TMP/nothing", "org/repo"),
        r"no SAE folder at '.*nothing' and no shipped SAE",
    ),
    (
        "push a folder that is not an SAE",
        cli("push", "TMP/taken", "org/repo"),
        r"TMP/taken/cfg.json lacks the required key",
    ),
    (
        "ship a bad name",
        lib(_add("Tiny/Encoder.out")),
        r"shipped SAE name 'Tiny/Encoder.out' is not of the form MODEL/HOOK",
    ),
    ("ship a name without hook", lib(_add("tiny.en")), r"shipped SAE name 'tiny.en' is not of the form"),
    (
        "ship an existing name",
        lib(_add("tiny.en/encoder.out-16")),
        r"'tiny.en/encoder.out-16' is already shipped; pass --replace",
    ),
    (
        "ship weights beyond fp16",
        lib(_add("tiny.en/encoder.out-huge", source="huge")),
        r"huge/sae_weights.safetensors: W_dec has values that fp16 cannot hold",
    ),
    ("ship over budget", lib(_add("tiny.en/encoder.out-b", budget=1000)), r"over the 0 MB budget; ship a narrower SAE"),
    (
        "ship eval.json not JSON",
        script("TMP/sae", "tiny.en/encoder.out-c", "--root", "TMP/shipped", "--card-from", "TMP/broken.json"),
        r"ship_pretrained: error: TMP/broken.json is not valid JSON",
    ),
    (
        "ship eval.json of another kind",
        script("TMP/sae", "tiny.en/encoder.out-c", "--root", "TMP/shipped", "--card-from", "TMP/partial.json"),
        r"the eval.json given lacks 'conditions'; give one written by `whisper-sae evaluate`",
    ),
    (
        "ship eval.json missing",
        script("TMP/sae", "tiny.en/encoder.out-c", "--root", "TMP/shipped", "--card-from", "TMP/none"),
        r"no eval.json at TMP/none; give the file or the folder that holds it",
    ),
    (
        "ship unknown headline key",
        script("TMP/sae", "tiny.en/encoder.out-c", "--root", "TMP/shipped", "--headline", "wer=0.1"),
        r"--headline 'wer=0.1': write KEY=VALUE with KEY one of l0, ",
    ),
    (
        "ship headline not a number",
        script("TMP/sae", "tiny.en/encoder.out-c", "--root", "TMP/shipped", "--headline", "l0=many"),
        r"--headline 'l0=many': 'many' is not a number",
    ),
]


@pytest.mark.parametrize("label, run, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_named(ctx, capsys, label, run, expected):
    message = run(ctx, capsys)
    assert re.search(expected.replace("TMP", re.escape(str(ctx))), message), message
    assert len(message.strip().splitlines()) <= 2, message  # one sentence (argparse adds a usage line)
