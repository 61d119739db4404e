"""The native scanners of the formats other than netfilter (``native/src/formats/``), loaded with ctypes.

Each scanner claims only the lines it reads with certainty and returns
dictionary-coded columns; every other line goes to the format's pyarrow
parser, which also explains rejects. `parse` does that for any format: the
format's module hands it its pyarrow parser and how its texts become event
texts (`Shape`). A batch none of whose first 64 lines is claimed is given up
on and read whole by the pyarrow parser, so lines of a shape the scanner does
not know cost what that parser alone costs.

``FIREPLOT_NATIVE`` switches every native scanner: ``auto`` (default: used
when the library is built), ``native`` (fail if it is missing or refuses a
batch) or ``off`` (the pyarrow parsers alone, same events). The netfilter
scanner also keeps its own older switch, ``FIREPLOT_NETFILTER_ENGINE``, which
wins for netfilter when set. The library is the one `netfilter_native`
finds (``FIREPLOT_NATIVE_LIB`` or the build directory).
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import ConfigError
from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION, TS_TYPE, conform
from pipeline.parsers import ParseContext, Parser, ParseResult, Reject, netfilter_native, syslog
from pipeline.parsers.assemble import non_empty, start

log = logging.getLogger("fireplot.parsers.native")

# Must match src/formats/mod.rs.
# Windows Firewall by its columns: the standard 17 or 18 with pid (no header
# known), exactly the 17, exactly the 18.
FORMATS: Final = {
    "mikrotik": 1,
    "asa": 2,
    "filterlog": 3,
    "winfw": 4,
    "winfw_standard": 5,
    "winfw_pid": 6,
    "vpc": 7,
    "pf": 8,
    "journald": 9,
    "ulogd_json": 10,
}
NUMBERS: Final = ("status", "ts_local", "spt", "dpt", "ip_version", "count", "ts_add_us")
TEXTS: Final = ("host", "prefix", "action", "in_if", "out_if", "src", "dst", "proto", "flags")
PLAIN: Final = frozenset({"src", "dst"})
_LAYOUT: Final = (3 << 16) | ((len(NUMBERS) + len(TEXTS)) << 8) | len(TEXTS)
# A spelled value can be longer than its text (protocol 1 is "ICMP"), by a few bytes per distinct value.
_SLACK: Final = 4096
_NULL_INDEX: Final = pa.scalar(None, pa.int32())


def _identity(values: pa.Array) -> pa.Array:
    return values


@dataclass(frozen=True)
class Shape:
    """How a format's scanned texts become event texts, applied once per distinct value."""

    # Raw prefixes -> (prefixes, actions), element for element; None: the
    # prefixes as scanned, and the actions the scanner wrote.
    prefix_action: Callable[[pa.Array], tuple[pa.Array, pa.Array]] | None = None
    interface: Callable[[pa.Array], pa.Array] = non_empty
    flags: Callable[[pa.Array], pa.Array] = _identity


@dataclass(frozen=True)
class Scan:
    claimed: int
    numbers: dict[str, pa.Array]  # int32 per line, defined where status == 1
    ts_us: pa.Array  # int64 per line
    codes: dict[str, pa.Array]  # int32 index into texts[name], -1 for null
    texts: dict[str, pa.Array]  # string dictionaries (for PLAIN: one entry per line)


def engine() -> str:
    """``native`` when the scanners are in use, else ``off`` (see the module's doc)."""
    wanted = os.environ.get("FIREPLOT_NATIVE", "auto")
    if wanted not in ("auto", "native", "off"):
        raise ConfigError(f"FIREPLOT_NATIVE={wanted!r}: use auto, native or off")
    if wanted == "off":
        return "off"
    if _function() is not None:
        return "native"
    if wanted == "native":
        raise ConfigError(f"FIREPLOT_NATIVE=native: {why_unavailable()}")
    return "off"


def why_unavailable() -> str:
    if _function() is not None:
        return ""
    return (
        netfilter_native.why_unavailable() or "the library has no format scanners of this layout: rebuild it"
    )


