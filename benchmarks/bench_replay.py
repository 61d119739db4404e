"""Replay: archived Parquet → replay topic in event-time order, against reading the same Parquet with pyarrow.

The reference is the floor any replay pays: pyarrow reading the same columns
of the same range from the same files and sorting them by time, publishing
nothing. fireplot additionally orders each hour totally (ties by identity),
splits per (site, host) and publishes zstd'd Arrow batches to Kafka with
acks=all, on a broker that shares the machine.

The store is laid out as the live worker leaves it: ``--sensors`` firewalls,
each keyed to its own topic partition, so every hour directory holds a file
per partition and flush, and an hour read back is not in time order (the sort
is real work). ``--sensors 1`` is a store whose hours are already in order
(one writer, or hours compaction merged and sorted): replay checks the order
and skips its sort; the reference sorts all the same.

    python -m benchmarks.bench_replay [--events 1000000] [--sensors 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from benchmarks.bench_sink import synthetic_events
from benchmarks.harness import broker, report
from pipeline import datasets
from pipeline.broker import ensure_topics
from pipeline.event import FIELD_NAMES, TS_TYPE
from pipeline.store import OffsetRange, Store
from producers.publisher import Publisher
from producers.replay import ReplayState, replay

FLUSH_EVENTS = 100_000


def write_store(store: Store, events: pa.Table, sensors: int) -> None:
    """``events`` as the worker writes them: sensor i's events from partition i, in flushes."""
    sensor = np.arange(events.num_rows) % sensors
    events = events.set_column(
        events.schema.get_field_index("host"), "host", pa.array([f"fw{s}" for s in sensor])
    )
    for part in range(sensors):
        mine = events.filter(pa.array(sensor == part))
        step = FLUSH_EVENTS // sensors
        for i in range(0, mine.num_rows, step):
            n = min(step, mine.num_rows - i)
            store.write_flush(OffsetRange("bench", part, i, i + n - 1), mine.slice(i, n))


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--sensors", type=int, default=4, help="firewalls, one topic partition each")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        root = Path(tmp)
        store = Store(root / "store")
        write_store(store, synthetic_events(args.events), args.sensors)
        start = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
        end = start + dt.timedelta(days=1)

        def ours() -> None:
            name = f"bench-{uuid.uuid4().hex[:8]}"
            topic = datasets.replay_topic(name)
            ensure_topics(bootstrap, {topic: 4}, datasets.REPLAY_TOPIC_CONFIGS)
            publisher = Publisher(bootstrap, topic)
            state = ReplayState(root / "state" / f"{name}.json", {"bench": name})
            sent = replay(store, publisher, start, end, state, speed=None)
            publisher.close()
            assert sent == args.events, sent

        def reference() -> None:
            in_range = (ds.field("ts") >= pa.scalar(start, TS_TYPE)) & (
                ds.field("ts") < pa.scalar(end, TS_TYPE)
            )
            dataset = ds.dataset(store.events_root, format="parquet", partitioning="hive")
            table = dataset.to_table(columns=list(FIELD_NAMES), filter=in_range)
            table = table.sort_by([("ts", "ascending")])
            assert table.num_rows == args.events

        # Alternated, so a change in the machine's load between runs touches both sides.
        ours_runs, ref_runs = [], []
        for _ in range(args.repeats):
            ours_runs.append(timed(ours))
            ref_runs.append(timed(reference))
        (ours_s, ours_cpu), (ref_s, ref_cpu) = min(ours_runs), min(ref_runs)
        print(f"load average {os.getloadavg()[0]:.1f}; CPU of the fastest runs in this process (the broker's")
        print(f"not counted): fireplot {ours_cpu:.2f} s, reference {ref_cpu:.2f} s")
        report(
            f"replay --max, {args.events:,} archived events of {args.sensors} sensor(s) -> Kafka",
            "events",
            args.events,
            ours_s,
            "pyarrow read+sort",
            ref_s,
        )


if __name__ == "__main__":
    main()
