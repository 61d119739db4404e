"""From fields read out of lines to events and explained rejects, for every format.

A format parser reads text columns (addresses, ports, protocol, ...) from the
lines that fit its grammar, then hands them to `finish`, which checks them the
same way for every format (time, addresses, families, ports, counts), types
them into the event schema and turns each line that fails into a reject naming
the first thing wrong with it. The reasons are built a column at a time;
only the rejected rows become Python objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION, conform
from pipeline.parsers import ParseContext, ParseResult, Reject
from pipeline.parsers.address import normalise_addresses

MAX_PORT: Final = 65_535
MAX_COUNT: Final = 2**31 - 1
QUOTE_LIMIT: Final = 80

# IANA protocol numbers of the names netfilter's LOG target prints, so an
# event's proto reads the same whichever firewall logged it.
PROTOCOL_NAMES: Final = {
    1: "ICMP",
    6: "TCP",
    17: "UDP",
    50: "ESP",
    51: "AH",
    58: "ICMPv6",
    132: "SCTP",
    136: "UDPLITE",
}
PORT_PROTOCOLS: Final = ("TCP", "UDP", "UDPLITE", "SCTP")

NULL_STRING: Final = pa.scalar(None, pa.string())
NULL_INT: Final = pa.scalar(None, pa.int64())


@dataclass
class Read:
    """What a format read from the lines that fit its grammar, one entry per line.

    Text stays text until `finish` checks it; ``problem`` carries a reason the
    format itself found (null where it found none), checked before the rest.
    """

    position: pa.Array  # int64: index of the line in the batch
    ts: pa.Array  # TS_TYPE or int64 µs since 1970 UTC; null where unreadable
    ts_text: pa.Array  # the time as written, for the reason when ts is null
    src: pa.Array
    dst: pa.Array
    proto: pa.Array  # normalised name (see PROTOCOL_NAMES) or number as text
    action: pa.Array
    src_port: pa.Array | None = None  # text of digits, "" or null where none
    dst_port: pa.Array | None = None
    host: pa.Array | None = None  # null where the line names no host
    in_if: pa.Array | None = None
    out_if: pa.Array | None = None
    tcp_flags: pa.Array | None = None
    prefix: pa.Array | None = None
    count: pa.Array | None = None  # text of digits; 1 where None
    problem: pa.Array | None = None
    extra: dict[str, pa.Array] = field(default_factory=dict)


def finish(
    lines: pa.Array,
    offsets: pa.Array,
    ctx: ParseContext,
    read: Read,
    unmatched: pa.Array,
    explain: Callable[[str], str],
    also: list[tuple[int, str]] | None = None,
) -> ParseResult:
    """Events from ``read`` and rejects for the rest.

    ``unmatched`` are positions of lines that did not fit the grammar at all;
    ``explain`` says why, one line at a time (only rejects take that path).
    ``also`` are (position, reason) pairs the format already explained.
    """
    size = len(read.position)
    addresses = normalise_addresses(pa.concat_arrays([plain(read.src), plain(read.dst)]).cast(pa.string()))
    src = addresses.slice(0, size)
    dst = addresses.slice(size)
    src_v6 = pc.match_substring(src, ":")
    ts = plain(read.ts)
    if ts.type != pa.int64():
        ts = ts.cast(pa.int64())

    spt, spt_bad = _port(read.src_port, size)
    dpt, dpt_bad = _port(read.dst_port, size)
    if read.count is None:
        count = pa.repeat(pa.scalar(1, pa.int64()), size)
        count_bad = pa.repeat(pa.scalar(False), size)
    else:
        count, count_bad = number(read.count, 1, MAX_COUNT)
        count_bad = pc.or_(count_bad, pc.is_null(count))

    reason = plain(read.problem) if read.problem is not None else pa.nulls(size, pa.string())
    reason = first(reason, pc.is_null(ts), joined("bad timestamp ", quoted(read.ts_text)))
    reason = first(reason, pc.is_null(src), joined("bad source address ", quoted(read.src)))
    reason = first(reason, pc.is_null(dst), joined("bad destination address ", quoted(read.dst)))
    reason = first(
        reason,
        pc.not_equal(src_v6, pc.match_substring(dst, ":")),
        pa.scalar("source and destination are of different IP versions"),
    )
    reason = first(reason, spt_bad, joined("source port out of range ", quoted(read.src_port)))
    reason = first(reason, dpt_bad, joined("destination port out of range ", quoted(read.dst_port)))
    reason = first(reason, count_bad, joined("packet count out of range ", quoted(read.count)))
    good = pc.is_null(reason)

    def kept(values: pa.Array | None, fill: pa.Scalar = NULL_STRING) -> pa.Array:
        if values is None:
            return pa.repeat(fill, int(pc.sum(good.cast(pa.int64())).as_py() or 0))
        return pc.filter(plain(values), good)

    positions = pc.filter(read.position, good)
    n = len(positions)
    host = kept(read.host)
    default_host = pa.scalar(ctx.host or "unknown", pa.string())
    columns: Mapping[str, pa.Array] = {
        "ts": pc.filter(ts, good),
        "site": pa.repeat(pa.scalar(ctx.site, pa.string()), n),
        "host": pc.coalesce(non_empty(host), default_host) if n else host,
        "src_ip": pc.filter(src, good),
        "dst_ip": pc.filter(dst, good),
        "src_port": pc.filter(spt, good).cast(pa.int32()),
        "dst_port": pc.filter(dpt, good).cast(pa.int32()),
        "proto": kept(read.proto),
        "ip_version": pc.if_else(pc.filter(src_v6, good), 6, 4).cast(pa.int8()),
        "action": kept(read.action),
        "in_if": non_empty(kept(read.in_if)),
        "out_if": non_empty(kept(read.out_if)),
        "tcp_flags": kept(read.tcp_flags),
        "prefix": non_empty(kept(read.prefix)),
        "count": pc.filter(count, good).cast(pa.int32()),
        "source_id": pa.repeat(pa.scalar(ctx.source_id, pa.string()), n),
        "source_offset": pc.take(offsets, positions),
        "schema_version": pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int8()), n),
    }
    table = pa.Table.from_arrays(
        [pa.array(columns[name]).cast(EVENT_SCHEMA.field(name).type) for name in EVENT_SCHEMA.names],
        schema=EVENT_SCHEMA,
    )
    table = conform(table)

    bad = pc.invert(good)
    rejected = list(
        zip(pc.filter(read.position, bad).to_pylist(), pc.filter(reason, bad).to_pylist(), strict=True)
    )
    if len(unmatched):
        text = pc.take(lines, unmatched).to_pylist()
        rejected += [(p, explain(t)) for p, t in zip(unmatched.to_pylist(), text, strict=True)]
    rejected += also or []
    return ParseResult(table, rejects(lines, offsets, ctx, rejected))


def rejects(
    lines: pa.Array, offsets: pa.Array, ctx: ParseContext, found: list[tuple[int, str]]
) -> list[Reject]:
    """Rejects in input order from (position, reason) pairs."""
    if not found:
        return []
    found.sort()
    positions = pa.array([p for p, _ in found], pa.int64())
    text = pc.take(lines, positions).to_pylist()
    where = pc.take(offsets, positions).to_pylist()
    return [
        Reject(ctx.source_id, offset, line or "", reason)
        for (_, reason), line, offset in zip(found, text, where, strict=True)
    ]


def start(lines: pa.Array, offsets: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The batch as every parser wants it: plain string and int64 arrays, nulls as empty lines."""
    lines = plain(lines).cast(pa.string())
    offsets = plain(offsets).cast(pa.int64())
    if len(lines) != len(offsets):
        raise ValueError(f"{len(lines)} lines but {len(offsets)} offsets")
    return pc.fill_null(lines, ""), offsets


