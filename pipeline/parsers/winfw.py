"""Windows Defender Firewall ``pfirewall.log`` (W3C extended log style) to events.

::

    #Version: 1.5
    #Software: Microsoft Windows Firewall
    #Time Format: Local
    #Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack
        tcpwin icmptype icmpcode info path
    2024-03-10 14:22:05 DROP TCP 198.51.100.7 192.0.2.10 51234 3389 52 S 1234 0 8192 - - - RECEIVE

Columns were appended over Windows versions (``pid``), so the ``#Fields``
header decides them. Which header applies to a line:

1. the last ``#Fields:`` line before it in the same batch;
2. else the last one this process saw for the same ``source_id`` (a file is
   read in many batches; the header sits at its start and after rollover);
3. else ``ctx.fields``, for a source that declares its columns out of band;
4. else the standard 1.5 columns, plus ``pid`` when a line has one more
   field: what a shipper resuming in the middle of a file will meet.

Times are local wall-clock times without offset: ``ctx.tz`` gives the zone.
DROP is ``drop``, ALLOW ``accept``; INFO-EVENTS-LOST records and the ``#``
header lines themselves are rejected with that reason.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.parsers import ParseContext, ParseResult, native_formats, syslog
from pipeline.parsers.assemble import (
    NULL_STRING,
    Read,
    finish,
    first,
    flag_words,
    joined,
    plain,
    protocol_names,
    quote,
    quoted,
    start,
)

STANDARD_FIELDS: Final = (
    "date", "time", "action", "protocol", "src-ip", "dst-ip", "src-port", "dst-port", "size",
    "tcpflags", "tcpsyn", "tcpack", "tcpwin", "icmptype", "icmpcode", "info", "path",
)  # fmt: skip
REQUIRED: Final = ("date", "time", "action", "protocol", "src-ip", "dst-ip")
ACTIONS: Final = {"DROP": "drop", "ALLOW": "accept"}
TCP_LETTERS: Final = {"A": "ACK", "P": "PSH", "S": "SYN", "F": "FIN", "R": "RST", "U": "URG"}
_REMEMBERED_SOURCES: Final = 4096

# source_id -> the last #Fields header seen in it, oldest first, bounded.
_headers: OrderedDict[str, tuple[str, ...]] = OrderedDict()
_headers_lock = threading.Lock()


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn pfirewall.log lines into events, and every other line into a reject.

    A batch without ``#`` lines whose columns are the standard ones (by the
    rules above) goes to the native scanner (`native_formats`), which reads
    the lines it is sure of; `parse_arrow`, the reference, reads the rest
    and every other batch.
    """
    lines, offsets = start(lines, offsets)
    layout = _native_layout(lines, ctx)
    if layout is None:
        return parse_arrow(lines, offsets, ctx)
    return native_formats.parse(layout, parse_arrow, _SHAPE, lines, offsets, ctx)


def _native_layout(lines: pa.Array, ctx: ParseContext) -> str | None:
    """The scanner's name for the batch's columns, None where they are not the standard ones."""
    if len(lines) == 0 or pc.any(pc.starts_with(lines, "#")).as_py():
        return None
    declared = _remembered(ctx.source_id) or ctx.fields
    if declared is None:
        return "winfw"
    if declared == STANDARD_FIELDS:
        return "winfw_standard"
    if declared == (*STANDARD_FIELDS, "pid"):
        return "winfw_pid"
    return None


def _flags(letters: pa.Array) -> pa.Array:
    return flag_words(letters, TCP_LETTERS)


