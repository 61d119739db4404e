"""Linux netfilter ``LOG`` lines (iptables, ip6tables, nft ``log``) to events.

The kernel writes one line per logged packet (``net/netfilter/nf_log_syslog.c``)
and syslog puts a header in front; ulogd2's LOGEMU output writes the same body
(``util/printpkt.c``) after a header of its own, ``Mmm dd HH:MM:SS host ``::

    Mar 10 14:22:05 gw kernel: [ 1234.567890] DROP IN=eth0 OUT= MAC=... SRC=198.51.100.9
        DST=203.0.113.10 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=4711 DF PROTO=TCP SPT=40123
        DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0
    Nov 28 18:03:09 gw DROP IN=eth0 OUT= MAC= SRC=... TOS=00 ... PROTO=TCP SPT=... SEQ=... ACK=...

The prefix (``--log-prefix``, nft ``log prefix``) is free text right before
``IN=``; it may be empty, lack its trailing space or carry firewalld's quotes.
Keys repeat (``LEN`` of IP then UDP, ``ID`` of IP then ICMP) and an ICMP error
carries the packet it is about in ``[...]`` after the outer one, so fields are
read by position, never by name. ``tcp_flags`` lists CWR ECE URG ACK PSH RST
SYN FIN as logged (the newer AE bit is left out); it is empty, not null, for a
TCP header with no flag set (a null scan), and null where there is no TCP
header to read.

Two paths read the lines, with the same results. The native scanner
(`netfilter_native`, Rust) claims every line it can read with certainty, in
one pass over the batch's Arrow buffers, and hands back dictionary-coded
columns; `_native_events` turns those into events. Every line it does not
claim goes down the pyarrow path below, which is also the reference the
scanner is tested against (``parse_arrow``) and the whole parser when the
library is not built.

How the pyarrow path reads the columns, fast: in RE2, matching is cheap and capturing is
not. Every line is cut at its first ``IN=`` (a literal search), the text after
it is checked against the whole grammar by a match without captures, and the
fields are then read by small anchored patterns with few groups, after more
literal cuts at `` SRC=`` and `` PROTO=``. Those cuts are right whenever no
``=`` comes before ``IN=``; lines where one may not be (a prefix like
``LOGIN=``, an ``IN=`` in RFC 5424 structured data) or that fail the check go through the
whole-line pattern, slower but the same grammar. Lines that fail that too
are explained one by one in plain Python: only rejects leave the columnar path.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import ConfigError
from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION, TS_TYPE, conform
from pipeline.parsers import ParseContext, ParseResult, Reject, netfilter_native, syslog
from pipeline.parsers.address import IPV4 as _IPV4
from pipeline.parsers.address import compress_ipv6 as _compress
from pipeline.parsers.address import normalise_addresses

log = logging.getLogger("fireplot.parsers.netfilter")

PORT_PROTOCOLS: Final = ("TCP", "UDP", "UDPLITE", "SCTP")
NAMED_PROTOCOLS: Final = (*PORT_PROTOCOLS, "ICMP", "ICMPv6", "ESP", "AH")
MAX_PORT: Final = 65_535

# Prefix keywords and the action each one means; the first one in the prefix wins.
ACTION_WORDS: Final = {
    "drop": "drop",
    "reject": "reject",
    "accept": "accept",
    "allow": "accept",
    "block": "drop",
    "deny": "drop",
}
DEFAULT_ACTION: Final = "drop"

# The syslog tag, the printk uptime stamp and the printk caller id
# (CONFIG_PRINTK_CALLER), each optional, between the header and the prefix.
_TAG: Final = r"(?:(?:kernel|ulogd)(?:\[\d+\])?: )?(?:\[ *\d+\.\d+\])?(?:\[ *[CT]\d+\])? ?"
_IFNAME: Final = r"[^\s=]*"
_ADDRESS: Final = r"[^\s=]+"

# Between "IN=" and " SRC=". OUT= is missing on some builds; MAC= is missing
# for locally generated packets, empty in ulogd2's output, and may carry a
# SIT tunnel's endpoints.
_INTERFACES: Final = (
    rf"(?P<in>{_IFNAME})(?: OUT=(?P<out>{_IFNAME}))?(?: PHYSIN={_IFNAME})?(?: PHYSOUT={_IFNAME})?"
    r"(?: MAC=\S*(?: TUNNEL=\S*)?| MACSRC=\S+ MACDST=\S+(?: VPROTO=\S+ VID=\d+)? MACPROTO=\S+)?"
)
# Between " SRC=" and " PROTO=". TOS is printed without "0x" by ulogd2;
# ulogd2 spells an IPv6 fragment header "FRAG: n ID: x" where the kernel
# writes "FRAG:n ID:x", and --log-ip-options wraps IPv6 extension headers in
# "OPT ( ... )".
_IPV4_HEADER: Final = (
    r" TOS=(?:0x)?[0-9A-Fa-f]{2} PREC=0x[0-9A-Fa-f]{2} TTL=\d+ ID=\d+"
    r"(?: CE)?(?: DF)?(?: MF)?(?: FRAG:\d+)?(?: OPT \([0-9A-F]*\))?"
)
_IPV6_HEADER: Final = (
    r"(?: TC=\d+)?(?: HOPLIMIT=\d+)?(?: FLOWLBL=\d+)?"
    r"(?: OPT \(| \)| FRAG: ?\d+(?: INCOMPLETE)? ID: ?[0-9a-f]{8}| AH| ESP| SPI=0x[0-9a-f]+)*"
)
_IP_HEADER: Final = (
    rf"(?P<src>{_ADDRESS}) DST=(?P<dst>{_ADDRESS})(?: LEN=\d+)?(?:{_IPV4_HEADER}|{_IPV6_HEADER})"
)
# After " PROTO=": the rest of the line is the protocol's own business (ICMP
# type and inner packet, TCP options, UID=, MARK=, ...).
_TRANSPORT: Final = r"(?P<proto>[A-Za-z0-9]+)(?: SPT=(?P<spt>\d{1,9}) DPT=(?P<dpt>\d{1,9}))?(?: |$)"
# The TCP header up to its window, then from the window on: the second part
# repeats across lines (no ports in it), so it is read once per distinct value.
_TCP_TO_WINDOW: Final = r"^TCP SPT=\d+ DPT=\d+ (?:SEQ=\d+ ACK=\d+ )?WINDOW="
_TCP_FLAGS: Final = (
    r"^\d+ (?:RES=0x[0-9a-f]{2} )?(?:AE )?"
    r"(?P<flags>(?:CWR )?(?:ECE )?(?:URG )?(?:ACK )?(?:PSH )?(?:RST )?(?:SYN )?(?:FIN )?)URGP="
)
_NON_FIRST_FRAGMENT: Final = r" FRAG: ?0*[1-9]"
_INCOMPLETE: Final = r"^\S+ INCOMPLETE"

_HEAD: Final = rf"^(?:{syslog.HEADER}){_TAG}"
_AFTER_IN: Final = rf"^{_INTERFACES} SRC={_IP_HEADER} PROTO={_TRANSPORT}"
# (?s): a stray newline inside a line is just another character, on both paths.
_LINE: Final = (
    rf"(?s){_HEAD}(?P<prefix>.*?)IN={_INTERFACES}"
    rf" SRC=(?P<packet>{_IP_HEADER} PROTO=(?P<transport>{_TRANSPORT}.*))$"
)
# Captures cost far more than matching in RE2: once a line is known to fit,
# these read its fields with as few groups as possible.
_READ_INTERFACES: Final = rf"^(?P<in>{_IFNAME})(?: OUT=(?P<out>{_IFNAME}))?"
_READ_ADDRESSES: Final = rf"^(?P<src>{_ADDRESS}) DST=(?P<dst>{_ADDRESS})"
# Ports count only when followed by a space or the end, as in _TRANSPORT.
_READ_TRANSPORT: Final = r"^(?P<proto>[A-Za-z0-9]+)(?: SPT=(?P<spt>\d{1,9}) DPT=(?P<dpt>\d{1,9})(?: |$))?"

_NULL_STRING: Final = pa.scalar(None, pa.string())
_FALSE: Final = pa.scalar(False)
_QUOTE_LIMIT: Final = 80


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn netfilter LOG lines into events, and every other line into a reject."""
    lines, offsets = _checked(lines, offsets)
    if len(lines) == 0:
        return ParseResult.empty()
    claimed = read_claimed(lines, offsets, ctx, alone=False)
    if claimed is None:
        result, _ = _parse_arrow(lines, offsets, ctx)
        return result
    events, good = claimed
    # What the scanner did not claim is read (or rejected, with its reason)
    # by the reference path; when that is every line, as it is, without
    # copying them out first.
    rest = pc.indices_nonzero(pc.invert(good)).cast(pa.int64())
    if len(rest) == 0:
        return ParseResult(events=events, rejects=[])
    if len(rest) == len(lines):
        result, _ = _parse_arrow(lines, offsets, ctx)
        return result
    other, other_positions = _parse_arrow(pc.take(lines, rest), pc.take(offsets, rest), ctx)
    return ParseResult(
        events=merge_in_order(events, good, other.events, pc.take(rest, other_positions)),
        rejects=other.rejects,
    )


