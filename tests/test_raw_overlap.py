"""The raw feed decodes a flush's records ahead, on its own thread, while the previous flush writes.

What that can break, checked on a real store (and a real broker for the feed):
- a decode made before another worker stored some of the same records
  (a rebalance between the decode and the flush) must not be written as it
  is: no event twice, no dead letter twice, counters for the fresh records only;
- offsets must be committed only when the store holds every record below
  them durably, however decode and flush overlap.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from pipeline import wire
from pipeline.archive.app import archive_sinks
from pipeline.archive.decoders import RawLines, Record, RecordColumns, raw_parser
from pipeline.archive.raw_feed import RawFeed
from pipeline.archive.sink import ArchiveSink
from pipeline.broker import ensure_topics
from pipeline.config.loader import load
from pipeline.store import Store
from producers.demo import Packet, format_line
from tests.support.system import System, ids

T0 = dt.datetime(2026, 11, 27, 10, tzinfo=dt.UTC)


def text(i: int) -> str:
    """Line ``i``: every 7th one a line no parser reads (a dead letter), the others netfilter lines."""
    if i % 7 == 3:
        return f"not a firewall line {i}"
    p = Packet(T0 + dt.timedelta(seconds=i), f"198.18.{i // 250 % 250}.{i % 250 + 1}", "203.0.113.9",
               "TCP", 40000, 1 + i % 65000)  # fmt: skip
    return format_line(p, 100 + i / 1000)


class Counted:
    """The worker's decoder, and how many records each call of it was given."""

    def __init__(self) -> None:
        self.inner = RawLines(raw_parser("auto"), "dflt")
        self.calls: list[int] = []

    def __call__(self, records: Any) -> Any:
        self.calls.append(len(records))
        return self.inner(records)


def dead_letters(directory: Path) -> Counter[tuple[int, str]]:
    path = directory / "raw.jsonl"
    if not path.exists():
        return Counter()
    return Counter((e["offset"], e["line"]) for e in map(json.loads, path.read_text().splitlines()))


@pytest.mark.parametrize("stored_meanwhile", [0, 1, 400, 999, 1000])
def test_a_decode_ahead_is_used_only_when_the_store_holds_none_of_its_records(
    tmp_path: Path, stored_meanwhile: int
) -> None:
    """Worker a decodes 1000 records ahead; worker b stores the first ``stored_meanwhile`` of them
    before a flushes: the store and the dead letters hold every line exactly once."""
    n = 1000
    records = [Record("raw", 0, i, text(i).encode(), b"s1/fw1") for i in range(n)]
    columns = RecordColumns.of("raw", 0, records)
    dead_dir = tmp_path / "dead"
    a_decode, b_decode = Counted(), Counted()
    a = ArchiveSink(Store(tmp_path / "store"), dead_dir, a_decode, future_tolerance_s=1e9)
    b = ArchiveSink(Store(tmp_path / "store"), dead_dir, b_decode, future_tolerance_s=1e9)

    decoded = a.decode_ahead({("raw", 0): columns})
    assert a_decode.calls == [n]
    if stored_meanwhile:
        b.flush(records[:stored_meanwhile])
    a.flush_partitions({("raw", 0): columns}, decoded)

    fresh = n - stored_meanwhile
    # Used as it is when nothing was stored; else only the records the store lacks decoded again.
    assert a_decode.calls == ([n] if fresh == n else [n, fresh] if fresh else [n])
    good = [i for i in range(n) if i % 7 != 3]
    bad = [i for i in range(n) if i % 7 == 3]
    table = Store(tmp_path / "store").read_all()
    got = Counter(table["source_offset"].to_pylist())
    assert got == Counter(i << 16 for i in good), "an event lost or stored twice"
    assert dead_letters(dead_dir) == Counter((i, text(i)) for i in bad), "a dead letter lost or kept twice"
    # a's counters say what a did: only the records it found fresh.
    assert a.stats.records == fresh
    assert a.stats.dead_letters == len([i for i in bad if i >= stored_meanwhile])
    assert a.stats.dead_letters_by_kind == (
        {"unparsed_line": a.stats.dead_letters} if a.stats.dead_letters else {}
    )
    assert a.stats.events_written == len([i for i in good if i >= stored_meanwhile])
    assert Store(tmp_path / "store").committed_offset("raw", 0) == n - 1


def test_offsets_are_committed_only_after_every_record_below_them_is_durable(raw_system: System) -> None:
    """The real feed on a real broker, small flushes so that decode and flush overlap all along: at
    every commit the store's manifest (read from disk) already holds the records below the offset."""
    system = raw_system
    raw_topic = f"{system.topic}-raw"
    ensure_topics(system.bootstrap, {raw_topic: 3}, wire.TOPIC_CONFIGS)
    system.configure("worker", raw_flush_max_records=300, flush_interval_s=0.05)
    n = 9000
    producer = KafkaProducer(bootstrap_servers=system.bootstrap, acks="all", linger_ms=20)
    for i in range(n):
        producer.send(raw_topic, key=f"s{i % 3}/fw1".encode(), value=text(i).encode())
    producer.flush(timeout=60)
    producer.close()
    cfg = load(system.config)
    sink = archive_sinks(cfg)[raw_topic]
    # What the manifests on disk say at each commit: a Store of its own, no cache shared with the sink.
    on_disk = Store(system.store_dir)
    checked: list[tuple[int, int, int]] = []  # (partition, offset committed, last offset stored)

    async def run() -> None:
        feed = RawFeed(cfg, sink, [raw_topic])
        task = asyncio.ensure_future(feed.run())
        while feed.consumer is None:
            await asyncio.sleep(0.001)
        commit = feed.consumer.commit

        async def checked_commit(offsets: dict[Any, int]) -> None:
            for tp, offset in offsets.items():
                checked.append((tp.partition, offset, on_disk.committed_offset(tp.topic, tp.partition)))
            await commit(offsets)

        feed.consumer.commit = checked_commit
        deadline = asyncio.get_running_loop().time() + 120
        while sum(feed.committed.values()) < n and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    assert len(checked) >= 10, f"only {len(checked)} commits seen"
    late = [(p, o, s) for p, o, s in checked if s < o - 1]
    assert not late, f"offsets committed past what the store held: {late[:5]}"
    ends = {p: o for p, o, _ in checked}
    assert sum(ends.values()) == n  # every partition committed to its end (offsets from 0)
    table = Store(system.store_dir).read_all()
    stored = ids(table)
    assert len(stored) == len(set(stored)), "an event stored twice"
    assert Counter(zip(table["src_ip"].to_pylist(), table["dst_port"].to_pylist(), strict=True)) == Counter(
        (f"198.18.{i // 250 % 250}.{i % 250 + 1}", 1 + i % 65000) for i in range(n) if i % 7 != 3
    )
    path = system.store_dir / "_dead_letters" / f"{raw_topic}.jsonl"
    dead = [json.loads(x) for x in path.read_text().splitlines()]
    assert Counter(d["line"] for d in dead) == Counter(text(i) for i in range(n) if i % 7 == 3)
    assert sink.stats.dead_letters_by_kind == {"unparsed_line": len(dead)}
