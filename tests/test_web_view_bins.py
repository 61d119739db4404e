"""Screen bins of busy days and ranges, checked bin by bin against DuckDB over the same Parquet files.

The page packs a bin's keys into one integer and reads only the binning
columns of a day too big to draw raw (consumers.web.feeds); these tests hold
that to an independent answer: DuckDB's own group-by over the store's files.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from consumers import style
from consumers.web.feeds.bins import Bucket, ScreenBins
from consumers.web.feeds.day import BUCKETS, DayFeed
from consumers.web.feeds.filters import Filters
from consumers.web.feeds.range import RANGE_BUCKETS, RangeFeed
from pipeline import rollup
from pipeline.event import conform
from pipeline.store import OffsetRange, Store
from tests.support import events as factory

DAY = dt.date(2026, 3, 14)
START = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
# (protocol, family, port or None): the main series, the port-less lane, port 0 and the rare protocols.
KINDS: list[tuple[str, int, int | None]] = [
    ("TCP", 4, 22), ("TCP", 4, 443), ("UDP", 4, 53), ("TCP", 6, 22), ("UDP", 6, 123), ("ICMP", 4, None),
    ("ICMPV6", 6, None), ("TCP", 4, 0), ("SCTP", 4, 2905), ("ESP", 4, None), ("TCP", 4, 65535), ("UDP", 4, 1),
]  # fmt: skip


def event(ts: dt.datetime, proto: str, version: int, port: int | None, n: int, **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"site": "alpha", "tcp_flags": None, "prefix": "fw-drop"}
    fields["source_id"] = "alpha:log"
    if "src" in kw:
        kw["src_ip"] = kw.pop("src")
    else:
        fields["src_ip"] = f"198.51.100.{n % 97}" if version == 4 else f"2001:db8::{n % 89:x}"
    fields |= {"source_offset": n * 100} | kw
    return factory.row(ts, n, proto=proto, ip_version=version, dst_port=port, **fields)


def busy_day(store: Store, n: int, seed: int, start: dt.datetime = START, hours: int = 24) -> None:
    """``n`` events of every kind, random ports too, spread over ``hours`` from ``start``."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        proto, version, port = KINDS[i % len(KINDS)]
        if i % 3 == 0 and port not in (None, 0):
            port = rng.randint(1, 65535)  # many rows of the log axis, several ports in the high ones
        ts = start + dt.timedelta(seconds=rng.uniform(0, hours * 3600 - 1))
        action = "accept" if i % 5 == 0 else "drop"
        rows.append(event(ts, proto, version, port, i, action=action, site="alpha" if i % 4 else "beta"))
    store.write_flush(OffsetRange("t", seed, 0, n - 1), conform(pa.Table.from_pylist(rows)))


def duckdb_bins(store: Store, bucket: Bucket, where: str = "TRUE") -> dict[tuple[Any, ...], tuple[int, ...]]:
    """(bin start in µs, port row, protocol, family) -> (lowest port, highest, events, distinct sources)."""
    width_us = {"minute": 60_000_000, "hour": 3_600_000_000, "day": 86_400_000_000}[bucket.unit]
    query = f"""
        SELECT epoch_us(ts) // ? * ? AS ts,
               CASE WHEN dst_port > 0 THEN floor(ln(dst_port) / ln(65536) * ?)::INT END AS row,
               proto, ip_version, min(dst_port), max(dst_port), count(*), count(DISTINCT src_ip)
        FROM read_parquet(?, hive_partitioning = true) WHERE {where} GROUP BY ALL
    """
    width = bucket.multiple * width_us
    files = f"{store.events_root}/site=*/date=*/hour=*/*.parquet"
    con = duckdb.connect()
    rows = con.execute(query, [width, width, style.PORT_ROWS, files]).fetchall()
    con.close()
    return {tuple(r[:4]): tuple(r[4:]) for r in rows}


