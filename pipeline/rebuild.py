"""Rebuild a dataset from the events topic: re-read Kafka from the offsets for a time.

After a parser fix or a lost disk, operators re-derive the archive from what
Kafka still holds. The rebuild reads every partition from the first record
published at or after ``since`` (``offsets_for_times``) up to the end offsets
seen when it started, and feeds the same ``ArchiveSink`` the worker uses into
a fresh dataset, so the result has the worker's exactly-once layout. A re-run
continues after the offsets the dataset already committed.

No consumer group is used: the rebuild never disturbs live processing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.archive.decoders import Record
from pipeline.archive.sink import ArchiveSink
from pipeline.progress import ProgressLine
from pipeline.store import Store


@dataclass
class RebuildStats:
    partitions: int = 0
    records: int = 0
    events_written: int = 0
    records_to_read: int = 0


def rebuild(
    bootstrap: str,
    topic: str,
    since: dt.datetime,
    store: Store,
    dead_letter_dir: Path,
    stop: Callable[[], bool] | None = None,
    on_progress: Callable[[RebuildStats], None] | None = None,
    batch_records: int = 256,
    security: Mapping[str, Any] | None = None,
) -> RebuildStats:
    """``security``: kafka-python TLS/SASL settings (pipeline.kafka_security.client_kwargs)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **(security or {}),
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        client_id="fireplot-rebuild",
    )
    sink = ArchiveSink(store, dead_letter_dir)
    stats = RebuildStats()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist or has no partitions")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        stats.partitions = len(tps)
        ends = consumer.end_offsets(tps)
        by_time = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        remaining: dict[TopicPartition, int] = {}
        for tp in tps:
            found = by_time.get(tp)
            start = found.offset if found is not None else ends[tp]
            start = max(start, store.committed_offset(topic, tp.partition) + 1)
            if start < ends[tp]:
                consumer.seek(tp, start)
                remaining[tp] = ends[tp]
                stats.records_to_read += ends[tp] - start
        while remaining and not (stop and stop()):
            polled = consumer.poll(timeout_ms=1000, max_records=batch_records)
            records: list[Record] = []
            for tp, messages in polled.items():
                end = remaining.get(tp)
                if end is None:
                    continue
                records += [
                    Record(topic, tp.partition, m.offset, m.value or b"") for m in messages if m.offset < end
                ]
                if consumer.position(tp) >= end:
                    consumer.pause(tp)
                    del remaining[tp]
            if records:
                before = sink.stats.events_written
                sink.flush(records)
                stats.records += len(records)
                stats.events_written += sink.stats.events_written - before
            if on_progress:
                on_progress(stats)
    finally:
        consumer.close()
    return stats


class RebuildProgress:
    """Rebuild progress: records read of records to read, events written, rate."""

    def __init__(self) -> None:
        self.line = ProgressLine()

    def __call__(self, stats: RebuildStats, final: bool = False) -> None:
        share = stats.records / stats.records_to_read if stats.records_to_read else 1.0
        rate = stats.events_written / self.line.elapsed_s
        counts = f"{stats.records:,}/{stats.records_to_read:,} records  {stats.events_written:,} events"
        detail = f"{counts}  {rate:,.0f}/s"
        self.line.show(share, detail, final)
