"""The README's promises: its "Python in 10 lines" runs as written, and the files it links to exist."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _python_block_under(heading: str) -> str:
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, f"no python block under '## {heading}'"
    return found[1]


def _demo_outputs(root: Path) -> None:
    """What `bash scripts/demo.sh` leaves that the snippet reads or names: an SAE folder for tiny.en's
    encoder.out and held-out FLAC clips in LibriSpeech layout (here a random SAE and a 1.2-s chirp instead of
    speech); the snippet itself loads a shipped SAE (width 1152)."""
    from whisper_sae.sae import SAEConfig, SparseAutoencoder, save_pretrained

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cfg = SAEConfig(d_in=384, d_sae=1536, architecture="topk", k=32, hook_name="encoder.out", model_name="tiny.en")
    save_pretrained(SparseAutoencoder(cfg), root / "demo-out" / "sae")
    t = np.arange(int(1.2 * 16000)) / 16000
    clip = root / "demo-out" / "corpus-eval" / "synth" / "1001" / "1" / "1001-1-0000.flac"
    clip.parent.mkdir(parents=True)
    sf.write(clip, (0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t)).astype(np.float32), 16000)


def test_the_snippet_is_short_and_names_the_demo_paths():
    code = _python_block_under("Python in 10 lines")
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 12
    assert '"demo-out/corpus-eval"' in code
    shipped = re.search(r'from_pretrained\("([^"]+)"\)', code)[1]
    from whisper_sae import pretrained

    assert shipped in pretrained.names()  # the snippet needs no training


@pytest.mark.slow
def test_python_in_10_lines_runs(tmp_path, monkeypatch, capsys):
    _demo_outputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(
        compile(  # noqa: S102 - running the README is the point
            _python_block_under("Python in 10 lines"), "README.md", "exec"
        ),
        {"__name__": "__readme__"},
    )
    printed = capsys.readouterr().out.splitlines()
    # 60 frames of 20 ms: a line at 0.0, 0.5 and 1.0 s, each with the frame's 3 strongest features.
    assert [line.split()[0] for line in printed] == ["0.0", "0.5", "1.0"]
    for line in printed:
        features = re.findall(r"#(\d+)=(-?[\d.]+)", line)
        assert len(features) == 3 and all(0 <= int(f) < 1152 for f, _ in features)
        values = [float(v) for _, v in features]
        assert values == sorted(values, reverse=True)


def test_linked_files_exist():
    targets = re.findall(r"\]\(((?!https?:)[^)#\s]+)\)", README)
    targets += re.findall(r"`((?:examples|docs|scripts|benchmarks)/[\w./-]+\.(?:ipynb|md|png|sh|py))`", README)
    assert any(t.startswith("examples/") and t.endswith(".ipynb") for t in targets)
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert missing == []


def test_commands_in_the_readme_exist():
    for script in set(re.findall(r"bash (scripts/[\w.]+)", README)):
        assert (ROOT / script).is_file(), script
    assert "bash scripts/setup.sh test" in README and "bash scripts/docs.sh" in README
    assert ". .venv/bin/activate" in README