def everything(size: int) -> pa.Array:
    """Positions 0..size-1."""
    return pa.array(range(size), pa.int64())


def protocol_names(numbers: pa.Array) -> pa.Array:
    """Protocol numbers (as text) to the names netfilter prints, the number itself elsewhere."""
    known = pa.array([str(k) for k in PROTOCOL_NAMES])
    names = pc.take(pa.array(list(PROTOCOL_NAMES.values())), pc.index_in(numbers, value_set=known))
    return pc.coalesce(names, numbers)


def flag_words(flags: pa.Array, letters: Mapping[str, str]) -> pa.Array:
    """Flag letters (``SA``, ``S.``) to words in netfilter's order (``ACK SYN``)."""
    order = ("CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")
    by_word = {word: letter for letter, word in letters.items()}
    flags = plain(flags)
    words = [
        pc.if_else(pc.fill_null(pc.match_substring(flags, by_word[word]), False), word + " ", "")
        for word in order
        if word in by_word
    ]
    joined_words = pc.utf8_rtrim_whitespace(pc.binary_join_element_wise(*words, ""))
    return pc.if_else(pc.is_valid(flags), joined_words, NULL_STRING)


def quote(text: str) -> str:
    """Line text for a reason: bounded in length, the way it was written."""
    if len(text) > QUOTE_LIMIT:
        text = text[:QUOTE_LIMIT] + "..."
    return f"'{text}'"


def plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def non_empty(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, ""), NULL_STRING, text)


def _port(text: pa.Array | None, size: int) -> tuple[pa.Array, pa.Array]:
    """Ports as integers (null where absent) and where they are out of range."""
    if text is None:
        return pa.nulls(size, pa.int64()), pa.repeat(pa.scalar(False), size)
    value, bad = number(text, 0, MAX_PORT)
    return value, bad


def number(text: pa.Array, low: int, high: int) -> tuple[pa.Array, pa.Array]:
    """Digit text as int64 (null where empty or null), and where it is outside [low, high]."""
    text = plain(text)
    # One to eighteen ASCII digits (so int64 holds them): two byte kernels,
    # a third of the time of the same test as a regex.
    digits = pc.fill_null(
        pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.binary_length(text), 18)), False
    )
    value = pc.cast(pc.if_else(digits, text, pa.scalar(None, pa.string())), pa.int64())
    present = pc.fill_null(pc.not_equal(text, ""), False)
    bad = pc.or_(
        pc.and_(present, pc.invert(digits)),
        pc.fill_null(pc.or_(pc.less(value, low), pc.greater(value, high)), False),
    )
    return value, bad


class Deferred:
    """A reason column built only for the rows rejected with it.

    Most lines of a batch are good, so a reason spelled out for every row (a
    quote, a join) costs more than the checks themselves; `first` asks for
    the rows that need it, usually none.
    """

    __slots__ = ("_build",)

    def __init__(self, build: Callable[[pa.Array], pa.Array | pa.Scalar]) -> None:
        self._build = build

    def at(self, rows: pa.Array) -> pa.Array | pa.Scalar:
        """The reason for the rows at these int64 positions."""
        return self._build(rows)


Why: TypeAlias = pa.Array | pa.Scalar | Deferred


def _at(text: Why | str, rows: pa.Array) -> pa.Array | pa.Scalar:
    if isinstance(text, Deferred):
        return text.at(rows)
    if isinstance(text, str):
        return pa.scalar(text)
    if isinstance(text, pa.Scalar):
        return text
    return pc.take(plain(text), rows)


def quoted(text: pa.Array | None) -> Why:
    if text is None:
        return pa.scalar("''")
    values = plain(text)

    def build(rows: pa.Array) -> pa.Array:
        some = pc.fill_null(pc.take(values, rows).cast(pa.string()), "")
        short = pc.utf8_slice_codeunits(some, 0, QUOTE_LIMIT)
        cut = pc.greater(pc.utf8_length(some), QUOTE_LIMIT)
        short = pc.if_else(cut, pc.binary_join_element_wise(short, "...", ""), short)
        return pc.binary_join_element_wise("'", short, "'", "")

    return Deferred(build)


def joined(head: str | Why, tail: Why) -> Why:
    return Deferred(lambda rows: pc.binary_join_element_wise(_at(head, rows), _at(tail, rows), ""))


def first(reason: pa.Array, bad: pa.Array, text: Why) -> pa.Array:
    """Keep the reason already found; else ``text`` where ``bad`` holds."""
    need = pc.and_(pc.fill_null(bad, False), pc.is_null(reason))
    if not pc.any(need).as_py():
        return reason
    rows = pc.indices_nonzero(need)
    values = _at(text, rows)
    if isinstance(values, pa.Scalar):
        values = pa.repeat(values, len(rows))
    return pc.replace_with_mask(plain(reason), need, plain(values).cast(pa.string()))
