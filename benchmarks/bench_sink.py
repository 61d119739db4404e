"""Kafka → Parquet: the faust archive worker against a plain consumer writing the same rows.

Both read the same pre-filled topic (records of Arrow event batches) on the
same broker; the reference is kafka-python polling and pyarrow writing one
file per partition-hour, with no faust, no durability steps and no offset
bookkeeping. Each side is timed from process start until every event is in
its store, so group join and start-up count for both; a second report times
each side from the moment it holds its partitions (the worker's /health lists
them; the reference drops a marker file), which is the rate a running worker
archives at. Peak RSS (VmHWM) of both processes is printed too.

    python -m benchmarks.bench_sink [--events 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from benchmarks.harness import broker, report
from pipeline import wire
from pipeline.broker import ensure_topics
from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION
from producers.publisher import Publisher

REFERENCE = r"""
import sys, pyarrow.parquet as pq
from kafka import KafkaConsumer
from pipeline import wire
from pipeline.store import split_by_partition
bootstrap, topic, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                  group_id="ref-" + topic, enable_auto_commit=False, max_partition_fetch_bytes=16 << 20,
                  fetch_max_bytes=64 << 20)
seen = 0
ready = False
while seen < n:
    got = c.poll(timeout_ms=500)
    if not ready and c.assignment():
        open(out + ".ready", "w").close()  # group joined, partitions assigned
        ready = True
    for tp, msgs in got.items():
        tables = [wire.decode(m.value) for m in msgs]
        import pyarrow as pa
        t = pa.concat_tables(tables)
        for site, date, hour, part in split_by_partition(t):
            d = f"{out}/site={site}/date={date}/hour={hour:02d}"
            import os; os.makedirs(d, exist_ok=True)
            pq.write_table(part.drop_columns(["site"]), f"{d}/{tp.partition}-{msgs[0].offset}.parquet",
                           compression="zstd")
        seen += t.num_rows
    c.commit()
