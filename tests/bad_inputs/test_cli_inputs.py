"""Bad command lines and bad files given to ``whisper-sae``: each ends in one clear line, never a traceback.

Usage errors (unknown command, missing or malformed flag) are argparse's: exit status 2, the usage and one
``error:`` line. Errors raised while a command runs (a missing corpus, a corrupt manifest) are one line
``whisper-sae COMMAND: error: ...`` with status 1; ``--debug`` or ``WHISPER_SAE_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import json

import pytest

from whisper_sae.cli import error_line, main


def _write(path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _files(tmp_path) -> None:
    """A small world of bad inputs, named by the argv templates below ({t} is tmp_path)."""
    _write(tmp_path / "bad-json" / "manifest.json", "{not json")
    _write(tmp_path / "no-keys" / "manifest.json", json.dumps({"format": "whisper-sae-store/1"}))
    _write(tmp_path / "binary" / "manifest.json", b"\xff\xfe\x00\x81 binary")
    _write(tmp_path / "sae" / "cfg.json", '{"d_in": 384')
    _write(tmp_path / "afile", "just text")


# (argv with {t} for the temporary folder, exit status, text the error line must contain)
USAGE_ERRORS = [
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["extract"], "the following arguments are required: --corpus, --hooks/--hook, --out"),
    (["evaluate"], "the following arguments are required: SAE_DIR, --corpus"),
    (["store", "info"], "the following arguments are required: STORE"),
    (["corpus", "info"], "the following arguments are required: SPEC"),
    (["evaluate", "x", "--corpus", "y", "--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (
        ["extract", "--corpus", "c", "--hooks", ",", "--out", "o"],
        "--hooks/--hook: expected one or more comma-separated",
    ),
    (["corpus", "info", "c", "--max-utterances", "ten"], "--max-utterances: expected a whole number, got 'ten'"),
]

RUN_ERRORS = [
    # what, argv, message fragment
    (
        "missing corpus",
        ["corpus", "info", "{t}/missing"],
        "whisper-sae corpus info: error: corpus '{t}/missing': no such file",
    ),
    (
        "missing store",
        ["store", "info", "{t}/missing"],
        "whisper-sae store info: error: {t}/missing is not an activation store",
    ),
    ("manifest is not JSON", ["store", "info", "{t}/bad-json"], "whisper-sae store info: error: JSONDecodeError: "),
    ("manifest is not text", ["store", "info", "{t}/binary"], "whisper-sae store info: error: UnicodeDecodeError: "),
    (
        "manifest lacks a key (KeyError)",
        ["store", "info", "{t}/no-keys"],
        "whisper-sae store info: error: KeyError: missing key 'utterances'",
    ),
    ("SAE cfg is not JSON", ["evaluate", "{t}/sae", "--corpus", "{t}/afile"], "whisper-sae evaluate: error: "),
    (
        "output under a file (OSError)",
        ["corpus", "synth", "--out", "{t}/afile/sub", "--minutes", "0.01"],
        "whisper-sae corpus synth: error: NotADirectoryError: ",
    ),
    (
        "demo given two hooks",
        ["demo", "--out", "{t}/demo", "--hooks", "encoder.out,decoder.out"],
        "whisper-sae demo: error: --hooks 'encoder.out,decoder.out': the demo trains one SAE",
    ),
]


@pytest.mark.parametrize("argv, message", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_with_one_error_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and message in errors[0], err


@pytest.mark.parametrize("what, argv, message", RUN_ERRORS, ids=[w for w, _, _ in RUN_ERRORS])
def test_errors_while_running_are_one_line(what, argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WHISPER_SAE_DEBUG", raising=False)
    _files(tmp_path)
    argv = [a.format(t=tmp_path) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message.format(t=tmp_path) in lines[0], err


@pytest.mark.parametrize("how", ["--debug before", "--debug after", "environment"])
def test_debug_shows_the_traceback(how, tmp_path, capsys, monkeypatch):
    _files(tmp_path)
    argv = ["store", "info", str(tmp_path / "no-keys")]
    if how == "--debug before":
        argv = ["--debug", *argv]
    elif how == "--debug after":
        argv = [*argv, "--debug"]
    else:
        monkeypatch.setenv("WHISPER_SAE_DEBUG", "1")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'utterances'" in err
    assert err.rstrip().splitlines()[-1] == "whisper-sae store info: error: KeyError: missing key 'utterances'"


def test_debug_zero_in_the_environment_is_off(tmp_path, capsys, monkeypatch):
    _files(tmp_path)
    monkeypatch.setenv("WHISPER_SAE_DEBUG", "0")
    assert main(["store", "info", str(tmp_path / "no-keys")]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_keyboard_interrupt_is_still_a_clean_exit(tmp_path, capsys, monkeypatch):
    from whisper_sae.audio import corpus

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus, "load_corpus", interrupted)
    assert main(["corpus", "info", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "err, line",
    [
        (KeyError("x"), "KeyError: missing key 'x'"),
        (ValueError("--k must be positive"), "--k must be positive"),
        (FileNotFoundError("no SAE at saes/x"), "no SAE at saes/x"),
        (PermissionError(13, "Permission denied", "out/x"), "PermissionError: [Errno 13] Permission denied: 'out/x'"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
        (IndexError(), "IndexError"),
        (TypeError("unsupported operand"), "TypeError: unsupported operand"),
    ],
)
def test_error_line_names_the_type_where_the_text_alone_says_little(err, line):
    assert error_line(err) == line
