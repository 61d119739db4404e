"""Kafka → Parquet: the faust archive worker against a plain consumer writing the same rows.

Both read the same pre-filled topic (records of Arrow event batches) on the
same broker; the reference is a plain consumer and pyarrow writing one file
per partition-hour with the store's own Parquet settings
(``pipeline.store.PARQUET_WRITE_OPTIONS``), with no faust, no durability steps
and a synchronous commit after each write. The consumer is confluent-kafka
(librdkafka: the fast, fair reference for reading Kafka from Python) by
default, or kafka-python (``--reference kafka-python``), which understates
what a plain consumer does. Three rates for each side, in the same run:

- from process start until every event is visible (group join and start-up count);
- from the moment it holds its partitions (the worker's /ready lists them;
  the reference drops a marker file);
- steady state: rows written between the file that brings the store to 10 %
  of the events and the last file, over the time between their modification
  times, the rate a running worker archives a backlog at, start-up amortised.

Peak RSS (VmHWM) and CPU seconds (user + system, all threads) of both
processes, in all and up to holding the partitions, are printed too: on a
shared machine the rates move with the load, CPU per event much less.
``--repeats`` runs both sides that many times, alternating, and keeps each
side's fastest run (from partitions assigned).

    python -m benchmarks.bench_sink [--events 1000000] [--repeats 1] [--reference confluent|kafka-python]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.harness import broker, report
from pipeline import wire
from pipeline.broker import ensure_topics
from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION
from producers.publisher import Publisher

REFERENCE_KAFKA_PYTHON = r"""
import os, sys, time, pyarrow as pa, pyarrow.parquet as pq
from kafka import KafkaConsumer
from pipeline import wire
from pipeline.store import FILE_SCHEMA, PARQUET_WRITE_OPTIONS, split_by_partition
bootstrap, topic, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                  group_id=f"ref-{os.path.basename(out)}-{topic}", enable_auto_commit=False,
                  max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20)
seen = 0
ready = False
while seen < n:
    got = c.poll(timeout_ms=500)
    if not ready and c.assignment():
        open(out + ".ready", "w").close()  # group joined, partitions assigned
        ready = True
    for tp, msgs in got.items():
        t = pa.concat_tables([wire.decode(m.value) for m in msgs])
        for site, date, hour, part in split_by_partition(t):
            d = f"{out}/site={site}/date={date}/hour={hour:02d}"
            os.makedirs(d, exist_ok=True)
            pq.write_table(part.drop_columns(["site"]).cast(FILE_SCHEMA),
                           f"{d}/{tp.partition}-{msgs[0].offset}.parquet", **PARQUET_WRITE_OPTIONS)
        seen += t.num_rows
    c.commit()
time.sleep(3)  # stay alive (after the timed part) so the harness can read peak RSS
"""

REFERENCE_CONFLUENT = r"""
import os, sys, time, pyarrow as pa, pyarrow.parquet as pq
from collections import defaultdict
from confluent_kafka import Consumer
from pipeline import wire
from pipeline.store import FILE_SCHEMA, PARQUET_WRITE_OPTIONS, split_by_partition
bootstrap, topic, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ready = False
def assigned(consumer, partitions):
    global ready
    open(out + ".ready", "w").close()  # group joined, partitions assigned
    ready = True
c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ref-{os.path.basename(out)}-{topic}",
              "auto.offset.reset": "earliest", "enable.auto.commit": False,
              "max.partition.fetch.bytes": 16 << 20, "fetch.max.bytes": 64 << 20})
c.subscribe([topic], on_assign=assigned)
seen = 0
while seen < n:
    msgs = c.consume(num_messages=1000, timeout=0.5)
    by_partition = defaultdict(list)
    for m in msgs:
        if m.error() is None:
            by_partition[m.partition()].append(m)
    for partition, ms in by_partition.items():
        t = pa.concat_tables([wire.decode(m.value()) for m in ms])
        for site, date, hour, part in split_by_partition(t):
            d = f"{out}/site={site}/date={date}/hour={hour:02d}"
            os.makedirs(d, exist_ok=True)
            pq.write_table(part.drop_columns(["site"]).cast(FILE_SCHEMA),
                           f"{d}/{partition}-{ms[0].offset()}.parquet", **PARQUET_WRITE_OPTIONS)
        seen += t.num_rows
    if by_partition:
        c.commit(asynchronous=False)
