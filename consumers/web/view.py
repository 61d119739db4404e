"""Data for the day page: what one page shows of the store, and what is new since.

A page looks at one day, ``[date 00:00, date + 1 day)`` in its time zone (UTC by default), optionally one
site. :class:`DayFeed` reads that day from the store and turns it into the
columns of the plot's ColumnDataSource; for today it is polled and returns only
events it has not returned before. Nothing here touches Bokeh models, so the
reading and the arithmetic can run off the server's event loop.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import zoneinfo
from concurrent.futures import ThreadPoolExecutor
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
# What binning needs. A day too big to draw raw is read with these alone: the
# text columns only raw dots show (hosts, prefixes, destinations, source ids)
# are most of a full read's time (1M events: 0.45 s for all, 0.17 s with the
# identities, 0.09 s for these; measured as in benchmarks/bench_web_view.py).
BIN_COLUMNS: Final = ["ts", "dst_port", "proto", "ip_version", "src_ip"]
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
    def columns(self) -> list[str]:
        """Event columns :meth:`apply` needs beyond BIN_COLUMNS."""
        return ["action"] if self.actions else []

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
        frame = self._load(identities=False)
        if frame is None:
            # Unsure what the last minutes held (events were stored meanwhile): read them with the rest.
            frame = self._load(identities=True)
            assert frame is not None, "a read with the identities is never unsure"
        return frame

    def _load(self, identities: bool) -> Frame | None:
        """The day; None if, without ``identities``, the recent events' identities could not be pinned."""
        table = self._read(
            self.start, [*BIN_COLUMNS, *self.filters.columns, *(_IDENTITY if identities else [])]
        )
        self.events, self._points = 0, 0
        self._sources = pa.array([], pa.string())
        self._newest, self._recent = None, _empty_events().select(_RECENT)
        self.bucket = None
        sources: pa.Array | None = None
        if table.num_rows <= self.max_points:
            # Raw dots show every column. This read also holds what was stored
            # since the first; if that tipped the day over max_points it is binned.
            table = self._read(self.start)
        recent: pa.Table | None = None
        if table.num_rows <= self.max_points:
            data = _source_data(style.encode(table), aggregated=False)
        else:
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fireplot-day") as pool:
                # The other core codes the sources and reads the last minutes'
                # identities while this one keys the bins and sizes the buckets.
                codes = pool.submit(_source_codes, table)
                identified = _IDENTITY[0] in table.column_names
                pinned = None if identified else pool.submit(self._recent_identities, table)
                bins = _event_keys(table)
                bucket = bins.choose(BUCKETS, self.max_points)
                src = codes.result()
                binned = bins.bins(bucket, *_EVENT_AGGREGATES, values={"src": src.indices})
                recent = None if pinned is None else pinned.result()
            if pinned is not None and recent is None:
                return None
            self.bucket, sources = bucket, src.dictionary
            data = _source_data(style.encode(binned), aggregated=True)
        self._remember(table, len(data["ts"]), sources, recent)
        return Frame(data, replace=True)

    def _recent_identities(self, table: pa.Table) -> pa.Table | None:
        """The identities (_RECENT) of ``table``'s events a poll would read again, or None if unsure.

        Polls need them only for the last LATE_MARGIN before the newest event,
        so they are read apart, for those minutes alone. If events were stored
        in those minutes between the two reads the second holds more: then it
        says None, rather than have a poll take a never-drawn event for a drawn one.
        """
        ts = table.column("ts")
        horizon = self._horizon_of(pc.max(ts).as_py())
        cutoff = pa.scalar(horizon, TS_TYPE)
        # Filters decide which events are in view: the second read needs what they look at.
        columns = [*_RECENT, *(BIN_COLUMNS[1:] + self.filters.columns if self.filters else [])]
        recent = self._read(horizon, columns)
        mine = ts.filter(pc.greater_equal(ts, cutoff))
        if not np.array_equal(_sorted_us(mine), _sorted_us(recent.column("ts"))):
            return None
        return recent.select(_RECENT)

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

    def _read(self, since: dt.datetime, columns: list[str] = READ_COLUMNS) -> pa.Table:
        sites = [self.site] if self.site is not None else None
        return self.filters.apply(self.store.read(since, self.end, sites=sites, columns=columns))

    def _remember(
        self, table: pa.Table, points: int, sources: pa.Array | None = None, recent: pa.Table | None = None
    ) -> None:
        """Count ``table``'s events and keep what polls need.

        ``sources``: its distinct src_ip, if known; ``recent``: the _RECENT
        columns of its last minutes, if ``table`` has no identities.
        """
        if table.num_rows == 0:
            return
        self.events += table.num_rows
        self._points += points
        if sources is not None and len(self._sources) == 0:
            self._sources = sources
        else:
            src = sources if sources is not None else table.column("src_ip").combine_chunks()
            self._sources = pc.unique(pa.concat_arrays([self._sources, src]))
        newest: dt.datetime = pc.max(table.column("ts")).as_py()
        self._newest = newest if self._newest is None else max(self._newest, newest)
        cutoff = pa.scalar(self._horizon(), TS_TYPE)
        # Only the last LATE_MARGIN of a day is kept: cut before concatenating a million rows.
        fresh = table.select(_RECENT) if recent is None else recent
        fresh = fresh.filter(pc.greater_equal(fresh.column("ts"), cutoff))
        # A join drops the columns' not-null flags; concat needs identical schemas.
        recent = pa.concat_tables([self._recent, fresh.cast(self._recent.schema)])
        self._recent = recent.filter(pc.greater_equal(recent.column("ts"), cutoff))

    def _horizon(self) -> dt.datetime:
        """Where the next poll starts reading: LATE_MARGIN before the newest event seen.

        Capped at the wall clock, so that one sensor whose clock runs hours
        ahead cannot push the horizon past everyone else's events.
        """
        return self._horizon_of(self._newest)

    def _horizon_of(self, newest: dt.datetime | None) -> dt.datetime:
        if newest is None:
            return self.start
        newest = min(newest, dt.datetime.now(dt.UTC))
        return max(self.start, newest - LATE_MARGIN)


