"""``whisper-sae corpus synth`` and ``corpus info`` through the command's own entry point."""

from __future__ import annotations

import pytest

from whisper_sae.cli import main


def test_corpus_synth_then_info(tmp_path, capsys):
    out = tmp_path / "c"
    assert (
        main(
            [
                "corpus",
                "synth",
                "--out",
                str(out),
                "--minutes",
                "0.1",
                "--speakers",
                "2",
                "--balanced",
                "--voices-per-text",
                "2",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert "utterances" in said and str(out) in said
    assert main(["corpus", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "0 skipped" in info and "gender: " in info and "accent: " in info
    assert main(["corpus", "synth", "--out", str(out), "--minutes", "0.1"]) == 1  # refuses to overwrite
    assert "already holds a synthetic corpus" in capsys.readouterr().err


def test_bad_arguments_are_sentences(tmp_path, capsys):
    assert main(["corpus", "synth", "--out", str(tmp_path / "x"), "--languages", "en,xx"]) == 1
    assert "choose from" in capsys.readouterr().err
    assert main(["corpus", "info", str(tmp_path / "missing")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_help_mentions_the_layout(capsys):
    with pytest.raises(SystemExit):
        main(["corpus", "synth", "--help"])
    assert "metadata.tsv" in capsys.readouterr().out