def read_claimed(
    lines: pa.Array, offsets: pa.Array, ctx: ParseContext, *, alone: bool
) -> tuple[pa.Table, pa.Array] | None:
    """The events of the lines the native scanner claims, and a mask of those lines.

    ``lines`` as `_checked` leaves them. None when the scanner is not in use
    (then nothing is claimed), as when the scanner gave up on the batch
    because none of its first lines was one it claims: the caller then reads
    the whole batch once, not the scanner's leftovers a second time.
    ``alone``: claim only lines that `pipeline.parsers.auto` would give to
    this parser.
    """
    if engine() == "arrow":
        return None
    found = netfilter_native.scan(lines, syslog.year_rule(ctx), alone=alone)
    if found is not None and found.declined:
        return None
    if found is None:
        # The scanner refused the batch (a bug or a panic caught at its
        # boundary): the pyarrow path reads it, the same events, slower.
        if os.environ.get("FIREPLOT_NETFILTER_ENGINE") == "native":
            raise RuntimeError(
                "the native netfilter scanner refused a batch (FIREPLOT_NETFILTER_ENGINE=native)"
            )
        log.error(
            "the native netfilter scanner refused a batch; parsed on the pyarrow path",
            extra={"lines": len(lines)},
        )
        return None
    return _native_events(found, offsets, ctx)


