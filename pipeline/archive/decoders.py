"""Kafka records in, events and dead letters out: the archive's record decoders.

A decoder turns one partition's records into an Arrow table of events (the
schema of ``pipeline.event``) plus a ``DeadLetter`` for every record or line it
could not use, with its reason and a bounded kind (the metric's label). It
never raises for bad input: the sink counts and keeps what it cannot use, and
isolates a record that makes a decoder fail (``pipeline.archive.sink``).

Two decoders, one per topic kind: ``decode_event_batches`` for the events
topic (Arrow batches, ``pipeline.wire``), ``RawLines`` for the raw-lines topic
(plain or JSON-wrapped log lines from rsyslog/Filebeat/Vector/Fluent Bit,
parsed with the shared parsers). Kept apart from the sink so the formats a
topic may carry can grow without touching the flush protocol.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from pipeline import parsers, wire
from pipeline.event import EVENT_SCHEMA
from pipeline.parsers import ParseContext, Parser

# A site becomes a directory name of the store (``site=…``): nothing that could escape it.
SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_LINES_PER_RECORD = 2**16  # raw event id = offset * 2**16 + line index


@dataclass(frozen=True)
class Record:
    """One Kafka record as the sink sees it: no faust inside, so tests, benchmarks and
    ``pipeline.rebuild`` build them from any consumer."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None


# Why a record or line was dead-lettered, as a bounded set: the metric's
# label. The free-text reason (which may quote attacker-controlled text) goes
# only into the dead-letter file, never into a label.
DEAD_LETTER_KINDS: Final = (
    "undecodable_record",  # an events-topic record that is not a valid Arrow batch
    "decoder_failed",  # the decoder itself raised on this record
    "too_many_lines",  # a raw record with more lines than event ids allow
    "invalid_json",  # a raw line starting with "{" that is not a JSON object
    "json_without_message",  # a JSON object without a string `message`
    "invalid_site",  # a site name that could escape the store's layout
    "unparsed_line",  # the parser could not read the line
)


@dataclass(frozen=True)
class DeadLetter:
    """A record, or one line of it, the archive could not use, and why."""

    record: Record
    reason: str
    line: str | None = None  # the raw line, when one line of a record was bad
    kind: str = "unparsed_line"  # one of DEAD_LETTER_KINDS


# A decoder turns one partition's records into events plus what it could not use.
Decoder = Callable[[Sequence[Record]], tuple[pa.Table, list[DeadLetter]]]


def decode_event_batches(records: Sequence[Record]) -> tuple[pa.Table, list[DeadLetter]]:
    """Events-topic records: one Arrow IPC batch each (``pipeline.wire``)."""
    tables: list[pa.Table] = []
    dead: list[DeadLetter] = []
    for r in records:
        try:
            tables.append(wire.decode(r.value))
        except wire.WireError as exc:
            dead.append(DeadLetter(r, str(exc), kind="undecodable_record"))
    table = pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()
    return table, dead


_JSON_FIELDS = pa.schema([("message", pa.string()), ("site", pa.string()), ("host", pa.string())])


