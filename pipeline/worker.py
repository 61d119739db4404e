"""The archive worker: a faust app that writes the events and raw-lines topics into the Parquet store.

Exactly-once effect without Kafka transactions (see ``pipeline.store``):
records are taken with ``noack_take`` and acknowledged only after the flush
that holds them is durable; on first sight of a partition the worker trims
whatever an interrupted flush left, and every flush skips offsets the store
already has and event ids it already holds (shipper re-sends). Each flush of
a partition runs under that partition's lock and re-reads its manifest, so a
worker that lost the partition in a rebalance while flushing and the new
owner never interleave.

Two agents, one per topic, each with its own ``ArchiveSink``: the events
topic (Arrow batches, ``pipeline.wire``) and the raw-lines topic (plain or
JSON-wrapped log lines from rsyslog/Filebeat/Vector/Fluent Bit, parsed with
the shared parsers, see ``RawLines``). Events dated beyond
``[worker] future_tolerance_s`` are stored in their event-time partition and
counted (``fireplot_worker_future_events_total``); nothing is dropped for it.

faust traps this design avoids:
- the sink agent runs with concurrency 1: with more, faust can commit past an
  event that is still being processed (faust issue 606);
- faust acks an event when the agent raises, so nothing escapes the loop: a
  record that cannot be decoded goes to the dead-letter directory with its
  reason, and a flush that cannot be written stops the process *without*
  acking, so Kafka redelivers after restart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from pipeline import parsers, wire
from pipeline.config import Config, ConfigError
from pipeline.event import EVENT_SCHEMA, TS_TYPE
from pipeline.parsers import ParseContext, Parser
from pipeline.store import OffsetRange, PartitionState, Store

log = logging.getLogger("fireplot.worker")


SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_LINES_PER_RECORD = 2**16  # raw event id = offset * 2**16 + line index


@dataclass(frozen=True)
class Record:
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
        self._json_shapes = list(_JSON_SHAPES)

    def __call__(self, records: Sequence[Record]) -> tuple[pa.Table, list[DeadLetter]]:
        if not records:
            return EVENT_SCHEMA.empty_table(), []
        topic, partition = records[0].topic, records[0].partition
        values = pa.array([r.value for r in records], pa.binary())
        # A topic has few distinct keys (one per site or host): each is decoded once.
        key_sites: dict[bytes | None, str | None] = {}
        keys = pa.array(
            [
                key_sites[r.key] if r.key in key_sites else key_sites.setdefault(r.key, _key_site(r.key))
                for r in records
            ],
            pa.string(),
        )
        split = pc.split_pattern(values, "\n")
        parent = pc.list_parent_indices(split)
        lines = self._lines(split.flatten())
        first_of_record = pc.take(split.offsets, parent)
        index = pc.subtract(pa.array(np.arange(len(lines), dtype=np.int32)), first_of_record)
        rec_offsets = pc.take(pa.array([r.offset for r in records], pa.int64()), parent)
        ids = pc.add(pc.multiply(rec_offsets, MAX_LINES_PER_RECORD), index.cast(pa.int64()))
        t = pa.table(
            {"line": lines, "rec": parent, "idx": index, "id": ids, "key_site": pc.take(keys, parent)}
        )
        dead: list[DeadLetter] = []
        # An empty line (a record's trailing newline) is not a line at all.
        t = t.filter(pc.not_equal(pc.binary_length(t["line"]), 0))
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
        t, json_dead = self._unwrap_json(t, records)
        dead += json_dead
        site = pc.coalesce(t["key_site"], t["json_site"], t["json_host"], pa.scalar(self.default_site))
        if not pc.all(pc.match_substring_regex(pc.unique(site), SITE_RE.pattern)).as_py():
            bad_site = pc.invert(pc.match_substring_regex(site, SITE_RE.pattern))
            for rec, line, s in zip(
                *_cols(t.filter(bad_site).append_column("s", site.filter(bad_site)), "rec", "line", "s"),
                strict=True,
            ):
                dead.append(
                    DeadLetter(records[rec], f"site {s!r} is not a valid site name", line, "invalid_site")
                )
            t = t.append_column("site", site).filter(pc.invert(bad_site))
        else:
            t = t.append_column("site", site)
        host = pc.fill_null(t["json_host"], "")
        t = t.append_column("host", host)
        parts: list[pa.Table] = []
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
        is_json = pc.match_substring_regex(t["line"], r"^[ \t]*\{")
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
        parsed, ok = _read_json_lines(js["line"], self._json_shapes)
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
    lines: pa.ChunkedArray, shapes: list[pa.Schema] | None = None
) -> tuple[pa.Table, pa.Array]:
    """Parse JSON lines with Arrow's reader; a block that fails is redone line by line for reasons.

    ``shapes`` (of ``_JSON_SHAPES``) are tried in order; the one that read
    the block moves to the front for the next call."""
    n = len(lines)
    # Each line and its newline, end to end, straight from the Arrow buffers (no str per line).
    ended = pc.binary_join_element_wise(lines.combine_chunks(), "", "\n").cast(pa.large_string())
    offsets = np.frombuffer(ended.buffers()[1], dtype=np.int64, count=len(ended) + 1, offset=ended.offset * 8)
    joined = ended.buffers()[2][int(offsets[0]) : int(offsets[-1])] if n else b""
    shapes = shapes if shapes is not None else list(_JSON_SHAPES)
    for shape in list(shapes):
        try:
            table = pajson.read_json(
                pa.BufferReader(joined),
                parse_options=pajson.ParseOptions(explicit_schema=shape, unexpected_field_behavior="ignore"),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue
        if table.num_rows != n:  # a line held more than one object: the slow path says which
            break
        shapes.remove(shape)
        shapes.insert(0, shape)
        host = table["host"]
        if pa.types.is_struct(host.type):
            table = table.set_column(2, "host", pc.struct_field(host, "name"))
        ok = pc.is_valid(table["message"])
        errors = pc.if_else(ok, pa.scalar(None, pa.string()), _NO_MESSAGE)
        return table.append_column("_error", errors), ok.combine_chunks() if isinstance(
            ok, pa.ChunkedArray
        ) else ok
    # The slow path runs only for a block holding a malformed or odd-typed
    # object, so it can say which line and why.
    rows = [_read_json_line(line) for line in lines.to_pylist()]
    table = pa.Table.from_pylist(rows, schema=_JSON_FIELDS.append(pa.field("_error", pa.string())))
    return table, pc.is_null(table["_error"])


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


def _cols(t: pa.Table, *names: str) -> list[list[Any]]:
    return [t.column(n).to_pylist() for n in names]


def _key_site(key: bytes | None) -> str | None:
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


@dataclass
class SinkStats:
    records: int = 0
    events_written: int = 0
    bytes_written: int = 0
    files_written: int = 0
    skipped_records: int = 0
    duplicates_dropped: int = 0
    future_events: int = 0
    dead_letters: int = 0
    dead_letters_by_kind: dict[str, int] = field(default_factory=dict)
    flushes: int = 0
    last_flush_s: float = 0.0
    flush_seconds_sum: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


class ArchiveSink:
    """Turns batches of Kafka records into committed Parquet flushes. No faust inside:
    the same object serves the worker and the tests and benchmarks that drive it directly."""

    def __init__(
        self,
        store: Store,
        dead_letter_dir: Path,
        decode: Decoder = decode_event_batches,
        future_tolerance_s: float = 3600.0,
    ) -> None:
        self.store = store
        self.dead_letter_dir = dead_letter_dir
        self.decode = decode
        self.future_tolerance_s = future_tolerance_s
        self.recovered: set[tuple[str, int]] = set()
        self.stats = SinkStats()

    def forget(self) -> None:
        """Forget what we know of partitions (after a rebalance another worker may have written)."""
        self.recovered.clear()

    def flush(self, records: Sequence[Record]) -> None:
        started = time.monotonic()
        by_tp: dict[tuple[str, int], list[Record]] = {}
        for r in records:
            by_tp.setdefault((r.topic, r.partition), []).append(r)
        with contextlib.ExitStack() as locks:
            # Under the partition locks the manifests are the truth: a worker that
            # lost a partition in a rebalance may have flushed since we looked.
            # Taken in one order, so two workers never wait on each other in a cycle.
            for topic, partition in sorted(by_tp):
                locks.enter_context(self.store.partition_lock(topic, partition))
            # A generator: the store encodes one partition's files while the next is decoded.
            results = self.store.write_many(self._prepare(by_tp))
        for result in results:
            self.stats.files_written += len(result.paths)
            self.stats.events_written += result.events_written
            self.stats.bytes_written += result.bytes_written
            self.stats.duplicates_dropped += result.duplicates_dropped
        self.stats.flushes += 1
        self.stats.last_flush_s = time.monotonic() - started
        self.stats.flush_seconds_sum += self.stats.last_flush_s

    def _prepare(
        self, by_tp: dict[tuple[str, int], list[Record]]
    ) -> Iterator[tuple[OffsetRange, pa.Table, PartitionState]]:
        """Each partition's records not yet in the store, decoded: (range, events, manifest state).

        Runs under the partition locks: the manifests read here are the truth."""
        for (topic, partition), recs in by_tp.items():
            if (topic, partition) not in self.recovered:
                _, removed = self.store.recover(topic, partition)
                for path in removed:
                    log.warning("removed leftover of an interrupted flush: %s", path)
                self.recovered.add((topic, partition))
            state = self.store.partition_state(topic, partition)
            fresh = [r for r in recs if r.offset > state.last_offset]
            self.stats.skipped_records += len(recs) - len(fresh)
            if not fresh:
                continue
            table, dead = self._decode(fresh)
            table, bad = _valid_sites(table)
            if bad.num_rows:
                dead.append(
                    DeadLetter(
                        fresh[0],
                        f"{bad.num_rows} events with invalid site names: "
                        f"{sorted(set(bad.column('site').to_pylist()))[:5]!r}",
                        kind="invalid_site",
                    )
                )
            self._dead_letters(dead)
            self._count_future(table)
            self.stats.records += len(fresh)
            yield OffsetRange(topic, partition, fresh[0].offset, fresh[-1].offset), table, state

    def _decode(self, records: list[Record]) -> tuple[pa.Table, list[DeadLetter]]:
        """Decode a partition's records; a record that makes the decoder itself fail is
        isolated and dead-lettered, so one poisonous record cannot wedge the partition
        in a crash-and-redeliver loop."""
        try:
            return self.decode(records)
        except Exception as exc:
            if len(records) == 1:
                log.exception(
                    "decoder failed on %s[%d]@%d", records[0].topic, records[0].partition, records[0].offset
                )
                return EVENT_SCHEMA.empty_table(), [
                    DeadLetter(records[0], f"decoder failed: {exc!r}", kind="decoder_failed")
                ]
        mid = len(records) // 2
        left, right = self._decode(records[:mid]), self._decode(records[mid:])
        return pa.concat_tables([left[0], right[0]]), left[1] + right[1]

    def _count_future(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        limit = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.future_tolerance_s)
        n = pc.sum(pc.greater(table["ts"], pa.scalar(limit, TS_TYPE))).as_py() or 0
        if n:
            # Kept in their event-time partition (a skewed firewall clock is
            # not a reason to lose packets); counted so the skew gets fixed.
            self.stats.future_events += n
            log.warning("%d events dated more than %.0f s in the future", n, self.future_tolerance_s)

    def _dead_letters(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        self.stats.dead_letters += len(dead)
        for d in dead:
            self.stats.dead_letters_by_kind[d.kind] = self.stats.dead_letters_by_kind.get(d.kind, 0) + 1
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
        path = self.dead_letter_dir / f"{dead[0].record.topic}.jsonl"
        entries = []
        for d in dead:
            entry: dict[str, object] = {
                "topic": d.record.topic,
                "partition": d.record.partition,
                "offset": d.record.offset,
                "reason": d.reason,
                "kind": d.kind,
                "site": _key_site(d.record.key),  # per-site rejects (pipeline.health)
            }
            if d.line is not None:
                entry["line"] = d.line
            else:
                entry["value_base64"] = base64.b64encode(d.record.value).decode()
            entries.append(json.dumps(entry) + "\n")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(entries))
            fh.flush()
            os.fsync(fh.fileno())
        log.error(
            "%d records or lines of %s sent to dead letters, first: %s", len(dead), path.name, dead[0].reason
        )


def _valid_sites(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Split off events whose site could escape the store's directory layout."""
    if not table.num_rows:
        return table, table
    distinct = pc.unique(table["site"])
    if pc.all(pc.match_substring_regex(distinct, SITE_RE.pattern)).as_py():
        return table, table.slice(0, 0)
    ok = pc.match_substring_regex(table["site"], SITE_RE.pattern)
    return table.filter(ok), table.filter(pc.invert(ok))


