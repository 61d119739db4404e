"""pfSense / OPNsense ``filterlog`` CSV lines to events.

::

    <134>Jul  3 19:10:30 filterlog[72237]:
        146,,,1000000103,igb1,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,198.51.100.50,203.0.113.1,
        49724,853,0,S,1891286705,,64240,,mss
    <134>1 2024-03-10T14:22:05-06:00 fw.example.com filterlog 76404 - [meta sequenceId="1"]
        6,,,1000000105,igb1,match,block,in,6,0x00,0xf6279,1,UDP,17,32,2001:db8::9,ff02::1:2,546,547,32

Columns (docs.netgate.com, "raw filter log format"): ``rule, subrule, anchor,
tracker, interface, reason, action, direction, ipversion``, then for IPv4
``tos, ecn, ttl, id, offset, flags, protoid, protoname`` and for IPv6
``class, flowlabel, hoplimit, protoname, protoid``, then ``length, src, dst``
and, for TCP and UDP, ``srcport, dstport, datalen`` (TCP goes on with
``tcpflags, ...``). The column count varies with version and protocol, so the
fields are read by position after the version is known, never by a fixed
offset. Envelopes: BSD syslog with or without host, RFC 5424.

``pass`` is ``accept``, ``block`` ``drop``; the tracker (or the rule number)
is the prefix; ``in``/``out`` decides whether the interface is in_if or out_if.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.parsers import ParseContext, ParseResult, native_formats, syslog
from pipeline.parsers.assemble import (
    NULL_STRING,
    PORT_PROTOCOLS,
    Read,
    finish,
    first,
    flag_words,
    joined,
    non_empty,
    protocol_names,
    quoted,
    start,
)

LINE: Final = rf"^(?:{syslog.HEADER})(?:filterlog(?:\[\d+\])?: )?(?P<csv>[^,\s]*,.*)$"
ACTIONS: Final = {"pass": "accept", "block": "drop", "reject": "reject", "match": "accept"}
TCP_LETTERS: Final = {
    "S": "SYN",
    "A": "ACK",
    "F": "FIN",
    "R": "RST",
    "P": "PSH",
    "U": "URG",
    "E": "ECE",
    "W": "CWR",
}
# Column of each field after the nine shared ones, by IP version.
_V4: Final = {"protoid": 15, "protoname": 16, "src": 18, "dst": 19, "sport": 20, "dport": 21, "tcpflags": 23}
_V6: Final = {"protoid": 13, "protoname": 12, "src": 15, "dst": 16, "sport": 17, "dport": 18, "tcpflags": 20}
_RULE: Final = r" (?P<rule>[^\s,]*)$"


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn filterlog lines into events, and every other line into a reject.

    The native scanner (`native_formats`) reads the lines it is sure of;
    `parse_arrow`, the reference, reads the rest.
    """
    return native_formats.parse("filterlog", parse_arrow, _SHAPE, lines, offsets, ctx)


def _flags(letters: pa.Array) -> pa.Array:
    return flag_words(letters, TCP_LETTERS)


