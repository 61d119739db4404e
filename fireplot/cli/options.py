"""How a command is added; argument types; the flags several commands share, each with one help text."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import TypeAlias

from pipeline.config import Config

# What ``add_subparsers`` returns, each command module's ``register`` adds to; argparse
# gives it no public name (a string, as the class is not subscriptable at run time).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
# What runs a command: its exit code from the configuration and the parsed arguments.
Handler: TypeAlias = Callable[[Config, argparse.Namespace], int]


def command(sub: Commands, name: str, run: Handler, summary: str) -> argparse.ArgumentParser:
    """Add the command ``name``, run by ``run``, and return its parser for its arguments.

    ``summary`` is its line in ``fireplot --help``; the docstring of ``run`` heads its
    own ``--help`` (argparse refills the lines), so the operator reads the text a
    reader of the code reads. A handler without one shows no description.
    """
    parser = sub.add_parser(name, help=summary, description=run.__doc__)
    parser.set_defaults(handler=run)
    return parser


def iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def iso_datetime(text: str) -> dt.datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def add_store(parser: argparse.ArgumentParser, what: str = "store directory") -> None:
    """``--store``: the store a command uses instead of [worker] store_dir; ``what`` says which kind."""
    parser.add_argument("--store", help=f"{what} (default [worker] store_dir)")