def _metrics_text(
    sinks: dict[str, ArchiveSink], lag: dict[tuple[str, int], int], extra: dict[str, float]
) -> str:
    """Prometheus text exposition: counters end in _total, base units, no addresses as labels."""
    rows: list[tuple[str, str, str, list[tuple[str, float]]]] = []

    def add(name: str, kind: str, help_: str, values: list[tuple[str, float]]) -> None:
        rows.append((name, kind, help_, values))

    def per_topic(attr: str) -> list[tuple[str, float]]:
        return [(f'{{topic="{t}"}}', float(getattr(s.stats, attr))) for t, s in sinks.items()]

    add("records_total", "counter", "Kafka records archived", per_topic("records"))
    add("events_written_total", "counter", "events written to Parquet", per_topic("events_written"))
    add("bytes_written_total", "counter", "Parquet bytes written", per_topic("bytes_written"))
    add("files_written_total", "counter", "Parquet files written", per_topic("files_written"))
    add(
        "records_skipped_total",
        "counter",
        "redelivered records already in the store",
        per_topic("skipped_records"),
    )
    add(
        "duplicate_events_dropped_total",
        "counter",
        "events whose id the store already held",
        per_topic("duplicates_dropped"),
    )
    add(
        "future_events_total",
        "counter",
        "events dated beyond future_tolerance_s (kept)",
        per_topic("future_events"),
    )
    add("dead_letters_total", "counter", "records or lines sent to dead letters", per_topic("dead_letters"))
    add(
        "dead_letters_by_reason_total",
        "counter",
        "records or lines sent to dead letters, by reason (pipeline.worker.DEAD_LETTER_KINDS)",
        [
            (f'{{topic="{t}",reason="{k}"}}', float(s.stats.dead_letters_by_kind.get(k, 0)))
            for t, s in sinks.items()
            for k in DEAD_LETTER_KINDS
        ],
    )
    add("flushes_total", "counter", "flushes", per_topic("flushes"))
    add("flush_seconds_total", "counter", "time spent flushing", per_topic("flush_seconds_sum"))
    add("last_flush_seconds", "gauge", "duration of the latest flush", per_topic("last_flush_s"))
    add(
        "consumer_lag_records",
        "gauge",
        "records between the committed offset and the partition end",
        [(f'{{topic="{t}",partition="{p}"}}', float(v)) for (t, p), v in sorted(lag.items())],
    )
    for name, value in extra.items():
        add(name, "gauge", name.replace("_", " "), [("", value)])
    out = []
    for name, kind, help_, values in rows:
        full = f"fireplot_worker_{name}"
        out.append(f"# HELP {full} {help_}\n# TYPE {full} {kind}\n")
        out += [f"{full}{labels} {value:g}\n" for labels, value in values]
    return "".join(out)


