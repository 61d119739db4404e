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

The pyarrow path is `netfilter_arrow`, the grammar both follow
`netfilter_grammar`, and the per-line explanation of rejects
`netfilter_rejects`.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import ConfigError
from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION, TS_TYPE, conform
from pipeline.parsers import ParseContext, ParseResult, netfilter_arrow, netfilter_native, syslog
from pipeline.parsers.assemble import non_empty, start
from pipeline.parsers.netfilter_arrow import parse_arrow
from pipeline.parsers.netfilter_grammar import prefix_and_action

__all__ = ["engine", "merge_in_order", "parse", "parse_arrow", "read_claimed"]

log = logging.getLogger("fireplot.parsers.netfilter")


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Turn netfilter LOG lines into events, and every other line into a reject."""
    lines, offsets = start(lines, offsets)
    if len(lines) == 0:
        return ParseResult.empty()
    claimed = read_claimed(lines, offsets, ctx, alone=False)
    if claimed is None:
        result, _ = netfilter_arrow.parse_with_positions(lines, offsets, ctx)
        return result
    events, good = claimed
    # What the scanner did not claim is read (or rejected, with its reason)
    # by the reference path; when that is every line, as it is, without
    # copying them out first.
    rest = pc.indices_nonzero(pc.invert(good)).cast(pa.int64())
    if len(rest) == 0:
        return ParseResult(events=events, rejects=[])
    if len(rest) == len(lines):
        result, _ = netfilter_arrow.parse_with_positions(lines, offsets, ctx)
        return result
    other, other_positions = netfilter_arrow.parse_with_positions(
        pc.take(lines, rest), pc.take(offsets, rest), ctx
    )
    return ParseResult(
        events=merge_in_order(events, good, other.events, pc.take(rest, other_positions)),
        rejects=other.rejects,
    )


def read_claimed(
    lines: pa.Array, offsets: pa.Array, ctx: ParseContext, *, alone: bool
) -> tuple[pa.Table, pa.Array] | None:
    """The events of the lines the native scanner claims, and a mask of those lines.

    ``lines`` as `start` leaves them. None when the scanner is not in use
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
    the library is missing) or ``arrow`` (never use it). Unset, the switch of
    every native scanner decides: ``FIREPLOT_NATIVE`` (``off`` is ``arrow``).
    """
    every = {"off": "arrow"}.get(
        os.environ.get("FIREPLOT_NATIVE", "auto"), os.environ.get("FIREPLOT_NATIVE", "auto")
    )
    wanted = os.environ.get("FIREPLOT_NETFILTER_ENGINE", every)
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
        "in_if": pc.take(non_empty(dicts["in_if"]), kept("in_if")),
        "out_if": pc.take(non_empty(dicts["out_if"]), kept("out_if")),
        "tcp_flags": pc.take(_FLAG_TEXT, flag_code),
        "prefix": pc.take(prefixes, prefix_code),
        "count": pa.repeat(pa.scalar(1, pa.int32()), size),
        "source_id": pa.repeat(pa.scalar(ctx.source_id, pa.string()), size),
        "source_offset": per_line(offsets),
        "schema_version": pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int8()), size),
    }
    table = pa.Table.from_arrays([columns[name] for name in EVENT_SCHEMA.names], schema=EVENT_SCHEMA)
    return conform(table), good


_REMEMBERED_PREFIXES: Final = 32


@functools.lru_cache(maxsize=256)
def _known_prefixes(raw: tuple[str, ...]) -> tuple[pa.Array, pa.Array]:
    """`prefix_and_action` of a batch's distinct raw prefixes, which repeat batch after batch."""
    return prefix_and_action(pa.array(raw, pa.string()))
