"""Data behind the page's drill-downs: one source's activity, and the scans of a view.

Both read only what the view covers: the source panel pushes the source
address down into the Parquet scan (with the date partitions pruned), and
scans are read from the date directories of the scan dataset
(:mod:`pipeline.detect.scanstore`) that can hold scans overlapping the view.
Columns come back ready for a ColumnDataSource; text stays text (the page
shows it through DataTables and escaped tooltips only).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from consumers import style
from consumers.web.feeds.columns import SourceData, as_numpy
from consumers.web.feeds.contract import site_scope
from pipeline.detect.records import SCAN_SCHEMA, conform
from pipeline.detect.scanstore import spanning_files
from pipeline.event import EVENT_SCHEMA
from pipeline.store import Store

# Newest events of a source listed in its panel; the timeline and port table count them all.
PANEL_EVENTS: Final = 500
TIMELINE_BINS: Final = 48
# Scan epochs last at most a day (DetectConfig.slow_epoch_s must divide one): a grid
# kind's scan overlapping the view is filed under a date at most this far before it. A
# tracked scan (slow, distributed) runs for days under the date it started: the dates
# it covers name its file (scanstore.spanning_files).
SCAN_EPOCH_MAX: Final = dt.timedelta(days=1)

_SOURCE_COLUMNS: Final = [
    "ts", "site", "host", "src_ip", "dst_ip", "dst_port", "proto", "ip_version", "action", "prefix", "count",
]  # fmt: skip


@dataclass
class SourceDetail:
    """One source address within a view: its events, ports, sites and scans."""

    src_ip: str
    events: int
    packets: int
    sites: list[str]
    timeline: SourceData
    ports: SourceData
    recent: SourceData
    scans: SourceData

    def summary(self) -> str:
        text = f"source {self.src_ip}: {self.events:,} events ({self.packets:,} packets)"
        text += f" at {len(self.sites)} site{'s' if len(self.sites) != 1 else ''} ({', '.join(self.sites)})"
        if self.events > PANEL_EVENTS:
            text += f"; the table lists the newest {PANEL_EVENTS}"
        return text


def source_detail(
    store: Store, scan_root: Path, src_ip: str, start: dt.datetime, end: dt.datetime, site: str | None
) -> SourceDetail:
    """Everything the panel shows for ``src_ip`` within ``[start, end)`` (and ``site``, if given)."""
    flt = (
        (ds.field("date") >= start.date())
        & (ds.field("date") <= end.date())
        & (ds.field("ts") >= pa.scalar(start, pa.timestamp("us", tz="UTC")))
        & (ds.field("ts") < pa.scalar(end, pa.timestamp("us", tz="UTC")))
        & (ds.field("src_ip") == src_ip)
    )
    if site is not None:
        flt = flt & (ds.field("site") == site)
    empty = EVENT_SCHEMA.empty_table().select(_SOURCE_COLUMNS)
    table = store.scan(lambda d: d.to_table(columns=_SOURCE_COLUMNS, filter=flt), empty)
    table = table.cast(pa.schema([EVENT_SCHEMA.field(c) for c in _SOURCE_COLUMNS]))
    table = style.encode(table.sort_by([("ts", "descending")]))

    ports = table.group_by(["dst_port", "proto", "ip_version"], use_threads=False).aggregate(
        [("count", "sum"), ("ts", "count"), ("ts", "min"), ("ts", "max")]
    )
    ports = ports.sort_by([("count_sum", "descending"), ("dst_port", "ascending")])
    recent = table.slice(0, PANEL_EVENTS)
    scans = read_scans(scan_root, start, end, site, site_scope(store))
    scans = scans.filter(_lists(scans.column("sources"), src_ip)) if scans.num_rows else scans
    return SourceDetail(
        src_ip=src_ip,
        events=table.num_rows,
        packets=int(pc.sum(table.column("count")).as_py() or 0),
        sites=sorted(pc.unique(table.column("site")).to_pylist()),
        timeline=_timeline(table.column("ts"), start, end),
        ports={
            "port": _port_text(ports.column("dst_port")),
            "proto": as_numpy(ports.column("proto")),
            "ip_version": as_numpy(ports.column("ip_version")),
            "events": as_numpy(ports.column("ts_count")),
            "packets": as_numpy(ports.column("count_sum")),
            "first": _ms(ports.column("ts_min")),
            "last": _ms(ports.column("ts_max")),
        },
        recent={
            "ts": _ms(recent.column("ts")),
            "site": _text(recent.column("site")),
            "host": _text(recent.column("host")),
            "dst_ip": _text(recent.column("dst_ip")),
            "port": _port_text(recent.column("dst_port")),
            "proto": _text(recent.column("proto")),
            "action": _text(recent.column("action")),
            "prefix": _text(recent.column("prefix")),
        },
        scans=scan_data(scans),
    )


def scan_files(root: Path, start: dt.datetime, end: dt.datetime) -> list[Path]:
    """The scan dataset's files that can hold scans overlapping ``[start, end)``, by their date dirs."""
    first_day, last_day = (start - SCAN_EPOCH_MAX).date(), end.date()
    files = []
    for day_dir in root.glob("date=*") if root.is_dir() else ():
        try:
            day = dt.date.fromisoformat(day_dir.name[len("date=") :])
        except ValueError:
            continue
        if first_day <= day <= last_day:
            files += [p for p in day_dir.glob("*.parquet") if not p.name.startswith(".")]
    spanning = [p for p in spanning_files(root, start.date(), end.date()) if p.exists()]
    return sorted({*files, *spanning})


