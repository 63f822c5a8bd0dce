"""Flags shared by the subcommands, so that one flag means the same thing everywhere.

``--hooks`` is always a comma list of hook names, ``--device`` always accepts ``auto``, ``--batch-size``
always says what it counts (utterances, activation rows, 30-s windows), ``--no-progress`` always hides
the bars, ``--model`` always takes every spec form of ``load_whisper``. The parser class gives every
subcommand's ``--help`` its defaults.
"""

from __future__ import annotations

import argparse

from whisper_sae.defaults import DEFAULT_MODEL, SPEC_FORMS_SHORT


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default unless its help already says it; keeps hand-formatted text as written.

    Text with line breaks of its own (examples in an epilog) is printed as is; other descriptions are
    wrapped to the terminal as usual.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            default is None
            or default is False
            or default == argparse.SUPPRESS
            or "default" in text.lower()
            or f"({default})" in text
            or isinstance(action, (argparse._HelpAction, argparse._VersionAction))
        ):
            return text
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` with :class:`HelpFormatter`; ``add_subparsers`` hands the class down to subcommands."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


# ---------------------------------------------------------------- value types


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def comma_list(text: str) -> str:
    """argparse type: a comma-separated list, returned normalised ('a, b,' -> 'a,b'); empty is an error."""
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated names, got {text!r}")
    return ",".join(items)


def split_list(text: str | None) -> list[str]:
    """The names of a ``comma_list`` value (``[]`` for None)."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


# ---------------------------------------------------------------- flags


def add_hooks(
    parser: argparse.ArgumentParser,
    *,
    required: bool = False,
    default: str | None = None,
    alias: bool = False,
    help: str | None = None,
) -> argparse.Action:
    """``--hooks a,b`` (``args.hooks``, a normalised comma string); ``alias`` also accepts ``--hook``.

    Commands that used to take one ``--hook`` keep it as an alias so that old command lines still work.
    """
    flags = ["--hooks", "--hook"] if alias else ["--hooks"]
    return parser.add_argument(
        *flags,
        dest="hooks",
        type=comma_list,
        required=required,
        default=default,
        metavar="HOOK[,HOOK...]",
        help=help
        or "comma-separated hook points: encoder.blocks.N, encoder.out, decoder.blocks.N, decoder.out "
        "(N from 0; an unknown name is an error listing the valid ones)",
    )


def add_device(parser: argparse.ArgumentParser, *, default: str = "auto") -> argparse.Action:
    """``--device``: auto (this process's GPU when CUDA is present, else the CPU), cpu, cuda or cuda:N."""
    return parser.add_argument(
        "--device",
        default=default,
        help="torch device: auto (this rank's GPU when CUDA is present, else cpu), cpu, cuda or cuda:N",
    )


def add_no_progress(parser: argparse.ArgumentParser) -> argparse.Action:
    """``--no-progress``: hide progress bars (``args.no_progress``)."""
    return parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_batch_size(
    parser: argparse.ArgumentParser,
    *,
    unit: str,
    default: int | None = None,
    per: str = "forward pass",
    default_help: str | None = None,
) -> argparse.Action:
    """``--batch-size N`` whose help names what it counts: ``unit`` is e.g. "utterances" or "activation rows"."""
    text = f"{unit} per {per}"
    if default_help:
        text += f" (default: {default_help})"
    return parser.add_argument("--batch-size", type=positive_int, default=default, metavar="N", help=text)


def add_model(
    parser: argparse.ArgumentParser, *, default: str | None = None, default_help: str | None = None
) -> argparse.Action:
    """``--model SPEC``: any ``load_whisper`` spec. ``default_help`` says what no ``--model`` means."""
    if default_help is None:
        default_help = f"{DEFAULT_MODEL}, offline" if default is None else str(default)
    return parser.add_argument(
        "--model", default=default, metavar="SPEC", help=f"Whisper model: {SPEC_FORMS_SHORT} (default: {default_help})"
    )


def add_max_utterances(parser: argparse.ArgumentParser, *, help: str = "use at most N utterances") -> argparse.Action:
    """``--max-utterances N`` (at least 1; default all)."""
    return parser.add_argument("--max-utterances", type=positive_int, default=None, metavar="N", help=help)
