"""hf://ORG/REPO[/SUBDIR] loading from a Hub cache laid out as huggingface_hub writes it (offline), and
`whisper-sae push`, with only HfApi's two network methods replaced by recorders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from whisper_sae import pretrained
from whisper_sae.artifacts import open_sae, output_dir_for
from whisper_sae.pretrained.hub import HubError, parse
from whisper_sae.sae import SparseAutoencoder

from .conftest import SHA, lay_out_hub_cache, outputs_equal


def run_cli(args, capsys) -> tuple[int, str, str]:
    from whisper_sae.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def sae_files(folder: Path, prefix: str = "") -> dict:
    return {prefix + name: folder / name for name in ("cfg.json", "sae_weights.safetensors")}


def test_parse_hub_specs():
    assert parse("hf://org/repo") == parse("hf://org/repo/")
    assert (parse("hf://org/repo").repo_id, parse("hf://org/repo").subdir) == ("org/repo", "")
    spec = parse("hf://org/repo@v1.0/saes/tiny.en")
    assert (spec.repo_id, spec.revision, spec.subdir) == ("org/repo", "v1.0", "saes/tiny.en")
    assert str(spec) == "hf://org/repo@v1.0/saes/tiny.en"


def test_load_from_the_hub_cache_offline(sae_folder, offline_hub):
    lay_out_hub_cache(
        offline_hub, "org/whisper-saes", {**sae_files(sae_folder, "tiny.en/topk/"), **sae_files(sae_folder)}
    )
    ours = SparseAutoencoder.from_pretrained(sae_folder)
    for spec in (
        "hf://org/whisper-saes/tiny.en/topk",
        "hf://org/whisper-saes",
        f"hf://org/whisper-saes@{SHA}/tiny.en/topk",
    ):
        outputs_equal(SparseAutoencoder.from_pretrained(spec), ours, 16, atol=0, rtol=0)
    _, folder = open_sae("hf://org/whisper-saes/tiny.en/topk")
    assert folder == offline_hub / "models--org--whisper-saes" / "snapshots" / SHA / "tiny.en" / "topk"
    # outputs never go into the cache: to ./whisper-sae-out/hf/ORG/REPO/SUBDIR, for the spec and for the folder
    expected = Path("whisper-sae-out/hf/org/whisper-saes/tiny.en/topk/analysis")
    assert output_dir_for("hf://org/whisper-saes/tiny.en/topk", "analysis") == expected
    assert output_dir_for(folder, "analysis") == expected


def test_a_repo_without_the_sae_in_that_subfolder(sae_folder, offline_hub):
    lay_out_hub_cache(offline_hub, "org/repo", sae_files(sae_folder, "a/"))
    with pytest.raises(FileNotFoundError, match=r"hf://org/repo/b: the repository holds no cfg.json in b/"):
        SparseAutoencoder.from_pretrained("hf://org/repo/b")
    with pytest.raises(FileNotFoundError, match=r"holds no cfg.json at its top level; name the subfolder"):
        SparseAutoencoder.from_pretrained("hf://org/repo")


def test_not_in_the_cache_while_offline(offline_hub):
    with pytest.raises(
        HubError, match=r"could not get hf://org/missing/x from the Hugging Face Hub .*HF_HUB_OFFLINE is set"
    ):
        SparseAutoencoder.from_pretrained("hf://org/missing/x")


@pytest.fixture
def recorded_hub(monkeypatch) -> list[dict]:
    """HfApi.create_repo and HfApi.upload_folder (the network calls `push` makes) replaced by recorders that
    keep a copy of what would be uploaded."""
    calls: list[dict] = []

    def create_repo(self, repo_id, **kwargs):
        calls.append({"call": "create_repo", "repo_id": repo_id, **kwargs})

    def upload_folder(self, *, repo_id, folder_path, path_in_repo=None, **kwargs):
        files = {
            p.relative_to(folder_path).as_posix(): p.read_bytes() for p in Path(folder_path).rglob("*") if p.is_file()
        }
        calls.append(
            {"call": "upload_folder", "repo_id": repo_id, "path_in_repo": path_in_repo, "files": files, **kwargs}
        )

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_uploads_the_sae_and_a_card_and_it_loads_back(sae_folder, recorded_hub, offline_hub, capsys):
    code, out, err = run_cli(["push", sae_folder, "org/whisper-saes", "--subdir", "tiny.en/topk", "--private"], capsys)
    assert code == 0, err
    assert "hf://org/whisper-saes/tiny.en/topk" in out
    create, upload = recorded_hub
    assert create == {
        "call": "create_repo",
        "repo_id": "org/whisper-saes",
        "private": True,
        "exist_ok": True,
        "repo_type": "model",
    }
    assert upload["repo_id"] == "org/whisper-saes" and upload["path_in_repo"] == "tiny.en/topk"
    files = upload["files"]
    assert sorted(files) == ["README.md", "cfg.json", "sae_weights.safetensors"]  # no metrics, no checkpoint
    assert files["cfg.json"] == (sae_folder / "cfg.json").read_bytes()
    card = files["README.md"].decode()
    assert card.startswith("---\nlibrary_name: whisper-sae\n") and "base_model: tiny.en" in card
    assert 'from_pretrained("hf://org/whisper-saes/tiny.en/topk")' in card
    assert "| explained variance, training run's held-out utterances | 0.812 |" in card  # from cfg.json
    # what was uploaded, as the Hub cache would hold it, loads back to the same SAE
    lay_out_hub_cache(offline_hub, "org/whisper-saes", {f"tiny.en/topk/{k}": v for k, v in files.items()})
    outputs_equal(
        SparseAutoencoder.from_pretrained("hf://org/whisper-saes/tiny.en/topk"),
        SparseAutoencoder.from_pretrained(sae_folder),
        16,
        atol=0,
        rtol=0,
    )


def test_push_uses_the_folder_card_and_eval_numbers(sae_folder, recorded_hub):
    from whisper_sae.pretrained.hub import push

    (sae_folder / "eval.json").write_text(
        json.dumps(
            {
                "meta": {"corpus": "test-clean", "model": "tiny.en"},
                "n_utterances": 12,
                "reconstruction": {"l0": 32.0, "explained_variance": 0.887},
                "conditions": {"clean": {"wer": 0.045}, "spliced": {"wer": 0.104}},
                "ce_recovered": {"zero": 0.987, "mean": 0.986},
            }
        )
    )
    assert push(sae_folder, "org/repo") == "hf://org/repo"
    upload = recorded_hub[-1]
    assert upload["path_in_repo"] is None
    card = upload["files"]["README.md"].decode()
    assert "| WER, SAE spliced in | 10.4 % |" in card and "12 utterances of test-clean" in card
    # a shipped SAE goes up with its own card and its licence text
    push("tiny/encoder.out-original", "org/repo", subdir="original")
    upload = recorded_hub[-1]
    assert sorted(upload["files"]) == ["LICENSE", "README.md", "cfg.json", "sae_weights.safetensors"]
    assert upload["files"]["README.md"].decode() == pretrained.card("tiny/encoder.out-original")


def test_a_failed_upload_is_one_sentence(sae_folder, monkeypatch, capsys):
    def refuse(self, repo_id, **kwargs):
        raise PermissionError("403 Forbidden: you cannot write to org/repo")

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    code, _, err = run_cli(["push", sae_folder, "org/repo"], capsys)
    assert code == 1
    assert err.startswith(f"whisper-sae push: error: could not upload {sae_folder} to org/repo (PermissionError: 403")
    assert "hf auth login" in err and len(err.strip().splitlines()) == 1
