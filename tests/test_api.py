"""The public API at the top level: ``import whisper_sae`` is cheap, and every stage is one name away."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import whisper_sae

API = [
    "load_whisper",
    "capture",
    "patch",
    "load_corpus",
    "ActivationStore",
    "extract",
    "SparseAutoencoder",
    "train",
    "evaluate",
    "analyze",
    "probe",
    "intervene",
    "build_dashboard",
]
SRC = str(Path(whisper_sae.__file__).parent.parent)


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_is_lazy():
    out = _python(
        "import sys, whisper_sae; print(whisper_sae.__version__); "
        "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'datasets') if m in sys.modules))"
    )
    assert out.split("\n")[:2] == [whisper_sae.__version__, "[]"]


def test_cli_parser_is_built_without_torch():
    """``whisper-sae --help`` answers at once: building the parser imports no heavy library."""
    out = _python(
        "import sys; from whisper_sae.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    )
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", API)
def test_every_name_is_exported(name):
    assert name in whisper_sae.__all__ and name in dir(whisper_sae)
    assert set(whisper_sae.__all__) == {"__version__", *whisper_sae._EXPORTS}
    value = getattr(whisper_sae, name)
    assert callable(value)
    assert not inspect.ismodule(value) or name == "evaluate"  # see test_evaluate_is_the_package_and_the_function


def test_names_are_the_stage_functions():
    from whisper_sae.activations.extraction import extract
    from whisper_sae.analysis.dashboard import build_dashboard
    from whisper_sae.analysis.features.pipeline import analyze
    from whisper_sae.sae import SparseAutoencoder, train
    from whisper_sae.whisper import load_whisper

    assert whisper_sae.extract is extract and whisper_sae.analyze is analyze and whisper_sae.train is train
    assert whisper_sae.build_dashboard is build_dashboard and whisper_sae.load_whisper is load_whisper
    assert whisper_sae.SparseAutoencoder is SparseAutoencoder
    assert inspect.isfunction(whisper_sae.probe) and whisper_sae.probe.__name__ == "probe"


def test_probe_is_the_function_even_after_its_module_was_imported():
    out = _python(
        "import whisper_sae.analysis.probing.run, whisper_sae, inspect; print(inspect.isfunction(whisper_sae.probe))"
    )
    assert out.strip() == "True"
    out = _python("from whisper_sae.analysis import probe; import inspect; print(inspect.isfunction(probe))")
    assert out.strip() == "True"


def test_evaluate_is_the_package_and_the_function():
    import whisper_sae.evaluate.metrics  # the package stays importable
    from whisper_sae.evaluate.spliced import evaluate

    assert inspect.ismodule(whisper_sae.evaluate) and callable(whisper_sae.evaluate)
    assert inspect.signature(whisper_sae.evaluate) == inspect.signature(evaluate)
    assert (
        whisper_sae.evaluate.evaluate is evaluate and whisper_sae.evaluate.word_errors("a b", "a c").substitutions == 1
    )


def test_the_original_readme_snippet():
    from whisper_sae import SparseAutoencoder

    sae = SparseAutoencoder(input_dim=384, hidden_dim=1152)
    assert sae.cfg.d_in == 384 and sae.cfg.d_sae == 1152


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        whisper_sae.nope  # noqa: B018


def test_version_matches_the_package_metadata():
    import tomllib

    project = tomllib.loads((Path(SRC).parent / "pyproject.toml").read_text())["project"]
    assert project["version"] == whisper_sae.__version__
    assert {"test", "docs", "dev"} <= set(project["optional-dependencies"])