ScanStamp = frozenset[tuple[str, int, int]]


def scan_stamp(root: Path, start: dt.datetime, end: dt.datetime) -> ScanStamp:
    """The view's scan files as they are now (name, mtime, size); a live page re-reads on a change.

    The detector rewrites an epoch's file whole by rename, so a new or grown scan
    always shows as a new file or a new mtime; listing a few files per refresh is
    cheap where reading and shipping the scans again would not be.
    """
    stamp = set()
    for path in scan_files(root, start, end):
        try:
            st = path.stat()
        except FileNotFoundError:  # replaced or emptied between listing and stat
            continue
        stamp.add((str(path), st.st_mtime_ns, st.st_size))
    return frozenset(stamp)


def read_scans(
    root: Path, start: dt.datetime, end: dt.datetime, site: str | None, allowed: frozenset[str] | None = None
) -> pa.Table:
    """Scans overlapping ``[start, end)`` (first_ts < end and last_ts >= start), pruned by date dirs.

    ``allowed`` limits them to scans detected at those sites (a user's allow-list).
    """
    tables = []
    for path in scan_files(root, start, end):
        try:
            tables.append(conform(pq.read_table(path)))
        except FileNotFoundError:  # the detector removed an epoch's file that lost all its scans
            continue
    if not tables:
        return SCAN_SCHEMA.empty_table()
    table = pa.concat_tables(tables)
    ts_type = SCAN_SCHEMA.field("first_ts").type
    overlap = pc.and_(
        pc.less(table.column("first_ts"), pa.scalar(end, ts_type)),
        pc.greater_equal(table.column("last_ts"), pa.scalar(start, ts_type)),
    )
    if site is not None:
        at_site = pc.or_(pc.equal(table.column("site"), site), _lists(table.column("sites"), site))
        overlap = pc.and_(overlap, at_site)
    if allowed is not None:
        overlap = pc.and_(
            overlap, pc.is_in(table.column("site"), value_set=pa.array(sorted(allowed), pa.string()))
        )
    return table.filter(overlap).sort_by([("first_ts", "ascending"), ("scan_id", "ascending")])