time.sleep(3)  # stay alive (after the timed part) so the harness can read peak RSS
"""
REFERENCES = {"confluent": REFERENCE_CONFLUENT, "kafka-python": REFERENCE_KAFKA_PYTHON}


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


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a running process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


@dataclass
class Run:
    """One side's timings: seconds from process start, and the files' (mtime, rows)."""

    ready_s: float
    ready_cpu_s: float  # CPU seconds the process had used when it held its partitions
    total_s: float
    files: list[tuple[float, int]]
    rss_mb: float
    cpu_s: float  # user + system, all threads, process start to all rows visible

    def steady(self, n: int, start_share: float = 0.1) -> tuple[int, float]:
        """(rows, seconds) from the file that brings the store past ``start_share`` of n to the last."""
        files = sorted(self.files)
        done = 0
        for i, (mtime, rows) in enumerate(files):
            done += rows
            if done >= start_share * n:
                rest = n - done
                seconds = files[-1][0] - mtime
                if i == len(files) - 1 or seconds <= 0:
                    raise SystemExit("too few files for a steady-state rate: raise --events")
                return rest, seconds
        raise SystemExit("files hold fewer rows than expected")


class RowCounter:
    """Rows in the Parquet files under a directory, each footer read once.

    Hidden (in-progress) files are skipped; a visible file whose footer cannot
    be read yet (the reference writes in place) is retried on the next poll."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[Path, tuple[float, int]] = {}

    def count(self) -> int:
        if self.path.exists():
            for f in self.path.rglob("*.parquet"):
                if f in self.files or f.name.startswith("."):
                    continue
                try:
                    rows = pq.ParquetFile(f).metadata.num_rows
                    self.files[f] = (f.stat().st_mtime, rows)
                except (pa.ArrowInvalid, OSError):
                    continue
        return sum(rows for _, rows in self.files.values())


def wait_rows(
    path: Path, n: int, proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout_s: float = 900
) -> Run:
    """Wait until the consumer has its partitions and all n rows are visible; the peak RSS then."""
    t0 = time.perf_counter()
    ready_s: float | None = None
    ready_cpu_s = float("nan")
    counter = RowCounter(path)
    while counter.count() < n:
        if ready_s is None and ready():
            ready_s = time.perf_counter() - t0
            ready_cpu_s = cpu_s(proc.pid)
        if proc.poll() is not None and counter.count() < n:
            raise SystemExit(f"process exited early with {proc.returncode}")
        if time.perf_counter() - t0 > timeout_s:
            raise SystemExit("timed out")
        time.sleep(0.05)
    total = time.perf_counter() - t0
    if counter.count() != n:
        raise SystemExit(f"{path}: {counter.count():,} rows, expected {n:,}")
    files = list(counter.files.values())
    return Run(
        ready_s if ready_s is not None else total,
        ready_cpu_s,
        total,
        files,
        peak_rss_mb(proc.pid),
        cpu_s(proc.pid),
    )


