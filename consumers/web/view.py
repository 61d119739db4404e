"""Data for the day page: what one page shows of the store, and what is new since.

A page looks at one UTC day, ``[date 00:00, date + 1 day)``, optionally one
site. :class:`DayFeed` reads that day from the store and turns it into the
columns of the plot's ColumnDataSource; for today it is polled and returns only
events it has not returned before. Nothing here touches Bokeh models, so the
reading and the arithmetic can run off the server's event loop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from consumers import style
from pipeline.event import EVENT_SCHEMA, TS_TYPE
from pipeline.store import Store

SourceData = dict[str, npt.NDArray[Any]]

# Workers flush each Kafka partition on its own schedule, so an event can land
# in the store after a newer one from another partition or site. Each poll
# re-reads this much before the newest event seen and drops what it already
# sent; events later than this show on the next load of the day.
LATE_MARGIN: Final = dt.timedelta(minutes=5)

READ_COLUMNS: Final = [
    "ts", "site", "host", "src_ip", "dst_port", "proto", "ip_version", "prefix", "count",
    "source_id", "source_offset",
]  # fmt: skip
_IDENTITY: Final = ["source_id", "source_offset"]
_RECENT: Final = [*_IDENTITY, "ts"]
NO_PORT_TEXT: Final = style.NO_PORT_LABEL

RAW_COLUMNS: Final = (
    "ts", "y", "series", "port", "proto", "ip_version", "src_ip", "site", "host", "prefix", "count",
)  # fmt: skip
AGGREGATED_COLUMNS: Final = (
    "ts", "y", "series", "port", "proto", "ip_version", "events", "sources",
)  # fmt: skip


@dataclass(frozen=True)
class Bucket:
    """A time bucket events are aggregated into when a day is too big to draw raw."""

    multiple: int
    unit: str

    @property
    def label(self) -> str:
        return f"{self.multiple} {self.unit}" if self.multiple != 1 else self.unit


# Tried in order: the first that brings the day under max_points is used.
BUCKETS: Final = (Bucket(1, "minute"), Bucket(10, "minute"), Bucket(1, "hour"))


@dataclass(frozen=True)
class Frame:
    """Columns for the plot's source, replacing what it holds or to be streamed onto it."""

    data: SourceData
    replace: bool


# Days the page can show: firewall logs start after the epoch, and the day
# after date.max does not exist.
FIRST_DAY: Final = dt.date(1970, 1, 1)
LAST_DAY: Final = dt.date.max - dt.timedelta(days=1)


