"""The Parquet store: layout by event time, durable flushes, recovery after a cut-short flush."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.event import EVENT_SCHEMA
from pipeline.store import OffsetRange, Store, parse_file_name
from tests.support.events import row, table


def _events(times: list[dt.datetime], site: str = "s1", first_offset: int = 0) -> pa.Table:
    return table(
        [
            row(
                t,
                first_offset + i,
                site=site,
                host="fw",
                src_ip="198.51.100.1",
                dst_ip="203.0.113.1",
                src_port=1000,
                dst_port=22 + i,
                source_id="src",
            )
            for i, t in enumerate(times)
        ]
    )


T0 = dt.datetime(2026, 11, 27, 23, 59, 59, 999999, tzinfo=dt.UTC)


def test_events_land_in_the_partition_of_their_event_time(tmp_path: Path) -> None:
    store = Store(tmp_path)
    late = T0 - dt.timedelta(days=2)
    table = _events([T0, T0 + dt.timedelta(microseconds=1), late])
    paths = store.write_flush(OffsetRange("t", 3, 10, 12), table)
    rel = sorted(str(p.relative_to(tmp_path)) for p in paths)
    assert rel == [
        "events/site=s1/date=2026-11-25/hour=23/t+3+00000000000000000010+00000000000000000012.parquet",
        "events/site=s1/date=2026-11-27/hour=23/t+3+00000000000000000010+00000000000000000012.parquet",
        "events/site=s1/date=2026-11-28/hour=00/t+3+00000000000000000010+00000000000000000012.parquet",
    ]
    assert store.committed_offset("t", 3) == 12
    back = store.read_all().sort_by("source_offset")
    assert back.column("ts").to_pylist() == table.column("ts").to_pylist()
    assert back.schema == EVENT_SCHEMA


def test_read_selects_a_time_range_and_sites(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_flush(OffsetRange("t", 0, 0, 0), _events([T0, T0 - dt.timedelta(hours=3)], "a"))
    store.write_flush(OffsetRange("t", 1, 0, 0), _events([T0], "b"))
    day = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    got = store.read(day, day + dt.timedelta(days=1), sites=["a"])
    assert got.num_rows == 2
    assert set(got.column("site").to_pylist()) == {"a"}
    assert store.read(day + dt.timedelta(days=1), day + dt.timedelta(days=2)).num_rows == 0
    assert store.sites() == ["a", "b"]


def test_a_flush_cut_short_before_its_manifest_is_removed_on_recovery(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_flush(OffsetRange("t", 0, 0, 4), _events([T0] * 5))
    # Simulate a crash between renaming files and writing the manifest:
    # the files of offsets 5..9 exist but the manifest still says 4.
    store.write_flush(OffsetRange("t", 0, 5, 9), _events([T0] * 5, first_offset=5))
    store.commit_offsets(OffsetRange("t", 0, 0, 4))
    tmp_leftover = next(store.events_root.rglob("*.parquet")).with_name(".t+0+x.parquet.tmp")
    tmp_leftover.write_bytes(b"partial")
    committed, removed = store.recover("t", 0)
    assert committed == 4
    assert {p.name for p in removed} == {
        "t+0+00000000000000000005+00000000000000000009.parquet",
        ".t+0+x.parquet.tmp",
    }
    assert store.read_all().num_rows == 5


def test_recovery_leaves_other_partitions_alone(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_flush(OffsetRange("t", 1, 0, 9), _events([T0] * 3))
    committed, removed = store.recover("t", 0)
    assert (committed, removed) == (-1, [])
    assert store.read_all().num_rows == 3


def test_any_parquet_reader_sees_the_same_store(tmp_path: Path) -> None:
    """DuckDB reads the hive layout directly and prunes by partition."""
    store = Store(tmp_path)
    store.write_flush(OffsetRange("t", 0, 0, 1), _events([T0, T0 - dt.timedelta(days=1)], "oslo"))
    glob = f"{tmp_path}/events/**/*.parquet"
    rows = duckdb.sql(
        f"SELECT site, date, hour, dst_port FROM read_parquet('{glob}', hive_partitioning=true) "
        "WHERE site = 'oslo' ORDER BY dst_port"
    ).fetchall()
    assert [(r[0], str(r[1]), int(r[2]), r[3]) for r in rows] == [
        ("oslo", "2026-11-27", 23, 22),
        ("oslo", "2026-11-26", 23, 23),
    ]


def test_file_names_round_trip() -> None:
    rng = OffsetRange("fireplot.events", 7, 5, 1234)
    assert parse_file_name(rng.file_name()) == rng
    assert parse_file_name("something.parquet") is None


def test_a_range_read_lists_only_its_days_and_hours_and_answers_as_the_whole_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every range, across sites, midnights and hour edges, against the events filtered by hand;
    also with the whole-store listing the read falls back to past its directory bound."""
    store = Store(tmp_path)
    base = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    times = [base + dt.timedelta(minutes=37 * i, microseconds=i) for i in range(120)]  # ~3 days
    for n, site in enumerate(["a", "b", "c"]):
        store.write_flush(OffsetRange("t", n, 0, len(times) - 1), _events(times[n::2], site))
    # What a writer or a compaction leaves while it works: never read.
    hour = next((tmp_path / "events" / "site=a").glob("date=*/hour=*"))
    pq.write_table(_events([T0]).drop_columns(["site"]), hour / ".inflight.parquet")
    pq.write_table(_events([T0]).drop_columns(["site"]), hour / "_tmp.parquet")
    everything = store.read_all()
    ts = everything.column("ts").cast(pa.int64()).to_numpy()
    minutes = [(0, 0), (0, 60), (59, 61), (61, 24 * 60 - 1), (60, 24 * 60 + 1), (24 * 60, 3000), (0, 9000)]
    ranges = [(base + dt.timedelta(minutes=a), base + dt.timedelta(minutes=b)) for a, b in minutes]
    ranges += [
        (base - dt.timedelta(days=3), base),
        (dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC), T0 + dt.timedelta(hours=1)),
    ]
    for bound in (2000, 0):
        monkeypatch.setattr("pipeline.store.store._RANGE_LISTING_MAX", bound)
        for start, end in ranges:
            got = store.read(start, end).sort_by([("site", "ascending"), ("source_offset", "ascending")])
            lo, hi = (int(x.timestamp() * 1_000_000) for x in (start, end))
            want = everything.filter(pa.array((ts >= lo) & (ts < hi))).sort_by(
                [("site", "ascending"), ("source_offset", "ascending")]
            )
            assert got.num_rows == want.num_rows, (bound, start, end)
            assert got.equals(want), (bound, start, end)
    assert everything.num_rows == 60 + 60 + 59  # and not the two files under hidden names
