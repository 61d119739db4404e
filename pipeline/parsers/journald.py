"""journald's JSON export (``journalctl -k -o json``) of netfilter LOG messages to events.

Every value is a string, except ``MESSAGE``, which journald writes as an
array of byte values when it is not valid UTF-8. ``MESSAGE`` is the kernel's
LOG body without syslog header or uptime stamp, so the body is read by the
netfilter parser itself: each message is given a fixed syslog header, parsed,
and the event then takes journald's ``__REALTIME_TIMESTAMP`` (µs since 1970,
the time journald received it: the kernel's own stamp is relative to boot)
and ``_HOSTNAME``. Byte-array messages are decoded as UTF-8 with the invalid
bytes escaped (``\\xff``), and go the same way; they alone take a per-line
path, being rare. Kernel messages that are not netfilter LOG lines are
rejected with the netfilter parser's reason.

The native scanner (`native_formats`, ``formats/journald.rs``) reads the
entries it is sure of (a strict JSON reader, then the netfilter scanner on
``MESSAGE`` behind the same header); every other entry, byte-array messages
among them, goes to `parse_arrow`, which also explains rejects. Either
switch turns it off: ``FIREPLOT_NATIVE=off``, or the netfilter scanner's own
(``FIREPLOT_NETFILTER_ENGINE=arrow``), since it reads ``MESSAGE``.
"""

from __future__ import annotations

import json
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.event import EVENT_SCHEMA, TS_TYPE
from pipeline.parsers import ParseContext, ParseResult, jsonlines, native_formats, netfilter
from pipeline.parsers.assemble import non_empty, plain, quote, rejects, start
from pipeline.parsers.netfilter_grammar import prefix_and_action

SCHEMA: Final = pa.schema(
    [("__REALTIME_TIMESTAMP", pa.string()), ("_HOSTNAME", pa.string()), ("MESSAGE", pa.string())]
)
# A header every netfilter line may carry; its time and host are replaced.
_HEADER: Final = "Jan  1 00:00:00 journald "
_BYTE_ARRAY: Final = r'"MESSAGE"\s*:\s*\['
# The prefix as netfilter's: its action from its words.
_SHAPE: Final = native_formats.Shape(prefix_action=prefix_and_action)


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn journald JSON entries carrying netfilter LOG messages into events; reject the rest."""
    # The native path reads MESSAGE with the netfilter scanner, which its own switch can turn off.
    if netfilter.engine() == "arrow":
        return parse_arrow(lines, offsets, ctx)
    return native_formats.parse("journald", parse_arrow, _SHAPE, lines, offsets, ctx)


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` on the pyarrow path alone: the reference of the native scanner."""
    lines, offsets = start(lines, offsets)
    as_bytes = pc.fill_null(pc.match_substring_regex(lines, _BYTE_ARRAY), False)
    table, positions, rejected = jsonlines.read(pc.if_else(as_bytes, "", lines), SCHEMA)
    # The blanked byte-array lines came back as "empty line": read them here instead.
    rejected = [(p, r) for p, r in rejected if not as_bytes[p].as_py()]
    byte_rows = pc.indices_nonzero(as_bytes).to_pylist()
    if byte_rows:
        extra_rows, extra_positions = [], []
        for position in byte_rows:
            entry, reason = _decode(str(lines[position].as_py()))
            if entry is None:
                rejected.append((position, reason))
            else:
                extra_rows.append(entry)
                extra_positions.append(position)
        if extra_rows:
            table = pa.concat_tables([table, pa.Table.from_pylist(extra_rows, schema=SCHEMA)])
            positions = pa.concat_arrays([positions, pa.array(extra_positions, pa.int64())])
            order = pc.sort_indices(positions)
            table, positions = table.take(order), pc.take(positions, order)

    realtime = plain(table.column("__REALTIME_TIMESTAMP"))
    message = plain(table.column("MESSAGE"))
    has_message = pc.is_valid(message)
    realtime_ok = pc.fill_null(pc.match_substring_regex(realtime, r"^\d{1,17}$"), False)
    problems = pc.indices_nonzero(pc.or_(pc.invert(has_message), pc.invert(realtime_ok))).to_pylist()
    for row in problems:
        position = int(positions[row].as_py())
        if not has_message[row].as_py():
            rejected.append((position, "no MESSAGE field"))
        else:
            rejected.append((position, f"bad __REALTIME_TIMESTAMP {quote(str(realtime[row].as_py()))}"))
    usable = pc.and_(has_message, realtime_ok)
    rows = pc.indices_nonzero(usable).cast(pa.int64())

    body = pc.binary_join_element_wise(_HEADER, pc.take(message, rows), "")
    # The netfilter parser sees row numbers as offsets, so its results map back.
    inner = netfilter.parse(body, rows, ctx)
    rejected += [(int(positions[r.offset].as_py()), f"MESSAGE: {r.reason}") for r in inner.rejects]

    events = inner.events
    made = events.column("source_offset").combine_chunks()
    ts = pc.cast(pc.take(realtime, made), pa.int64()).cast(TS_TYPE)
    host = pc.coalesce(
        non_empty(pc.take(plain(table.column("_HOSTNAME")), made)),
        pa.scalar(ctx.host or "unknown", pa.string()),
    )
    events = events.set_column(events.schema.get_field_index("ts"), EVENT_SCHEMA.field("ts"), ts)
    events = events.set_column(events.schema.get_field_index("host"), EVENT_SCHEMA.field("host"), host)
    events = events.set_column(
        events.schema.get_field_index("source_offset"),
        EVENT_SCHEMA.field("source_offset"),
        pc.take(offsets, pc.take(positions, made)),
    )
    return ParseResult(events, rejects(lines, offsets, ctx, rejected))


def _decode(line: str) -> tuple[dict[str, str | None] | None, str]:
    """An entry whose MESSAGE is a byte array, with the message decoded; or why not."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        return None, f"not valid JSON: {error.msg} (column {error.colno})"
    except RecursionError:
        return None, "not readable JSON: nested too deeply"
    if not isinstance(entry, dict):
        return None, "JSON value is not an object"
    raw = entry.get("MESSAGE")
    if not isinstance(raw, list) or not all(isinstance(b, int) and 0 <= b <= 255 for b in raw):
        return None, "MESSAGE is neither a string nor an array of byte values"
    fields: dict[str, str | None] = {}
    for name in ("__REALTIME_TIMESTAMP", "_HOSTNAME"):
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            return None, f"field {quote(name)} is not a string"
        fields[name] = value
    fields["MESSAGE"] = bytes(raw).decode("utf-8", errors="backslashreplace")
    return fields, ""
