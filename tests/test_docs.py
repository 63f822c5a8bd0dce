"""The API reference builds from the docstrings without a warning (``bash scripts/docs.sh``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


@pytest.mark.skipif(importlib.util.find_spec("pdoc") is None, reason="pdoc not installed (bash scripts/setup.sh test)")
def test_api_reference_builds_without_warnings(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs.py"), str(tmp_path / "api")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr.strip() == ""
    top = (tmp_path / "api" / "whisper_sae.html").read_text()
    for name in ("load_whisper", "SparseAutoencoder", "extract", "train", "probe", "build_dashboard"):
        assert f'id="{name}"' in top, name
    assert (tmp_path / "api" / "whisper_sae" / "evaluate" / "spliced.html").is_file()
    assert (tmp_path / "api" / "index.html").is_file()


def test_only_generated_init_annotations_are_forgiven():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import docs
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    message = (
        "Error parsing type annotation ForwardRef('Tensor') for {}.__init__. Import of Tensor failed: "
        "name 'Tensor' is not defined"
    )
    assert docs._generated_init_annotation(message.format("whisper_sae.sae.model.SAEOutput"))  # a NamedTuple
    assert docs._generated_init_annotation(
        message.format("whisper_sae.sae.architectures.base.StepOut")
    )  # a NamedTuple too
    assert not docs._generated_init_annotation(message.format("whisper_sae.sae.model.SparseAutoencoder"))
    assert not docs._generated_init_annotation("Found 'x' in whisper_sae.__all__, but it does not resolve")
