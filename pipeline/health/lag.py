"""Consumer lag of the worker's group, per topic-partition (kafka-python's admin client).

With MirrorMaker 2 each site's events come through their own replicated topic,
so per-topic lag is that site's replication backlog at the centre.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.config import KafkaConfig


def group_lag(kafka: KafkaConfig, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Records between the group's committed offset and the end, per topic-partition.

    Covers every topic the group has committed offsets for (a pattern
    subscription's topics included) and ``topics``; a partition the group has
    never committed counts from its earliest offset."""
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import OffsetSpec

    from pipeline.kafka_security import client_kwargs

    admin = KafkaAdminClient(
        bootstrap_servers=kafka.effective_bootstrap, request_timeout_ms=5000, **client_kwargs(kafka)
    )
    try:
        committed = _group_offsets(admin, group)
        names = sorted({tp.topic for tp in committed} | set(topics))
        existing = set(admin.list_topics())
        tps = [
            TopicPartition(t["name"], p["partition_index"])
            for t in admin.describe_topics([n for n in names if n in existing])
            for p in t["partitions"]
        ]
        if not tps:
            return {}
        latest = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        missing = [tp for tp in tps if tp not in committed or committed[tp].offset < 0]
        earliest = (
            admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in missing}) if missing else {}
        )
        lag: dict[tuple[str, int], int] = {}
        for tp in tps:
            done = committed[tp].offset if tp not in earliest else earliest[tp].offset
            lag[(tp.topic, tp.partition)] = max(0, int(latest[tp].offset) - int(done))
        return lag
    finally:
        admin.close()


def _group_offsets(admin: Any, group: str, timeout_s: float = 10.0) -> dict[Any, Any]:
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return dict(admin.list_group_offsets({group: None}).get(group, {}))
        except KafkaError as exc:
            # A broker whose offsets topic is still being created answers
            # "coordinator not available" for a while: retriable, so retry.
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
