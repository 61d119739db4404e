"""AWS VPC flow log records, version 2 default format, to events.

::

    version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end
        action log-status
    2 123456789010 eni-0a1b2c3d4e5f67890 198.51.100.7 203.0.113.12 49761 3389 6 20 4249 1418530010
        1418530070 REJECT OK

A record stands for a flow aggregated over its capture window: the event
takes the window's ``start`` as its time and ``packets`` as its count. Both
ACCEPT and REJECT records become events (action ``accept`` / ``reject``);
NODATA and SKIPDATA records carry no flow and are rejected with that reason,
as is the header line S3 exports begin with. Ports are kept for TCP, UDP,
UDP-Lite and SCTP only: AWS writes 0 for ICMP. The account id stands in
for the host when the shipper names none; the interface id is ``in_if``.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.parsers import ParseContext, ParseResult, native_formats
from pipeline.parsers.assemble import (
    NULL_STRING,
    PORT_PROTOCOLS,
    Deferred,
    Read,
    finish,
    first,
    joined,
    number,
    plain,
    protocol_names,
    quote,
    quoted,
    start,
)

COLUMNS: Final = (
    "version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport",
    "protocol", "packets", "bytes", "start", "end", "action", "log-status",
)  # fmt: skip
ACTIONS: Final = {"ACCEPT": "accept", "REJECT": "reject"}
_US_PER_S: Final = 1_000_000


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn VPC flow log v2 records into events, and every other line into a reject.

    The native scanner (`native_formats`) reads the records it is sure of;
    `parse_arrow`, the reference, reads the rest.
    """
    return native_formats.parse("vpc", parse_arrow, native_formats.Shape(), lines, offsets, ctx)


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` on the pyarrow path alone."""
    lines, offsets = start(lines, offsets)
    # Fourteen fields, single spaces: anything else is explained line by line.
    shaped = pc.fill_null(pc.match_substring_regex(lines, r"^2 (?:\S+ ){12}\S+$"), False)
    positions = pc.indices_nonzero(shaped).cast(pa.int64())
    unmatched = pc.indices_nonzero(pc.invert(shaped)).cast(pa.int64())
    parts = pc.split_pattern(pc.filter(lines, shaped), " ")

    def column(name: str) -> pa.Array:
        return plain(pc.list_element(parts, COLUMNS.index(name)))

    status = column("log-status")
    raw_action = column("action")
    protocol = column("protocol")
    problem = pa.nulls(len(positions), pa.string())
    problem = first(
        problem,
        pc.is_in(status, value_set=pa.array(["NODATA", "SKIPDATA"])),
        _no_flow(status),
    )
    problem = first(problem, pc.not_equal(status, "OK"), joined("unknown log-status ", quoted(status)))
    problem = first(
        problem,
        pc.invert(pc.is_in(raw_action, value_set=pa.array(list(ACTIONS)))),
        joined("unknown action ", quoted(raw_action)),
    )
    proto_number, proto_bad = number(protocol, 0, 255)
    problem = first(
        problem,
        pc.or_(proto_bad, pc.is_null(proto_number)),
        joined("bad protocol number ", quoted(protocol)),
    )
    proto = protocol_names(protocol)
    takes_ports = pc.is_in(proto, value_set=pa.array(PORT_PROTOCOLS))
    seconds, seconds_bad = number(column("start"), 0, 253_402_300_799)
    ts = pc.if_else(seconds_bad, pa.scalar(None, pa.int64()), pc.multiply(seconds, _US_PER_S))
    read = Read(
        position=positions,
        ts=ts,
        ts_text=column("start"),
        src=column("srcaddr"),
        dst=column("dstaddr"),
        proto=proto,
        action=pc.take(pa.array(list(ACTIONS.values())), pc.index_in(raw_action, pa.array(list(ACTIONS)))),
        src_port=pc.if_else(takes_ports, column("srcport"), NULL_STRING),
        dst_port=pc.if_else(takes_ports, column("dstport"), NULL_STRING),
        host=pc.if_else(pc.equal(column("account-id"), "-"), NULL_STRING, column("account-id")),
        in_if=column("interface-id"),
        count=column("packets"),
        problem=problem,
    )
    return finish(lines, offsets, ctx, read, unmatched, explain)


def _no_flow(status: pa.Array) -> Deferred:
    return Deferred(
        lambda rows: pc.if_else(
            pc.equal(pc.take(status, rows), "NODATA"),
            "NODATA record: no traffic on the interface in the capture window",
            "SKIPDATA record: AWS skipped flow records in the capture window",
        )
    )


def explain(line: str) -> str:
    """Why a line that is not fourteen space-separated fields starting with 2 makes no event."""
    if not line.strip():
        return "empty line"
    fields = line.split(" ")
    if fields[0] == "version":
        return "header line (column names), not a flow record"
    if fields[0].isdigit() and fields[0] != "2":
        return f"flow log version {quote(fields[0])}: only the default version 2 format is read"
    if len(fields) != len(COLUMNS):
        return f"{len(fields)} space-separated fields, expected {len(COLUMNS)} (VPC flow log v2)"
    return "not a VPC flow log v2 record"