def page_bins(data: dict[str, Any]) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """The same mapping from the plot's columns (port row from the bin's lowest port)."""
    spans = [None if p == style.NO_PORT_LABEL else str(p).split("-") for p in data["port"]]
    low = pa.array([None if s is None else int(s[0]) for s in spans], pa.int32())
    highs = [None if s is None else int(s[-1]) for s in spans]
    rows = style.port_row(low).to_pylist()
    out = {}
    for ts, row, proto, version, lo, hi, events, sources in zip(
        data["ts"], rows, data["proto"], data["ip_version"], low.to_pylist(), highs,
        data["events"], data["sources"], strict=True,
    ):  # fmt: skip
        out[(int(ts) * 1000, row, str(proto), int(version))] = (lo, hi, int(events), int(sources))
    return out


def bins_at(store: Store, bucket: Bucket, where: str = "TRUE") -> int:
    return len(duckdb_bins(store, bucket, where))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("bins"))
    busy_day(store, 4000, seed=1)
    return store


class TestDayBins:
    @pytest.mark.parametrize("bucket", BUCKETS, ids=lambda b: b.label)
    def test_busy_day_at_each_bucket_matches_duckdb_bin_by_bin(self, store: Store, bucket: Bucket) -> None:
        """Every bin: its port span, events and distinct sources; the bucket is the finest that fits."""
        # Exactly this bucket's bins fit, and the finer buckets make more (or it is the first).
        feed = DayFeed(store, DAY, None, max_points=bins_at(store, bucket))
        assert feed.max_points < 4000, "the day must be too big to draw raw"

        data = feed.load().data

        assert feed.bucket == bucket
        want = duckdb_bins(store, bucket)
        assert page_bins(data) == want
        assert sum(data["events"]) == feed.events == 4000
        sources = duckdb.sql(f"SELECT count(DISTINCT src_ip) FROM '{store.events_root}/**/*.parquet'")
        assert feed.sources == sources.fetchall()[0][0]

    def test_sizes_asked_in_any_order_count_the_bins(self, store: Store) -> None:
        """Coarser sizes come from the finer one's distinct keys; out of order they are counted afresh."""
        table = store.read(START, START + dt.timedelta(days=1))
        bins = ScreenBins(
            table.column("ts"),
            table.column("dst_port"),
            table.column("proto"),
            table.column("ip_version"),
            {},
        )
        order = [RANGE_BUCKETS[4], RANGE_BUCKETS[0], RANGE_BUCKETS[2], RANGE_BUCKETS[1], RANGE_BUCKETS[3]]
        assert [bins.size(b) for b in order] == [bins_at(store, b) for b in order]
        with pytest.raises(ValueError, match="whole minutes, hours or days"):
            bins.size(Bucket(1, "week"))

    def test_out_of_range_port_keeps_a_bin_of_its_own(self) -> None:
        """A port past 65535 (bad input kept as is) is a row above the axis, not in another protocol's bin."""
        minute = pa.array([START] * 4, pa.timestamp("us", tz="UTC"))
        bins = ScreenBins(
            pa.chunked_array([minute]),
            pa.chunked_array([pa.array([65535, 70000, 65535, None], pa.int32())]),
            pa.chunked_array([pa.array(["TCP", "TCP", "UDP", "UDP"])]),
            pa.chunked_array([pa.array([4, 4, 4, 6], pa.int8())]),
            {"n": pa.array([1, 1, 1, 1])},
        )

        out = bins.bins(BUCKETS[0], [("n", "sum")], {"n_sum": "events"})

        got = {tuple(r.values()) for r in out.select(["proto", "ip_version", "dst_port"]).to_pylist()}
        assert got == {("TCP", 4, 65535), ("TCP", 4, 70000), ("UDP", 4, 65535), ("UDP", 6, None)}
        assert out["ts"].to_pylist() == [START] * 4

    def test_action_filtered_busy_day_bins_only_that_actions_events(self, store: Store) -> None:
        """A filter on a column binning does not need still reads it, and filters before binning."""
        feed = DayFeed(store, DAY, None, max_points=10, filters=Filters(actions=("accept",)))

        data = feed.load().data

        assert feed.aggregated and feed.events == 800
        assert page_bins(data) == duckdb_bins(store, BUCKETS[-1], where="action = 'accept'")


