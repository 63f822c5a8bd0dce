"""The CLI's flags come from the config dataclasses: same defaults, help on every flag, no torch to build them."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

from whisper_sae.cli import build_parser
from whisper_sae.cli.dataclass_flags import add_flags, read_fields
from whisper_sae.sae.architectures import ARCHITECTURES, get_architecture
from whisper_sae.sae.train_config import StoreConfig, TrainConfig


def _subparser(name):
    parser = build_parser()
    action = next(a for a in parser._actions if getattr(a, "choices", None) and name in a.choices)
    return action.choices[name]


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def test_train_flag_defaults_are_the_dataclass_defaults():
    from whisper_sae.cli.train import NOT_FLAGS, options_from_args

    args = build_parser().parse_args(["train", "--store", "s", "--out", "o"])
    options = options_from_args(args)
    expected = {**_defaults(StoreConfig), **{k: v for k, v in _defaults(TrainConfig).items() if k not in NOT_FLAGS}}
    assert {k: v for k, v in options.items() if k != "architectures"} == expected
    for arch in ARCHITECTURES:  # each architecture's options, e.g. --jumprelu-bandwidth
        assert options["architectures"][arch] == _defaults(get_architecture(arch).Options)
    assert set(options) - {"architectures"} == set(expected)  # every TrainConfig field but NOT_FLAGS is a flag


def test_every_train_flag_has_help_and_shows_its_default():
    sub = _subparser("train")
    for action in sub._actions:
        if action.dest == "help" or action.help == argparse.SUPPRESS:
            continue  # --help, and the global --debug that is also accepted after the subcommand
        assert action.help, action.dest
        if action.default not in (None, False) and action.dest not in ("func", "_flags"):
            assert "(default:" in action.help, action.dest
    text = sub.format_help()
    assert "Peak learning rate (Adam). (default: 0.0005)" in " ".join(text.split())
    assert "--arch {relu,topk,batchtopk,jumprelu}" in text


def test_probe_flag_defaults_are_probe_options():
    from whisper_sae.analysis import ProbeOptions

    args = build_parser().parse_args(["probe", "sae", "--corpus", "c", "--attribute", "gender"])
    defaults = ProbeOptions()
    for name in ("min_speakers", "frames_per_utterance", "ablate_k", "wer_utterances", "models", "tsne", "progress"):
        assert getattr(args, name) == getattr(defaults, name), name
    assert (
        build_parser().parse_args(["probe", "sae", "--attribute", "g", "--no-tsne", "--models", "logreg"]).tsne is False
    )


def test_building_the_parser_imports_no_torch():
    code = "import sys; from whisper_sae.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_fields_are_read_from_source_without_import():
    fields = {f.name: f for f in read_fields("whisper_sae.sae.architectures.topk:Options")}
    assert fields["auxk_alpha"].default == 1 / 32 and "AuxK" in fields["auxk_alpha"].doc
    # a default that is a name imported from another module is followed there
    models = {f.name: f for f in read_fields("whisper_sae.analysis.probing.run:ProbeOptions")}["models"]
    assert models.default == ("logreg", "forest")


def test_a_field_without_docstring_is_refused():
    import argparse

    @dataclasses.dataclass
    class Undocumented:
        size: int = 3

    with pytest.raises(ValueError, match="field 'size' of .* has no docstring"):
        add_flags(argparse.ArgumentParser(), Undocumented)


def test_registry():
    from whisper_sae.sae import SAEConfig, SparseAutoencoder

    with pytest.raises(ValueError, match="architecture 'gated' is not known; valid architectures are relu, topk"):
        get_architecture("gated")
    for name in ARCHITECTURES:
        arch = get_architecture(name)
        assert arch.name == name and arch.saelens_name
        sae = SparseAutoencoder(SAEConfig(8, 16, name, k=2 if arch.needs_k else None))
        assert sae.arch is arch and hasattr(sae, "threshold") or not arch.has_threshold or hasattr(sae, "log_threshold")