def merge_in_order(first: pa.Table, mask: pa.Array, second: pa.Table, second_positions: pa.Array) -> pa.Table:
    """Events of the lines where ``mask`` holds, and of the lines at ``second_positions``, in line order."""
    if len(second) == 0:
        return first
    positions = pc.indices_nonzero(mask).cast(pa.int64())
    order = pc.sort_indices(pa.concat_arrays([positions, second_positions.cast(pa.int64())]))
    return pa.concat_tables([first, second]).take(order)


def engine() -> str:
    """Which path `parse` takes: ``native`` when the scanner library is loaded, else ``arrow``.

    ``FIREPLOT_NETFILTER_ENGINE`` = ``auto`` (default), ``native`` (fail if
    the library is missing) or ``arrow`` (never use it).
    """
    wanted = os.environ.get("FIREPLOT_NETFILTER_ENGINE", "auto")
    if wanted not in ("auto", "native", "arrow"):
        raise ConfigError(f"FIREPLOT_NETFILTER_ENGINE={wanted!r}: use auto, native or arrow")
    if wanted == "arrow":
        return "arrow"
    if netfilter_native.available():
        return "native"
    if wanted == "native":
        raise ConfigError(f"FIREPLOT_NETFILTER_ENGINE=native: {netfilter_native.why_unavailable()}")
    return "arrow"


# Bit 7 of the scanner's flag code is CWR, bit 0 FIN: the order the kernel prints them.
_FLAG_NAMES: Final = ("CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")
_FLAG_TEXT: Final = pa.array(
    [
        " ".join(name for bit, name in enumerate(_FLAG_NAMES) if code & (1 << (7 - bit)))
        for code in range(netfilter_native.NO_FLAGS)
    ]
    + [None],  # at NO_FLAGS
    pa.string(),
)


