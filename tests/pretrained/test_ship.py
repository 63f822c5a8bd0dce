"""Adding an SAE to a shipped set (``ship.add`` and ``scripts/ship_pretrained.py``), into a set in tmp_path:
fp16 weights that load to nearly the same function, the card and index entry from cfg.json and eval.json,
and the budget, checked before anything is written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from whisper_sae import pretrained
from whisper_sae.pretrained.ship import add
from whisper_sae.sae import SparseAutoencoder

from .conftest import outputs_equal

REPO = Path(__file__).resolve().parents[2]
EVAL = {
    "meta": {"corpus": "librispeech/test-clean", "model": "tiny.en"},
    "n_utterances": 12,
    "reconstruction": {"l0": 32.0, "explained_variance": 0.8871},
    "conditions": {"clean": {"wer": 0.045}, "spliced": {"wer": 0.104}},
    "ce_recovered": {"zero": 0.987, "mean": 0.9861},
}


def ship_script():
    spec = importlib.util.spec_from_file_location("ship_pretrained", REPO / "scripts" / "ship_pretrained.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_add_ships_fp16_weights_a_card_and_an_index_entry(sae_folder, tmp_path):
    (sae_folder / "eval.json").write_text(json.dumps(EVAL))
    root = tmp_path / "shipped"
    folder = add(
        sae_folder,
        "tiny.en/encoder.out-48",
        eval_json=sae_folder,
        root=root,
        training_data={"corpus": "LibriSpeech train-clean-100", "hours": 100.6, "speakers": 251},
    )
    assert folder == root / "tiny.en--encoder.out-48"
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "cfg.json", "sae_weights.safetensors"]
    with safe_open(str(folder / "sae_weights.safetensors"), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}
    assert pretrained.names(root) == ["tiny.en/encoder.out-48"]
    shipped = SparseAutoencoder.from_pretrained(pretrained.folder("tiny.en/encoder.out-48", root))
    outputs_equal(shipped, SparseAutoencoder.from_pretrained(sae_folder), 16, atol=5e-3, rtol=5e-3)
    cfg = json.loads((folder / "cfg.json").read_text())["whisper_sae"]
    assert cfg["storage_dtype"] == "float16" and cfg["shipped_as"] == "tiny.en/encoder.out-48"
    assert "store" not in cfg["training"]["data"] and cfg["training"]["data"]["train_utterances"] == 18
    entry = pretrained.load_index(root)["tiny.en/encoder.out-48"]
    assert (entry["architecture"], entry["width"], entry["k"], entry["hook"], entry["model"]) == (
        "topk",
        48,
        4,
        "encoder.out",
        "tiny.en",
    )
    assert entry["headline"]["explained_variance"] == 0.8871 and entry["headline"]["spliced_wer"] == 0.104
    card = pretrained.card("tiny.en/encoder.out-48", root)
    assert "| WER, SAE spliced in | 10.4 % |" in card and "LibriSpeech train-clean-100 (100.6 h, 251 speakers)" in card
    assert pretrained.shipped_size(root) == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_the_budget_is_checked_before_anything_is_written(sae_folder, tmp_path):
    root = tmp_path / "shipped"
    add(sae_folder, "tiny.en/encoder.out-a", root=root)
    index_before = (root / "index.json").read_bytes()
    size = pretrained.shipped_size(root)
    with pytest.raises(ValueError, match=r"shipping 'tiny.en/encoder.out-b' .* over the 0 MB budget"):
        add(sae_folder, "tiny.en/encoder.out-b", root=root, budget=size + 100)
    assert sorted(p.name for p in root.iterdir()) == ["index.json", "tiny.en--encoder.out-a"]
    assert (root / "index.json").read_bytes() == index_before


def test_replace_an_entry(sae_folder, tmp_path):
    root = tmp_path / "shipped"
    add(sae_folder, "tiny.en/encoder.out", root=root, licence="MIT")
    with pytest.raises(ValueError, match=r"'tiny.en/encoder.out' is already shipped; pass --replace"):
        add(sae_folder, "tiny.en/encoder.out", root=root)
    add(sae_folder, "tiny.en/encoder.out", root=root, licence="Apache-2.0", replace=True)
    assert pretrained.load_index(root)["tiny.en/encoder.out"]["licence"] == "Apache-2.0"
    assert "license: apache-2.0" in pretrained.card("tiny.en/encoder.out", root)


def test_the_script_ships_with_given_numbers(sae_folder, tmp_path, capsys):
    root = tmp_path / "shipped"
    notes = tmp_path / "notes.md"
    notes.write_text("Trained for the README's table.\n")
    licence = tmp_path / "LICENSE"
    licence.write_text("MIT License\n")
    code = ship_script()(
        [
            str(sae_folder),
            "tiny.en/encoder.out-x",
            "--root",
            str(root),
            "--headline",
            "l0=31.5",
            "--headline",
            "spliced_wer=0.099",
            "--measured-on",
            "12 test-clean utterances",
            "--data",
            "synthetic",
            "--hours",
            "0.5",
            "--speakers",
            "96",
            "--licence-file",
            str(licence),
            "--notes",
            str(notes),
            "--not-recommended",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "shipped tiny.en/encoder.out-x" in out and "of 20 MB" in out
    entry = pretrained.load_index(root)["tiny.en/encoder.out-x"]
    # held-out EV from the training record, the rest from the flags
    assert entry["headline"] == {
        "held_out_explained_variance": 0.8123,
        "measured_on": "12 test-clean utterances",
        "l0": 31.5,
        "spliced_wer": 0.099,
    }
    assert entry["recommended"] is False
    card = pretrained.card("tiny.en/encoder.out-x", root)
    assert "not as a recommended SAE" in card and "Trained for the README's table." in card
    assert (pretrained.folder("tiny.en/encoder.out-x", root) / "LICENSE").read_text() == "MIT License\n"
