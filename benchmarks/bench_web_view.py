"""Server-side preparation of web views against DuckDB querying the same Parquet files directly.

Issue 5's goals: a day view of 1M events in ≤ 1 s and ≤ 1.5x the reference; a
30-day view (of 100M events in the issue; `--range-events-per-day` scales it)
served from the rollups. Ours is the page's own code path (``DayFeed.load`` /
``RangeFeed.load``: read, filter, bin to max_points, encode the plot's
columns); the reference is one DuckDB query over the same event files that
returns the same screen bins (events and distinct sources per time bin x row
of the log-port axis x protocol x IP family) as an Arrow table. Both are timed warm, best of N, in the
same run; DuckDB uses every core, ours one.

    python -m benchmarks.bench_web_view [--day-events 1000000] [--range-days 30]
                                        [--range-events-per-day 300000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.bench_sink import synthetic_events
from benchmarks.harness import best_of
from consumers import style
from consumers.web.rangeview import RangeFeed
from consumers.web.view import Bucket, DayFeed
from pipeline import rollup
from pipeline.store import OffsetRange, Store

CHUNK = 250_000
MAX_POINTS = 150_000


def fill(store: Store, days: list[dt.date], per_day: int, partition: int) -> int:
    """Write ``per_day`` events for each day through the real store; returns the events written."""
    offset = 0
    for i, day in enumerate(days):
        events = synthetic_events(per_day, seed=100 + i, day=day, popular_share=0.7)
        events = events.set_column(
            events.schema.get_field_index("source_id"), "source_id", pa.array([f"bench:{day}"] * per_day)
        )
        for start in range(0, per_day, CHUNK):
            part = events.slice(start, CHUNK)
            store.write_flush(OffsetRange("bench", partition, offset, offset + part.num_rows - 1), part)
            offset += part.num_rows
    return offset


def duckdb_bins(store: Store, start: dt.datetime, end: dt.datetime, bucket: Bucket) -> pa.Table:
    query = """
        SELECT time_bucket(?::INTERVAL, ts) AS ts,
               CASE WHEN dst_port > 0 THEN floor(ln(dst_port) / ln(65536) * ?) END AS row,
               proto, ip_version, min(dst_port) AS dst_port, max(dst_port) AS dst_port_max,
               count(*) AS events, count(DISTINCT src_ip) AS sources
        FROM read_parquet(?, hive_partitioning = true)
        WHERE date >= ?::DATE AND date <= ?::DATE AND ts >= ?::TIMESTAMPTZ AND ts < ?::TIMESTAMPTZ
        GROUP BY ALL
    """
    files = f"{store.events_root}/site=*/date=*/hour=*/*.parquet"
    # The date bounds prune hive partitions, as ours do.
    last = (end - dt.timedelta(microseconds=1)).date()
    params = [f"{bucket.multiple} {bucket.unit}", style.PORT_ROWS, files, start.date(), last, start, end]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table: pa.Table = con.sql(query, params=params).to_arrow_table()
    con.close()
    return table


def side_by_side(title: str, ours_s: float, ref_s: float, goal: str) -> None:
    print(f"\n{title}")
    print(f"  fireplot   {ours_s:8.3f} s")
    print(f"  duckdb     {ref_s:8.3f} s")
    print(f"  ratio      {ours_s / ref_s:8.2f}x the reference's time   ({goal})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--day-events", type=int, default=1_000_000)
    ap.add_argument("--range-days", type=int, default=30)
    ap.add_argument("--range-events-per-day", type=int, default=300_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    day = dt.date(2026, 11, 27)
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-web-") as tmp:
        # The day view: one day of the size in its own store.
        store = Store(Path(tmp) / "day")
        t = time.perf_counter()
        n = fill(store, [day], args.day_events, 0)
        print(f"day store: {n:,} events written in {time.perf_counter() - t:.1f} s")
        feed = DayFeed(store, day, None, MAX_POINTS)
        ours_s = best_of(args.repeats, feed.load)
        frame = feed.load()
        assert feed.bucket is not None, "a day this size is binned"
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        end = start + dt.timedelta(days=1)
        ref = duckdb_bins(store, start, end, feed.bucket)
        ref_s = best_of(args.repeats, lambda: duckdb_bins(store, start, end, feed.bucket))  # type: ignore[arg-type]
        # Same answer, or the times mean nothing: bins and their total events.
        assert len(frame.data["ts"]) == ref.num_rows, (len(frame.data["ts"]), ref.num_rows)
        assert int(pc.sum(ref.column("events")).as_py()) == n
        side_by_side(
            f"day view, {n:,} events -> {ref.num_rows:,} bins of {feed.bucket.label}",
            ours_s,
            ref_s,
            "goal: <= 1 s and <= 1.5x",
        )

        # The range view: many days, rolled up as the worker's maintenance would.
        store = Store(Path(tmp) / "range")
        days = [day - dt.timedelta(days=d) for d in range(args.range_days)][::-1]
        t = time.perf_counter()
        n = fill(store, days, args.range_events_per_day, 0)
        print(f"\nrange store: {n:,} events over {len(days)} days written in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        hours = rollup.update(store)
        print(f"rollups: {hours} hours in {time.perf_counter() - t:.1f} s (incremental in production)")
        start = dt.datetime.combine(days[0], dt.time(), tzinfo=dt.UTC)
        end = dt.datetime.combine(days[-1], dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1)
        feed_r = RangeFeed(store, start, end, None, MAX_POINTS)
        ours_s = best_of(args.repeats, feed_r.load)
        frame = feed_r.load()
        assert feed_r.bucket is not None and feed_r.computed_hours == 0, "served from rollups"
        ref = duckdb_bins(store, start, end, feed_r.bucket)
        ref_s = best_of(args.repeats, lambda: duckdb_bins(store, start, end, feed_r.bucket))  # type: ignore[arg-type]
        assert len(frame.data["ts"]) == ref.num_rows, (len(frame.data["ts"]), ref.num_rows)
        assert int(pc.sum(ref.column("events")).as_py()) == n
        side_by_side(
            f"{len(days)}-day view, {n:,} events -> {ref.num_rows:,} bins of {feed_r.bucket.label} "
            f"(ours from {feed_r.read_files} rollup files; DuckDB over the events)",
            ours_s,
            ref_s,
            "measured; the issue's 100M events: --range-events-per-day 3333334",
        )


if __name__ == "__main__":
    main()
