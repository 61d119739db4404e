"""The day feed: one day of the store for the page, live for today.

A page looks at one day, ``[date 00:00, date + 1 day)`` in its time zone (UTC by default),
optionally one site. :class:`DayFeed` reads that day from the store and turns it into the
columns of the plot's ColumnDataSource, raw dots or, past the point budget, screen bins; for
today it is polled and returns only events it has not returned before.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from consumers.web.feeds.bins import Bucket, ScreenBins, one_chunk
from consumers.web.feeds.columns import READ_COLUMNS, aggregated_data, empty_events, raw_data
from consumers.web.feeds.contract import Frame
from consumers.web.feeds.days import day_bounds
from consumers.web.feeds.filters import Filters
from pipeline.event import TS_TYPE
from pipeline.store import Store

# Workers flush each Kafka partition on its own schedule, so an event can land
# in the store after a newer one from another partition or site. Each poll
# re-reads this much before the newest event seen and drops what it already
# sent; events later than this show on the next load of the day.
LATE_MARGIN: Final = dt.timedelta(minutes=5)

_IDENTITY: Final = ["source_id", "source_offset"]
# What binning needs. A day too big to draw raw is read with these alone: the
# text columns only raw dots show (hosts, prefixes, destinations, source ids)
# are most of a full read's time (1M events: 0.45 s for all, 0.17 s with the
# identities, 0.09 s for these; measured as in benchmarks/bench_web_view.py).
BIN_COLUMNS: Final = ["ts", "dst_port", "proto", "ip_version", "src_ip"]
_RECENT: Final = [*_IDENTITY, "ts"]

# Tried in order: the first that brings the day under max_points is used.
BUCKETS: Final = (Bucket(1, "minute"), Bucket(10, "minute"), Bucket(1, "hour"))


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
        self._recent = empty_events().select(_RECENT)

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
        self._newest, self._recent = None, empty_events().select(_RECENT)
        self.bucket = None
        sources: pa.Array | None = None
        if table.num_rows <= self.max_points:
            # Raw dots show every column. This read also holds what was stored
            # since the first; if that tipped the day over max_points it is binned.
            table = self._read(self.start)
        recent: pa.Table | None = None
        if table.num_rows <= self.max_points:
            data = raw_data(table)
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
            data = aggregated_data(binned)
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
            data = raw_data(table)
        else:
            data = aggregated_data(_aggregate(table, self.bucket))
            # Streamed buckets add up; past the budget, aggregate the whole day
            # again, coarser if need be (unless it is already as coarse as it gets).
            if self._points + len(data["ts"]) > self.max_points and self.bucket != BUCKETS[-1]:
                return self.load()
        self._remember(table, len(data["ts"]))
        return Frame(data, replace=False)

    def summary(self) -> str:
        """One line about the day, plain text (the page renders it as text, not HTML)."""
        e, s = self.events, self.sources
        text = f"{e:,} event{'' if e == 1 else 's'}, {s:,} source{'' if s == 1 else 's'}"
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
    return np.sort(one_chunk(ts).cast(TS_TYPE).cast(pa.int64()).to_numpy(zero_copy_only=False))


def _aggregate(table: pa.Table, bucket: Bucket) -> pa.Table:
    """Events per screen bin, with their count and distinct sources (see ScreenBins)."""
    return _event_bins(table)[0].bins(bucket, *_EVENT_AGGREGATES)


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
