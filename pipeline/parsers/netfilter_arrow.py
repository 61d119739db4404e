"""The pyarrow path of the netfilter parser: LOG lines read a column at a time with RE2.

It reads every line the native scanner does not claim, the whole parser when
the scanner is not built, and is the reference the scanner is tested against
(``parse_arrow``). In RE2, matching is cheap and capturing is not. Every line
is cut at its first ``IN=`` (a literal search), the text after it is checked
against the whole grammar by a match without captures, and the fields are
then read by small anchored patterns with few groups, after more literal cuts
at `` SRC=`` and `` PROTO=``. Those cuts are right whenever no ``=`` comes
before ``IN=``; lines where one may not be (a prefix like ``LOGIN=``, an
``IN=`` in RFC 5424 structured data) or that fail the check go through the
whole-line pattern, slower but the same grammar. Lines that fail that too
are explained one by one in plain Python (`netfilter_rejects`): only rejects
leave the columnar path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION, conform
from pipeline.parsers import ParseContext, ParseResult, syslog
from pipeline.parsers.address import normalise_addresses
from pipeline.parsers.assemble import non_empty, start
from pipeline.parsers.netfilter_grammar import (
    AFTER_IN,
    HEAD,
    INCOMPLETE,
    LINE,
    MAX_PORT,
    NAMED_PROTOCOLS,
    NON_FIRST_FRAGMENT,
    PORT_PROTOCOLS,
    READ_ADDRESSES,
    READ_INTERFACES,
    READ_TRANSPORT,
    TCP_FLAGS,
    TCP_TO_WINDOW,
    prefix_and_action,
)
from pipeline.parsers.netfilter_rejects import explain_rejects

_NULL_STRING: Final = pa.scalar(None, pa.string())
_FALSE: Final = pa.scalar(False)


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` with pyarrow compute alone: the reference the native scanner must agree with."""
    lines, offsets = start(lines, offsets)
    if len(lines) == 0:
        return ParseResult.empty()
    result, _ = parse_with_positions(lines, offsets, ctx)
    return result


def parse_with_positions(
    lines: pa.Array, offsets: pa.Array, ctx: ParseContext
) -> tuple[ParseResult, pa.Array]:
    """The events and rejects of non-empty ``lines``, and the line index of each event."""
    fast, leftover = read_fast(lines)
    whole, unreadable = read_whole(lines, leftover)
    read = _Fields.concat(fast, whole)
    good, events = _events(read, offsets, ctx)
    rejected = pc.filter(read.position, pc.invert(good))
    if len(unreadable):
        rejected = pa.concat_arrays([unreadable, rejected])
        rejected = pc.take(rejected, pc.sort_indices(rejected))
    result = ParseResult(events=events, rejects=explain_rejects(lines, offsets, rejected, ctx))
    return result, pc.filter(read.position, good)


@dataclass(frozen=True)
class _Fields:
    """Text fields of the lines that fit the grammar, before they are checked and typed."""

    position: pa.Array  # int64: index of the line in the batch
    ts_text: pa.Array
    host: pa.Array
    prefix: pa.Array  # raw: surrounding space and quotes still on
    in_if: pa.Array
    out_if: pa.Array
    src: pa.Array
    dst: pa.Array
    packet: pa.Array  # from SRC's value to the end of the line
    proto: pa.Array
    spt: pa.Array  # empty when absent
    dpt: pa.Array
    transport: pa.Array  # from PROTO's value to the end of the line

    def take(self, indices: pa.Array) -> _Fields:
        return _Fields(**{f.name: pc.take(getattr(self, f.name), indices) for f in fields(self)})

    def filter(self, mask: pa.Array) -> _Fields:
        return _Fields(**{f.name: pc.filter(getattr(self, f.name), mask) for f in fields(self)})

    @staticmethod
    def concat(first: _Fields, second: _Fields) -> _Fields:
        if len(second.position) == 0:
            return first
        joined = _Fields(
            **{
                f.name: pa.concat_arrays([getattr(first, f.name), getattr(second, f.name)])
                for f in fields(first)
            }
        )
        return joined.take(pc.sort_indices(joined.position))


