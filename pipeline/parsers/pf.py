"""OpenBSD pf log lines, as ``tcpdump -n -e -ttt -r /var/log/pflog`` prints them, to events.

::

    Mar 10 14:22:05.184835 rule 4/(match) block in on em0: 198.51.100.7.53614 > 192.0.2.10.1435: S
        786092310:786092310(0) win 3072 <mss 1460> (ttl 42, id 1076, len 44)
    Mar 10 14:22:05 fw pf: rule 0/(match) block in on vio0: 2001:db8::7.443 > 2001:db8::10.22: Flags
        [S], seq 1, win 1024, length 0

The time is tcpdump's (``Mmm dd HH:MM:SS.ffffff``, no year: inferred as for
syslog, in ``ctx.tz``; FreeBSD's ``-tttt`` ``yyyy-mm-dd HH:MM:SS.ffffff`` too)
or a syslog header's when pflogd's lines went through syslog. Ports follow
the address after its last dot. tcpdump only prints ports for TCP and UDP:
a TCP payload starts with flags (``S``, ``Flags [S.]``) or ``[|tcp]``, any
other payload with ports is UDP; without ports the first word names the
protocol (``icmp``, ``icmp6``, ``esp``, ...). ``block`` is ``drop``,
``pass`` ``accept``; the rule (``rule 4/(match)``) is the prefix.
"""

from __future__ import annotations

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
    non_empty,
    plain,
    quoted,
    start,
)

