"""How fast ``fireplot top`` is over a long range, from the talker_hour rollup, against DuckDB on the events.

    python -m benchmarks.bench_top [--days 7] [--events-per-hour 10000] [--sources 20000] [--repeat 3]

A store of ``--days`` days of events (a Zipf mix of ``--sources`` sources,
ports and 16 targets), compacted hours rolled up as the worker does. Ours:
``pipeline.top.top`` by source over the whole range (every hour from its
rollup). Reference: DuckDB (2 threads) over the same events, the obvious query
for the same answer: sum of count, count(DISTINCT dst_port), count(DISTINCT
dst_ip), count(DISTINCT src_ip) per source, top 20. Both answers must agree.
Also printed: the rollup's size against the events'.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from benchmarks.harness import best_of, report
from pipeline import rollup
from pipeline.config import EnrichConfig
from pipeline.enrich import Enricher
from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION
from pipeline.store import OffsetRange, Store
from pipeline.top import top

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _hour(start: dt.datetime, n: int, pool: np.ndarray, offset: int, rng: np.random.Generator) -> pa.Table:
    us = int(start.timestamp() * 1e6) + np.sort(rng.integers(0, 3_600_000_000, n))
    src = pool[np.minimum(rng.zipf(1.3, n) - 1, len(pool) - 1)]
    return pa.table(
        {
            "ts": pa.array(us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "site": pa.array(["a"] * n),
            "host": pa.array(["fw1"] * n),
            "src_ip": pa.array(src, pa.string()),
            "dst_ip": pa.array([f"203.0.113.{i}" for i in rng.integers(0, 16, n)]),
            "src_port": pa.array(rng.integers(1024, 65536, n), pa.int32()),
            "dst_port": pa.array(np.minimum(rng.zipf(1.2, n), 65535), pa.int32()),
            "proto": pa.array(["TCP"] * n),
            "ip_version": pa.array(np.full(n, 4), pa.int8()),
            "action": pa.array(["drop"] * n),
            "in_if": pa.array(["eth0"] * n),
            "out_if": pa.nulls(n, pa.string()),
            "tcp_flags": pa.array(["SYN"] * n),
            "prefix": pa.nulls(n, pa.string()),
            "count": pa.array(np.ones(n, np.int32)),
            "source_id": pa.array(["a:fw1"] * n),
            "source_offset": pa.array(np.arange(offset, offset + n), pa.int64()),
            "schema_version": pa.array(np.full(n, SCHEMA_VERSION), pa.int8()),
        },
        schema=EVENT_SCHEMA,
    )


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.parquet"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--events-per-hour", type=int, default=10_000)
    ap.add_argument("--sources", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(19)
    pool = np.array(
        [f"198.{a // 65536 % 256}.{a // 256 % 256}.{a % 256}" for a in range(args.sources)], object
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        hours = args.days * 24
        for h in range(hours):
            start = T0 + dt.timedelta(hours=h)
            table = _hour(start, args.events_per_hour, pool, h * args.events_per_hour, rng)
            store.write_events(OffsetRange("events", 0, h, h), table)
        written = rollup.update(store, 0.0, now=T0 + dt.timedelta(days=args.days + 1))
        n = hours * args.events_per_hour
        events_mb = _size(store.events_root) / 1e6
        talkers_mb = _size(store.root / rollup.ROLLUPS_DIR / "talker_hour") / 1e6
        print(f"{n:,} events in {hours} hours ({events_mb:.1f} MB); {written} hours rolled up; "
              f"talker_hour {talkers_mb:.1f} MB ({talkers_mb / events_mb:.0%} of the events)")  # fmt: skip
        end = T0 + dt.timedelta(hours=hours)
        enricher = Enricher(EnrichConfig())

        def ours() -> pa.Table:
            report_ = top(store, enricher, T0, end, "src", limit=20)
            assert report_.hours_from_events == 0, report_
            return report_.rows

        con = duckdb.connect()
        con.execute("SET threads TO 2")
        glob = f"{store.events_root}/site=*/date=*/hour=*/*.parquet"
        sql = (
            "SELECT src_ip AS key, sum(count)::BIGINT AS events, count(DISTINCT dst_port) AS ports, "
            "count(DISTINCT dst_ip) AS targets, count(DISTINCT src_ip) AS sources "
            "FROM read_parquet(?) GROUP BY src_ip ORDER BY events DESC, key LIMIT 20"
        )

        def reference() -> pa.Table:
            return con.sql(sql, params=[glob]).to_arrow_table()

        got = ours().select(["key", "events", "ports", "targets", "sources"]).to_pylist()
        want = reference().to_pylist()
        assert got == want, (got[:3], want[:3])
        title = f"fireplot top --by src over {args.days} days ({n:,} events)"
        report(title, "events", n, best_of(args.repeat, ours), "DuckDB", best_of(args.repeat, reference))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
