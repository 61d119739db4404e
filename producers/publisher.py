"""Publish event batches to the events topic with kafka-python.

acks=all with idempotence: a batch is ours to forget only when every in-sync
replica has it, and a retried send cannot be written twice by the broker.
Each Kafka record is one Arrow batch (``pipeline.wire``), so kafka-python's
per-record cost is paid per few thousand events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from pipeline import wire


class PublishError(RuntimeError):
    """Kafka did not acknowledge a batch in time."""


@dataclass
class PublishStats:
    records: int = 0
    events: int = 0
    bytes: int = 0
    send_seconds: list[float] = field(default_factory=list)


class Publisher:
    def __init__(
        self, bootstrap: str, topic: str, linger_ms: int = 20, timeout_s: float = 120.0, **extra: object
    ) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self.timeout_s = timeout_s
        self.stats = PublishStats()
        self._pending: list[tuple[object, float, Callable[[], None] | None]] = []
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            compression_type="zstd",
            linger_ms=linger_ms,
            batch_size=1024 * 1024,
            max_request_size=wire.MAX_REQUEST_BYTES,
            delivery_timeout_ms=int(timeout_s * 1000),
            request_timeout_ms=min(30000, int(timeout_s * 1000)),
            client_id="fireplot-shipper",
            **extra,
        )

    def send(self, key: bytes, table: pa.Table, on_ack: Callable[[], None] | None = None) -> None:
        """Queue ``table``'s events for sending; ``on_ack`` runs once all of them are acknowledged."""
        if table.num_rows == 0:
            if on_ack:
                self._pending.append((None, time.monotonic(), on_ack))
            return
        values = list(self._encode_split(table))
        for i, value in enumerate(values):
            fut = self._producer.send(self.topic, key=key, value=value, headers=list(wire.HEADERS))
            self.stats.bytes += len(value)
            self.stats.records += 1
            last = i == len(values) - 1
            self._pending.append((fut, time.monotonic(), on_ack if last else None))
        self.stats.events += table.num_rows

    def _encode_split(self, table: pa.Table) -> list[bytes]:
        value = wire.encode(table)
        if len(value) <= wire.MAX_RECORD_BYTES or table.num_rows == 1:
            return [value]
        half = table.num_rows // 2
        return self._encode_split(table.slice(0, half)) + self._encode_split(table.slice(half))

    def drain(self, wait: bool = True) -> None:
        """Resolve acknowledged sends in order, running their callbacks; raise on failure.

        Callbacks run strictly in send order, so a read position advanced by
        one never passes a batch that is still in flight.
        """
        if wait:
            self._producer.flush(timeout=self.timeout_s)
        while self._pending:
            fut, started, on_ack = self._pending[0]
            if fut is not None:
                if not wait and not fut.is_done:  # type: ignore[attr-defined]
                    return
                try:
                    fut.get(timeout=self.timeout_s)  # type: ignore[attr-defined]
                except Exception as exc:
                    raise PublishError(f"Kafka did not acknowledge a batch: {exc}") from exc
                self.stats.send_seconds.append(time.monotonic() - started)
            self._pending.pop(0)
            if on_ack:
                on_ack()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._producer.close(timeout=10)