import time; time.sleep(3)  # stay alive (after the timed part) so the harness can read peak RSS
"""


# Ports the Internet's background noise hits most (a share of events goes to these).
POPULAR_PORTS = np.array(
    [22, 23, 80, 443, 445, 3389, 8080, 5060, 53, 123, 1433, 3306, 5900, 6379, 8443, 25, 21, 111, 137, 161]
)


def synthetic_events(
    n: int, seed: int = 1, day: dt.date = dt.date(2026, 11, 27), popular_share: float = 0.0
) -> pa.Table:
    """``n`` events spread over one UTC day; ``popular_share`` of them on POPULAR_PORTS."""
    rng = np.random.default_rng(seed)
    start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1e6)
    ts = np.sort(start + rng.integers(0, 86_400_000_000, n))
    ports = rng.integers(1, 65536, n)
    popular = rng.random(n) < popular_share
    ports[popular] = rng.choice(POPULAR_PORTS, int(popular.sum()))
    src = [f"198.18.{a}.{b}" for a, b in zip(rng.integers(0, 256, n), rng.integers(1, 255, n), strict=True)]
    cols = {
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "site": pa.array(["bench"] * n),
        "host": pa.array(["fw1"] * n),
        "src_ip": pa.array(src),
        "dst_ip": pa.array(["203.0.113.10"] * n),
        "src_port": pa.array(rng.integers(1024, 65536, n).astype(np.int32)),
        "dst_port": pa.array(ports.astype(np.int32)),
        "proto": pa.array(np.where(rng.random(n) < 0.8, "TCP", "UDP")),
        "ip_version": pa.array(np.full(n, 4, np.int8)),
        "action": pa.array(["drop"] * n),
        "in_if": pa.array(["eth0"] * n),
        "out_if": pa.nulls(n, pa.string()),
        "tcp_flags": pa.array(["SYN"] * n),
        "prefix": pa.array(["DROP"] * n),
        "count": pa.array(np.ones(n, np.int32)),
        "source_id": pa.array(["bench:0"] * n),
        "source_offset": pa.array(np.arange(n, dtype=np.int64) * 200),
        "schema_version": pa.array(np.full(n, SCHEMA_VERSION, np.int8)),
    }
    return pa.table(cols, schema=EVENT_SCHEMA)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a running process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        return int(ds.dataset(path, format="parquet", ignore_prefixes=[".", "_"]).count_rows())
    except (pa.ArrowInvalid, FileNotFoundError):
        return 0


def wait_rows(
    path: Path, n: int, proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout_s: float = 900
) -> tuple[float, float]:
    """Seconds from now until the consumer has its partitions, and until all n rows are visible."""
    t0 = time.perf_counter()
    ready_s: float | None = None
    while count(path) < n:
        if ready_s is None and ready():
            ready_s = time.perf_counter() - t0
        if proc.poll() is not None and count(path) < n:
            raise SystemExit(f"process exited early with {proc.returncode}")
        if time.perf_counter() - t0 > timeout_s:
            raise SystemExit("timed out")
        time.sleep(0.02)
    total = time.perf_counter() - t0
    return (ready_s if ready_s is not None else total), total


def worker_ready(port: int) -> Callable[[], bool]:
    """The worker's /health lists assigned partitions once it has joined the group."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                return bool(json.loads(resp.read()).get("assigned_partitions"))
        except (OSError, ValueError):
            return False

    return check


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=8192, help="events per Kafka record")
    ap.add_argument(
        "--flush-max-records", type=int, help="worker [worker] flush_max_records (default: its own)"
    )
    ap.add_argument(
        "--flush-interval-s", type=float, help="worker [worker] flush_interval_s (default: its own)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        root = Path(tmp)
        topic = f"bench-sink-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, {topic: 4}, wire.TOPIC_CONFIGS)
        events = synthetic_events(args.events)
        pub = Publisher(bootstrap, topic)
        for i in range(0, events.num_rows, args.batch):
            pub.send(wire.record_key("bench", f"fw{i // args.batch % 4}"), events.slice(i, args.batch))
        pub.close()

        cfg = root / "fireplot.toml"
        cfg.write_text(
            f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{topic}"\nvar_dir = "{root / "var"}"\n'
            f'[worker]\nstore_dir = "{root / "store"}"\napp_id = "bench-{topic}"\nweb_port = 16099\n'
        )
        with open(cfg, "a") as fh:
            if args.flush_max_records:
                fh.write(f"flush_max_records = {args.flush_max_records}\n")
            if args.flush_interval_s:
                fh.write(f"flush_interval_s = {args.flush_interval_s}\n")
        ours = subprocess.Popen(
            [sys.executable, "-m", "fireplot", "-c", str(cfg), "--log-level", "warning", "worker"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ours_ready_s, ours_s = wait_rows(root / "store" / "events", args.events, ours, worker_ready(16099))
        ours_rss_mb = peak_rss_mb(ours.pid)
        ours.terminate()
        ours.wait()

        ref = subprocess.Popen(
            [sys.executable, "-c", REFERENCE, bootstrap, topic, str(root / "ref"), str(args.events)]
        )
        ref_ready_s, ref_s = wait_rows(root / "ref", args.events, ref, lambda: (root / "ref.ready").exists())
        ref_rss_mb = peak_rss_mb(ref.pid)
        ref.wait()
        report(
            f"Kafka -> Parquet, {args.events:,} events in records of {args.batch}, process start to all "
            "rows visible",
            "events",
            args.events,
            ours_s,
            "plain consumer + pyarrow",
            ref_s,
        )
        report(
            f"Kafka -> Parquet, {args.events:,} events, from partitions assigned (group joined) to all "
            f"rows visible (start-up: fireplot {ours_ready_s:.2f} s, reference {ref_ready_s:.2f} s)",
            "events",
            args.events,
            ours_s - ours_ready_s,
            "plain consumer + pyarrow",
            ref_s - ref_ready_s,
        )
        print(f"  peak RSS   fireplot worker {ours_rss_mb:,.0f} MB, reference {ref_rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