@cache
def _function() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    handle = netfilter_native.handle()
    if handle is None or not hasattr(handle, "fireplot_formats_layout"):
        return None
    handle.fireplot_formats_layout.restype = ctypes.c_uint64
    handle.fireplot_formats_layout.argtypes = []
    if handle.fireplot_formats_layout() != _LAYOUT:
        return None
    function = handle.fireplot_scan_format
    function.restype = ctypes.c_int64
    function.argtypes = [
        ctypes.c_int64,  # format
        ctypes.c_void_p, ctypes.c_size_t,  # data
        ctypes.c_void_p, ctypes.c_size_t,  # offsets, n
        ctypes.c_void_p,  # years
        ctypes.c_void_p, ctypes.c_void_p,  # rows, ts
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,  # dict_offsets, dict_data
        ctypes.c_void_p,  # dict_sizes
    ]  # fmt: skip
    return function


def scan(name: str, lines: pa.StringArray, years: tuple[int, int, int, int]) -> Scan | None:
    """Scan a batch of non-null lines with the format's scanner.

    None when there is no scanner, when it gave up on the batch (none of its
    first lines claimed: the caller reads the whole batch its own way), or
    when it refused the batch (a bug, logged; FIREPLOT_NATIVE=native raises).
    """
    function = _function()
    if function is None or lines.null_count:
        return None
    count = len(lines)
    offsets_buffer, data_buffer = lines.buffers()[1:3]
    assert offsets_buffer is not None
    data_address = data_buffer.address if data_buffer is not None else 0
    data_size = data_buffer.size if data_buffer is not None else 0
    capacity = data_size + _SLACK
    ntext = len(TEXTS)
    rows = pa.allocate_buffer(4 * (len(NUMBERS) + ntext) * count)
    ts = pa.allocate_buffer(8 * count)
    settings = (ctypes.c_int64 * 4)(*years)
    dict_offsets = pa.allocate_buffer(4 * ntext * (count + 1))
    dict_data = pa.allocate_buffer(capacity * ntext)
    sizes = (ctypes.c_int64 * (2 * ntext))()
    claimed = function(
        FORMATS[name], data_address, data_size, offsets_buffer.address + 4 * lines.offset, count,
        ctypes.addressof(settings), rows.address, ts.address, dict_offsets.address, dict_data.address,
        capacity * ntext, ctypes.addressof(sizes),
    )  # fmt: skip
    if claimed == -2:
        return None
    if claimed < 0:
        if os.environ.get("FIREPLOT_NATIVE") == "native":
            raise RuntimeError(f"the native {name} scanner refused a batch (FIREPLOT_NATIVE=native)")
        log.error("the native %s scanner refused a batch; parsed on the pyarrow path", name)
        return None

    def column(k: int) -> pa.Array:
        return pa.Array.from_buffers(pa.int32(), count, [None, rows], offset=k * count)

    texts = {}
    for k, field in enumerate(TEXTS):
        entries, used = sizes[2 * k], sizes[2 * k + 1]
        texts[field] = pa.StringArray.from_buffers(
            entries,
            dict_offsets.slice(4 * k * (count + 1), 4 * (entries + 1)),
            dict_data.slice(k * capacity, used),
        )
    return Scan(
        claimed=claimed,
        numbers={field: column(k) for k, field in enumerate(NUMBERS)},
        ts_us=pa.Array.from_buffers(pa.int64(), count, [None, ts]),
        codes={field: column(len(NUMBERS) + k) for k, field in enumerate(TEXTS)},
        texts=texts,
    )