def worker_ready(port: int) -> Callable[[], bool]:
    """The worker's /ready lists assigned partitions once it has joined the group."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as resp:
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
    ap.add_argument("--repeats", type=int, default=1, help="runs of each side, alternating; fastest kept")
    ap.add_argument(
        "--reference",
        choices=sorted(REFERENCES),
        default="confluent",
        help="the plain consumer of the reference (default confluent: librdkafka)",
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
        warm_group_coordinator(bootstrap, topic)

        ours_runs, ref_runs = [], []
        for i in range(args.repeats):
            ours_runs.append(run_worker(root / f"ours-{i}", bootstrap, topic, args))
            ref_runs.append(
                run_reference(root / f"ref-{i}", bootstrap, topic, args.events, REFERENCES[args.reference])
            )
        ours = min(ours_runs, key=lambda r: r.total_s - r.ready_s)
        ref = min(ref_runs, key=lambda r: r.total_s - r.ready_s)
        n = args.events
        title = f"Kafka -> Parquet, {n:,} events in records of {args.batch}"
        ref_name = f"{args.reference} consumer + pyarrow"
        report(
            f"{title}, process start to all rows visible", "events", n, ours.total_s, ref_name, ref.total_s
        )
        report(
            f"{title}, from partitions assigned (group joined) to all rows visible "
            f"(start-up: fireplot {ours.ready_s:.2f} s, {ours.ready_cpu_s:.2f} CPU-s; "
            f"reference {ref.ready_s:.2f} s, {ref.ready_cpu_s:.2f} CPU-s)",
            "events",
            n,
            ours.total_s - ours.ready_s,
            ref_name,
            ref.total_s - ref.ready_s,
        )
        (ours_rows, ours_steady_s), (ref_rows, ref_steady_s) = ours.steady(n), ref.steady(n)
        # report() takes one count for both sides; scale each side's time to it
        report(
            f"{title}, steady state (rows after the first 10 %, between file mtimes: fireplot "
            f"{ours_rows:,} rows in {len(ours.files)} files, reference {ref_rows:,} in {len(ref.files)})",
            "events",
            n,
            ours_steady_s * n / ours_rows,
            ref_name,
            ref_steady_s * n / ref_rows,
        )
        print(f"  peak RSS   fireplot worker {ours.rss_mb:,.0f} MB, reference {ref.rss_mb:,.0f} MB")
        # CPU per event does not depend on what else the machine runs, unlike the rates above.
        print(
            f"  CPU        fireplot worker {ours.cpu_s:.1f} s ({n / ours.cpu_s:,.0f} events/CPU-s), "
            f"reference {ref.cpu_s:.1f} s ({n / ref.cpu_s:,.0f} events/CPU-s), "
            f"ratio {ref.cpu_s / ours.cpu_s:.2f}x"
        )


def warm_group_coordinator(bootstrap: str, topic: str) -> None:
    """Join and commit in a throwaway group once, before any timed run.

    The first group on a fresh broker makes it create ``__consumer_offsets`` and
    load its partitions (~0.5-1 s of coordinator-not-available retries); without
    this the side that runs first (ours) pays for it and the other never does."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"warm-{topic}", enable_auto_commit=False
    )
    try:
        deadline = time.monotonic() + 60
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise SystemExit("the broker's group coordinator did not come up")
            consumer.poll(timeout_ms=200, max_records=1)
        consumer.commit()
    finally:
        consumer.close()


def run_worker(root: Path, bootstrap: str, topic: str, args: argparse.Namespace) -> Run:
    cfg = root / "fireplot.toml"
    root.mkdir(parents=True)
    app_id = f"bench-{root.name}-{topic}"
    cfg.write_text(
        f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{topic}"\nvar_dir = "{root / "var"}"\n'
        f'[worker]\nstore_dir = "{root / "store"}"\napp_id = "{app_id}"\nweb_port = 16099\n'
    )
    with open(cfg, "a") as fh:
        if args.flush_max_records:
            fh.write(f"flush_max_records = {args.flush_max_records}\n")
        if args.flush_interval_s:
            fh.write(f"flush_interval_s = {args.flush_interval_s}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fireplot", "-c", str(cfg), "--log-level", "warning", "worker"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return wait_rows(root / "store" / "events", args.events, proc, worker_ready(16099))
    finally:
        proc.terminate()
        proc.wait()


def run_reference(root: Path, bootstrap: str, topic: str, n: int, script: str) -> Run:
    proc = subprocess.Popen([sys.executable, "-c", script, bootstrap, topic, str(root), str(n)])
    try:
        run = wait_rows(root, n, proc, lambda: Path(f"{root}.ready").exists())
    except BaseException:
        proc.kill()  # it polls until it has read n events, which may never come
        raise
    finally:
        proc.wait()
    return run


if __name__ == "__main__":
    main()