def _sorted_us(ts: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int64]:
    return np.sort(_one_chunk(ts).cast(TS_TYPE).cast(pa.int64()).to_numpy(zero_copy_only=False))


def _empty_events() -> pa.Table:
    return EVENT_SCHEMA.empty_table().select(READ_COLUMNS)


def _aggregate(table: pa.Table, bucket: Bucket) -> pa.Table:
    """Events per screen bin, with their count and distinct sources (see ScreenBins)."""
    return style.encode(_event_bins(table)[0].bins(bucket, *_EVENT_AGGREGATES))


def _event_bins(table: pa.Table) -> tuple[ScreenBins, pa.Array]:
    """The events keyed for screen bins with their sources, and their distinct source addresses."""
    src = _source_codes(table)
    bins = _event_keys(table)
    bins.add_values({"src": src.indices})
    return bins, src.dictionary


def _source_codes(table: pa.Table) -> pa.DictionaryArray:
    # Sources are counted per bin as integer codes (hashing each address once,
    # not once per bin); the codes' dictionary is the distinct sources.
    codes: pa.DictionaryArray = pc.dictionary_encode(table.column("src_ip").combine_chunks())
    return codes


def _event_keys(table: pa.Table) -> ScreenBins:
    return ScreenBins(
        table.column("ts"), table.column("dst_port"), table.column("proto"), table.column("ip_version")
    )


_EVENT_AGGREGATES: Final = (
    [("src", "count"), ("src", "count_distinct")],
    {"src_count": "events", "src_count_distinct": "sources"},
)


_UNIT_US: Final = {"minute": 60_000_000, "hour": 3_600_000_000, "day": 86_400_000_000}
_FIRST_SLICE_ROWS: Final = 1 << 17
_SLICE_ROWS: Final = 1 << 20


