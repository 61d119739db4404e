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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, overload

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


class RecordColumns(Sequence[Record]):
    """One partition's records as Arrow columns: what the raw feed reads from a fetch.

    A raw record is usually one line: a Python object per record costs more
    than the line's parse. The columns come straight from the fetched Kafka
    record batches (``pipeline.archive.kafka_batches``) and go to the decoder
    as they are; a ``Record`` is made only where one is needed, for a dead
    letter. Offsets increase, as in a partition."""

    __slots__ = ("keys", "offsets", "partition", "topic", "values")

    def __init__(
        self, topic: str, partition: int, offsets: pa.Array, values: pa.Array, keys: pa.Array
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offsets = offsets  # int64
        self.values = values  # binary, no nulls (a null value is b"")
        self.keys = keys  # binary, null where the record has no key

    @classmethod
    def of(cls, topic: str, partition: int, records: Sequence[Record]) -> RecordColumns:
        """One partition's ``Record``s as columns."""
        if isinstance(records, RecordColumns):
            return records
        return cls(
            topic,
            partition,
            pa.array([r.offset for r in records], pa.int64()),
            pa.array([r.value for r in records], pa.binary()),
            pa.array([r.key for r in records], pa.binary()),
        )

    @classmethod
    def concat(cls, parts: Sequence[RecordColumns]) -> RecordColumns:
        """One partition's parts, in order, as one."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            parts[0].topic,
            parts[0].partition,
            pa.concat_arrays([p.offsets for p in parts]),
            pa.concat_arrays([p.values for p in parts]),
            pa.concat_arrays([p.keys for p in parts]),
        )

    def after(self, offset: int) -> RecordColumns:
        """The records past ``offset``."""
        first = int(np.searchsorted(self.offsets.to_numpy(zero_copy_only=False), offset, side="right"))
        return self if first == 0 else self[first:]

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> RecordColumns: ...
    def __getitem__(self, i: int | slice) -> Record | RecordColumns:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                raise ValueError("RecordColumns slices are contiguous")
            n = max(0, stop - start)
            return RecordColumns(
                self.topic,
                self.partition,
                self.offsets.slice(start, n),
                self.values.slice(start, n),
                self.keys.slice(start, n),
            )
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return Record(
            self.topic, self.partition, self.offsets[i].as_py(), self.values[i].as_py(), self.keys[i].as_py()
        )

    def __iter__(self) -> Iterator[Record]:
        for offset, value, key in zip(
            self.offsets.to_pylist(), self.values.to_pylist(), self.keys.to_pylist(), strict=True
        ):
            yield Record(self.topic, self.partition, offset, value, key)


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


class RawLines:
    """Raw-topic records: newline-separated plain lines, or JSON objects with a ``message``.

    The shippers in front of this topic (rsyslog omkafka, syslog-ng, kcat,
    Filebeat, Vector) send one line or one JSON object per record; a record
    may hold several lines. Event identity is
    ``(f"{topic}:{partition}", offset * 2**16 + line index)``: stable across
    redelivery, so the store's dedupe applies as for the events topic.

    Each line is read as the shipper's line reader (``producers.lines``) reads
    a file's line: cut at ``MAX_LINE_BYTES`` bytes (a trailing ``\r``
    counted, then stripped), invalid UTF-8 replaced by U+FFFD, and then
    parsed; so a line gives the same event or reject through either path.
    Empty lines are no lines. A line starting with ``{`` is a JSON object of
    which ``message`` (the log line, a string, required), ``site`` (string)
    and ``host`` (a string, or an object's string ``name`` as Filebeat's
    ``host.name``) are read; every other field is ignored. The site is the
    record key's part before the first ``/``, else the JSON ``site``, else
    its host, else ``[worker] raw_default_site``.
    """

    # The shipper's limit (producers.lines.MAX_LINE_BYTES; a test holds them
    # equal): pipeline does not import producers.
    MAX_LINE_BYTES: Final = 64 * 1024

    def __init__(self, parser: Parser, default_site: str) -> None:
        self.parser = parser
        self.default_site = default_site
        # Which JSON shape the last batch had (Vector's host string or
        # Filebeat's host object), tried first: a topic usually has one shipper.
        # Replaced whole, never changed in place: the raw feed decodes on two
        # threads at times (ahead of a flush, and again in it after a rebalance).
        self._json_shapes: tuple[pa.Schema, ...] = _JSON_SHAPES

    def __call__(self, records: Sequence[Record]) -> tuple[pa.Table, list[DeadLetter]]:
        if not records:
            return EVENT_SCHEMA.empty_table(), []
        cols = (
            records
            if isinstance(records, RecordColumns)
            else RecordColumns.of(records[0].topic, records[0].partition, records)
        )
        topic, partition = cols.topic, cols.partition
        # A topic has few distinct keys (one per site or host): each is decoded once.
        encoded = pc.dictionary_encode(cols.keys)
        distinct = pa.array([key_site(k) for k in encoded.dictionary.to_pylist()], pa.string())
        keys = pc.take(distinct, encoded.indices)
        if _has_newline(cols.values):
            split = pc.split_pattern(cols.values, "\n")
            parent = pc.list_parent_indices(split)
            lines = self._lines(split.flatten())
            first_of_record = pc.take(split.offsets, parent)
            index = pc.subtract(pa.array(np.arange(len(lines), dtype=np.int32)), first_of_record)
            rec_offsets = pc.take(cols.offsets, parent)
            key_sites = pc.take(keys, parent)
        else:  # one line a record, as most shippers send: no split, no copy
            parent = pa.array(np.arange(len(cols), dtype=np.int32))
            lines = self._lines(cols.values)
            index = pa.array(np.zeros(len(cols), dtype=np.int32))
            rec_offsets, key_sites = cols.offsets, keys
        ids = pc.add(pc.multiply(rec_offsets, MAX_LINES_PER_RECORD), index.cast(pa.int64()))
        t = pa.table({"line": lines, "rec": parent, "idx": index, "id": ids, "key_site": key_sites})
        dead: list[DeadLetter] = []
        # An empty line (a record's trailing newline) is not a line at all.
        nonempty = pc.not_equal(pc.binary_length(t["line"]), 0)
        if not pc.all(nonempty).as_py():
            t = t.filter(nonempty)
        too_many = pc.greater_equal(t["idx"], MAX_LINES_PER_RECORD)
        if pc.any(too_many).as_py():
            for rec, line in zip(*_cols(t.filter(too_many), "rec", "line"), strict=True):
                dead.append(
                    DeadLetter(
                        records[rec],
                        f"record has more than {MAX_LINES_PER_RECORD} lines",
                        line,
                        "too_many_lines",
                    )
                )
            t = t.filter(pc.invert(too_many))
        t, json_dead = self._unwrap_json(t, cols)
        dead += json_dead
        unwrapped = t["json_site"].null_count < t.num_rows or t["json_host"].null_count < t.num_rows
        site = (
            pc.coalesce(t["key_site"], t["json_site"], t["json_host"], pa.scalar(self.default_site))
            if unwrapped
            else pc.fill_null(t["key_site"], self.default_site)
        )
        sites = pc.unique(site)
        if not pc.all(pc.match_substring_regex(sites, SITE_RE.pattern)).as_py():
            bad_site = pc.invert(pc.match_substring_regex(site, SITE_RE.pattern))
            for rec, line, s in zip(
                *_cols(t.filter(bad_site).append_column("s", site.filter(bad_site)), "rec", "line", "s"),
                strict=True,
            ):
                dead.append(
                    DeadLetter(records[rec], f"site {s!r} is not a valid site name", line, "invalid_site")
                )
            t = t.append_column("site", site).filter(pc.invert(bad_site))
            sites = pc.unique(t["site"])
        else:
            t = t.append_column("site", site)
        host = pc.fill_null(t["json_host"], "")
        t = t.append_column("host", host)
        parts: list[pa.Table] = []
        hosts = pc.unique(host) if len(sites) == 1 else None
        if hosts is not None and len(hosts) == 1:
            # One site, one host (a partition usually carries one shipper's lines): no grouping.
            groups = pa.table({"site": sites, "host": hosts})
        else:
            groups = t.group_by(["site", "host"], use_threads=False).aggregate([])
        for g_site, g_host in zip(*_cols(groups, "site", "host"), strict=True):
            g = (
                t
                if groups.num_rows == 1
                else t.filter(pc.and_(pc.equal(t["site"], g_site), pc.equal(t["host"], g_host)))
            )
            ctx = ParseContext(site=g_site, source_id=f"{topic}:{partition}", host=g_host)
            result = self.parser(g["message"], g["id"], ctx)
            parts.append(result.events)
            if result.rejects:
                by_id = dict(zip(*_cols(g, "id", "rec"), strict=True))
                for rj in result.rejects:
                    dead.append(DeadLetter(records[by_id[rj.offset]], rj.reason, rj.line))
        table = pa.concat_tables(parts) if parts else EVENT_SCHEMA.empty_table()
        return table, dead

    def _lines(self, raw: pa.Array) -> pa.Array:
        """Lines as the shipper's reader makes them: cut, ``\r`` stripped, invalid UTF-8 replaced."""
        if len(raw) and (pc.max(pc.binary_length(raw)).as_py() or 0) > self.MAX_LINE_BYTES:
            raw = pc.binary_slice(raw, 0, self.MAX_LINE_BYTES)
        try:
            lines = raw.cast(pa.string())
        except pa.ArrowInvalid:
            # Attackers control these bytes: U+FFFD keeps the line visible (and rejectable).
            lines = pa.array([b.decode("utf-8", "replace") for b in raw.to_pylist()], pa.string())
        if not pc.any(pc.ends_with(lines, "\r")).as_py():  # most shippers send no CR: no copy
            return lines
        return pc.utf8_rtrim(lines, characters="\r")

    def _unwrap_json(self, t: pa.Table, records: Sequence[Record]) -> tuple[pa.Table, list[DeadLetter]]:
        """Columns message/json_site/json_host: JSON lines unwrapped, plain lines as they are.

        Both parts get the same columns whatever the batch holds (only plain
        lines, only JSON lines, or none of one kind), so they always concatenate."""
        line = t["line"]
        if pc.any(pc.starts_with(line, " ")).as_py() or pc.any(pc.starts_with(line, "\t")).as_py():
            is_json = pc.match_substring_regex(line, r"^[ \t]*\{")
        else:  # no line starts with a blank (as most shippers send): a prefix check, no regex
            is_json = pc.starts_with(line, "{")
        if not pc.any(is_json).as_py():
            plain = t.append_column("message", t["line"])
            plain = plain.append_column("json_site", pa.nulls(plain.num_rows, pa.string()))
            return plain.append_column("json_host", pa.nulls(plain.num_rows, pa.string())), []
        plain = t.filter(pc.invert(is_json))
        plain = plain.append_column("message", plain["line"])
        plain = plain.append_column("json_site", pa.nulls(plain.num_rows, pa.string()))
        plain = plain.append_column("json_host", pa.nulls(plain.num_rows, pa.string()))
        js = t.filter(is_json)
        dead: list[DeadLetter] = []
        parsed, ok, self._json_shapes = _read_json_lines(js["line"], self._json_shapes)
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
# The fields read from a JSON line, in the two shapes shippers give `host`:
# a string (Vector, rsyslog/syslog-ng templates) or an object with `name`
# (Filebeat's ECS host.name). Arrow's reader takes one shape per block.
_JSON_SHAPES: Final = (
    pa.schema([("message", pa.string()), ("site", pa.string()), ("host", pa.string())]),
    pa.schema(
        [("message", pa.string()), ("site", pa.string()), ("host", pa.struct([("name", pa.string())]))]
    ),
)
_JSON_FIELDS: Final = _JSON_SHAPES[0]


def _read_json_lines(
    lines: pa.ChunkedArray, shapes: tuple[pa.Schema, ...] = _JSON_SHAPES
) -> tuple[pa.Table, pa.Array, tuple[pa.Schema, ...]]:
    """Parse JSON lines with Arrow's reader; a block that fails is redone line by line for reasons.

    ``shapes`` (of ``_JSON_SHAPES``) are tried in order; returned with the
    one that read the block first, for the next call."""
    n = len(lines)
    # Each line and its newline, end to end, straight from the Arrow buffers (no str per line).
    ended = pc.binary_join_element_wise(lines.combine_chunks(), "", "\n").cast(pa.large_string())
    offsets = np.frombuffer(ended.buffers()[1], dtype=np.int64, count=len(ended) + 1, offset=ended.offset * 8)
    joined = ended.buffers()[2][int(offsets[0]) : int(offsets[-1])] if n else b""
    for shape in shapes:
        try:
            table = pajson.read_json(
                pa.BufferReader(joined),
                parse_options=pajson.ParseOptions(explicit_schema=shape, unexpected_field_behavior="ignore"),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue
        if table.num_rows != n:  # a line held more than one object: the slow path says which
            break
        first = (shape, *(s for s in shapes if s is not shape))
        host = table["host"]
        if pa.types.is_struct(host.type):
            table = table.set_column(2, "host", pc.struct_field(host, "name"))
        ok = pc.is_valid(table["message"])
        errors = pc.if_else(ok, pa.scalar(None, pa.string()), _NO_MESSAGE)
        ok = ok.combine_chunks() if isinstance(ok, pa.ChunkedArray) else ok
        return table.append_column("_error", errors), ok, first
    # The slow path runs only for a block holding a malformed or odd-typed
    # object, so it can say which line and why.
    rows = [_read_json_line(line) for line in lines.to_pylist()]
    table = pa.Table.from_pylist(rows, schema=_JSON_FIELDS.append(pa.field("_error", pa.string())))
    return table, pc.is_null(table["_error"]), shapes


def _read_json_line(line: str) -> dict[str, str | None]:
    row: dict[str, str | None] = {"message": None, "site": None, "host": None, "_error": None}
    try:
        obj = json.loads(line)
    except ValueError as exc:
        row["_error"] = f"not valid JSON: {exc}"
        return row
    if not isinstance(obj, dict) or not isinstance(obj.get("message"), str):
        row["_error"] = _NO_MESSAGE
        return row
    host = obj.get("host")
    if isinstance(host, dict):
        host = host.get("name")
    fields = {"message": obj["message"], "site": obj.get("site"), "host": host}
    for k, v in fields.items():
        if not isinstance(v, str):
            continue
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            # "\ud800": an escape of half a surrogate pair is no character; Arrow refuses it too
            row["_error"] = f"not valid JSON: `{k}` holds an unpaired surrogate escape"
            return row
        row[k] = v
    return row


def _has_newline(values: pa.Array) -> bool:
    """Whether any value holds a newline: one pass over the bytes (``match_substring`` is 10x slower)."""
    if not len(values):
        return False
    offsets = values.buffers()[1]
    data = values.buffers()[2]
    if data is None:
        return False
    first, end = np.frombuffer(offsets, np.int32, count=len(values) + 1, offset=values.offset * 4)[[0, -1]]
    view = np.frombuffer(data, np.uint8, count=int(end - first), offset=int(first))
    return bool((view == 0x0A).any())


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
