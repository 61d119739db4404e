"""Site → centre replication: MirrorMaker 2 (as `fireplot kafka mirror` configures it) against a
plain kafka-python copier, on the same two brokers in the same run.

A site topic is pre-filled with records of Arrow event batches (8192 events
each, as the shipper sends them). Each side copies it to its own topic at the
centre, partition for partition, with ``acks=all`` and an idempotent
producer; the reference commits nothing and keeps no state, so it is the
floor of what a copier costs in Python. Each side is timed from the moment it
is running (MirrorMaker: its "started" log line; the reference: partitions
assigned) until the centre topic's end offsets hold every record; also
from the first record arriving (the copy rate alone) and from process start
(JVM and Connect start-up included).

    python -m benchmarks.bench_mirror [--events 1000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from benchmarks.bench_sink import synthetic_events
from benchmarks.harness import REPO, broker, report
from pipeline import wire
from pipeline.broker import ensure_topics
from pipeline.broker.mirror import MirrorMaker, Site, remote_topic
from producers.publisher import Publisher

REFERENCE = r"""
import sys
from pathlib import Path
from kafka import KafkaConsumer, KafkaProducer
site, centre, topic, out, ready_file, n = sys.argv[1:6] + [int(sys.argv[6])]
c = KafkaConsumer(topic, bootstrap_servers=site, auto_offset_reset="earliest", group_id="ref-" + out,
                  enable_auto_commit=False, max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20)
p = KafkaProducer(bootstrap_servers=centre, acks="all", enable_idempotence=True,
                  max_request_size=9 << 20, linger_ms=5)
copied, ready = 0, False
while copied < n:
    got = c.poll(timeout_ms=500)
    if not ready and c.assignment():
        Path(ready_file).touch()
        ready = True
    for tp, msgs in got.items():
        for m in msgs:
            p.send(out, m.value, key=m.key, partition=tp.partition, headers=m.headers)
        copied += len(msgs)
p.flush()
"""


def end_total(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = c.partitions_for_topic(topic) or set()
        return sum(c.end_offsets([TopicPartition(topic, p) for p in parts]).values()) if parts else 0
    finally:
        c.close()


def wait_copied(
    bootstrap: str,
    topic: str,
    n: int,
    failed: Callable[[], str | None] = lambda: None,
    timeout_s: float = 900,
) -> tuple[float, float]:
    """When the first record arrived and when the last did."""
    deadline = time.monotonic() + timeout_s
    first: float | None = None
    while time.monotonic() < deadline:
        have = end_total(bootstrap, topic)
        if have and first is None:
            first = time.monotonic()
        if have >= n:
            return first or time.monotonic(), time.monotonic()
        if why := failed():
            raise SystemExit(f"{topic}: copier failed: {why}")
        time.sleep(0.1)
    raise SystemExit(f"{topic}: not all {n} records copied within {timeout_s:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=8192, help="events per Kafka record")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker() as site, broker() as centre:
        root = Path(tmp)
        topic = f"bench-mirror-{uuid.uuid4().hex[:8]}"
        ensure_topics(site, {topic: 4}, wire.TOPIC_CONFIGS)
        events = synthetic_events(args.events)
        pub = Publisher(site, topic)
        for i in range(0, events.num_rows, args.batch):
            pub.send(wire.record_key("bench", f"fw{i // args.batch % 4}"), events.slice(i, args.batch))
        pub.close()
        records = end_total(site, topic)

        mm = MirrorMaker(
            [Site("bench", site)],
            centre,
            [topic],
            root / "mm",
            REPO / "var" / "kafka" / "lib",
            heap_mb=256,
        )
        launched = time.monotonic()
        mm.start()
        try:
            mm.wait_started()
            running = time.monotonic()
            first, done = wait_copied(centre, remote_topic("bench", topic), records, mm.failure)
        finally:
            mm.stop()
        ours_copy_s, ours_s, ours_total_s = done - first, done - running, done - launched

        ref_topic = f"ref-{topic}"
        ensure_topics(centre, {ref_topic: 4}, wire.TOPIC_CONFIGS)
        ready = root / f"{ref_topic}.ready"
        launched = time.monotonic()
        ref = subprocess.Popen(
            [sys.executable, "-c", REFERENCE, site, centre, topic, ref_topic, str(ready), str(records)],
            cwd=REPO,
        )
        while not ready.exists():
            if ref.poll() is not None:
                raise SystemExit(f"reference copier exited with {ref.returncode}")
            time.sleep(0.05)
        running = time.monotonic()
        first, done = wait_copied(centre, ref_topic, records)
        ref.wait(timeout=60)
        ref_copy_s, ref_s, ref_total_s = done - first, done - running, done - launched

    report(
        f"site -> centre copying ({records} records, first to last record at the centre)",
        "events",
        args.events,
        ours_copy_s,
        "python",
        ref_copy_s,
    )
    report(
        f"site -> centre replication ({records} records of {args.batch} events, from running)",
        "events",
        args.events,
        ours_s,
        "python",
        ref_s,
    )
    report(
        "same, from process start (MirrorMaker: JVM + Connect)",
        "events",
        args.events,
        ours_total_s,
        "python",
        ref_total_s,
    )


if __name__ == "__main__":
    main()
