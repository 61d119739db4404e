"""Reading and writing Kafka topics the way the shipper and worker do, for the tests' checks."""

from __future__ import annotations

import json
import time
import uuid

import pyarrow as pa
from kafka import KafkaProducer

from pipeline import wire
from pipeline.broker import ensure_topics
from producers.lines import MAX_LINE_BYTES
from tests.support.lines import INSIDE_NETWORK, Mixed
from tests.support.system import System


def produce(bootstrap: str, topic: str, table: pa.Table, per_record: int = 500, hosts: int = 4) -> int:
    """Publish events as the shipper does (one Arrow batch per record, key site/host); records sent."""
    ensure_topics(bootstrap, {topic: 4}, wire.TOPIC_CONFIGS)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=wire.MAX_REQUEST_BYTES)
    n = 0
    for i, start in enumerate(range(0, table.num_rows, per_record)):
        part = table.slice(start, per_record)
        producer.send(
            topic,
            key=wire.record_key("a", f"fw{i % hosts}"),
            value=wire.encode(part),
            headers=list(wire.HEADERS),
        )
        n += 1
    producer.flush(timeout=60)
    producer.close()
    return n


def use_own_dead_letter_topic(system: System) -> str:
    """A dead-letter topic of this test alone (the default name is shared by every shipper)."""
    topic = f"fp-test-dl-{uuid.uuid4().hex[:10]}"
    system.configure("kafka", dead_letter_topic=topic)
    system.configure("shipper", exclude_networks=[INSIDE_NETWORK])
    return topic


def read_dead_letters(
    bootstrap: str, topic: str, expect: int, timeout_s: float = 60
) -> list[dict[str, object]]:
    """Every record of the dead-letter topic, waiting until at least ``expect`` are there."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        deadline = time.monotonic() + timeout_s
        out: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            if tps:
                consumer.assign(tps)
                consumer.seek_to_beginning(*tps)
                end = consumer.end_offsets(tps)
                out = []
                while any(consumer.position(tp) < end[tp] for tp in tps):
                    for records in consumer.poll(timeout_ms=500).values():
                        for r in records:
                            assert dict(r.headers)["content-type"] == b"application/json"
                            out.append(json.loads(r.value))
                if len(out) >= expect:
                    return out
            time.sleep(0.5)
        raise AssertionError(f"{len(out)} dead letters on {topic}, expected {expect}")
    finally:
        consumer.close()


def check_letters(letters: list[dict[str, object]], mixed: Mixed, source_id: str) -> None:
    """Each rejected line exactly once, at its offset, with a reason, its text kept as data."""
    by_offset = {int(str(d["offset"])): d for d in letters}
    assert len(by_offset) == len(letters), "a line was dead-lettered twice"
    assert sorted(by_offset) == sorted(mixed.rejected)
    for offset, line in mixed.rejected.items():
        letter = by_offset[offset]
        assert letter["source_id"] == source_id
        assert isinstance(letter["reason"], str) and letter["reason"]
        # The line comes back as read (invalid UTF-8 replaced, cut at MAX_LINE_BYTES), never interpreted.
        assert letter["line"] == line[:MAX_LINE_BYTES].decode("utf-8", "replace"), f"line at {offset} altered"


class TopicReader:
    """Reads the events of one topic as they come: each ``read_new`` returns what was added since the
    last call, so a test that checks a topic after every step reads each record once, not the whole
    topic each time."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer

        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        self.assigned: set[int] = set()

    def read_new(self, timeout_s: float = 60) -> pa.Table:
        """The events published since the last call (all partitions), up to the topic's current end."""
        from kafka import TopicPartition

        from pipeline.event import EVENT_SCHEMA

        parts = self.consumer.partitions_for_topic(self.topic) or set()
        if parts - self.assigned:
            fresh = [TopicPartition(self.topic, p) for p in sorted(parts - self.assigned)]
            self.assigned |= parts
            self.consumer.assign([TopicPartition(self.topic, p) for p in sorted(self.assigned)])
            self.consumer.seek_to_beginning(*fresh)
        tps = [TopicPartition(self.topic, p) for p in sorted(self.assigned)]
        if not tps:
            return EVENT_SCHEMA.empty_table()
        end = self.consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        tables: list[pa.Table] = []
        while any(self.consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {self.topic} to its end in {timeout_s} s"
            for records in self.consumer.poll(timeout_ms=500, max_records=500).values():
                tables += [wire.decode(r.value) for r in records]
        return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()

    def close(self) -> None:
        self.consumer.close()