_SHAPE: Final = native_formats.Shape(flags=_flags)


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` on the pyarrow path alone."""
    lines, offsets = start(lines, offsets)
    # Matching is cheap in RE2 and capturing is not: the whole grammar only
    # decides which lines fit; the header is read by syslog's quick path and
    # the fields by one split of the whole line on commas. Nothing before the
    # CSV holds a comma, so every field but the first (the rule number, after
    # the last space before the first comma, as in LINE) is the same split
    # out of the line as out of the CSV alone.
    fits = pc.fill_null(pc.match_substring_regex(lines, LINE), False)
    positions = pc.indices_nonzero(fits).cast(pa.int64())
    unmatched = pc.indices_nonzero(pc.invert(fits)).cast(pa.int64())
    kept = pc.filter(lines, fits)
    header = syslog.header(kept)
    parts = pc.split_pattern(kept, ",")
    rule = pc.extract_regex(pc.list_element(parts, 0), _RULE).field("rule")
    has_csv = pc.is_valid(rule)
    width = pc.if_else(has_csv, pc.list_value_length(parts), pa.scalar(None, pa.int32()))
    flat = pc.list_flatten(parts)
    starts = parts.offsets.slice(0, len(parts))
    # A field past the end of a short line reads as empty, as if padded; the
    # width checks below reject such lines.
    missing = pc.if_else(has_csv, "", NULL_STRING)
    fields: dict[int, pa.Array] = {0: rule}

    def at(index: int) -> pa.Array:
        if index not in fields:
            there = pc.if_else(pc.less(index, width), pc.add(starts, index), pa.scalar(None, pa.int32()))
            fields[index] = pc.coalesce(pc.take(flat, there), missing)
        return fields[index]

    version = at(8)
    is_v4 = pc.equal(version, "4")

    def field(name: str) -> pa.Array:
        return pc.if_else(is_v4, at(_V4[name]), at(_V6[name]))

    protoid = field("protoid")
    proto = protocol_names(protoid)
    takes_ports = pc.is_in(proto, value_set=pa.array(PORT_PROTOCOLS))
    needed = pc.if_else(
        takes_ports,
        pc.if_else(is_v4, _V4["dport"] + 1, _V6["dport"] + 1),
        pc.if_else(is_v4, _V4["dst"] + 1, _V6["dst"] + 1),
    )
    raw_action = at(6)
    direction = at(7)
    problem = first(
        pa.nulls(len(kept), pa.string()),
        pc.invert(pc.is_in(version, value_set=pa.array(["4", "6"]))),
        joined("unknown IP version ", quoted(version)),
    )
    problem = first(
        problem,
        pc.less(width, needed),
        joined(
            "", pc.binary_join_element_wise(width.cast(pa.string()), " fields, too few for this packet", "")
        ),
    )
    problem = first(
        problem,
        pc.invert(pc.match_substring_regex(protoid, r"^\d{1,3}$")),
        joined("bad protocol number ", quoted(protoid)),
    )
    problem = first(
        problem,
        pc.invert(pc.is_in(raw_action, value_set=pa.array(list(ACTIONS)))),
        joined("unknown action ", quoted(raw_action)),
    )
    problem = first(
        problem,
        pc.invert(pc.is_in(direction, value_set=pa.array(["in", "out"]))),
        joined("unknown direction ", quoted(direction)),
    )
    interface = at(4)
    inbound = pc.equal(direction, "in")
    tcp = pc.equal(proto, "TCP")
    tracker = non_empty(at(3))
    read = Read(
        position=positions,
        ts=syslog.timestamps(header.ts_text, ctx),
        ts_text=header.ts_text,
        host=header.host,
        src=field("src"),
        dst=field("dst"),
        proto=proto,
        action=pc.take(pa.array(list(ACTIONS.values())), pc.index_in(raw_action, pa.array(list(ACTIONS)))),
        src_port=pc.if_else(takes_ports, field("sport"), NULL_STRING),
        dst_port=pc.if_else(takes_ports, field("dport"), NULL_STRING),
        in_if=pc.if_else(inbound, interface, NULL_STRING),
        out_if=pc.if_else(inbound, NULL_STRING, interface),
        tcp_flags=pc.if_else(tcp, flag_words(field("tcpflags"), TCP_LETTERS), NULL_STRING),
        prefix=pc.coalesce(tracker, non_empty(at(0))),
        problem=problem,
    )
    return finish(lines, offsets, ctx, read, unmatched, explain)


def explain(line: str) -> str:
    """Why a line does not fit the filterlog grammar at all."""
    if not line.strip():
        return "empty line"
    if "," not in line:
        return "no comma-separated fields"
    return "syslog header not recognised before the filterlog fields"
