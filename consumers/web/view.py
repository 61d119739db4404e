"""Data for the day page: what one page shows of the store, and what is new since.

A page looks at one day, ``[date 00:00, date + 1 day)`` in its time zone (UTC by default), optionally one
site. :class:`DayFeed` reads that day from the store and turns it into the
columns of the plot's ColumnDataSource; for today it is polled and returns only
events it has not returned before. Nothing here touches Bokeh models, so the
reading and the arithmetic can run off the server's event loop.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from consumers import style
from pipeline.enrich import service_names
from pipeline.event import EVENT_SCHEMA, TS_TYPE
from pipeline.networks import NetworkTable
from pipeline.store import Store

SourceData = dict[str, npt.NDArray[Any]]

# Workers flush each Kafka partition on its own schedule, so an event can land
# in the store after a newer one from another partition or site. Each poll
# re-reads this much before the newest event seen and drops what it already
# sent; events later than this show on the next load of the day.
LATE_MARGIN: Final = dt.timedelta(minutes=5)

READ_COLUMNS: Final = [
    "ts", "site", "host", "src_ip", "dst_ip", "dst_port", "proto", "ip_version", "action", "prefix",
    "count", "source_id", "source_offset",
]  # fmt: skip
_IDENTITY: Final = ["source_id", "source_offset"]
_RECENT: Final = [*_IDENTITY, "ts"]
NO_PORT_TEXT: Final = style.NO_PORT_LABEL

RAW_COLUMNS: Final = (
    "ts", "y", "series", "port", "proto", "ip_version", "src_ip", "dst_ip", "site", "host", "action",
    "prefix", "count", "alpha",
)  # fmt: skip
AGGREGATED_COLUMNS: Final = (
    "ts", "y", "series", "port", "proto", "ip_version", "events", "sources", "alpha",
)  # fmt: skip


class FilterError(ValueError):
    """A filter the operator typed that cannot be understood; the message says why."""


@dataclass(frozen=True)
class Filters:
    """What the operator narrowed the view to, applied to every read of the page.

    Empty fields filter nothing. ``networks`` are source networks (a single
    address is a /32 or /128); ``series`` are legend labels of style.SERIES.
    """

    series: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    port_min: int | None = None
    port_max: int | None = None
    actions: tuple[str, ...] = ()
    _nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        nets = []
        for text in self.networks:
            try:
                nets.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise FilterError(f"not an address or network: {text!r}") from None
        object.__setattr__(self, "_nets", tuple(nets))
        unknown = [s for s in self.series if s not in style.SERIES]
        if unknown:
            raise FilterError(f"unknown protocol series: {unknown!r}")
        for bound in (self.port_min, self.port_max):
            if bound is not None and not 0 <= bound <= 65535:
                raise FilterError(f"port {bound} is outside 0..65535")
        if self.port_min is not None and self.port_max is not None and self.port_min > self.port_max:
            raise FilterError(f"port range {self.port_min}-{self.port_max} is empty")

    @classmethod
    def parse(
        cls, *, series: list[str] | None = None, networks: str = "", ports: str = "", action: str = ""
    ) -> Filters:
        """Filters from the page's inputs: comma-separated networks, ``lo-hi`` or one port, one action."""
        nets = tuple(n.strip() for n in networks.split(",") if n.strip())
        lo: int | None = None
        hi: int | None = None
        text = ports.strip()
        if text:
            parts = text.split("-", 1)
            try:
                lo = int(parts[0]) if parts[0].strip() else None
                if len(parts) == 1:
                    hi = lo
                elif parts[1].strip():
                    hi = int(parts[1])
            except ValueError:
                raise FilterError(f"not a port or port range (like 1-1024): {text!r}") from None
        actions = (action.strip().lower(),) if action.strip() else ()
        return cls(tuple(series or ()), nets, lo, hi, actions)

    @property
    def by_event(self) -> bool:
        """Whether these filters need each event's source or action (rollups do not keep them)."""
        return bool(self.networks or self.actions)

    def __bool__(self) -> bool:
        return bool(self.series or self.networks or self.actions) or (
            self.port_min is not None or self.port_max is not None
        )

    def apply(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` (events, or rollup rows without src_ip/action) that pass."""
        if not self or table.num_rows == 0:
            return table
        mask = pa.array(np.ones(table.num_rows, dtype=bool))
        if self.series:
            series = style.encode(table.select(["dst_port", "proto", "ip_version"])).column("series")
            mask = pc.and_(mask, pc.is_in(series, value_set=pa.array(self.series)))
        if self.port_min is not None or self.port_max is not None:
            port = table.column("dst_port")
            lo, hi = self.port_min or 0, 65535 if self.port_max is None else self.port_max
            inside = pc.and_(pc.greater_equal(port, lo), pc.less_equal(port, hi))
            # A range that starts at 0 includes the port-less lane, which is drawn below port 1.
            mask = pc.and_(mask, pc.fill_null(inside, lo == 0))
        if self.actions:
            action = pc.utf8_lower(table.column("action"))
            mask = pc.and_(mask, pc.is_in(action, value_set=pa.array(self.actions)))
        if self._nets:
            # The one CIDR matcher (pipeline.networks): columnar, once per distinct address.
            mask = pc.and_(mask, NetworkTable(self._nets).contains(table.column("src_ip")))
        return table.filter(mask)


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


def site_scope(store: Store) -> frozenset[str] | None:
    """The sites a store is limited to (a signed-in user's allow-list), None for all.

    Reads through the store are filtered by the store itself; this is for the
    files the page opens beside it (rollups, scans).
    """
    allowed: frozenset[str] | None = getattr(store, "allowed_sites", None)
    return allowed


def day_bounds(date: dt.date, zone: dt.tzinfo = dt.UTC) -> tuple[dt.datetime, dt.datetime]:
    """The day from midnight to midnight in ``zone``, as UTC instants (23 or 25 hours on DST days)."""
    start = dt.datetime.combine(date, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.UTC)
    return start, end


def parse_zone(name: str) -> dt.tzinfo | None:
    """An IANA time zone ("Europe/Zurich", "UTC"), or None if there is no such zone."""
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


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


def today_in(zone: dt.tzinfo) -> dt.date:
    return dt.datetime.now(zone).date()


def empty_data() -> SourceData:
    """Source columns of a day without events, for a page before its first load."""
    return _source_data(style.encode(_empty_events()), aggregated=False)


class DayFeed:
    """One page's view of one day (midnight to midnight in ``zone``) of the store, optionally one site.

    Not thread-safe: the page runs at most one :meth:`load` or :meth:`poll` at
    a time.
    """

    def __init__(
        self,
        store: Store,
        date: dt.date,
        site: str | None,
        max_points: int,
        filters: Filters | None = None,
        zone: dt.tzinfo = dt.UTC,
    ) -> None:
        self.store = store
        self.zone = zone
        self.filters = filters or Filters()
        self.date = date
        self.site = site
        self.max_points = max_points
        self.start, self.end = day_bounds(date, zone)
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
            bins = _event_bins(table)
            self.bucket = bins.choose(BUCKETS, self.max_points)
            data = _source_data(style.encode(bins.bins(self.bucket, *_EVENT_AGGREGATES)), aggregated=True)
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
        return self.filters.apply(self.store.read(since, self.end, sites=sites, columns=READ_COLUMNS))

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
    """Events per screen bin, with their count and distinct sources (see ScreenBins)."""
    return style.encode(_event_bins(table).bins(bucket, *_EVENT_AGGREGATES))


def _event_bins(table: pa.Table) -> ScreenBins:
    values = {"src": table.column("src_ip")}
    return ScreenBins(
        table.column("ts"),
        table.column("dst_port"),
        table.column("proto"),
        table.column("ip_version"),
        values,
    )


_EVENT_AGGREGATES: Final = (
    [("src", "count"), ("src", "count_distinct")],
    {"src_count": "events", "src_count_distinct": "sources"},
)


class ScreenBins:
    """Rows keyed once for screen bins: (time bucket, row of the log-port axis, protocol, family).

    A bin keeps the lowest and highest port it holds (``dst_port``,
    ``dst_port_max``): the dot sits at the lowest, the hover names the span.
    Bucket sizes are tried with a bare group-by (:meth:`size`) and the
    aggregates run once, for the bucket chosen: a distinct count costs ~8x a
    plain one (measured on a 1M-event day).
    """

    KEYS: Final = ["ts", "row", "proto", "ip_version"]

    def __init__(
        self,
        ts: pa.ChunkedArray,
        dst_port: pa.ChunkedArray,
        proto: pa.ChunkedArray,
        ip_version: pa.ChunkedArray,
        values: dict[str, pa.ChunkedArray],
    ) -> None:
        # Integer protocol codes group faster than the strings they stand for.
        codes = pc.dictionary_encode(proto.combine_chunks())
        self.protocols: pa.Array = codes.dictionary
        self.keyed = pa.table(
            {
                "ts": ts,
                "row": style.port_row(dst_port),
                "proto": codes.indices,
                "ip_version": ip_version,
                "dst_port": dst_port,
                **values,
            }
        )

    def _bucketed(self, bucket: Bucket) -> pa.Table:
        ts = pc.floor_temporal(self.keyed.column("ts"), bucket.multiple, bucket.unit)
        return self.keyed.set_column(0, "ts", ts)

    def size(self, bucket: Bucket) -> int:
        """How many bins ``bucket`` makes."""
        return int(self._bucketed(bucket).group_by(self.KEYS, use_threads=False).aggregate([]).num_rows)

    def choose(self, buckets: tuple[Bucket, ...], max_points: int) -> Bucket:
        """The finest bucket within max_points; the coarsest when none is (a slow page beats a blank one)."""
        return next((b for b in buckets if self.size(b) <= max_points), buckets[-1])

    def bins(self, bucket: Bucket, aggregates: list[tuple[str, str]], names: dict[str, str]) -> pa.Table:
        """One row per bin: ts, proto, ip_version, dst_port, dst_port_max and the aggregates, renamed."""
        grouped = (
            self._bucketed(bucket)
            .group_by(self.KEYS, use_threads=False)
            .aggregate([*aggregates, ("dst_port", "min"), ("dst_port", "max")])
        )
        proto = pc.take(self.protocols, grouped.column("proto"))
        grouped = grouped.set_column(grouped.schema.get_field_index("proto"), "proto", proto)
        return grouped.drop_columns(["row"]).rename_columns({**names, "dst_port_min": "dst_port"})


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
