"""The ``whisper-sae`` command: one subcommand per stage, each a thin shell over a library function.

Each subcommand lives in its own module here and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` to a callable taking the parsed arguments. Flags shared by several commands
come from ``cli.common`` so that they mean the same everywhere.

Errors: whatever a command raises (a missing file, a corrupt manifest, a bad value) is printed as one
line, ``whisper-sae COMMAND: error: ...``, with exit status 1; ``--debug`` (or ``WHISPER_SAE_DEBUG=1``)
shows the traceback instead. Usage errors are argparse's, with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from whisper_sae import __version__
from whisper_sae.cli.common import Parser

# Modules of this package, one per subcommand (or group of subcommands).
SUBCOMMANDS = [
    "corpus",
    "extract",
    "train",
    "finetune",
    "evaluate",
    "compare",
    "analyze",
    "probe",
    "demo",
    "pretrained",
    "circuits",
    "serve",
    "hallucination",
]

DEBUG_ENV = "WHISPER_SAE_DEBUG"

# Library errors are sentences naming the bad value; they are shown as they are. Anything else (a KeyError
# from a corrupt file, an OSError from the disk) also gets its type, since its text alone ('x') says little.
_SENTENCE_ERRORS = (ValueError, FileNotFoundError, RuntimeError)


def _walk(parser: argparse.ArgumentParser):
    """``parser`` and every subcommand parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield from _walk(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="whisper-sae",
        description=(
            "Sparse autoencoders on OpenAI Whisper's activations: make or read a speech corpus, "
            "extract activations at named hook points, train SAEs, evaluate them (reconstruction and "
            "Whisper's word error rate with the SAE spliced in), and see what each feature hears."
        ),
        epilog="`whisper-sae COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False,
        help=f"show the full traceback of an error (also with {DEBUG_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"whisper_sae.cli.{name}").register(sub)
    for p in _walk(parser):
        # Each parser knows itself: a group without its action prints its own help, errors name the command.
        p.set_defaults(_parser=p)
        if p is not parser:
            # --debug may also follow the subcommand; SUPPRESS keeps an earlier --debug from being reset.
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (as ``logging.lastResort`` does)."""

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


class _LogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


def _configure_logging(debug: bool) -> None:
    """The package's INFO messages (which model was loaded by default, ...) and warnings, on stderr."""
    logger = logging.getLogger("whisper_sae")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_LogFormatter())
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)


def _is_sentence(err: BaseException) -> bool:
    """A library error written as a sentence naming the bad value (ours, or a plain ValueError & co.)."""
    return type(err) in _SENTENCE_ERRORS or (
        isinstance(err, _SENTENCE_ERRORS) and type(err).__module__.startswith("whisper_sae")
    )


def error_line(err: BaseException) -> str:
    """One line for an exception: a library sentence as it is, anything else prefixed with its type."""
    text = str(err).strip()
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = f"missing key {err.args[0]!r}"  # str(KeyError('x')) is just "'x'"
    if _is_sentence(err):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(args.debug) or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    if not getattr(args, "func", None):
        args._parser.print_help()
        return 2
    _configure_logging(debug)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted; work already written is kept and a rerun resumes it", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every error reaches the user as one line (or --debug's traceback)
        if debug:
            traceback.print_exc()
        hint = "" if debug or _is_sentence(err) else " (--debug shows the traceback)"
        print(f"{args._parser.prog}: error: {error_line(err)}{hint}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
