"""Per-site health refresh (pipeline.health) against one DuckDB query over the same day.

A store of ``--sites`` sites with ``--events`` events spread over the last day,
written through the real Store API (one flush file per site and hour, as the
worker writes them). Both sides answer the same questions per site: newest
event time, the 99th percentile of gaps between active minutes over the last
day, events in the last five minutes.

- fireplot: ``HealthMonitor.refresh()`` in its steady state (one new flush
  since the last refresh, so one partition-hour is re-read), and cold (first
  refresh, everything read);
- reference: a DuckDB query over ``events/site=*/date=*/hour=*/*.parquet`` with
  hive partitioning, pruned to the dates of the window, reading ``ts`` only.

The answers are compared before any timing is printed.

    python -m benchmarks.bench_health --sites 20 --events 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.harness import best_of
from pipeline.config import Config, HealthConfig, WorkerConfig
from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION
from pipeline.health import HealthMonitor
from pipeline.store import OffsetRange, Store


def _table(site: str, ts_us: np.ndarray, first: int) -> pa.Table:
    n = len(ts_us)

    def const(value: object, type_: pa.DataType) -> pa.Array:
        return pa.array([value] * n, type_) if n < 1000 else pa.repeat(pa.scalar(value, type_), n)

    return pa.table(
        {
            "ts": pa.array(ts_us, pa.int64()).cast(EVENT_SCHEMA.field("ts").type),
            "site": const(site, pa.string()),
            "host": const("fw", pa.string()),
            "src_ip": const("198.51.100.7", pa.string()),
            "dst_ip": const("203.0.113.1", pa.string()),
            "src_port": const(40000, pa.int32()),
            "dst_port": pa.array((ts_us % 65535).astype(np.int32)),
            "proto": const("TCP", pa.string()),
            "ip_version": const(4, pa.int8()),
            "action": const("drop", pa.string()),
            "in_if": const("eth0", pa.string()),
            "out_if": pa.nulls(n, pa.string()),
            "tcp_flags": const("SYN", pa.string()),
            "prefix": pa.nulls(n, pa.string()),
            "count": const(1, pa.int32()),
            "source_id": const(f"{site}:fw.log:0", pa.string()),
            "source_offset": pa.array(np.arange(first, first + n, dtype=np.int64)),
            "schema_version": const(SCHEMA_VERSION, pa.int8()),
        },
        schema=EVENT_SCHEMA,
    )


def build(root: Path, sites: int, events: int, now: dt.datetime) -> Store:
    store = Store(root)
    rng = np.random.default_rng(7)
    start_us = int((now - dt.timedelta(hours=23)).timestamp() * 1e6)
    end_us = int(now.timestamp() * 1e6) - 1
    per_site = events // sites
    for i in range(sites):
        # Sites differ in habit: some log steadily, the last ones in bursts with long pauses.
        ts = np.sort(rng.integers(start_us, end_us, per_site))
        if i >= sites - 3:
            ts = ts[(ts // 3_600_000_000) % 3 == 0]
        hours = ts // 3_600_000_000
        cuts = np.flatnonzero(np.diff(hours)) + 1
        offset = 0
        for p, chunk in enumerate(np.split(ts, cuts)):
            store.write_events(OffsetRange("events", i, p, p), _table(f"site-{i:02d}", chunk, offset))
            offset += len(chunk)
    return store


DUCKDB_SQL = """
WITH ev AS (
    SELECT site, ts FROM read_parquet(?, hive_partitioning = true)
    WHERE date >= ?::DATE AND ts >= ?::TIMESTAMPTZ
), minutes AS (
    SELECT DISTINCT site, epoch_us(ts) // 60000000 AS m FROM ev
), gaps AS (
    SELECT site, (m - lag(m) OVER (PARTITION BY site ORDER BY m)) * 60 AS gap FROM minutes
)
SELECT e.site, e.last_us, e.recent, g.p
FROM (
    SELECT site, max(epoch_us(ts)) AS last_us,
           count(*) FILTER (WHERE epoch_us(ts) // 60000000 >= ?) AS recent
    FROM ev GROUP BY site
) e JOIN (
    SELECT site, quantile_cont(gap, 0.99) AS p FROM gaps WHERE gap IS NOT NULL GROUP BY site
) g USING (site)
ORDER BY site
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import duckdb

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    health = HealthConfig(min_usual_gap_s=0.001)  # compare the raw percentile, not the floor
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-health-") as tmp:
        t = time.perf_counter()
        store = build(Path(tmp), args.sites, args.events, now)
        print(f"store: {args.sites} sites, {args.events:,} events, built in {time.perf_counter() - t:.1f} s")
        cfg = Config(worker=WorkerConfig(store_dir=tmp), health=health)

        start = now - dt.timedelta(seconds=health.history_s)
        rate_start_min = int((now - dt.timedelta(seconds=health.rate_window_s)).timestamp()) // 60
        pattern = str(Path(tmp) / "events" / "site=*" / "date=*" / "hour=*" / "*.parquet")
        con = duckdb.connect()
        con.execute("SET threads = 2")

        def reference() -> list[tuple[str, int, int, float]]:
            rows = con.execute(DUCKDB_SQL, [pattern, start.date(), start, rate_start_min]).fetchall()
            return [(str(s), int(last), int(recent), float(p)) for s, last, recent, p in rows]

        monitor = HealthMonitor(cfg, with_kafka=False)
        cold_s = best_of(1, lambda: monitor.refresh(now))
        report = monitor.refresh(now)
        ours = [
            (
                s.site,
                int((s.last_event - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
                if s.last_event
                else -1,
                round(s.events_per_min * health.rate_window_s / 60),
                s.usual_gap_s,
            )
            for s in report.sites
        ]
        ref = reference()
        assert [(a, b, c) for a, b, c, _ in ours] == [(a, b, c) for a, b, c, _ in ref], (ours[:3], ref[:3])
        assert all(abs(x[3] - y[3]) < 1e-6 for x, y in zip(ours, ref, strict=True)), (ours, ref)

        # Steady state: between two refreshes one flush lands in the current hour of one site.
        extra = iter(range(10_000))

        def steady() -> None:
            k = next(extra)
            ts = np.array([int(now.timestamp() * 1e6) - 1000 - k], dtype=np.int64)
            store.write_events(OffsetRange("events", 999, k, k), _table("site-00", ts, 10**9 + k))
            monitor.refresh(now)

        ours_s = best_of(args.repeats, steady)
        ref_s = best_of(args.repeats, lambda: reference())
        print("\nper-site health of the last day (same answers checked first)")
        print(f"  fireplot steady refresh   {ours_s * 1000:>9.1f} ms  (one new flush since the last)")
        print(f"  fireplot cold refresh     {cold_s * 1000:>9.1f} ms  (every hour read)")
        print(f"  DuckDB query              {ref_s * 1000:>9.1f} ms  (reads ts of the day's files)")
        print(f"  ratio (DuckDB / steady)   {ref_s / ours_s:>9.1f}x  faster")
        print(f"  ratio (DuckDB / cold)     {ref_s / cold_s:>9.2f}x")


if __name__ == "__main__":
    main()