class PatternTopics:
    """Which topics each sink reads: its own topic plus every topic matching its pattern.

    faust 0.15's ``app.topic(pattern=...)`` subscribes to nothing (its
    consumer subscribes by name only), so the worker lists the cluster's
    topics itself and grows each agent's name list in place. The lists are
    the very objects the agents' topics hold, so an agent archives a new
    topic from the resubscription on. Patterns match whole names; a topic
    already read by one sink is never given to another.
    """

    def __init__(self, patterns: dict[str, str]) -> None:
        self.names: dict[str, list[str]] = {local: [local] for local in patterns}
        self.patterns: dict[str, re.Pattern[str]] = {}
        for local, pattern in patterns.items():
            if not pattern:
                continue
            try:
                self.patterns[local] = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    f"topic pattern {pattern!r} (for {local}) is not a regular expression: {exc}"
                ) from None

    def add(self, existing: Iterable[str]) -> list[str]:
        """Take up the existing topics that match a pattern; the names newly added."""
        taken = {n for names in self.names.values() for n in names}
        added: list[str] = []
        for name in sorted(existing):
            if name in taken:
                continue
            for local, pattern in self.patterns.items():
                if pattern.fullmatch(name):
                    self.names[local].append(name)
                    taken.add(name)
                    added.append(name)
                    break
        return added