class RawLines:
    """Raw-topic records: newline-separated plain lines, or JSON objects with a ``message``.

    The shippers in front of this topic (rsyslog omkafka, Filebeat, Vector,
    Fluent Bit) send one line or one JSON object per record. Event identity is
    ``(f"{topic}:{partition}", offset * 2**16 + line index)``: stable across
    redelivery, so the store's dedupe applies as for the events topic.
    """

    def __init__(self, parser: Parser, default_site: str) -> None:
        self.parser = parser
        self.default_site = default_site

    def __call__(self, records: Sequence[Record]) -> tuple[pa.Table, list[DeadLetter]]:
        if not records:
            return EVENT_SCHEMA.empty_table(), []
        topic, partition = records[0].topic, records[0].partition
        texts = pa.array([r.value.decode("utf-8", "replace") for r in records], pa.string())
        keys = pa.array([key_site(r.key) for r in records], pa.string())
        split = pc.split_pattern(texts, "\n")
        parent = pc.list_parent_indices(split)
        lines = pc.utf8_rtrim(split.flatten(), characters="\r")
        first_of_record = pc.take(split.offsets, parent)
        index = pc.subtract(pa.array(np.arange(len(lines), dtype=np.int32)), first_of_record)
        rec_offsets = pc.take(pa.array([r.offset for r in records], pa.int64()), parent)
        ids = pc.add(pc.multiply(rec_offsets, MAX_LINES_PER_RECORD), index.cast(pa.int64()))
        t = pa.table(
            {"line": lines, "rec": parent, "idx": index, "id": ids, "key_site": pc.take(keys, parent)}
        )
        dead: list[DeadLetter] = []
        # An empty line (a record's trailing newline) is not a line at all.
        t = t.filter(pc.not_equal(pc.utf8_length(t["line"]), 0))
        too_many = pc.greater_equal(t["idx"], MAX_LINES_PER_RECORD)
        for rec, line in zip(*_cols(t.filter(too_many), "rec", "line"), strict=True):
            dead.append(
                DeadLetter(
                    records[rec], f"record has more than {MAX_LINES_PER_RECORD} lines", line, "too_many_lines"
                )
            )
        t = t.filter(pc.invert(too_many))
        t, json_dead = self._unwrap_json(t, records)
        dead += json_dead
        site = pc.coalesce(t["key_site"], t["json_site"], t["json_host"], pa.scalar(self.default_site))
        bad_site = pc.invert(pc.match_substring_regex(site, SITE_RE.pattern))
        for rec, line, s in zip(
            *_cols(t.filter(bad_site).append_column("s", site.filter(bad_site)), "rec", "line", "s"),
            strict=True,
        ):
            dead.append(
                DeadLetter(records[rec], f"site {s!r} is not a valid site name", line, "invalid_site")
            )
        t = t.append_column("site", site).filter(pc.invert(bad_site))
        host = pc.fill_null(t["json_host"], "")
        t = t.append_column("host", host)
        parts: list[pa.Table] = []
        groups = t.group_by(["site", "host"], use_threads=False).aggregate([])
        for g_site, g_host in zip(*_cols(groups, "site", "host"), strict=True):
            g = t.filter(pc.and_(pc.equal(t["site"], g_site), pc.equal(t["host"], g_host)))
            ctx = ParseContext(site=g_site, source_id=f"{topic}:{partition}", host=g_host)
            result = self.parser(g["message"], g["id"], ctx)
            parts.append(result.events)
            if result.rejects:
                by_id = dict(zip(*_cols(g, "id", "rec"), strict=True))
                for rj in result.rejects:
                    dead.append(DeadLetter(records[by_id[rj.offset]], rj.reason, rj.line))
        table = pa.concat_tables(parts) if parts else EVENT_SCHEMA.empty_table()
        return table, dead

    def _unwrap_json(self, t: pa.Table, records: Sequence[Record]) -> tuple[pa.Table, list[DeadLetter]]:
        """Columns message/json_site/json_host: JSON lines unwrapped, plain lines as they are.

        Both parts get the same columns whatever the batch holds (only plain
        lines, only JSON lines, or none of one kind), so they always concatenate."""
        is_json = pc.starts_with(pc.utf8_ltrim_whitespace(t["line"]), "{")
        plain = t.filter(pc.invert(is_json))
        plain = plain.append_column("message", plain["line"])
        plain = plain.append_column("json_site", pa.nulls(plain.num_rows, pa.string()))
        plain = plain.append_column("json_host", pa.nulls(plain.num_rows, pa.string()))
        js = t.filter(is_json)
        if not js.num_rows:
            return plain, []
        dead: list[DeadLetter] = []
        parsed, ok = _read_json_lines(js["line"])
        for rec, line, reason in zip(
            *_cols(js.filter(pc.invert(ok)), "rec", "line"),
            parsed.column("_error").filter(pc.invert(ok)).to_pylist(),
            strict=True,
        ):
            kind = "json_without_message" if reason == _NO_MESSAGE else "invalid_json"
            dead.append(DeadLetter(records[rec], reason, line, kind))
        parsed = parsed.filter(ok)
        js = js.filter(ok)
        js = js.append_column("message", parsed["message"])
        js = js.append_column("json_site", parsed["site"]).append_column("json_host", parsed["host"])
        return pa.concat_tables([plain, js]), dead


_NO_MESSAGE: Final = "JSON object has no string `message` field"


def _read_json_lines(lines: pa.ChunkedArray) -> tuple[pa.Table, pa.Array]:
    """Parse JSON lines with Arrow's reader; a block that fails is redone line by line for reasons."""
    n = len(lines)
    joined = "\n".join(lines.to_pylist()).encode()
    try:
        table = pajson.read_json(
            pa.BufferReader(joined),
            parse_options=pajson.ParseOptions(
                explicit_schema=_JSON_FIELDS, unexpected_field_behavior="ignore"
            ),
        )
        if table.num_rows == n:
            ok = pc.is_valid(table["message"])
            errors = pc.if_else(ok, pa.scalar(None, pa.string()), _NO_MESSAGE)
            return table.append_column("_error", errors), ok.combine_chunks() if isinstance(
                ok, pa.ChunkedArray
            ) else ok
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    # The slow path runs only for a block holding a malformed or odd-typed
    # object, so it can say which line and why.
    rows: list[dict[str, str | None]] = []
    for line in lines.to_pylist():
        row: dict[str, str | None] = {"message": None, "site": None, "host": None, "_error": None}
        try:
            obj = json.loads(line)
        except ValueError as exc:
            row["_error"] = f"not valid JSON: {exc}"
        else:
            if not isinstance(obj, dict) or not isinstance(obj.get("message"), str):
                row["_error"] = _NO_MESSAGE
            else:
                row["message"] = obj["message"]
                for k in ("site", "host"):
                    row[k] = obj[k] if isinstance(obj.get(k), str) else None
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=_JSON_FIELDS.append(pa.field("_error", pa.string())))
    return table, pc.is_null(table["_error"])


def _cols(t: pa.Table, *names: str) -> list[list[Any]]:
    return [t.column(n).to_pylist() for n in names]


def key_site(key: bytes | None) -> str | None:
    """The site a record key names (``<site>/<host>``); None for no key or an empty site."""
    if not key:
        return None
    return key.decode("utf-8", "replace").split("/", 1)[0] or None


def raw_parser(name: str) -> Parser:
    """The configured parser; ``auto`` falls back to netfilter until that format exists."""
    try:
        return parsers.get(name)
    except KeyError:
        if name != "auto":
            raise
        return parsers.get("netfilter")
