"""MikroTik RouterOS firewall log lines (the original fireplot's input) to events.

::

    Mar 10 14:22:05 gw firewall,info input: in:ether1 out:(unknown 0), src-mac 02:00:5e:10:00:01, proto
        TCP (SYN), 198.51.100.7:45678->192.0.2.1:22, len 60
    mar/10 14:22:05 firewall,info DROP-SSH input: in:ether1 out:(unknown 0), proto UDP,
        [2001:db8::7]:5353->[2001:db8::1]:53, len 80
    2024-03-10T14:22:05-04:00 rtr forward: in:ether5 out:ether1, src-mac 02:00:5e:10:00:02, proto TCP
        (ACK,FIN), 192.0.2.9:34923->198.51.100.20:80, NAT
        (192.0.2.9:34923->203.0.113.19:34923)->198.51.100.20:80, len 52

Before ``in:`` comes the chain, after an optional user log prefix, after the
optional topics (``firewall,info``). RouterOS's own log uses ``mmm/dd
HH:MM:SS`` (no year: inferred as for syslog) or ``mmm/dd/yyyy HH:MM:SS``; a
syslog header otherwise. IPv6 addresses are in brackets. In the NAT variant
the first address pair, the packet as it arrived, is the event. Flags in
parentheses are TCP flags, written space separated; for ICMP they hold type
and code. The action comes from the prefix's words as for netfilter
(``drop`` when it names none).
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
    joined,
    non_empty,
    plain,
    protocol_names,
    start,
)
from pipeline.parsers.netfilter_grammar import prefix_and_action

_LOWER_MONTHS: Final = "|".join(m.lower() for m in syslog.MONTHS)
_ENDPOINT: Final = r"(?:\[(?P<{n}6>[0-9A-Fa-f:.]+)\]|(?P<{n}4>[0-9.]+))(?::(?P<{n}pt>\d+))?"
LINE: Final = (
    rf"^(?:(?P<ros>(?:{_LOWER_MONTHS})/\d\d(?:/\d{{4}})? \d\d:\d\d:\d\d) |{syslog.HEADER})"
    r"(?:(?P<topics>[a-z]+(?:,[a-z]+)+) )?(?P<prefix>[^,]*?): in:(?P<in>[^,]*?) out:(?P<out>[^,]*?), "
    r"(?:src-mac [0-9a-fA-F:]+, )?proto (?P<proto>[A-Za-z0-9-]+)(?: \((?P<flags>[^)]*)\))?, "
    + _ENDPOINT.format(n="src")
    + "->"
    + _ENDPOINT.format(n="dst")
    + r"(?:, NAT .*)?, len \d+.*$"
)
_NAMES: Final = {"ICMPV6": "ICMPv6", "IPV6-ICMP": "ICMPv6", "UDP-LITE": "UDPLITE"}


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn RouterOS firewall log lines into events, and every other line into a reject.

    The native scanner (`native_formats`) reads the lines it is sure of;
    `parse_arrow`, the reference, reads the rest.
    """
    return native_formats.parse("mikrotik", parse_arrow, _SHAPE, lines, offsets, ctx)


def _flags(text: pa.Array) -> pa.Array:
    return pc.replace_substring(text, ",", " ")


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` on the pyarrow path alone."""
    lines, offsets = start(lines, offsets)
    found = pc.extract_regex(lines, LINE)
    fits = found.is_valid()
    positions = pc.indices_nonzero(fits).cast(pa.int64())
    unmatched = pc.indices_nonzero(pc.invert(fits)).cast(pa.int64())
    found = pc.filter(found, fits)
    header = syslog.Header.from_match(found)

    def field(name: str) -> pa.Array:
        return plain(found.field(name))

    ros = field("ros")
    ts_text = pc.coalesce(non_empty(ros), header.ts_text)
    ts = syslog.timestamps(pc.coalesce(_from_routeros(ros), header.ts_text), ctx)

    proto_text = pc.utf8_upper(field("proto"))
    proto = pc.if_else(
        pc.match_substring_regex(proto_text, r"^\d+$"),
        protocol_names(proto_text),
        pc.coalesce(
            pc.take(pa.array(list(_NAMES.values())), pc.index_in(proto_text, pa.array(list(_NAMES)))),
            proto_text,
        ),
    )
    takes_ports = pc.is_in(proto, value_set=pa.array(PORT_PROTOCOLS))
    src_port = field("srcpt")
    problem = first(
        pa.nulls(len(positions), pa.string()),
        pc.and_(takes_ports, pc.equal(src_port, "")),
        joined("no ports on a ", pc.binary_join_element_wise(proto, " packet", "")),
    )
    prefix, action = prefix_and_action(field("prefix"))
    flags = field("flags")
    read = Read(
        position=positions,
        ts=ts,
        ts_text=ts_text,
        host=header.host,
        src=pc.binary_join_element_wise(field("src6"), field("src4"), ""),
        dst=pc.binary_join_element_wise(field("dst6"), field("dst4"), ""),
        proto=proto,
        action=action,
        src_port=pc.if_else(takes_ports, src_port, NULL_STRING),
        dst_port=pc.if_else(takes_ports, field("dstpt"), NULL_STRING),
        in_if=_interface(field("in")),
        out_if=_interface(field("out")),
        tcp_flags=pc.if_else(pc.equal(proto, "TCP"), pc.replace_substring(flags, ",", " "), NULL_STRING),
        prefix=prefix,
        problem=problem,
    )
    return finish(lines, offsets, ctx, read, unmatched, explain)


def _interface(text: pa.Array) -> pa.Array:
    # "(unknown 0)" is RouterOS for "no interface".
    return pc.if_else(pc.starts_with(text, "(unknown"), NULL_STRING, non_empty(text))


_SHAPE: Final = native_formats.Shape(prefix_action=prefix_and_action, interface=_interface, flags=_flags)


def _from_routeros(ros: pa.Array) -> pa.Array:
    """``mar/10 14:22:05`` as ``Mar 10 14:22:05``; ``mar/10/2024 14:22:05`` as RFC 3339; null if neither."""
    month = pc.utf8_capitalize(pc.utf8_slice_codeunits(ros, 0, 3))
    day = pc.utf8_slice_codeunits(ros, 4, 6)
    clock = pc.utf8_slice_codeunits(ros, -8)
    short = pc.binary_join_element_wise(month, day, clock, " ")
    number = pc.add(pc.index_in(month, value_set=pa.array(syslog.MONTHS)), 1).cast(pa.string())
    date = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(ros, 7, 11), pc.utf8_lpad(number, width=2, padding="0"), day, "-"
    )
    long = pc.binary_join_element_wise(date, clock, "T")
    with_year = pc.equal(pc.utf8_length(ros), len("mar/10/2024 14:22:05"))
    return pc.if_else(pc.equal(ros, ""), NULL_STRING, pc.if_else(with_year, long, short))


def explain(line: str) -> str:
    """Why a line does not fit the RouterOS firewall log grammar at all."""
    if not line.strip():
        return "empty line"
    if " in:" not in line:
        return "no 'in:' interface field"
    if "proto " not in line:
        return "no 'proto' field"
    if "->" not in line:
        return "no 'SRC->DST' addresses"
    return "timestamp or fields not in the RouterOS firewall log layout"