def scan_data(scans: pa.Table) -> SourceData:
    """Columns of the scans overlay and table: a rectangle per scan, time x port range."""
    port_min, port_max = scans.column("port_min"), scans.column("port_max")
    bottom = pc.fill_null(pc.cast(port_min, pa.float64()), style.NO_PORT_Y)
    top = pc.fill_null(pc.cast(port_max, pa.float64()), style.NO_PORT_Y)
    # One port (a horizontal sweep, hammering) would be a zero-height box: widen it
    # a little on the log axis so it shows as a band around the port.
    bottom, top = pc.multiply(bottom, 0.9), pc.multiply(top, 1.1)
    return {
        "scan_id": _text(scans.column("scan_id")),
        "kind": _text(scans.column("kind")),
        "site": _text(scans.column("site")),
        "sources": _joined(scans.column("sources")),
        "sites": _joined(scans.column("sites")),
        "left": _ms(scans.column("first_ts")),
        "right": _ms(scans.column("last_ts")),
        "bottom": as_numpy(bottom),
        "top": as_numpy(top),
        "ports": _port_range(port_min, port_max),
        "distinct_ports": as_numpy(scans.column("distinct_ports")),
        "targets": as_numpy(scans.column("distinct_targets")),
        "packets": as_numpy(scans.column("packets")),
        "status": _text(scans.column("status")),
        # Properties of the tracked kinds: port order (ascending, descending, random), the
        # UTC days the scan covers, and whether several sources share it.
        "order": _text(scans.column("order")),
        "days": as_numpy(scans.column("days_spanned")),
        "shared": as_numpy(
            pc.if_else(pc.fill_null(scans.column("distributed"), False), "several sources", "one source")
        ),
    }


def empty_scans() -> SourceData:
    return scan_data(SCAN_SCHEMA.empty_table())


def empty_detail() -> SourceDetail:
    """The panel before any dot was clicked."""
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    none = pa.array([], pa.timestamp("us", tz="UTC"))
    return SourceDetail(
        "", 0, 0, [], _timeline(pa.chunked_array([none]), t, t + dt.timedelta(hours=1)),
        {k: np.array([]) for k in ("port", "proto", "ip_version", "events", "packets", "first", "last")},
        {k: np.array([]) for k in ("ts", "site", "host", "dst_ip", "port", "proto", "action", "prefix")},
        empty_scans(),
    )  # fmt: skip


def _lists(lists: pa.ChunkedArray | pa.Array, value: str) -> pa.Array:
    """Per row of a list<string> column: does it contain ``value``."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    hits = pc.equal(pc.list_flatten(lists), value)
    rows = pc.filter(pc.list_parent_indices(lists), hits)
    mask = np.zeros(len(lists), dtype=bool)
    mask[np.asarray(rows.to_numpy(zero_copy_only=False), dtype=np.int64)] = True
    return pa.array(mask)


def _timeline(ts: pa.ChunkedArray, start: dt.datetime, end: dt.datetime) -> SourceData:
    """Events per bin over the view: TIMELINE_BINS bars from start to end."""
    edges = np.linspace(start.timestamp() * 1000.0, end.timestamp() * 1000.0, TIMELINE_BINS + 1)
    counts, _ = np.histogram(_ms(ts), bins=edges)
    return {"t": (edges[:-1] + edges[1:]) / 2, "events": counts, "width": np.diff(edges) * 0.9}


def _ms(col: pa.ChunkedArray | pa.Array) -> Any:
    return as_numpy(pc.divide(pc.cast(col, pa.int64()), 1000.0))


def _text(col: pa.ChunkedArray | pa.Array) -> Any:
    return as_numpy(pc.fill_null(col, ""))


def _port_text(col: pa.ChunkedArray | pa.Array) -> Any:
    return as_numpy(pc.fill_null(pc.cast(col, pa.string()), style.NO_PORT_LABEL))


def _joined(col: pa.ChunkedArray | pa.Array) -> Any:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return as_numpy(pc.binary_join(col, ", ")) if len(col) else np.array([], dtype=object)


def _port_range(lo: pa.ChunkedArray, hi: pa.ChunkedArray) -> Any:
    lo_s = pc.fill_null(pc.cast(lo, pa.string()), style.NO_PORT_LABEL)
    hi_s = pc.fill_null(pc.cast(hi, pa.string()), style.NO_PORT_LABEL)
    both = pc.binary_join_element_wise(lo_s, hi_s, "-")
    return as_numpy(pc.if_else(pc.equal(lo_s, hi_s), lo_s, both))