def _list_topics(cfg: Config) -> set[str]:
    from kafka import KafkaAdminClient

    from pipeline.kafka_security import client_kwargs

    admin = KafkaAdminClient(
        bootstrap_servers=cfg.kafka.effective_bootstrap, request_timeout_ms=10000, **client_kwargs(cfg.kafka)
    )
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def make_app(cfg: Config) -> Any:
    import faust

    from pipeline.kafka_security import faust_credentials

    bootstrap = cfg.kafka.effective_bootstrap
    datadir = Path(cfg.kafka.var_dir) / "faust" / cfg.worker.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    from faust.tables import TableManager

    class NoTablesManager(TableManager):
        """faust's table manager without its start-up second.

        faust sleeps 1 s before subscribing so that tables defined late still
        register; this app defines no tables, and a worker (re)started under a
        backlog would only lose that second of archiving."""

        async def on_start(self) -> None:
            if not self.should_stop:
                await self._update_channels()
                await self.recovery.start()

    app = faust.App(
        cfg.worker.app_id,
        TableManager=NoTablesManager,
        broker=",".join(f"kafka://{b.strip()}" for b in bootstrap.split(",")),
        broker_credentials=faust_credentials(cfg.kafka),
        store="memory://",
        datadir=str(datadir),
        web_bind="127.0.0.1",
        web_port=cfg.worker.web_port,
        web_host="127.0.0.1",
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1,
        broker_commit_interval=0.5,
        consumer_max_fetch_size=16 * 1024 * 1024,
        # Bounds memory by events-topic records (up to 8192 events each); a raw
        # flush takes more, smaller records than this through the same stream.
        # With 4 flushes' worth the buffer filled while a flush was written, faust
        # paused fetching, and the worker then waited ~0.5 s per 4 flushes for the
        # next fetch to arrive (bench_sink); 8 keeps records flowing, same peak RSS.
        stream_buffer_maxsize=8 * cfg.worker.flush_max_records,
        broker_session_timeout=cfg.worker.session_timeout_s,
        # heartbeats well inside the session, as Kafka requires (< 1/3)
        broker_heartbeat_interval=min(3.0, cfg.worker.session_timeout_s / 4),
    )
    store = Store(cfg.worker.store_dir, check_all_ids=cfg.worker.check_all_ids)
    dead_dir = Path(cfg.worker.store_dir) / "_dead_letters"
    sinks: dict[str, ArchiveSink] = {
        cfg.kafka.events_topic: ArchiveSink(store, dead_dir, future_tolerance_s=cfg.worker.future_tolerance_s)
    }
    if cfg.worker.raw_enabled:
        sinks[cfg.kafka.raw_topic] = ArchiveSink(
            store,
            dead_dir,
            RawLines(raw_parser(cfg.worker.raw_format), cfg.worker.raw_default_site),
            future_tolerance_s=cfg.worker.future_tolerance_s,
        )
    started = time.monotonic()
    last_flush_at: dict[str, float] = {}
    pattern_of = {
        cfg.kafka.events_topic: cfg.kafka.events_topic_pattern,
        cfg.kafka.raw_topic: cfg.kafka.raw_topic_pattern,
    }
    topics = PatternTopics({name: pattern_of[name] for name in sinks})
    if topics.patterns:
        for name in topics.add(_list_topics(cfg)):
            log.info("archiving topic %s (matches a topic pattern)", name)

    def sink_agent(topic_name: str) -> None:
        topic = app.topic(
            topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        topic.topics = topics.names[topic_name]  # shared with the agent's clones; grows by discovery
        sink = sinks[topic_name]
        raw = topic_name != cfg.kafka.events_topic
        max_records = cfg.worker.raw_flush_max_records if raw else cfg.worker.flush_max_records

        # concurrency > 1 can commit past unprocessed events (faust#606)
        @app.agent(topic, concurrency=1, name=f"archive-{topic_name}")
        async def archive(stream: Any) -> None:
            loop = asyncio.get_running_loop()
            async for events in stream.noack_take(max_records, within=cfg.worker.flush_interval_s):
                records = [
                    Record(
                        e.message.topic,
                        e.message.partition,
                        e.message.offset,
                        e.message.value or b"",
                        e.message.key,
                    )
                    for e in events
                ]
                try:
                    # Parquet writing and fsync block; keep them off the loop so
                    # heartbeats continue and the group does not rebalance under us.
                    await loop.run_in_executor(None, sink.flush, records)
                except Exception:
                    log.exception("flush failed; exiting without acking so Kafka redelivers")
                    os._exit(75)  # EX_TEMPFAIL: the supervisor restarts us
                last_flush_at[topic_name] = time.monotonic()
                for e in events:
                    await stream.ack(e)

    for name in sinks:
        sink_agent(name)

    if topics.patterns:
        # faust waits 45 s after a subscription change to batch agents restarting
        # together; ours come one discovery at a time and should not wait that long.
        conductor: Any = app.topics
        conductor._resubscribe_sleep_lock_seconds = min(45.0, cfg.worker.topic_discovery_interval_s)

        @app.timer(interval=cfg.worker.topic_discovery_interval_s)  # type: ignore[untyped-decorator]
        async def discover_topics() -> None:
            loop = asyncio.get_running_loop()
            try:
                existing = await loop.run_in_executor(None, _list_topics, cfg)
            except Exception as exc:  # Kafka away: the topics we have keep flowing; try again
                log.warning("could not list topics for the topic patterns: %s", exc)
                return
            added = topics.add(existing)
            if added:
                log.info("archiving new topics %s (match a topic pattern); resubscribing", added)
            lists = [id(names) for names in topics.names.values()]
            for channel in list(app.topics):
                # Checked every round, not only when a topic was added: faust drops a
                # subscription change that arrives while the group rebalances (conductor
                # _subscriber), so a second new topic could otherwise never be read.
                ours = id(getattr(channel, "topics", None)) in lists
                if ours and conductor._topic_contain_unsubscribed_topics(channel):
                    # discard + add: the conductor's public way to flag a changed subscription
                    app.topics.discard(channel)
                    app.topics.add(channel)

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        for sink in sinks.values():
            sink.forget()

    if cfg.worker.maintenance_enabled:

        @app.timer(interval=cfg.worker.maintenance_interval_s)  # type: ignore[untyped-decorator]
        async def maintenance() -> None:
            from pipeline.compact import maintain

            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, maintain, cfg)
            except Exception:
                # Maintenance never loses data by failing: inputs stay until
                # their replacement is durable. Log and try again next round.
                log.exception("maintenance round failed")

    from pipeline.health import HealthMonitor, metrics_text, write_snapshot

    monitor = HealthMonitor(cfg)

    @app.timer(interval=cfg.health.interval_s)  # type: ignore[untyped-decorator]
    async def site_health() -> None:
        try:
            report = await asyncio.get_running_loop().run_in_executor(None, monitor.refresh)
            write_snapshot(cfg.worker.store_dir, report)
        except Exception:
            # Health is an observer: a failed round never stops archiving.
            log.exception("site health round failed")

    def _lag() -> dict[tuple[str, int], int]:
        lag: dict[tuple[str, int], int] = {}
        try:
            consumer = app.consumer
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                committed = getattr(consumer, "_committed_offset", {}).get(tp)
                if high is not None:
                    # faust keeps the last acked offset; the next to read is one past it
                    done = -1 if committed is None else int(committed)
                    lag[(tp.topic, tp.partition)] = max(0, int(high) - (done + 1))
        except Exception:  # lag is best effort; faust internals vary by version
            log.debug("consumer lag unavailable", exc_info=True)
        return lag

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        body = _metrics_text(sinks, _lag(), {"uptime_seconds": time.monotonic() - started})
        if monitor.latest is not None:
            body += metrics_text(monitor.latest)
        return web.text(body, content_type="text/plain; version=0.0.4")

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        # Healthy = the store is writable and faust's consumer runs; a worker
        # that has nothing to do is healthy.
        probe = Path(cfg.worker.store_dir) / "_sink" / ".health"
        status: dict[str, Any] = {"store_writable": True, "consumer_running": False}
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
        except OSError as exc:
            status["store_writable"] = False
            status["error"] = str(exc)
        try:
            status["consumer_running"] = bool(app.consumer and not app.consumer.should_stop)
            status["assigned_partitions"] = sorted(
                f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()
            )
        except Exception:  # before start there is no consumer
            log.debug("consumer state unavailable", exc_info=True)
        status["seconds_since_flush"] = {t: round(time.monotonic() - v, 3) for t, v in last_flush_at.items()}
        ok = status["store_writable"] and status["consumer_running"]
        return web.json(status, status=200 if ok else 503)

    return app


def run(cfg: Config, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGTERM/SIGINT."""
    from pipeline.broker import ensure_topics

    topics = {cfg.kafka.events_topic: cfg.kafka.events_partitions}
    if cfg.worker.raw_enabled:
        topics[cfg.kafka.raw_topic] = cfg.kafka.raw_partitions
    ensure_topics(cfg.kafka.effective_bootstrap, topics, wire.TOPIC_CONFIGS, cfg.kafka)
    app = make_app(cfg)
    # faust's entry point reads its own argv; ours has been parsed already.
    # faust spells its levels crit/error/warn/info/debug.
    faust_level = {"warning": "warn", "critical": "crit"}.get(loglevel, loglevel)
    sys.argv = ["fireplot-worker", "worker", "-l", faust_level]
    app.main()
