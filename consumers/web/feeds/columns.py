"""The plot's source columns: what a feed hands the page for raw dots and for bins.

Both feeds read events (or rollup rows) from the store as Arrow tables; the page's
ColumnDataSource wants NumPy columns with the style's y, series and alpha, the port as text,
and service names for the hover. One conversion, so a dot carries the same columns whichever
feed read it.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from consumers import style
from pipeline.enrich import service_names
from pipeline.event import EVENT_SCHEMA

SourceData = dict[str, npt.NDArray[Any]]

READ_COLUMNS: Final = [
    "ts", "site", "host", "src_ip", "dst_ip", "dst_port", "proto", "ip_version", "action", "prefix",
    "count", "source_id", "source_offset",
]  # fmt: skip
NO_PORT_TEXT: Final = style.NO_PORT_LABEL

RAW_COLUMNS: Final = (
    "ts", "y", "series", "port", "proto", "ip_version", "src_ip", "dst_ip", "site", "host", "action",
    "prefix", "count", "alpha",
)  # fmt: skip
AGGREGATED_COLUMNS: Final = (
    "ts", "y", "series", "port", "proto", "ip_version", "events", "sources", "alpha",
)  # fmt: skip


def empty_events() -> pa.Table:
    """An events table without rows, in READ_COLUMNS."""
    return EVENT_SCHEMA.empty_table().select(READ_COLUMNS)


def empty_data() -> SourceData:
    """Source columns of a day without events, for a page before its first load."""
    return _source_data(style.encode(empty_events()), aggregated=False)


def aggregated_data(table: pa.Table) -> SourceData:
    """Source columns of aggregated rows (ts, dst_port, proto, ip_version, events, sources)."""
    return _source_data(style.encode(table), aggregated=True)


def raw_data(table: pa.Table) -> SourceData:
    """Source columns of raw events (READ_COLUMNS)."""
    return _source_data(style.encode(table), aggregated=False)


def _source_data(table: pa.Table, aggregated: bool) -> SourceData:
    """ColumnDataSource columns: numbers as typed arrays, text as plain strings.

    Strings go to the browser as data, never markup: the hover tool escapes
    ``@field`` values, and null text becomes "" rather than Bokeh's "???".
    """
    names = AGGREGATED_COLUMNS if aggregated else RAW_COLUMNS
    out: SourceData = {}
    for name in names:
        if name == "alpha":
            ones = pa.array(np.ones(table.num_rows))
            out[name] = as_numpy(style.intensity(table.column("events")) if aggregated else ones)
            continue
        if name == "port":
            low = table.column("dst_port")
            if aggregated:
                high = table.column("dst_port_max")
                port = style.port_span_label(low, high)
                # A bin of several ports has no one service name.
                one = pc.fill_null(pc.equal(low, high), True)
                service = pc.if_else(one, service_names(low, table.column("proto")), pa.scalar(""))
            else:
                port = pc.cast(low, pa.string())
                service = service_names(low, table.column("proto"))
            out[name] = as_numpy(pc.fill_null(port, NO_PORT_TEXT))
            # Enriched at read time (pipeline.enrich): for the hover's "@service".
            out["service"] = as_numpy(service)
            continue
        col = table.column(name)
        if name == "ts":
            # Bokeh's time axis and datetime formatter count milliseconds since the epoch.
            out[name] = as_numpy(pc.divide(pc.cast(col, pa.int64()), 1000.0))
        elif pa.types.is_string(col.type):
            out[name] = as_numpy(pc.fill_null(col, ""))
        else:
            out[name] = as_numpy(col)
    return out


def as_numpy(col: pa.ChunkedArray | pa.Array) -> npt.NDArray[Any]:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(col.to_numpy(zero_copy_only=False))