_FRACTION: Final = r"(?:\.(?P<fraction>\d{1,6}))?"
_IPV4_PORT: Final = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"
_IPV6: Final = r"[0-9A-Fa-f]*:[0-9A-Fa-f:]*"
LINE: Final = (
    rf"^(?:(?:<\d{{1,3}}>)?(?P<sts>{syslog.RFC3164_TIMESTAMP}|{syslog.RFC3339_TIMESTAMP}) "
    r"(?:(?P<host>[^\s:]+) )?pf(?:\[\d+\])?: "
    rf"|(?P<ts>{syslog.RFC3164_TIMESTAMP}|\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d){_FRACTION} )"
    r"(?P<rule>rule \S+?\(\w+\)):? (?:\[uid \d+, pid \d+\] )?"
    r"(?P<action>[a-z-]+) (?P<dir>in|out) on (?P<if>\S+): "
    rf"(?P<src>{_IPV4_PORT}|{_IPV6})(?:\.(?P<spt>\d+))? > (?P<dst>{_IPV4_PORT}|{_IPV6})(?:\.(?P<dpt>\d+))?: "
    r"(?P<payload>.*)$"
)
ACTIONS: Final = {"block": "drop", "pass": "accept", "match": "accept"}
# tcpdump's TCP flag letters; "." is ACK in the new style, old OpenBSD tcpdump writes "ack N".
TCP_LETTERS: Final = {
    "S": "SYN",
    "F": "FIN",
    "R": "RST",
    "P": "PSH",
    "U": "URG",
    "E": "ECE",
    "W": "CWR",
    ".": "ACK",
}
_TCP_PAYLOAD: Final = r"^(?:[SFRPWEU.]+ |[SFRPWEU.]+$|Flags \[|\[\|tcp\])"
_WORDS: Final = {"icmp": "ICMP", "icmp6": "ICMPv6", "esp": "ESP", "ah": "AH", "igmp": "2", "gre": "47"}


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn pf log lines into events, and every other line into a reject.

    The native scanner (`native_formats`) reads the lines it is sure of;
    `parse_arrow`, the reference, reads the rest.
    """
    return native_formats.parse("pf", parse_arrow, _SHAPE, lines, offsets, ctx)


# The scanner codes TCP flags as bits, CWR (0x80) to FIN (0x01), in two hex digits.
_BITS: Final = (
    (0x80, "W"),
    (0x40, "E"),
    (0x20, "U"),
    (0x10, "."),
    (0x08, "P"),
    (0x04, "R"),
    (0x02, "S"),
    (0x01, "F"),
)


def _flags(codes: pa.Array) -> pa.Array:
    letters = ["".join(letter for bit, letter in _BITS if int(code, 16) & bit) for code in codes.to_pylist()]
    return flag_words(pa.array(letters, pa.string()), TCP_LETTERS)


_SHAPE: Final = native_formats.Shape(flags=_flags)


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` on the pyarrow path alone."""
    lines, offsets = start(lines, offsets)
    found = pc.extract_regex(lines, LINE)
    fits = found.is_valid()
    positions = pc.indices_nonzero(fits).cast(pa.int64())
    unmatched = pc.indices_nonzero(pc.invert(fits)).cast(pa.int64())
    found = pc.filter(found, fits)

    def field(name: str) -> pa.Array:
        return plain(found.field(name))

    ts_text = pc.coalesce(non_empty(field("sts")), field("ts"))
    fraction = pc.cast(pc.utf8_rpad(field("fraction"), width=6, padding="0").cast(pa.string()), pa.int64())
    ts = pc.add(syslog.timestamps(ts_text, ctx).cast(pa.int64()), fraction)

    payload = field("payload")
    has_ports = pc.not_equal(field("spt"), "")
    tcp = pc.and_(has_ports, pc.match_substring_regex(payload, _TCP_PAYLOAD))
    word = pc.utf8_lower(pc.extract_regex(payload, r"^(?P<w>[A-Za-z0-9]+)").field("w"))
    named = pc.take(pa.array(list(_WORDS.values())), pc.index_in(word, pa.array(list(_WORDS))))
    proto = pc.if_else(tcp, "TCP", pc.if_else(has_ports, "UDP", named))
    raw_action = field("action")
    problem = first(
        pa.nulls(len(positions), pa.string()),
        pc.is_null(proto),
        joined("protocol not recognised in ", quoted(payload)),
    )
    problem = first(
        problem,
        pc.invert(pc.is_in(raw_action, value_set=pa.array(list(ACTIONS)))),
        joined("not a packet filter action ", quoted(raw_action)),
    )
    flag_text = pc.coalesce(
        pc.extract_regex(payload, r"^(?:Flags \[(?P<f>[^\]]*)\]|(?P<g>[SFRPWEU.]+)(?: |$))").field("f"),
        pa.scalar(""),
    )
    old_style = pc.extract_regex(payload, r"^(?P<g>[SFRPWEU.]+)(?: |$)").field("g")
    letters = pc.binary_join_element_wise(flag_text, pc.coalesce(old_style, pa.scalar("")), "")
    acked = pc.fill_null(pc.match_substring(payload, " ack "), False)
    letters = pc.if_else(acked, pc.binary_join_element_wise(letters, ".", ""), letters)
    truncated = pc.starts_with(payload, "[|tcp]")
    inbound = pc.equal(field("dir"), "in")
    interface = field("if")
    read = Read(
        position=positions,
        ts=ts,
        ts_text=ts_text,
        host=non_empty(field("host")),
        src=field("src"),
        dst=field("dst"),
        proto=proto,
        action=pc.take(pa.array(list(ACTIONS.values())), pc.index_in(raw_action, pa.array(list(ACTIONS)))),
        src_port=field("spt"),
        dst_port=field("dpt"),
        in_if=pc.if_else(inbound, interface, NULL_STRING),
        out_if=pc.if_else(inbound, NULL_STRING, interface),
        tcp_flags=pc.if_else(
            pc.and_(tcp, pc.invert(truncated)), flag_words(letters, TCP_LETTERS), NULL_STRING
        ),
        prefix=field("rule"),
        problem=problem,
    )
    return finish(lines, offsets, ctx, read, unmatched, explain)


def explain(line: str) -> str:
    """Why a line does not fit the pf log grammar at all."""
    if not line.strip():
        return "empty line"
    if " rule " not in f" {line}":
        return "no 'rule N/(reason)' field"
    if " on " not in line:
        return "no 'in|out on IFACE:' after the rule"
    if " > " not in line:
        return "no 'SRC > DST:' addresses"
    return "timestamp or fields not in tcpdump's pflog layout"