def parse(
    name: str, reference: Parser, shape: Shape, lines: pa.Array, offsets: pa.Array, ctx: ParseContext
) -> ParseResult:
    """``reference`` (the format's pyarrow parser) with the lines the scanner claims read by the scanner."""
    lines, offsets = start(lines, offsets)
    if len(lines) == 0 or engine() == "off":
        return reference(lines, offsets, ctx)
    found = scan(name, lines, syslog.year_rule(ctx))
    if found is None:
        return reference(lines, offsets, ctx)
    events, good = _events(found, shape, offsets, ctx)
    rest = pc.indices_nonzero(pc.invert(good)).cast(pa.int64())
    if len(rest) == 0:
        return ParseResult(events=events, rejects=[])
    # The rest, with positions for offsets so its events and rejects map back to their lines.
    other = reference(pc.take(lines, rest), rest, ctx)
    made = other.events.column("source_offset").combine_chunks()
    other_events = other.events.set_column(
        other.events.schema.get_field_index("source_offset"),
        EVENT_SCHEMA.field("source_offset"),
        pc.take(offsets, made),
    )
    rejects = [Reject(r.source_id, int(offsets[r.offset].as_py()), r.line, r.reason) for r in other.rejects]
    # Imported here: netfilter imports this module's neighbours at load time.
    from pipeline.parsers.netfilter import merge_in_order

    return ParseResult(events=merge_in_order(events, good, other_events, made), rejects=rejects)


def _events(found: Scan, shape: Shape, offsets: pa.Array, ctx: ParseContext) -> tuple[pa.Table, pa.Array]:
    """The events of the lines the scanner claimed, and which lines those are."""
    numbers, codes, texts = found.numbers, found.codes, found.texts
    good = pc.equal(numbers["status"], 1)
    size = found.claimed
    if size == 0:
        return EVENT_SCHEMA.empty_table(), good
    positions = None if size == len(good) else pc.indices_nonzero(good)

    def per_line(values: pa.Array) -> pa.Array:
        return values if positions is None else pc.take(values, positions)

    def text(field: str, values: pa.Array | None = None) -> pa.Array:
        code = per_line(codes[field])
        code = pc.if_else(pc.less(code, 0), _NULL_INDEX, code)
        return pc.take(texts[field] if values is None else values, code)

    ts = per_line(found.ts_us)
    local = pc.equal(per_line(numbers["ts_local"]), 1)
    if not syslog.local_time_is_utc(ctx) and pc.any(local).as_py():
        # The zone applies to the stamp; a fraction written apart from it (pf) is added after.
        added = per_line(numbers["ts_add_us"])
        wall = pc.subtract(ts, added)
        ts = pc.if_else(local, pc.add(syslog.local_to_utc(wall, ctx), added), ts)
    spt, dpt = per_line(numbers["spt"]), per_line(numbers["dpt"])
    if shape.prefix_action is None:
        prefix, action = text("prefix", non_empty(texts["prefix"])), text("action")
    else:
        prefixes, actions = shape.prefix_action(texts["prefix"])
        prefix, action = text("prefix", prefixes), text("prefix", actions)
        if len(texts["action"]):
            # An action the line states (ulogd2's "action" key) wins over its prefix's.
            action = pc.coalesce(text("action"), action)
    host = non_empty(text("host"))
    columns = {
        "ts": ts.cast(TS_TYPE),
        "site": pa.repeat(pa.scalar(ctx.site, pa.string()), size),
        "host": pc.coalesce(host, pa.scalar(ctx.host or "unknown", pa.string())),
        "src_ip": per_line(texts["src"]),
        "dst_ip": per_line(texts["dst"]),
        "src_port": pc.if_else(pc.less(spt, 0), _NULL_INDEX, spt),
        "dst_port": pc.if_else(pc.less(dpt, 0), _NULL_INDEX, dpt),
        "proto": text("proto"),
        "ip_version": per_line(numbers["ip_version"]).cast(pa.int8()),
        "action": action,
        "in_if": text("in_if", shape.interface(texts["in_if"])),
        "out_if": text("out_if", shape.interface(texts["out_if"])),
        "tcp_flags": text("flags", shape.flags(texts["flags"])),
        "prefix": prefix,
        "count": per_line(numbers["count"]),
        "source_id": pa.repeat(pa.scalar(ctx.source_id, pa.string()), size),
        "source_offset": per_line(offsets),
        "schema_version": pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int8()), size),
    }
    table = pa.Table.from_arrays([columns[name] for name in EVENT_SCHEMA.names], schema=EVENT_SCHEMA)
    return conform(table), good
