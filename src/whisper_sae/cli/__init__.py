"""The ``whisper-sae`` command: one subcommand per stage, each a thin shell over a library function.

Each subcommand lives in its own module here and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` to a callable taking the parsed arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules of this package, one per subcommand (or group of subcommands).
SUBCOMMANDS = [
    "corpus",
    "extract",
    "train",
    "evaluate",
    "analyze",
    "probe",
    "demo",
    "circuits",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisper-sae",
        description=(
            "Sparse autoencoders on OpenAI Whisper's activations: make or read a speech corpus, "
            "extract activations at named hook points, train SAEs, evaluate them (reconstruction and "
            "Whisper's word error rate with the SAE spliced in), and see what each feature hears."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"whisper_sae.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted; work already written is kept and a rerun resumes it", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # Library errors are written as sentences that name the bad value: show them without a traceback.
        print(f"whisper-sae {args.command}: error: {err}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
