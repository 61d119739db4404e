"""Log-format parsers: one module per format, each turning a batch of lines into events.

Every parser has the same shape, so the shipper and the raw-lines topic use
them alike::

    parse(lines: pa.StringArray, offsets: pa.Int64Array, ctx: ParseContext) -> ParseResult

``lines`` are complete lines without their newline; ``offsets`` the byte
offset of each line in its source (the event's identity, see
``pipeline.event``). Parsers work on whole columns (pyarrow compute, RE2
regexes) rather than line by line; only rejected lines take a slower path to
explain why they were rejected.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pyarrow as pa

from pipeline.event import EVENT_SCHEMA


@dataclass(frozen=True)
class ParseContext:
    """What a parser needs to know that the line may not say."""

    site: str
    source_id: str
    host: str = ""  # sensor name when the line carries none
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))  # for offset-less stamps
    # Lines without a year (RFC 3164) get the year that puts them closest
    # before this instant (plus a day of slack for clock skew).
    reference_time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # Columns of a W3C-style log (Windows Firewall's "#Fields:") when the
    # source declares them out of band; a header line in the lines wins.
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Reject:
    """A line we could not turn into an event, kept with the reason."""

    source_id: str
    offset: int
    line: str
    reason: str


@dataclass(frozen=True)
class ParseResult:
    events: pa.Table  # EVENT_SCHEMA
    rejects: list[Reject]

    @classmethod
    def empty(cls) -> ParseResult:
        return cls(EVENT_SCHEMA.empty_table(), [])


Parser = Callable[[pa.Array, pa.Array, ParseContext], ParseResult]


def get(name: str) -> Parser:
    """The parser of a format by name (``--format``); ``auto`` detects the format per line."""
    if name not in FORMATS:
        raise KeyError(f"unknown log format {name!r}; known: {', '.join(FORMATS)}")
    # Imported on demand: a parser module imports this one for ParseContext.
    module = importlib.import_module(f"pipeline.parsers.{name}")
    parse: Parser = module.parse
    return parse


# "auto" first: it is the default of every --format flag.
FORMATS: tuple[str, ...] = (
    "auto",
    "netfilter",
    "ulogd_json",
    "journald",
    "filterlog",
    "pf",
    "asa",
    "winfw",
    "vpc",
    "mikrotik",
)
