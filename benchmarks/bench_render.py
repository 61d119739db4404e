"""``fireplot render`` of a 1M-event day against just reading that day's columns.

The store holds one UTC day of synthetic events (all protocols, both
families, ports log-uniform, a fifth port-less) written with the real Store.
The reference is the floor every renderer pays: pyarrow reading the same four
columns of the same day from the same Parquet files (``Store.read``). The
ratio says what drawing costs on top of reading; the absolute time is what
a cron job waits.

    python -m benchmarks.bench_render [--events 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.harness import best_of, report
from consumers.render import READ_COLUMNS, Layout, read_day, render_day
from pipeline.event import SCHEMA_VERSION, conform
from pipeline.store import OffsetRange, Store

DAY = dt.date(2026, 11, 1)


def synthetic_day(n: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = np.datetime64(DAY.isoformat(), "us")
    ts = start + np.sort(rng.integers(0, 86_400 * 10**6, n)).astype("timedelta64[us]")
    protos = np.array(["TCP", "UDP", "ICMP", "ICMPv6", "47"])
    pick = rng.choice(5, n, p=[0.6, 0.2, 0.1, 0.05, 0.05])
    has_port = pick < 2
    port = np.exp(rng.uniform(0, np.log(65535), n)).astype(np.int32)
    return conform(
        pa.table(
            {
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "site": pa.array(np.where(rng.random(n) < 0.5, "a", "b")),
                "host": pa.array(np.full(n, "fw1")),
                "src_ip": pa.array(np.char.add("198.51.100.", (rng.integers(0, 250, n)).astype(str))),
                "dst_ip": pa.array(np.full(n, "192.0.2.1")),
                "src_port": pa.array(np.full(n, 40000, np.int32), mask=~has_port),
                "dst_port": pa.array(port, mask=~has_port),
                "proto": pa.array(protos[pick]),
                "ip_version": pa.array(rng.choice(np.array([4, 6], np.int8), n, p=[0.8, 0.2])),
                "action": pa.array(np.full(n, "drop")),
                "in_if": pa.array(np.full(n, "eth0")),
                "out_if": pa.nulls(n, pa.string()),
                "tcp_flags": pa.nulls(n, pa.string()),
                "prefix": pa.array(np.full(n, "fw-drop")),
                "count": pa.array(np.ones(n, np.int32)),
                "source_id": pa.array(np.full(n, "bench:log")),
                "source_offset": pa.array(np.arange(n, dtype=np.int64)),
                "schema_version": pa.array(np.full(n, SCHEMA_VERSION, np.int8)),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-render-") as tmp:
        store = Store(Path(tmp) / "store")
        store.write_flush(OffsetRange("fireplot.events", 0, 0, args.events - 1), synthetic_day(args.events))
        out = Path(tmp) / "day.png"
        layout = Layout()

        def ours() -> None:
            render_day(store, DAY, out, layout=layout)

        def reference() -> None:
            read_day(store, DAY, None, READ_COLUMNS)

        ours()  # warm the page cache for both sides
        # Alternate the two so a burst of load on the shared machine hits both alike.
        runs = [(best_of(1, reference), best_of(1, ours)) for _ in range(args.repeats)]
        ref_s, ours_s = min(r for r, _ in runs), min(o for _, o in runs)
        report(
            f"render a {args.events:,}-event day to a {layout.width_px}x{layout.height_px} PNG",
            "events",
            args.events,
            ours_s,
            "read only",
            ref_s,
        )
        print(f"  PNG size   {out.stat().st_size:>14,} bytes")


if __name__ == "__main__":
    main()