_SHAPE: Final = native_formats.Shape(flags=_flags)


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` on the pyarrow path alone."""
    lines, offsets = start(lines, offsets)
    size = len(lines)
    is_comment = pc.starts_with(lines, "#")
    is_fields = pc.starts_with(lines, "#Fields:")
    header_at = pc.cumulative_max(pc.if_else(is_fields, pa.array(range(size), pa.int64()), -1))
    blank = pc.equal(pc.utf8_trim_whitespace(lines), "")
    data = pc.invert(pc.or_(is_comment, blank))

    remembered = _remembered(ctx.source_id)
    header_lines = pc.indices_nonzero(is_fields).to_pylist()
    headers: dict[int, tuple[str, ...] | None] = {-1: remembered or ctx.fields}
    for at in header_lines:
        headers[at] = tuple(str(lines[at].as_py())[len("#Fields:") :].split())
    if header_lines:
        _remember(ctx.source_id, headers[header_lines[-1]] or ())

    reads: list[Read] = []
    for at, declared in headers.items():
        rows = pc.and_(data, pc.equal(header_at, at))
        if pc.any(rows).as_py():
            reads.append(_read(lines, pc.indices_nonzero(rows).cast(pa.int64()), declared, ctx))
    read = _concat(reads)
    unmatched = pc.indices_nonzero(pc.invert(data)).cast(pa.int64())
    return finish(lines, offsets, ctx, read, unmatched, explain)


def forget(source_id: str) -> None:
    """Drop what is remembered of a source's header (its file was replaced)."""
    with _headers_lock:
        _headers.pop(source_id, None)


def _remembered(source_id: str) -> tuple[str, ...] | None:
    with _headers_lock:
        return _headers.get(source_id)


def _remember(source_id: str, fields: tuple[str, ...]) -> None:
    with _headers_lock:
        _headers[source_id] = fields
        _headers.move_to_end(source_id)
        while len(_headers) > _REMEMBERED_SOURCES:
            _headers.popitem(last=False)


def _read(lines: pa.Array, positions: pa.Array, declared: tuple[str, ...] | None, ctx: ParseContext) -> Read:
    text = pc.take(lines, positions)
    fields = declared if declared is not None else (*STANDARD_FIELDS, "pid")
    width = len(fields)
    found = pc.add(pc.count_substring(text, " "), 1)
    # Padding makes every field index exist; the count check rejects the short lines.
    parts = pc.split_pattern(pc.binary_join_element_wise(text, " -" * width, ""), " ")

    def column(name: str) -> pa.Array:
        if name not in fields:
            return pa.repeat(pa.scalar("-"), len(text))
        return plain(pc.list_element(parts, fields.index(name)))

    def dash_null(values: pa.Array) -> pa.Array:
        return pc.if_else(pc.equal(values, "-"), NULL_STRING, values)

    problem = pa.nulls(len(text), pa.string())
    missing = [name for name in REQUIRED if name not in fields]
    if missing:
        problem = pa.repeat(pa.scalar(f"the #Fields header names no {quote(missing[0])} column"), len(text))
    if declared is None:
        width_bad = pc.invert(pc.is_in(found, value_set=pa.array([width - 1, width], pa.int64())))
        expected = f"{width - 1} or {width}"
    else:
        width_bad = pc.not_equal(found, width)
        expected = str(width)
    problem = first(
        problem,
        width_bad,
        joined("", pc.binary_join_element_wise(found.cast(pa.string()), f" fields, expected {expected}", "")),
    )
    action = column("action")
    problem = first(
        problem,
        pc.equal(action, "INFO-EVENTS-LOST"),
        joined(
            "INFO-EVENTS-LOST record: the firewall could not log some events, info ", quoted(column("info"))
        ),
    )
    problem = first(
        problem,
        pc.invert(pc.is_in(action, value_set=pa.array(list(ACTIONS)))),
        joined("unknown action ", quoted(action)),
    )
    protocol = column("protocol")
    proto = pc.if_else(
        pc.match_substring_regex(protocol, r"^\d+$"),
        protocol_names(protocol),
        pc.if_else(pc.equal(pc.utf8_upper(protocol), "ICMPV6"), "ICMPv6", pc.utf8_upper(protocol)),
    )
    problem = first(
        problem,
        pc.invert(pc.match_substring_regex(proto, r"^(?:[A-Z][A-Za-z0-9]*|\d{1,3})$")),
        joined("unknown protocol ", quoted(protocol)),
    )
    stamp = pc.binary_join_element_wise(column("date"), column("time"), "T")
    is_tcp = pc.equal(proto, "TCP")
    flags = dash_null(column("tcpflags"))
    return Read(
        position=positions,
        ts=syslog.timestamps(
            pc.if_else(pc.match_substring_regex(stamp, r"^[\d:T-]+$"), stamp, NULL_STRING), ctx
        ),
        ts_text=pc.binary_join_element_wise(column("date"), column("time"), " "),
        src=column("src-ip"),
        dst=column("dst-ip"),
        proto=proto,
        action=pc.take(pa.array(list(ACTIONS.values())), pc.index_in(action, pa.array(list(ACTIONS)))),
        src_port=dash_null(column("src-port")),
        dst_port=dash_null(column("dst-port")),
        tcp_flags=pc.if_else(
            pc.and_(is_tcp, pc.is_valid(flags)), flag_words(flags, TCP_LETTERS), NULL_STRING
        ),
        problem=problem,
    )


def _concat(reads: list[Read]) -> Read:
    if not reads:
        empty = pa.array([], pa.string())
        return Read(pa.array([], pa.int64()), pa.array([], pa.int64()), empty, empty, empty, empty, empty)
    if len(reads) == 1:
        return reads[0]
    names = ("position", "ts", "ts_text", "src", "dst", "proto", "action", "src_port", "dst_port",
             "tcp_flags", "problem")  # fmt: skip
    joined_columns = {
        name: pa.concat_arrays([plain(getattr(r, name)).cast(_type(name)) for r in reads]) for name in names
    }
    return Read(**joined_columns)


def _type(name: str) -> pa.DataType:
    return {"position": pa.int64(), "ts": pa.int64()}.get(name, pa.string())


def explain(line: str) -> str:
    """Why a header or blank line makes no event."""
    if not line.strip():
        return "empty line"
    return f"W3C header line {quote(line)}, not an event"