class _Survivors:
    """The lines still on the fast path, and what has been read of them so far."""

    def __init__(self, lines: pa.Array) -> None:
        self.position = pc.indices_nonzero(pa.repeat(pa.scalar(True), len(lines))).cast(pa.int64())
        self.columns: dict[str, pa.Array] = {"line": lines}
        self.dropped: list[pa.Array] = []

    def __getitem__(self, name: str) -> pa.Array:
        return self.columns[name]

    def keep(self, ok: pa.Array, *, forget: tuple[str, ...] = (), **read: pa.Array) -> None:
        """Go on with the lines where ``ok`` holds, adding ``read`` and dropping ``forget``."""
        columns = {name: v for name, v in self.columns.items() if name not in forget} | read
        ok = pc.fill_null(ok, False)
        if pc.all(ok).as_py() is not False:
            self.columns = columns
            return
        self.dropped.append(pc.filter(self.position, pc.invert(ok)))
        self.position = pc.filter(self.position, ok)
        self.columns = {name: pc.filter(values, ok) for name, values in columns.items()}

    def leftover(self) -> pa.Array:
        if not self.dropped:
            return pa.array([], pa.int64())
        dropped = pa.concat_arrays(self.dropped)
        return pc.take(dropped, pc.sort_indices(dropped))


def read_fast(lines: pa.Array) -> tuple[_Fields, pa.Array]:
    """Read the lines that cutting at IN=, SRC= and PROTO= gets right.

    Returns what was read and the positions of the lines left over.
    """
    rows = _Survivors(lines)
    parts = pc.split_pattern(rows["line"], "IN=", max_splits=1)
    rows.keep(_two(parts), forget=("line",), parts=parts)
    head = pc.list_element(rows["parts"], 0)
    rest = pc.list_element(rows["parts"], 1)
    header = syslog.header(head)
    prefix = pc.replace_substring_regex(head, HEAD, "")
    # An "=" before IN= may mean the line was cut at the wrong IN=; the
    # whole-line pattern decides those.
    rows.keep(
        _all(
            pc.is_valid(header.ts_text),
            pc.invert(pc.match_substring(prefix, "=")),
            pc.match_substring_regex(rest, AFTER_IN),
        ),
        forget=("parts",),
        ts_text=header.ts_text,
        host=header.host,
        prefix=prefix,
        rest=rest,
    )

    interfaces = pc.extract_regex(rows["rest"], READ_INTERFACES)
    packet = pc.list_element(pc.split_pattern(rows["rest"], " SRC=", max_splits=1), 1)
    addresses = pc.extract_regex(packet, READ_ADDRESSES)
    transport = pc.list_element(pc.split_pattern(packet, " PROTO=", max_splits=1), 1)
    ports = pc.extract_regex(transport, READ_TRANSPORT)
    read = _Fields(
        position=rows.position,
        ts_text=rows["ts_text"],
        host=rows["host"],
        prefix=rows["prefix"],
        in_if=interfaces.field("in"),
        out_if=interfaces.field("out"),
        src=addresses.field("src"),
        dst=addresses.field("dst"),
        packet=packet,
        proto=ports.field("proto"),
        spt=ports.field("spt"),
        dpt=ports.field("dpt"),
        transport=transport,
    )
    return read, rows.leftover()


def _two(parts: pa.Array) -> pa.Array:
    return pc.equal(pc.list_value_length(parts), 2)


def read_whole(lines: pa.Array, positions: pa.Array) -> tuple[_Fields, pa.Array]:
    """Read the given lines with the whole-line pattern.

    Returns what was read and the positions of the lines that do not fit.
    """
    found = pc.extract_regex(pc.take(lines, positions), LINE)
    fits = found.is_valid()
    found = pc.filter(found, fits)
    header = syslog.Header.from_match(found)
    read = _Fields(
        position=pc.filter(positions, fits),
        ts_text=header.ts_text,
        host=header.host,
        prefix=found.field("prefix"),
        in_if=found.field("in"),
        out_if=found.field("out"),
        src=found.field("src"),
        dst=found.field("dst"),
        packet=found.field("packet"),
        proto=found.field("proto"),
        spt=found.field("spt"),
        dpt=found.field("dpt"),
        transport=found.field("transport"),
    )
    return read, pc.filter(positions, pc.invert(fits))


