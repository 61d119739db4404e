"""ulogd2 JSON output (``NFLOG → BASE → IFINDEX → IP2STR → … → JSON``) to events.

One JSON object per line, keys as ulogd2's ``output/ulogd_output_JSON.c``
writes them: a key's CIM alias where it has one (``src_ip``, ``dest_ip``,
``src_port``, ``dest_port``), its ulogd name otherwise (``oob.prefix``,
``oob.time.sec``, ``ip.protocol``, ``tcp.syn``, ...). See
``tests/fixtures/ulogd/nmap-lab.ulogd.json`` for a real capture.

Time: the epoch fields ``oob.time.sec``/``oob.time.usec`` when present; the
``timestamp`` text only without them, and then its zone suffix is not
trusted (some plugin versions print none, or a wrong one): the wall clock is
read in ``ctx.tz``. Action: ``action`` (``boolean_label=1``: ``allowed`` /
``blocked``), else the prefix's words as for netfilter. Host: ``dvc`` unless
it is ulogd2's default ``Netfilter``, else the shipper's host. Protocol
names follow netfilter's (``ip.protocol`` 6 is ``TCP``); TCP flags are read
from ``tcp.urg`` … ``tcp.fin``.

The native scanner (`native_formats`, ``formats/ulogd_json.rs``) reads the
lines it is sure of with a strict JSON reader (those with epoch fields);
every other line goes to `parse_arrow`, which also explains rejects.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.parsers import ParseContext, ParseResult, jsonlines, native_formats, syslog
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
    quoted,
    start,
)
from pipeline.parsers.netfilter_grammar import prefix_and_action

_INTEGERS: Final = (
    "oob.time.sec", "oob.time.usec", "oob.family", "ip.protocol", "src_port", "dest_port",
    "tcp.urg", "tcp.ack", "tcp.psh", "tcp.rst", "tcp.syn", "tcp.fin",
)  # fmt: skip
_STRINGS: Final = ("timestamp", "dvc", "oob.prefix", "src_ip", "dest_ip", "oob.in", "oob.out", "action")
SCHEMA: Final = pa.schema([(n, pa.int64()) for n in _INTEGERS] + [(n, pa.string()) for n in _STRINGS])
DEFAULT_DEVICE: Final = "Netfilter"
ACTIONS: Final = {"blocked": "drop", "allowed": "accept"}
_TCP_FLAGS: Final = (("URG", "tcp.urg"), ("ACK", "tcp.ack"), ("PSH", "tcp.psh"), ("RST", "tcp.rst"),
                     ("SYN", "tcp.syn"), ("FIN", "tcp.fin"))  # fmt: skip
_US_PER_S: Final = 1_000_000
_MAX_SECONDS: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
# The prefix's action unless the line states one (the scanner writes that).
_SHAPE: Final = native_formats.Shape(prefix_action=prefix_and_action)


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn ulogd2 JSON lines into events, and every other line into a reject."""
    return native_formats.parse("ulogd_json", parse_arrow, _SHAPE, lines, offsets, ctx)


def parse_arrow(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """`parse` on the pyarrow path alone: the reference of the native scanner."""
    lines, offsets = start(lines, offsets)
    table, positions, unreadable = jsonlines.read(lines, SCHEMA)

    def col(name: str) -> pa.Array:
        return plain(table.column(name))

    sec, usec = col("oob.time.sec"), col("oob.time.usec")
    epoch_ok = pc.and_(
        pc.and_(pc.greater_equal(sec, 0), pc.less_equal(sec, _MAX_SECONDS)),
        pc.and_(pc.greater_equal(pc.fill_null(usec, 0), 0), pc.less(pc.fill_null(usec, 0), _US_PER_S)),
    )
    epoch = pc.if_else(
        pc.fill_null(epoch_ok, False),
        pc.add(pc.multiply(sec, _US_PER_S), pc.fill_null(usec, 0)),
        pa.scalar(None, pa.int64()),
    )
    stamp = col("timestamp")
    wall = pc.replace_substring_regex(stamp, r"(?:[Zz]|[+-]\d\d:?\d\d)$", "")
    ts = pc.coalesce(epoch, syslog.timestamps(wall, ctx).cast(pa.int64()))
    ts_text = pc.coalesce(pc.cast(sec, pa.string()), stamp)

    proto_number = col("ip.protocol")
    proto = protocol_names(pc.cast(proto_number, pa.string()))
    takes_ports = pc.is_in(proto, value_set=pa.array(PORT_PROTOCOLS))
    family = col("oob.family")
    src = col("src_ip")
    problem = first(
        pa.nulls(len(positions), pa.string()),
        pc.is_null(src),
        pa.scalar("no src_ip (is the IP2STR filter in the stack?)"),
    )
    problem = first(problem, pc.is_null(col("dest_ip")), pa.scalar("no dest_ip"))
    problem = first(
        problem,
        pc.or_(pc.less(proto_number, 0), pc.greater(proto_number, 255)),
        joined("bad ip.protocol ", quoted(pc.cast(proto_number, pa.string()))),
    )
    problem = first(problem, pc.is_null(proto_number), pa.scalar("no ip.protocol"))
    problem = first(
        problem,
        pc.not_equal(pc.match_substring(src, ":"), pc.equal(family, 10)),
        joined(
            "oob.family ", joined(quoted(pc.cast(family, pa.string())), pa.scalar(" does not match src_ip"))
        ),
    )
    raw_action = col("action")
    named = pc.take(pa.array(list(ACTIONS.values())), pc.index_in(raw_action, pa.array(list(ACTIONS))))
    problem = first(
        problem,
        pc.and_(pc.is_valid(raw_action), pc.is_null(named)),
        joined("unknown action ", quoted(raw_action)),
    )
    prefix, prefix_action = prefix_and_action(pc.fill_null(col("oob.prefix"), ""))
    words = [pc.if_else(pc.equal(pc.fill_null(col(key), 0), 1), f"{word} ", "") for word, key in _TCP_FLAGS]
    flags = pc.utf8_rtrim_whitespace(pc.binary_join_element_wise(*words, ""))
    device = col("dvc")
    read = Read(
        position=positions,
        ts=ts,
        ts_text=ts_text,
        host=pc.if_else(pc.equal(device, DEFAULT_DEVICE), NULL_STRING, device),
        src=src,
        dst=col("dest_ip"),
        proto=proto,
        action=pc.coalesce(named, prefix_action),
        src_port=pc.if_else(takes_ports, pc.cast(col("src_port"), pa.string()), NULL_STRING),
        dst_port=pc.if_else(takes_ports, pc.cast(col("dest_port"), pa.string()), NULL_STRING),
        in_if=non_empty(col("oob.in")),
        out_if=non_empty(col("oob.out")),
        # No tcp.* keys at all: a fragment or a cut header, flags unknown.
        tcp_flags=pc.if_else(
            pc.and_(pc.equal(proto, "TCP"), pc.is_valid(col("tcp.syn"))), flags, NULL_STRING
        ),
        prefix=prefix,
        problem=problem,
    )
    return finish(lines, offsets, ctx, read, pa.array([], pa.int64()), str, also=unreadable)
