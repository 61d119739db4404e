"""Replay: archived Parquet → replay topic in event-time order, against reading the same Parquet with pyarrow.

The reference is the floor any replay pays: pyarrow reading and sorting the
same events from the same files, publishing nothing. fireplot additionally
orders each hour totally, splits per (site, host) and publishes Arrow batches
to Kafka with acks=all.

    python -m benchmarks.bench_replay [--events 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import uuid
from pathlib import Path

import pyarrow.dataset as ds

from benchmarks.bench_sink import synthetic_events
from benchmarks.harness import best_of, broker, report
from pipeline import datasets
from pipeline.broker import ensure_topics
from pipeline.store import OffsetRange, Store
from producers.publisher import Publisher
from producers.replay import ReplayState, replay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        root = Path(tmp)
        store = Store(root / "store")
        events = synthetic_events(args.events)
        step = 100_000
        for i in range(0, events.num_rows, step):
            store.write_flush(OffsetRange("bench", 0, i, i + step - 1), events.slice(i, step))
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
            table = ds.dataset(store.events_root, format="parquet", partitioning="hive").to_table()
            table = table.sort_by([("ts", "ascending")])
            assert table.num_rows == args.events

        ours_s = best_of(args.repeats, ours)
        ref_s = best_of(args.repeats, reference)
        report(
            f"replay --max, {args.events:,} archived events -> Kafka",
            "events",
            args.events,
            ours_s,
            "pyarrow read+sort",
            ref_s,
        )


if __name__ == "__main__":
    main()