def _events(read: _Fields, offsets: pa.Array, ctx: ParseContext) -> tuple[pa.Array, pa.Table]:
    """Check and type what was read: which lines make events, and the events."""
    ts = syslog.timestamps(read.ts_text, ctx)
    count = len(read.position)
    addresses = normalise_addresses(pa.concat_arrays([read.src, read.dst]))
    src = addresses.slice(0, count)
    dst = addresses.slice(count)
    src_is_ipv6 = pc.match_substring(src, ":")

    proto = read.proto
    numbered = pc.match_substring_regex(proto, r"^\d{1,3}$")
    proto_ok = pc.or_(
        pc.is_in(proto, value_set=pa.array(NAMED_PROTOCOLS)),
        pc.and_(numbered, pc.less_equal(_int(pc.if_else(numbered, proto, "0")), 255)),
    )
    takes_ports = pc.is_in(proto, value_set=pa.array(PORT_PROTOCOLS))
    has_ports = pc.not_equal(read.spt, "")
    spt = _int(pc.if_else(has_ports, read.spt, "0"))
    dpt = _int(pc.if_else(has_ports, read.dpt, "0"))
    ports_ok = pc.and_(
        takes_ports,
        pc.and_(pc.less_equal(spt, MAX_PORT), pc.less_equal(dpt, MAX_PORT)),
    )
    # TCP and UDP print no ports for a fragment after the first, or when the
    # header is cut short ("INCOMPLETE [8 bytes]"); anything else is a line
    # cut short by someone else.
    missing_ports = pc.and_(takes_ports, pc.invert(has_ports))
    excused = _where(
        missing_ports,
        lambda rows: pc.or_(
            pc.match_substring_regex(read.packet.filter(rows), NON_FIRST_FRAGMENT),
            pc.match_substring_regex(read.transport.filter(rows), INCOMPLETE),
        ),
    )
    good = _all(
        pc.is_valid(ts),
        pc.is_valid(src),
        pc.is_valid(dst),
        pc.equal(src_is_ipv6, pc.match_substring(dst, ":")),
        proto_ok,
        pc.or_(pc.invert(has_ports), ports_ok),
        pc.or_(pc.invert(missing_ports), excused),
    )
    good = pc.fill_null(good, False)

    kept = read.filter(good)
    has_ports = pc.filter(has_ports, good)
    null_port = pa.scalar(None, pa.int32())
    is_tcp = pc.and_(pc.equal(kept.proto, "TCP"), has_ports)
    flags = _where(is_tcp, lambda rows: _tcp_flags(kept.transport.filter(rows)), _NULL_STRING)
    prefix, action = prefix_and_action(kept.prefix)
    size = len(kept.position)
    columns = {
        "ts": pc.filter(ts, good),
        "site": pa.repeat(pa.scalar(ctx.site, pa.string()), size),
        "host": pc.coalesce(kept.host, pa.scalar(ctx.host or "unknown", pa.string())),
        "src_ip": pc.filter(src, good),
        "dst_ip": pc.filter(dst, good),
        "src_port": pc.if_else(has_ports, pc.filter(spt, good).cast(pa.int32()), null_port),
        "dst_port": pc.if_else(has_ports, pc.filter(dpt, good).cast(pa.int32()), null_port),
        "proto": kept.proto,
        "ip_version": pc.if_else(pc.filter(src_is_ipv6, good), 6, 4).cast(pa.int8()),
        "action": action,
        "in_if": non_empty(kept.in_if),
        "out_if": non_empty(kept.out_if),
        "tcp_flags": flags,
        "prefix": prefix,
        "count": pa.repeat(pa.scalar(1, pa.int32()), size),
        "source_id": pa.repeat(pa.scalar(ctx.source_id, pa.string()), size),
        "source_offset": pc.take(offsets, kept.position),
        "schema_version": pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int8()), size),
    }
    table = pa.Table.from_arrays([columns[name] for name in EVENT_SCHEMA.names], schema=EVENT_SCHEMA)
    return good, conform(table)


def _where(rows: pa.Array, compute: Callable[[pa.Array], pa.Array], absent: pa.Scalar = _FALSE) -> pa.Array:
    """``compute(rows)`` where ``rows`` holds and ``absent`` elsewhere, sparing the other rows."""
    rows = pc.fill_null(rows, False)
    base = pa.repeat(absent, len(rows))
    if not pc.any(rows).as_py():
        return base
    return pc.replace_with_mask(base, rows, compute(rows))


def _tcp_flags(transport: pa.Array) -> pa.Array:
    fits = pc.fill_null(pc.match_substring_regex(transport, TCP_TO_WINDOW), False)
    # Nothing before the window holds "WINDOW=" once the line fits, so the
    # first one is the header's own.
    windows = pc.split_pattern(transport.filter(fits), "WINDOW=", max_splits=1)
    tail = pc.dictionary_encode(pc.list_element(windows, 1))
    found = pc.extract_regex(tail.dictionary, TCP_FLAGS)
    flags = pc.if_else(found.is_valid(), pc.utf8_rtrim_whitespace(found.field("flags")), _NULL_STRING)
    return pc.replace_with_mask(pa.nulls(len(transport), pa.string()), fits, pc.take(flags, tail.indices))


def _all(*conditions: pa.Array) -> pa.Array:
    result = conditions[0]
    for condition in conditions[1:]:
        result = pc.and_kleene(result, condition)
    return result


def _int(text: pa.Array) -> pa.Array:
    # Only called on text the patterns proved to be at most nine digits.
    return pc.cast(text, pa.int64())