def _native_events(
    found: netfilter_native.Scan, offsets: pa.Array, ctx: ParseContext
) -> tuple[pa.Table, pa.Array]:
    """The events of the lines the scanner claimed, and which lines those are.

    The scanner claims only lines `_events` accepts; what is left here is
    per distinct value (prefixes and actions) or a column at a time.
    """
    col, dicts = found.columns, found.dictionaries
    good = pc.equal(col["status"], 1)
    size = found.claimed
    if size == 0:
        return EVENT_SCHEMA.empty_table(), good
    # Usually every line is claimed, and the columns are the events' as they are.
    positions = None if size == len(good) else pc.indices_nonzero(good)

    def per_line(values: pa.Array) -> pa.Array:
        return values if positions is None else pc.take(values, positions)

    def kept(field: str) -> pa.Array:
        return per_line(col[field])

    ts = per_line(found.ts_us)
    local = pc.equal(kept("ts_local"), 1)
    if not syslog.local_time_is_utc(ctx) and pc.any(local).as_py():
        ts = pc.if_else(local, syslog.local_to_utc(ts, ctx), ts)
    spt, dpt = kept("spt"), kept("dpt")
    has_ports = pc.greater_equal(spt, 0)
    null_port = pa.scalar(None, pa.int32())
    flag_code = kept("flags")
    # A site has a handful of prefixes, the same batch after batch; a batch
    # with many (syslog from anyone) is worked out afresh, not remembered.
    raw_prefixes = dicts["prefix"]
    if len(raw_prefixes) <= _REMEMBERED_PREFIXES:
        prefixes, actions = _known_prefixes(tuple(raw_prefixes.to_pylist()))
    else:
        prefixes, actions = prefix_and_action(raw_prefixes)
    prefix_code = kept("prefix")
    columns = {
        "ts": ts.cast(TS_TYPE),
        "site": pa.repeat(pa.scalar(ctx.site, pa.string()), size),
        "host": pc.take(dicts["host"], kept("host")),
        "src_ip": per_line(dicts["src"]),
        "dst_ip": per_line(dicts["dst"]),
        "src_port": pc.if_else(has_ports, spt, null_port),
        "dst_port": pc.if_else(has_ports, dpt, null_port),
        "proto": pc.take(dicts["proto"], kept("proto")),
        "ip_version": kept("ip_version").cast(pa.int8()),
        "action": pc.take(actions, prefix_code),
        "in_if": pc.take(_non_empty(dicts["in_if"]), kept("in_if")),
        "out_if": pc.take(_non_empty(dicts["out_if"]), kept("out_if")),
        "tcp_flags": pc.take(_FLAG_TEXT, flag_code),
        "prefix": pc.take(prefixes, prefix_code),
        "count": pa.repeat(pa.scalar(1, pa.int32()), size),
        "source_id": pa.repeat(pa.scalar(ctx.source_id, pa.string()), size),
        "source_offset": per_line(offsets),
        "schema_version": pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int8()), size),
    }
    table = pa.Table.from_arrays([columns[name] for name in EVENT_SCHEMA.names], schema=EVENT_SCHEMA)
    return conform(table), good


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` with pyarrow compute alone: the reference the native scanner must agree with."""
    lines, offsets = _checked(lines, offsets)
    if len(lines) == 0:
        return ParseResult.empty()
    result, _ = _parse_arrow(lines, offsets, ctx)
    return result


def _checked(lines: pa.Array, offsets: pa.Array) -> tuple[pa.Array, pa.Array]:
    lines = _plain(lines).cast(pa.string())
    offsets = _plain(offsets).cast(pa.int64())
    if len(lines) != len(offsets):
        raise ValueError(f"{len(lines)} lines but {len(offsets)} offsets")
    # A null line carries nothing: it is rejected like an empty one.
    return pc.fill_null(lines, ""), offsets


def _parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> tuple[ParseResult, pa.Array]:
    """The events and rejects of non-empty ``lines``, and the line index of each event."""
    fast, leftover = _read_fast(lines)
    whole, unreadable = _read_whole(lines, leftover)
    read = _Fields.concat(fast, whole)
    good, events = _events(read, offsets, ctx)
    rejected = pc.filter(read.position, pc.invert(good))
    if len(unreadable):
        rejected = pa.concat_arrays([unreadable, rejected])
        rejected = pc.take(rejected, pc.sort_indices(rejected))
    result = ParseResult(events=events, rejects=_rejects(lines, offsets, rejected, ctx))
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


def _read_fast(lines: pa.Array) -> tuple[_Fields, pa.Array]:
    """Read the lines that cutting at IN=, SRC= and PROTO= gets right.

    Returns what was read and the positions of the lines left over.
    """
    rows = _Survivors(lines)
    parts = pc.split_pattern(rows["line"], "IN=", max_splits=1)
    rows.keep(_two(parts), forget=("line",), parts=parts)
    head = pc.list_element(rows["parts"], 0)
    rest = pc.list_element(rows["parts"], 1)
    header = syslog.header(head)
    prefix = pc.replace_substring_regex(head, _HEAD, "")
    # An "=" before IN= may mean the line was cut at the wrong IN=; the
    # whole-line pattern decides those.
    rows.keep(
        _all(
            pc.is_valid(header.ts_text),
            pc.invert(pc.match_substring(prefix, "=")),
            pc.match_substring_regex(rest, _AFTER_IN),
        ),
        forget=("parts",),
        ts_text=header.ts_text,
        host=header.host,
        prefix=prefix,
        rest=rest,
    )

    interfaces = pc.extract_regex(rows["rest"], _READ_INTERFACES)
    packet = pc.list_element(pc.split_pattern(rows["rest"], " SRC=", max_splits=1), 1)
    addresses = pc.extract_regex(packet, _READ_ADDRESSES)
    transport = pc.list_element(pc.split_pattern(packet, " PROTO=", max_splits=1), 1)
    ports = pc.extract_regex(transport, _READ_TRANSPORT)
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


def _read_whole(lines: pa.Array, positions: pa.Array) -> tuple[_Fields, pa.Array]:
    """Read the given lines with the whole-line pattern.

    Returns what was read and the positions of the lines that do not fit.
    """
    found = pc.extract_regex(pc.take(lines, positions), _LINE)
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
            pc.match_substring_regex(read.packet.filter(rows), _NON_FIRST_FRAGMENT),
            pc.match_substring_regex(read.transport.filter(rows), _INCOMPLETE),
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
        "in_if": _non_empty(kept.in_if),
        "out_if": _non_empty(kept.out_if),
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
    fits = pc.fill_null(pc.match_substring_regex(transport, _TCP_TO_WINDOW), False)
    # Nothing before the window holds "WINDOW=" once the line fits, so the
    # first one is the header's own.
    windows = pc.split_pattern(transport.filter(fits), "WINDOW=", max_splits=1)
    tail = pc.dictionary_encode(pc.list_element(windows, 1))
    found = pc.extract_regex(tail.dictionary, _TCP_FLAGS)
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


def _non_empty(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, ""), _NULL_STRING, text)


_REMEMBERED_PREFIXES: Final = 32


@functools.lru_cache(maxsize=256)
def _known_prefixes(raw: tuple[str, ...]) -> tuple[pa.Array, pa.Array]:
    """`prefix_and_action` of a batch's distinct raw prefixes, which repeat batch after batch."""
    return prefix_and_action(pa.array(raw, pa.string()))


def prefix_and_action(raw: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Clean prefixes and the action each one names, worked out once per distinct prefix."""
    encoded = pc.dictionary_encode(raw)
    prefixes = pc.utf8_trim_whitespace(encoded.dictionary)
    # firewalld (some versions) quotes its prefixes: "filter_IN_public_REJECT: "IN=...
    prefixes = pc.utf8_trim_whitespace(pc.replace_substring_regex(prefixes, r'^"(.*)"$', r"\1"))
    prefixes = _non_empty(prefixes)
    words = pc.utf8_lower(pc.extract_regex(prefixes, f"(?i)(?P<word>{'|'.join(ACTION_WORDS)})").field("word"))
    actions = pc.take(
        pa.array(list(ACTION_WORDS.values())),
        pc.index_in(words, value_set=pa.array(list(ACTION_WORDS))),
    )
    actions = pc.fill_null(actions, DEFAULT_ACTION)
    return pc.take(prefixes, encoded.indices), pc.take(actions, encoded.indices)


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


# --- Rejects: the per-line path, taken only by lines that make no event. ---


def _python(pattern: str) -> re.Pattern[str]:
    """An RE2 pattern of this module for Python's re, meaning the same.

    Python's ``$`` also matches before a final newline and its classes are
    Unicode-aware; RE2's are not.
    """
    return re.compile(pattern.replace("$", r"\Z"), re.ASCII)


_PY_IPV4: Final = _python(_IPV4)
_PY_INTERFACES: Final = _python(_INTERFACES)
_PY_IP_HEADER: Final = _python(_IP_HEADER)
_PY_TRANSPORT: Final = _python(_TRANSPORT)
_PY_PORTS: Final = _python(r"[A-Za-z0-9]+ SPT=(\d+) DPT=(\d+)(?: |$)")
_PY_NON_FIRST_FRAGMENT: Final = _python(_NON_FIRST_FRAGMENT)
_PY_INCOMPLETE: Final = _python(_INCOMPLETE)


def _rejects(lines: pa.Array, offsets: pa.Array, positions: pa.Array, ctx: ParseContext) -> list[Reject]:
    if len(positions) == 0:
        return []
    text = pc.take(lines, positions)
    header = syslog.header(text)
    ts = syslog.timestamps(header.ts_text, ctx)
    message = pc.replace_substring_regex(text, _HEAD, "")
    return [
        Reject(ctx.source_id, offset, line, _reason(line, ts_text, has_ts, body))
        for line, offset, ts_text, has_ts, body in zip(
            text.to_pylist(),
            pc.take(offsets, positions).to_pylist(),
            header.ts_text.to_pylist(),
            pc.is_valid(ts).to_pylist(),
            message.to_pylist(),
            strict=True,
        )
    ]


def _reason(line: str, ts_text: str | None, has_ts: bool, message: str) -> str:
    """Why a line makes no event: the first thing found wrong with it."""
    if not line.strip():
        return "empty line"
    if ts_text is None:
        return "timestamp not recognised"
    if not has_ts:
        return f"bad timestamp {_quote(ts_text)}"
    return _body_reason(message)


def _body_reason(message: str) -> str:
    start = message.find("IN=")
    if start < 0:
        return "no IN= field"
    body = message[start + len("IN=") :]
    at = body.find(" SRC=")
    if at < 0:
        if "ARP HTYPE=" in body or "PROTO=ARP" in body:
            return "ARP packet: no IP addresses"
        if "TRUNCATED" in body:
            return "no SRC= field (the kernel marked the packet TRUNCATED)"
        return "no SRC= field"
    interfaces, body = body[:at], body[at + len(" SRC=") :]
    at = body.find(" PROTO=")
    ip, transport = (body, None) if at < 0 else (body[:at], body[at + len(" PROTO=") :])

    src, _, rest = ip.partition(" ")
    if not _is_address(src):
        return f"bad SRC address {_quote(src)}"
    if not rest.startswith("DST="):
        return "no DST= field after SRC="
    dst = rest[len("DST=") :].partition(" ")[0]
    if not _is_address(dst):
        return f"bad DST address {_quote(dst)}"
    if (":" in src) != (":" in dst):
        return f"SRC {_quote(src)} and DST {_quote(dst)} are of different IP versions"

    if transport is None:
        if "TRUNCATED" in ip:
            return "no PROTO= field (the kernel marked the packet TRUNCATED)"
        if ":" in src:
            # nf_log_syslog.c stops before PROTO= for ESP, for non-first
            # fragments of extension headers and for unknown ones.
            return "no PROTO= field (the kernel writes none for IPv6 ESP and some extension headers)"
        return "no PROTO= field"
    proto = transport.partition(" ")[0]
    if not _is_protocol(proto):
        return f"unknown protocol {_quote(proto)}"
    ports = _PY_PORTS.match(transport)
    if ports:
        for port in ports.groups():
            if len(port) > len(str(MAX_PORT)) or int(port) > MAX_PORT:
                return f"port out of range {_quote(port, marks='')}"
        if proto not in PORT_PROTOCOLS:
            return f"ports on a PROTO={proto} packet"
    elif proto in PORT_PROTOCOLS and not (
        _PY_NON_FIRST_FRAGMENT.search(ip) or _PY_INCOMPLETE.match(transport)
    ):
        return f"PROTO={proto} without SPT/DPT, and not a later fragment (line cut short?)"

    if not _PY_INTERFACES.fullmatch(interfaces):
        return f"unexpected interface fields {_quote('IN=' + interfaces)}"
    if not _PY_IP_HEADER.fullmatch(ip):
        return f"unexpected IP header fields {_quote('SRC=' + ip)}"
    if not _PY_TRANSPORT.match(transport):
        return f"unexpected fields after PROTO= {_quote(transport)}"
    return "not a netfilter LOG line"


def _is_address(text: str) -> bool:
    if ":" in text:
        return _compress(text) is not None
    return _PY_IPV4.fullmatch(text) is not None


def _is_protocol(text: str) -> bool:
    if text in NAMED_PROTOCOLS:
        return True
    return text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 255


def _quote(text: str, *, marks: str = "'") -> str:
    """Line text for a reason: bounded in length, the way it was written."""
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT] + "..."
    return f"{marks}{text}{marks}"
