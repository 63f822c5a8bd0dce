"""examples/analyze_features.ipynb runs top to bottom (real tiny.en weights, the synthetic corpus)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[3] / "examples" / "analyze_features.ipynb"


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(synth_corpus, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("WSAE_NB_CORPUS", str(synth_corpus))
    monkeypatch.setenv("WSAE_NB_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("WSAE_NB_STEPS", "60")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "before:" in outputs and "after:" in outputs
    assert (tmp_path / "work" / "dashboard" / "index.html").is_file()
    assert any("audio/wav" in str(o.get("data", {})) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    os.environ.pop("WSAE_NB_CORPUS", None)