class ScreenBins:
    """Rows keyed once for screen bins: (time bucket, row of the log-port axis, protocol, family).

    A bin keeps the lowest and highest port it holds (``dst_port``,
    ``dst_port_max``): the dot sits at the lowest, the hover names the span.

    The four keys are packed into one int64 per row (time bucket x a "cell" of
    port row, protocol code and family code) because a single integer key
    groups several times faster than four mixed columns, and time buckets are
    integer division of epoch microseconds rather than floor_temporal (whole
    minutes, hours and days since the epoch in UTC are the same bins).
    Bucket sizes are counted on the distinct keys, each coarser bucket from
    the finer one's distinct keys; the aggregates run once, for the bucket
    chosen.
    """

    def __init__(
        self,
        ts: pa.ChunkedArray,
        dst_port: pa.ChunkedArray,
        proto: pa.ChunkedArray,
        ip_version: pa.ChunkedArray,
        values: dict[str, pa.ChunkedArray | pa.Array] | None = None,
    ) -> None:
        self.protocols, proto_code = _codes(proto)
        self.families, family_code = _codes(ip_version)
        self._n_proto, self._n_family = max(len(self.protocols), 1), max(len(self.families), 1)
        # Row 0 is the port-less lane (no port or port 0), then the log axis's
        # rows; counted from the data, so that a port past 65535 keeps a row of its own.
        row = _port_rows(_one_chunk(dst_port))
        rows = int(row.max()) + 1 if len(row) else 1
        self._cells = rows * self._n_proto * self._n_family
        # In place and as narrow as fits: a month is ~30M rows, and every fresh
        # array of them costs page faults as well as arithmetic.
        cell: npt.NDArray[np.signedinteger[Any]] = row.astype(np.int32 if self._cells < 2**31 else np.int64)
        cell *= self._n_proto
        cell += proto_code
        cell *= self._n_family
        cell += family_code
        self._cell = cell
        self._us = _one_chunk(ts).cast(TS_TYPE).cast(pa.int64()).to_numpy()
        self._dst_port = _one_chunk(dst_port)
        self._values: dict[str, pa.Array] = {}
        self.add_values(values or {})
        self._distinct: tuple[int, npt.NDArray[np.int64]] | None = None

    def __len__(self) -> int:
        return len(self._us)

    def add_values(self, values: dict[str, pa.ChunkedArray | pa.Array]) -> None:
        """Columns the aggregates of :meth:`bins` may name, one value per keyed row."""
        for name, col in values.items():
            if len(col) != len(self):
                raise ValueError(f"{name}: {len(col)} values for {len(self)} rows")
            self._values[name] = _one_chunk(col)

    def _keys(self, bucket: Bucket) -> npt.NDArray[np.int64]:
        keys: npt.NDArray[np.int64] = self._us // _width_us(bucket)
        keys *= self._cells
        keys += self._cell
        return keys

    def _distinct_keys(self, bucket: Bucket, limit: int | None = None) -> npt.NDArray[np.int64] | None:
        """The distinct keys of ``bucket``'s bins; None as soon as there are more than ``limit``."""
        width = _width_us(bucket)
        if self._distinct is not None and width % self._distinct[0] == 0:
            # A coarser bucket that is a whole number of the last one's: its bins are
            # unions of those bins, so their distinct keys are enough.
            finer, keys = self._distinct
            factor = width // finer
            keys = (keys // self._cells) // factor * self._cells + keys % self._cells
        else:
            keys = self._keys(bucket)
        # Slice by slice, so that a bucket far too fine for the budget is given
        # up after its first slices (a month has ~30M rollup minutes; hashing
        # them all takes seconds), and the hash table stays small while it fits.
        # Slices start small and double: a 1-minute bucket of a busy day is
        # given up after a few hundred thousand rows, not a million.
        found = pa.array([], pa.int64())
        start, step = 0, _FIRST_SLICE_ROWS
        while start < len(keys) or start == 0:
            found = pc.unique(pa.concat_arrays([found, pa.array(keys[start : start + step])]))
            if limit is not None and len(found) > limit:
                return None
            start, step = start + step, min(2 * step, _SLICE_ROWS)
        distinct: npt.NDArray[np.int64] = found.to_numpy()
        self._distinct = (width, distinct)
        return distinct

    def size(self, bucket: Bucket) -> int:
        """How many bins ``bucket`` makes."""
        keys = self._distinct_keys(bucket)
        assert keys is not None, "no limit, no early end"
        return len(keys)

    def fits(self, bucket: Bucket, max_points: int) -> bool:
        """Whether ``bucket`` makes at most max_points bins (stops counting past them)."""
        return self._distinct_keys(bucket, limit=max_points) is not None

    def choose(self, buckets: tuple[Bucket, ...], max_points: int) -> Bucket:
        """The finest bucket within max_points; the coarsest when none is (a slow page beats a blank one)."""
        return next((b for b in buckets if self.fits(b, max_points)), buckets[-1])

    def bins(
        self,
        bucket: Bucket,
        aggregates: list[tuple[str, str]],
        names: dict[str, str],
        values: dict[str, pa.ChunkedArray | pa.Array] | None = None,
    ) -> pa.Table:
        """One row per bin: ts, proto, ip_version, dst_port, dst_port_max and the aggregates, renamed.

        ``values`` adds columns for the aggregates (see :meth:`add_values`).
        Rows come in key order: by time bucket, then port row, protocol and family.
        """
        self.add_values(values or {})
        keyed = pa.table({"key": self._keys(bucket), "dst_port": self._dst_port, **self._values})
        # Threads pay off on a month of rollup minutes (0.44 s -> 0.22 s for 31M
        # rows on 2 cores); the order they leave is undone by the sort.
        grouped = (
            keyed.group_by("key", use_threads=True)
            .aggregate([*aggregates, ("dst_port", "min"), ("dst_port", "max")])
            .sort_by("key")
        )
        keys = grouped.column("key").to_numpy()
        cell = keys % self._cells
        ts = pa.array((keys // self._cells) * _width_us(bucket)).cast(TS_TYPE)
        proto = self.protocols.take(pa.array((cell // self._n_family) % self._n_proto))
        family = self.families.take(pa.array(cell % self._n_family))
        out = grouped.drop_columns(["key"]).rename_columns({**names, "dst_port_min": "dst_port"})
        return out.append_column("ts", ts).append_column("proto", proto).append_column("ip_version", family)


_ALL_PORTS: Final = 65536


@functools.cache
def _row_of_port() -> npt.NDArray[np.int32]:
    """style.port_row of every port 0..65535, plus one: a lookup, not a logarithm, per event."""
    ports = pa.array(np.arange(_ALL_PORTS, dtype=np.int32))
    rows: npt.NDArray[np.int32] = pc.fill_null(style.port_row(ports), -1).to_numpy().astype(np.int32) + 1
    return rows


def _port_rows(dst_port: pa.Array) -> npt.NDArray[np.int32]:
    """Row of each port on the log axis plus one; 0 for none."""
    port = pc.fill_null(dst_port, 0).to_numpy()
    if len(port) == 0 or (port.min() >= 0 and port.max() < _ALL_PORTS):
        rows: npt.NDArray[np.int32] = np.take(_row_of_port(), port)
        return rows
    inside = (port >= 0) & (port < _ALL_PORTS)
    rows = _row_of_port()[np.where(inside, port, 0)]
    if not inside.all():
        # Ports no valid packet has (bad input is kept as is): the axis's own arithmetic.
        outside = np.flatnonzero(~inside)
        found = style.port_row(pa.array(port[outside]))
        rows[outside] = pc.fill_null(found, -1).to_numpy().astype(np.int32) + 1
    return rows


def _width_us(bucket: Bucket) -> int:
    try:
        return bucket.multiple * _UNIT_US[bucket.unit]
    except KeyError:
        raise ValueError(f"screen bins need whole minutes, hours or days, not {bucket.label}") from None


def _codes(col: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, npt.NDArray[np.int32]]:
    """The distinct values of ``col`` and each row's index into them; null is a value of its own."""
    if pa.types.is_dictionary(col.type):
        # Read as a dictionary (rollup files): its indices are codes already, no string is hashed.
        if isinstance(col, pa.ChunkedArray):
            col = col.unify_dictionaries().combine_chunks()
        values = pa.concat_arrays([col.dictionary, pa.nulls(1, col.dictionary.type)])
        indices = pc.fill_null(col.indices, len(col.dictionary))
        return values, indices.cast(pa.int32()).to_numpy()
    # A null protocol or family gets a code of its own: it stays a bin of its own.
    encoded = pc.dictionary_encode(_one_chunk(col), null_encoding="encode")
    return encoded.dictionary, encoded.indices.cast(pa.int32()).to_numpy()


def _one_chunk(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


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