def day_bounds(date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def parse_day(text: str) -> dt.date | None:
    """A YYYY-MM-DD day the page can show, or None."""
    try:
        date = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return date if FIRST_DAY <= date <= LAST_DAY else None


def shift_day(date: dt.date, days: int) -> dt.date:
    """The day ``days`` away, held within the days the page can show."""
    try:
        shifted = date + dt.timedelta(days=days)
    except OverflowError:
        return LAST_DAY if days > 0 else FIRST_DAY
    return min(max(shifted, FIRST_DAY), LAST_DAY)


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def empty_data() -> SourceData:
    """Source columns of a day without events, for a page before its first load."""
    return _source_data(style.encode(_empty_events()), aggregated=False)


class DayFeed:
    """One page's view of one UTC day of the store, optionally one site.

    Not thread-safe: the page runs at most one :meth:`load` or :meth:`poll` at
    a time.
    """

    def __init__(self, store: Store, date: dt.date, site: str | None, max_points: int) -> None:
        self.store = store
        self.date = date
        self.site = site
        self.max_points = max_points
        self.start, self.end = day_bounds(date)
        self.events = 0
        self.bucket: Bucket | None = None
        self._points = 0
        self._sources: pa.Array = pa.array([], pa.string())
        self._newest: dt.datetime | None = None
        self._recent = _empty_events().select(_RECENT)

    @property
    def sources(self) -> int:
        return len(self._sources)

    @property
    def aggregated(self) -> bool:
        return self.bucket is not None

    def load(self) -> Frame:
        """Everything of the day, aggregated if there are more events than max_points."""
        table = self._read(self.start)
        self.events, self._points = 0, 0
        self._sources = pa.array([], pa.string())
        self._newest, self._recent = None, _empty_events().select(_RECENT)
        self.bucket = None
        if table.num_rows <= self.max_points:
            data = _source_data(style.encode(table), aggregated=False)
        else:
            for bucket in BUCKETS:
                self.bucket = bucket
                aggregated = _aggregate(table, bucket)
                if aggregated.num_rows <= self.max_points:
                    break
            # The coarsest bucket is used even when it is still over the budget:
            # a slow page beats a blank one.
            data = _source_data(aggregated, aggregated=True)
        self._remember(table, len(data["ts"]))
        return Frame(data, replace=True)

    def poll(self) -> Frame | None:
        """Events stored since the last load or poll; None if there are none.

        When raw dots would pass max_points the whole day is loaded again,
        aggregated, and returned as a replacing frame.
        """
        table = self._read(self._horizon())
        if table.num_rows and self._recent.num_rows:
            seen = self._recent.select(_IDENTITY)
            table = table.join(seen, keys=_IDENTITY, join_type="left anti")
        if table.num_rows == 0:
            return None
        if self.bucket is None:
            if self._points + table.num_rows > self.max_points:
                return self.load()
            data = _source_data(style.encode(table), aggregated=False)
        else:
            data = _source_data(_aggregate(table, self.bucket), aggregated=True)
            # Streamed buckets add up; past the budget, aggregate the whole day
            # again, coarser if need be (unless it is already as coarse as it gets).
            if self._points + len(data["ts"]) > self.max_points and self.bucket != BUCKETS[-1]:
                return self.load()
        self._remember(table, len(data["ts"]))
        return Frame(data, replace=False)

    def summary(self) -> str:
        """One line about the day, plain text (the page renders it as text, not HTML)."""
        text = f"{self.events:,} events, {self.sources:,} sources"
        if self.bucket is not None:
            text += (
                f"; more than {self.max_points:,} to draw, so each dot counts the events of "
                f"one {self.bucket.label} \u00d7 port \u00d7 protocol ({self._points:,} dots)"
            )
        return text

    def _read(self, since: dt.datetime) -> pa.Table:
        sites = [self.site] if self.site is not None else None
        return self.store.read(since, self.end, sites=sites, columns=READ_COLUMNS)

    def _remember(self, table: pa.Table, points: int) -> None:
        if table.num_rows == 0:
            return
        self.events += table.num_rows
        self._points += points
        src = table.column("src_ip").combine_chunks()
        self._sources = pc.unique(pa.concat_arrays([self._sources, src]))
        newest: dt.datetime = pc.max(table.column("ts")).as_py()
        self._newest = newest if self._newest is None else max(self._newest, newest)
        # A join drops the columns' not-null flags; concat needs identical schemas.
        recent = pa.concat_tables([self._recent, table.select(_RECENT).cast(self._recent.schema)])
        cutoff = pa.scalar(self._horizon(), TS_TYPE)
        self._recent = recent.filter(pc.greater_equal(recent.column("ts"), cutoff))

    def _horizon(self) -> dt.datetime:
        """Where the next poll starts reading: LATE_MARGIN before the newest event seen.

        Capped at the wall clock, so that one sensor whose clock runs hours
        ahead cannot push the horizon past everyone else's events.
        """
        if self._newest is None:
            return self.start
        newest = min(self._newest, dt.datetime.now(dt.UTC))
        return max(self.start, newest - LATE_MARGIN)


def _empty_events() -> pa.Table:
    return EVENT_SCHEMA.empty_table().select(READ_COLUMNS)


def _aggregate(table: pa.Table, bucket: Bucket) -> pa.Table:
    """Events per (time bucket, destination port, protocol, IP family), with counts."""
    ts = pc.floor_temporal(table.column("ts"), bucket.multiple, bucket.unit)
    keyed = table.set_column(table.schema.get_field_index("ts"), "ts", ts)
    grouped = keyed.group_by(["ts", "dst_port", "proto", "ip_version"]).aggregate(
        [("source_offset", "count"), ("src_ip", "count_distinct")]
    )
    grouped = grouped.rename_columns({"source_offset_count": "events", "src_ip_count_distinct": "sources"})
    return style.encode(grouped)


def _source_data(table: pa.Table, aggregated: bool) -> SourceData:
    """ColumnDataSource columns: numbers as typed arrays, text as plain strings.

    Strings go to the browser as data, never markup: the hover tool escapes
    ``@field`` values, and null text becomes "" rather than Bokeh's "???".
    """
    names = AGGREGATED_COLUMNS if aggregated else RAW_COLUMNS
    out: SourceData = {}
    for name in names:
        if name == "port":
            port = pc.cast(table.column("dst_port"), pa.string())
            out[name] = _numpy(pc.fill_null(port, NO_PORT_TEXT))
            continue
        col = table.column(name)
        if name == "ts":
            # Bokeh's time axis and datetime formatter count milliseconds since the epoch.
            out[name] = _numpy(pc.divide(pc.cast(col, pa.int64()), 1000.0))
        elif pa.types.is_string(col.type):
            out[name] = _numpy(pc.fill_null(col, ""))
        else:
            out[name] = _numpy(col)
    return out


def _numpy(col: pa.ChunkedArray | pa.Array) -> npt.NDArray[Any]:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(col.to_numpy(zero_copy_only=False))
