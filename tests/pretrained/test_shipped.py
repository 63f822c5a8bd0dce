"""The SAEs shipped inside the package: they load by name, match their index, fit the budget, are package
data, and nothing a command writes for them lands in the installed package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from safetensors import safe_open

from whisper_sae import pretrained
from whisper_sae.artifacts import open_sae, output_dir_for
from whisper_sae.sae import SparseAutoencoder

from .conftest import outputs_equal, small_sae

ORIGINAL = "tiny/encoder.out-original"
REPO = Path(__file__).resolve().parents[2]


def run_cli(args, capsys) -> tuple[int, str, str]:
    from whisper_sae.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_original_checkpoint_is_shipped():
    assert ORIGINAL in pretrained.names()


@pytest.mark.parametrize("name", pretrained.names())
def test_every_shipped_sae_loads_by_name_and_matches_its_index(name):
    entry = pretrained.load_index()[name]
    folder = pretrained.folder(name)
    sae = SparseAutoencoder.from_pretrained(name)
    cfg = sae.cfg
    assert (cfg.d_in, cfg.d_sae, cfg.hook_name, cfg.model_name, cfg.architecture, cfg.k) == (
        entry["d_in"],
        entry["width"],
        entry["hook"],
        entry["model"],
        entry["architecture"],
        entry["k"],
    )
    weights = folder / "sae_weights.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == entry["weights_sha256"]
    with safe_open(str(weights), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}
    assert sae.W_enc.dtype == torch.float32  # upcast on load
    card = pretrained.card(name)
    assert card.startswith("---\n") and f"# {name}" in card and f"license: {entry['licence'].lower()}" in card
    assert entry["training_data"].get("corpus") and entry["licence"]


def test_the_shipped_set_fits_the_budget():
    base = pretrained.PACKAGE_DIR
    folders = [base / e["folder"] for e in pretrained.load_index().values()]
    files = [base / pretrained.INDEX_FILE, *(p for f in folders for p in f.rglob("*") if p.is_file())]
    assert pretrained.shipped_size() == sum(p.stat().st_size for p in files)
    assert pretrained.shipped_size() <= pretrained.BUDGET_BYTES == 20_000_000


def test_pyproject_package_data_covers_every_shipped_file():
    # What setuptools puts in the wheel: the globs of [tool.setuptools.package-data], from the package folder.
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["whisper_sae"]
    package = REPO / "src" / "whisper_sae"
    included = {p.resolve() for g in globs for p in package.glob(g)}
    for name, entry in pretrained.load_index().items():
        for file in (pretrained.PACKAGE_DIR / entry["folder"]).iterdir():
            assert file.resolve() in included, f"{file} of {name} would not be in the wheel"
    assert (pretrained.PACKAGE_DIR / pretrained.INDEX_FILE).resolve() in included
    # a shipped folder must not look like a Python package to setuptools' package finder
    for entry in pretrained.load_index().values():
        assert not entry["folder"].isidentifier() and not list((pretrained.PACKAGE_DIR / entry["folder"]).glob("*.py"))


def test_the_original_entry_says_what_it_is():
    entry = pretrained.load_index()[ORIGINAL]
    sae = SparseAutoencoder.from_pretrained(ORIGINAL)
    # the original's ReLU module, unchanged: codes = relu(x W + b), nothing subtracted from x first
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.architecture, sae.cfg.apply_b_dec_to_input) == (
        384,
        1152,
        "relu",
        False,
    )
    assert entry["recommended"] is False and entry["licence"] == "MIT"
    assert entry["headline"]["explained_variance"] == 0.693 and entry["headline"]["spliced_wer"] == 1.53
    assert entry["headline"]["ce_recovered_zero"] == 0.427
    licence = (pretrained.folder(ORIGINAL) / "LICENSE").read_text()
    assert "MIT License" in licence and "Omar Khursheed" in licence
    card = pretrained.card(ORIGINAL)
    for words in (
        "not a recommended SAE",
        "0.693",
        "153.0 %",
        "0.427",
        "multilingual",
        "encoder_sae_tiny_100k_1152_space.pth",
    ):
        assert words in card


def test_saelens_reads_a_shipped_folder():
    sae_lens = pytest.importorskip("sae_lens")
    theirs = sae_lens.SAE.load_from_disk(str(pretrained.folder(ORIGINAL)), device="cpu")
    ours = SparseAutoencoder.from_pretrained(ORIGINAL)
    x = torch.randn(16, 384, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x).x_hat, atol=1e-4, rtol=1e-4)


def test_a_path_that_exists_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small_sae(d_in=8, d_sae=16).save_pretrained(Path(ORIGINAL))
    assert SparseAutoencoder.from_pretrained(ORIGINAL).cfg.d_in == 8
    sae, folder = open_sae(ORIGINAL)
    assert sae.cfg.d_in == 8 and folder == Path(ORIGINAL)
    assert output_dir_for(ORIGINAL, "analysis") == Path(ORIGINAL) / "analysis"  # the user's folder: written into


def test_open_sae_takes_a_name_and_outputs_go_to_a_user_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sae, folder = open_sae(ORIGINAL)
    assert folder.resolve() == pretrained.folder(ORIGINAL).resolve() and sae.cfg.d_sae == 1152
    user = Path("whisper-sae-out") / ORIGINAL
    assert output_dir_for(ORIGINAL) == user
    assert output_dir_for(ORIGINAL, "probe") == user / "probe"
    # the installed folder itself, given as a path, is not written into either
    assert output_dir_for(folder, "analysis") == user / "analysis"
    assert output_dir_for(str(folder / "."), "analysis") == user / "analysis"
    monkeypatch.setenv("WHISPER_SAE_OUT", str(tmp_path / "elsewhere"))
    assert output_dir_for(ORIGINAL, "analysis") == tmp_path / "elsewhere" / ORIGINAL / "analysis"
    assert output_dir_for(sae) is None  # an SAE object: nothing written unless told where


def test_export_makes_a_normal_folder(tmp_path):
    out = pretrained.export(ORIGINAL, tmp_path / "copy")
    assert sorted(p.name for p in out.iterdir()) == ["LICENSE", "MODEL_CARD.md", "cfg.json", "sae_weights.safetensors"]
    outputs_equal(
        SparseAutoencoder.from_pretrained(out), SparseAutoencoder.from_pretrained(ORIGINAL), 384, atol=0, rtol=0
    )
    assert output_dir_for(out, "analysis") == out / "analysis"


def test_cli_list_info_export(tmp_path, capsys):
    code, out, _ = run_cli(["pretrained", "list"], capsys)
    assert code == 0
    header, row = (
        out.splitlines()[0].split(),
        next(line for line in out.splitlines() if line.startswith(ORIGINAL)).split(),
    )
    assert header[:6] == ["name", "model", "hook", "arch", "width", "L0"]
    assert row[:6] == [ORIGINAL, "openai/whisper-tiny", "encoder.out", "relu", "1152", "575"]
    assert "100.6 h / 251" in out and row[-1] == "MIT"
    code, out, _ = run_cli(["pretrained", "info", ORIGINAL], capsys)
    assert code == 0 and out == pretrained.card(ORIGINAL)
    code, out, _ = run_cli(["pretrained", "export", ORIGINAL, tmp_path / "exported"], capsys)
    assert code == 0 and (tmp_path / "exported" / "sae_weights.safetensors").is_file()


def test_analyze_a_shipped_sae_by_name_writes_outside_the_package(tmp_path, monkeypatch, capsys):
    from whisper_sae.activations import StoreWriter

    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    with StoreWriter(
        "store",
        hooks={"encoder.out": {"d_model": 384, "kind": "frame"}},
        model={"name": "tiny.en", "spec": "tiny.en", "d_model": 384},
        settings={"mode": "padded"},
    ) as writer:
        for u in range(3):
            idx = writer.begin_utterance({"id": f"utt{u}", "duration": 1.2})
            writer.add("encoder.out", idx, torch.randn(60, 384, generator=g), torch.arange(60))
            writer.end_utterance(idx)
    before = sorted(p.name for p in pretrained.folder(ORIGINAL).iterdir())
    code, _, err = run_cli(["analyze", ORIGINAL, "--store", "store", "--top-n", "3", "--no-progress"], capsys)
    assert code == 0, err
    assert (tmp_path / "whisper-sae-out" / ORIGINAL / "analysis" / "analysis.json").is_file()
    assert sorted(p.name for p in pretrained.folder(ORIGINAL).iterdir()) == before


@pytest.mark.slow
def test_evaluate_a_shipped_sae_by_name_writes_outside_the_package(tmp_path, monkeypatch, capsys):
    """The real CLI on real tiny.en (the SAE's width) and one short tone clip with a transcript."""
    import soundfile as sf

    corpus = tmp_path / "corpus" / "1" / "2"
    corpus.mkdir(parents=True)
    t = np.arange(16000) / 16000
    sf.write(corpus / "1-2-0000.flac", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    (corpus / "1-2.trans.txt").write_text("1-2-0000 HELLO THERE\n")
    before = {p: p.stat().st_mtime_ns for p in pretrained.PACKAGE_DIR.rglob("*") if p.is_file()}
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        [
            "evaluate",
            ORIGINAL,
            "--corpus",
            tmp_path / "corpus",
            "--model",
            "tiny.en",
            "--max-new-tokens",
            "6",
            "--device",
            "cpu",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    written = tmp_path / "whisper-sae-out" / ORIGINAL / "eval.json"
    assert json.loads(written.read_text())["meta"]["d_sae"] == 1152
    after = {p: p.stat().st_mtime_ns for p in pretrained.PACKAGE_DIR.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing touched in the installed package


def test_recommended_picks_a_shipped_sae_of_that_model_and_hook(tmp_path):
    name = pretrained.recommended("tiny.en", "encoder.out")
    entry = pretrained.load_index()[name]
    assert (entry["model"], entry["hook"], entry["recommended"]) == ("tiny.en", "encoder.out", True)
    # the original checkpoint (multilingual tiny, not recommended) is never picked, nor a hook without one
    assert pretrained.recommended("openai/whisper-tiny", "encoder.out") is None
    assert pretrained.recommended("tiny.en", "encoder.blocks.9") is None
    # among recommended ones, the widest wins
    index = json.loads((pretrained.PACKAGE_DIR / pretrained.INDEX_FILE).read_text())
    wide = dict(index["saes"][name], width=entry["width"] * 2)
    index["saes"]["tiny.en/encoder.out-wide"] = wide
    (tmp_path / pretrained.INDEX_FILE).write_text(json.dumps(index))
    assert pretrained.recommended("tiny.en", "encoder.out", root=tmp_path) == "tiny.en/encoder.out-wide"
