"""Argument types and the flags several commands share, each with one meaning and one help text."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TypeAlias

# What ``add_subparsers`` returns, each command module's ``register`` adds to; argparse
# gives it no public name (a string, as the class is not subscriptable at run time).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


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
