"""Bad inputs to the sub-block hooks, the layer lenses, the non-speech corpus and the hallucination rate
→ one clear error naming the bad thing (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_sae.audio import Utterance
from whisper_sae.audio.nonspeech import make_nonspeech_corpus
from whisper_sae.circuits import encoder_lens, hallucination_rate
from whisper_sae.cli import main
from whisper_sae.whisper import HookPoint, UnknownHookError, load_whisper


@pytest.fixture(scope="module")
def lw(tiny_random_whisper_dir):
    return load_whisper(tiny_random_whisper_dir)


def speech(text="hello there"):
    return [Utterance(id="u0", audio=np.zeros(8000, np.float32), text=text)]


@pytest.mark.parametrize(
    "name, shown",
    [
        ("encoder.blocks.0.cross_attn_out", "encoder.blocks.N.{attn_out, mlp_in, mlp_out}"),
        ("encoder.blocks.0.mlp", "decoder.blocks.N.{attn_out, cross_attn_out, mlp_in, mlp_out}"),
        ("decoder.blocks.5.mlp_out", "decoder.blocks.1"),
        ("encoder.out.mlp_out", "encoder.out"),
        ("encoder.blocks.1.MLP_OUT", "encoder.blocks.N.{attn_out, mlp_in, mlp_out}"),
    ],
)
def test_bad_hook_names(lw, name, shown):
    with pytest.raises(UnknownHookError, match="valid hooks") as info:
        HookPoint.parse(name, lw.config)
    assert repr(name) in str(info.value) and shown in str(info.value)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_per_kind": 0}, ValueError, "n_per_kind must be a whole number of clips, at least 1; got 0"),
        ({"n_per_kind": 2.5}, ValueError, "n_per_kind must be a whole number"),
        ({"kinds": ["speech", "tone"]}, ValueError, r"unknown non-speech kinds \['speech'\]; choose from silence"),
        ({"kinds": []}, ValueError, "unknown non-speech kinds"),
        ({"max_seconds": 31}, ValueError, "max_seconds <= 30"),
        ({"min_seconds": 5, "max_seconds": 2}, ValueError, "got 5 to 2"),
        ({"min_seconds": 0}, ValueError, "0 < min_seconds"),
    ],
)
def test_bad_nonspeech_corpus_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_nonspeech_corpus(tmp_path / "c", **{"n_per_kind": 1, **kwargs})


def test_nonspeech_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        make_nonspeech_corpus(tmp_path / "mine", 1)
    with pytest.raises(ValueError, match="other than a non-speech corpus"):
        make_nonspeech_corpus(tmp_path / "mine", 1, overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        make_nonspeech_corpus(tmp_path / "file", 1)


@pytest.mark.parametrize(
    "corpus, kwargs, error, match",
    [
        ("missing-folder", {}, FileNotFoundError, "no such file or folder"),
        ([Utterance(id="quiet", audio=np.zeros(8000, np.float32))], {}, ValueError, "no utterance with a reference"),
        ([Utterance(id="long", audio=np.zeros(16000 * 31, np.float32), text="x")], {}, ValueError, "at most 30"),
        (speech(), {"batch_size": 0}, ValueError, "batch_size must be at least 1, got 0"),
        (speech(), {"max_new_tokens": 0}, ValueError, "max_new_tokens must be at least 1, got 0"),
        (speech(), {"max_utterances": 0}, ValueError, "max_utterances must be at least 1, got 0"),
    ],
)
def test_bad_lens_inputs(lw, tmp_path, corpus, kwargs, error, match):
    if corpus == "missing-folder":
        corpus = str(tmp_path / "missing")
    with pytest.raises(error, match=match):
        encoder_lens(lw, corpus, **kwargs)


@pytest.mark.parametrize(
    "corpus, kwargs, match",
    [
        ([], {}, "holds no readable audio clip"),
        ([Utterance(id="empty", audio=np.zeros(0, np.float32))], {}, "holds no readable audio clip"),
        (speech(), {"batch_size": 0}, "batch_size must be at least 1"),
        (speech(), {"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
    ],
)
def test_bad_hallucination_inputs(lw, corpus, kwargs, match):
    with pytest.raises(ValueError, match=match):
        hallucination_rate(lw, corpus, **kwargs)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["corpus", "nonspeech", "--out", "{tmp}/c", "--per-kind", "0"], "n_per_kind must be a whole number"),
        (["corpus", "nonspeech", "--out", "{tmp}/c", "--max-seconds", "40"], "max_seconds <= 30"),
        (["lens", "--corpus", "{tmp}/nothing", "--out", "{tmp}/o"], "no such file or folder"),
        (
            ["lens", "--corpus", "{tmp}", "--out", "{tmp}/o", "--max-new-tokens", "0"],
            "--max-new-tokens must be at least 1",
        ),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
