"""examples/speaker_attributes.ipynb runs top to bottom (real tiny.en, a small synthetic corpus)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[3] / "examples" / "speaker_attributes.ipynb"


@pytest.mark.slow
def test_speaker_attributes_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.delenv("WHISPER_SAE_PROBE_SAE", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "gender, balanced accuracy per utterance:" in outputs
    # The accent cell shows the refusal, with the column named, rather than a probe on too few speakers.
    assert "column 'accent'" in outputs and "fewer than two classes" in outputs
    assert sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs) >= 3
