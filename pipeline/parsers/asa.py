"""Cisco ASA (and FTD) deny/permit syslog messages to events.

::

    Mar 10 2024 14:22:05 fw-asa-1 : %ASA-4-106023: Deny tcp src outside:198.51.100.7/51234 dst
        inside:192.0.2.10/22 by access-group "OUTSIDE_IN" [0x0, 0x0]
    <166>Mar 10 14:22:05 fw-asa-1 %ASA-6-106100: access-list OUTSIDE_IN denied udp
        outside/198.51.100.7(5353) -> inside/192.0.2.10(161) hit-cnt 12 300-second interval [0x1, 0x0]

Messages read (the Cisco ASA syslog guide's wording): 106001, 106006,
106007, 106014, 106015, 106023, 106100 and 710003; any other ``%ASA-``
message is rejected naming its id. 106100 aggregates: ``hit-cnt N`` is the
event's count. The time is ASA's own ``Mmm dd yyyy HH:MM:SS`` (``logging
timestamp``), or the syslog header's; without an offset it is in ``ctx.tz``.
Addresses follow ``ifc:addr/port`` (split at the first ``:`` and the last
``/``, so IPv6 works) or ``ifc/addr(port)`` in 106100. The ACL name, where
the message has one, follows the message tag in the prefix.
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
    plain,
    protocol_names,
    start,
)

_MONTHS: Final = "|".join(syslog.MONTHS)
# Header: PRI, then ASA's stamp with a year, or a syslog stamp; an optional
# device name; an optional " :" before the message tag.
LINE: Final = (
    rf"^(?:<\d{{1,3}}>)?(?:(?P<asa_ts>(?:{_MONTHS}) \d\d? \d{{4}} \d\d:\d\d:\d\d)"
    rf"|(?P<ts>{syslog.RFC3164_TIMESTAMP}|{syslog.RFC3339_TIMESTAMP}))?"
    r"(?: (?P<host>[^\s:%]+))?(?: ?:)? ?(?P<tag>%(?:ASA|FTD)-\d-(?P<id>\d{6})): (?P<message>.*)$"
)
# ifc:addr[/port][(user)]: the interface ends at the first colon.
_IFC_ADDR: Final = r"(?P<{s}if>[^\s:]+):(?P<{s}>[^\s/()]+)(?:/(?P<{s}pt>\d+))?(?:\([^)]*\))?"
_PROTO: Final = r"(?:protocol )?(?P<proto>[A-Za-z0-9]+)"
_SRC = _IFC_ADDR.format(s="src")
_DST = _IFC_ADDR.format(s="dst")
_FROM: Final = r"(?P<src>[^\s/]+)/(?P<srcpt>\d+)"
_TO: Final = r"(?P<dst>[^\s/]+)/(?P<dstpt>\d+)"
MESSAGES: Final = {
    "106001": (
        rf"^Inbound {_PROTO} connection denied from {_FROM} to {_TO} flags (?P<flags>.*?)"
        r" on interface (?P<inif>\S+)$"
    ),
    "106006": rf"^Deny inbound {_PROTO} from {_FROM} to {_TO} on interface (?P<inif>\S+)$",
    "106007": rf"^Deny inbound {_PROTO} from {_FROM} to {_TO} due to .*$",
    "106014": rf"^Deny inbound {_PROTO} src {_SRC} dst {_DST}(?: \(type \d+, code \d+\))?$",
    "106015": (
        rf"^Deny {_PROTO} \(no connection\) from {_FROM} to {_TO} flags (?P<flags>.*?)"
        r" on interface (?P<inif>\S+)$"
    ),
    "106023": (
        rf"^(?P<verb>Deny) {_PROTO} src {_SRC} dst {_DST}(?: \(type \d+, code \d+\))?"
        r' by access-group "(?P<acl>[^"]*)"(?: \[[^\]]*\])?$'
    ),
    "106100": (
        r"^access-list (?P<acl>\S+) (?P<verb>permitted|denied|est-allowed) "
        + _PROTO
        + r" (?P<srcif>[^\s/]+)/(?P<src>[^\s()]+)\((?P<srcpt>\d+)\)(?:\([^)]*\))?"
        r" -> (?P<dstif>[^\s/]+)/(?P<dst>[^\s()]+)\((?P<dstpt>\d+)\)(?:\([^)]*\))?"
        r" hit-cnt (?P<count>\d+) .*$"
    ),
    "710003": rf"^{_PROTO} access denied by ACL from {_FROM} to {_DST}$",
}
_VERBS: Final = {"denied": "drop", "permitted": "accept", "est-allowed": "accept"}


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn ASA deny/permit messages into events, and every other line into a reject.

    The native scanner (`native_formats`) reads the 106023 and 106100 lines
    it is sure of; `parse_arrow`, the reference, reads the rest.
    """
    return native_formats.parse("asa", parse_arrow, native_formats.Shape(), lines, offsets, ctx)


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` on the pyarrow path alone."""
    lines, offsets = start(lines, offsets)
    found = pc.extract_regex(lines, LINE)
    fits = pc.and_(
        found.is_valid(), pc.is_in(pc.struct_field(found, "id"), value_set=pa.array(list(MESSAGES)))
    )
    fits = pc.fill_null(fits, False)
    unmatched = [pc.indices_nonzero(pc.invert(fits)).cast(pa.int64())]
    reads: list[tuple[pa.Array, dict[str, pa.Array]]] = []
    for message_id, pattern in MESSAGES.items():
        rows = pc.and_(fits, pc.equal(pc.struct_field(found, "id"), message_id))
        if not pc.any(rows).as_py():
            continue
        head = pc.filter(found, rows)
        body = pc.extract_regex(head.field("message"), pattern)
        ok = body.is_valid()
        positions = pc.indices_nonzero(rows).cast(pa.int64())
        unmatched.append(pc.filter(positions, pc.invert(ok)))
        reads.append(
            (pc.filter(positions, ok), _columns(pc.filter(head, ok), pc.filter(body, ok), message_id))
        )
    names = ("asa_ts", "ts", "host", "tag", "proto", "src", "srcpt", "dst", "dstpt", "inif", "outif",
             "flags", "acl", "verb", "count")  # fmt: skip
    position = pa.concat_arrays([p for p, _ in reads] or [pa.array([], pa.int64())])
    columns = {n: pa.concat_arrays([c[n] for _, c in reads] or [pa.array([], pa.string())]) for n in names}
    order = pc.sort_indices(position)
    position = pc.take(position, order)
    columns = {n: pc.take(v, order) for n, v in columns.items()}

    ts = _timestamps(columns["asa_ts"], columns["ts"], ctx)
    proto_text = columns["proto"]
    proto = pc.if_else(
        pc.match_substring_regex(proto_text, r"^\d+$"),
        protocol_names(proto_text),
        pc.if_else(pc.equal(pc.utf8_upper(proto_text), "ICMP6"), "ICMPv6", pc.utf8_upper(proto_text)),
    )
    takes_ports = pc.is_in(proto, value_set=pa.array(PORT_PROTOCOLS))
    verb = columns["verb"]
    action = pc.coalesce(
        pc.take(pa.array(list(_VERBS.values())), pc.index_in(verb, pa.array(list(_VERBS)))),
        pa.scalar("drop"),
    )
    read = Read(
        position=position,
        ts=ts,
        ts_text=pc.coalesce(_non_empty(columns["asa_ts"]), columns["ts"]),
        host=_non_empty(columns["host"]),
        src=columns["src"],
        dst=columns["dst"],
        proto=proto,
        action=action,
        src_port=pc.if_else(takes_ports, columns["srcpt"], NULL_STRING),
        dst_port=pc.if_else(takes_ports, columns["dstpt"], NULL_STRING),
        in_if=_non_empty(columns["inif"]),
        out_if=_non_empty(columns["outif"]),
        tcp_flags=pc.if_else(pc.equal(proto, "TCP"), _non_empty(columns["flags"]), NULL_STRING),
        prefix=pc.binary_join_element_wise(
            columns["tag"], _non_empty(columns["acl"]), " ", null_handling="skip"
        ),
        count=pc.if_else(pc.equal(columns["count"], ""), "1", columns["count"]),
    )
    leftover = pa.concat_arrays(unmatched)
    return finish(lines, offsets, ctx, read, pc.take(leftover, pc.sort_indices(leftover)), explain)


def _columns(head: pa.StructArray, body: pa.StructArray, message_id: str) -> dict[str, pa.Array]:
    size = len(head)
    empty = pa.repeat(pa.scalar(""), size)

    def get(struct: pa.StructArray, name: str) -> pa.Array:
        return plain(struct.field(name)) if struct.type.get_field_index(name) >= 0 else empty

    return {
        "asa_ts": get(head, "asa_ts"),
        "ts": get(head, "ts"),
        "host": get(head, "host"),
        "tag": get(head, "tag"),
        "proto": get(body, "proto"),
        "src": get(body, "src"),
        "srcpt": get(body, "srcpt"),
        "dst": get(body, "dst"),
        "dstpt": get(body, "dstpt"),
        # 106001/106006/106015 name the interface the packet came in on; 710003
        # is traffic to the box itself, arriving on the interface it names.
        "inif": {
            "106001": get(body, "inif"),
            "106006": get(body, "inif"),
            "106015": get(body, "inif"),
            "710003": get(body, "dstif"),
        }.get(message_id, get(body, "srcif")),
        "outif": empty if message_id == "710003" else get(body, "dstif"),
        "flags": get(body, "flags"),
        "acl": get(body, "acl"),
        "verb": get(body, "verb"),
        "count": get(body, "count"),
    }


def _non_empty(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, ""), NULL_STRING, text)


def _timestamps(asa_ts: pa.Array, ts: pa.Array, ctx: ParseContext) -> pa.Array:
    """ASA's ``Mmm dd yyyy HH:MM:SS`` rewritten as RFC 3339 text, else the syslog stamp."""
    # Padding gives lines without ASA's stamp four empty parts instead of an index error.
    parts = pc.split_pattern(pc.binary_join_element_wise(asa_ts, "    ", ""), " ")
    month = pc.add(pc.index_in(pc.list_element(parts, 0), value_set=pa.array(syslog.MONTHS)), 1)
    day = pc.utf8_lpad(pc.list_element(parts, 1), width=2, padding="0")
    iso = pc.binary_join_element_wise(
        pc.list_element(parts, 2), pc.utf8_lpad(month.cast(pa.string()), width=2, padding="0"), day, "-"
    )
    iso = pc.binary_join_element_wise(iso, pc.list_element(parts, 3), "T")
    text = pc.if_else(pc.equal(asa_ts, ""), _non_empty(ts), iso)
    return syslog.timestamps(text, ctx)


def explain(line: str) -> str:
    """Why a line is no ASA message this parser reads."""
    if not line.strip():
        return "empty line"
    at = max(line.find("%ASA-"), line.find("%FTD-"))
    if at < 0:
        return "no %ASA- message tag"
    message_id = line[at + 7 : at + 13]
    if message_id.isdigit() and message_id not in MESSAGES:
        return f"ASA message {message_id} is not a packet deny/permit message read here"
    if message_id in MESSAGES:
        return f"ASA {message_id} message text does not fit its documented form"
    return "syslog header or message tag not recognised"