def test_poll_after_a_binned_load_returns_only_the_new_events(tmp_path: Path) -> None:
    """A big day's load remembers the last minutes' identities: polls add the new events, no others."""
    store = Store(tmp_path)
    busy_day(store, 3000, seed=2)
    feed = DayFeed(store, DAY, None, max_points=1)  # binned by the hour: polls never re-bin
    feed.load()
    assert feed.bucket == BUCKETS[-1] and feed.poll() is None
    late = START + dt.timedelta(hours=23, minutes=59)
    rows = [event(late, "TCP", 4, 8080, 10_000 + n, source_id="beta:log") for n in range(7)]
    store.write_flush(OffsetRange("t", 99, 0, 6), conform(pa.Table.from_pylist(rows)))

    frame = feed.poll()

    assert frame is not None and not frame.replace
    assert sum(frame.data["events"]) == 7 and list(frame.data["port"]) == ["8080"]
    assert feed.poll() is None and feed.events == 3007


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("month"))
    for d in range(3):
        busy_day(store, 1500, seed=10 + d, start=START + dt.timedelta(days=d))
    assert rollup.update(store) > 0
    return store


@pytest.mark.parametrize(
    ("series", "where"),
    [
        ((), "TRUE"),
        (
            (style.Series.TCP4, style.Series.OTHER),
            "(proto = 'TCP' AND ip_version = 4) OR proto IN ('SCTP', 'ESP')",
        ),
    ],
    ids=["all", "tcp4-and-other"],
)
def test_range_binned_from_rollups_matches_duckdb_over_the_events(
    month: Store, series: tuple[str, ...], where: str
) -> None:
    """A range view's bins, summed from rollup minutes, hold the events DuckDB counts in the raw files."""
    bucket = RANGE_BUCKETS[2]
    feed = RangeFeed(
        month, START, START + dt.timedelta(days=3), None, bins_at(month, bucket, where), Filters(series)
    )

    data = feed.load().data

    assert feed.bucket == bucket and feed.computed_hours == 0 and feed.read_files > 0
    # Rollup minutes keep distinct sources per minute only: a bin's is its busiest minute's.
    want = {key: value[:3] for key, value in duckdb_bins(month, bucket, where).items()}
    assert {key: value[:3] for key, value in page_bins(data).items()} == want
    assert int(pc.sum(pa.array(data["events"])).as_py()) == sum(v[2] for v in want.values())


class WriterDuringLoad(Store):
    """A real store into which another writer flushes right after the page's first read of a load."""

    def __init__(self, root: Path, late: pa.Table) -> None:
        super().__init__(root)
        self.late: pa.Table | None = late

    def read(self, *args: Any, **kwargs: Any) -> pa.Table:
        table = super().read(*args, **kwargs)
        if self.late is not None:
            self.write_flush(OffsetRange("t", 98, 0, self.late.num_rows - 1), self.late)
            self.late = None
        return table


def test_event_stored_during_a_binned_load_is_drawn_once(tmp_path: Path) -> None:
    """Stored between the binning read and the identity read: drawn by the load or the poll, once."""
    late = START + dt.timedelta(hours=23, minutes=59, seconds=59)
    store = WriterDuringLoad(tmp_path, conform(pa.Table.from_pylist([event(late, "UDP", 4, 5060, 77_777)])))
    busy_day(store, 3000, seed=3)
    feed = DayFeed(store, DAY, None, max_points=1)

    drawn = sum(feed.load().data["events"])
    polled = feed.poll()
    drawn += 0 if polled is None else sum(polled.data["events"])

    assert store.late is None, "the other writer flushed during the load"
    assert drawn == feed.events == 3001
    assert feed.poll() is None
