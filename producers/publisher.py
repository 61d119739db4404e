"""Publish event batches (and dead letters) to Kafka with kafka-python, in order, never dropping.

acks=all with idempotence: a batch is ours to forget only when every in-sync
replica has it, and a retried send cannot be written twice by the broker.
Each Kafka record is one Arrow batch (``pipeline.wire``), so kafka-python's
per-record cost is paid per few thousand events.

Every record sits in one ordered queue until Kafka acknowledges it; callbacks
(read-position updates) run strictly in that order. At most
``in_flight_max_bytes`` are handed to kafka-python; when Kafka stops
acknowledging, later records go to the disk spool (``producers.spool``) and
are sent from there, in order, when it answers again. A full spool blocks
``send``: the shipper stops reading. A record Kafka failed to take is sent
again, never dropped.

A shipper may start while Kafka is unreachable (a site rebooted with its link
down): the producer is built without contacting a broker, and ``prepare`` (the
topic set-up) is retried before the first send until it succeeds; until then
every record goes to the spool.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipeline import wire
from producers.spool import Spool, SpoolRecord

log = logging.getLogger("fireplot.shipper.publisher")

DEAD_LETTER_HEADERS = [("content-type", b"application/json")]
# In-flight records older than this without an acknowledgement mean Kafka is
# not taking data: later records go to the spool instead of waiting.
STALL_S = 3.0
# While Kafka is unreachable, how often ``prepare`` is tried again.
PREPARE_RETRY_S = 5.0
# The Kafka API version the producer assumes before it has met a broker; each
# connection still negotiates ApiVersions and steps down to an older broker's.
# Without it kafka-python contacts a broker in the constructor and a shipper
# could not start during an outage.
ASSUMED_BROKER_VERSION = (4, 1)


class PublishError(RuntimeError):
    """Kafka did not acknowledge a batch in time."""


class Stopped(RuntimeError):
    """Asked to stop while waiting for Kafka or spool space."""


@dataclass
class PublishStats:
    records: int = 0
    events: int = 0
    bytes: int = 0
    resent: int = 0
    spooled: int = 0
    send_seconds: list[float] = field(default_factory=list)


@dataclass
class _Entry:
    topic: str
    key: bytes
    value: bytes | None  # None once spooled (the bytes are on disk) or for a bare callback
    headers: list[tuple[str, bytes]]
    on_ack: Callable[[], None] | None
    fut: Any = None
    started: float = 0.0
    # "callback": no record, only on_ack; "flight": handed to kafka-python;
    # "spool": waiting on disk; "retry": refused by kafka-python, kept in memory.
    state: str = "callback"
    segment: int | None = None  # spool segment holding this record, acknowledged on ack
    size: int = 0


def encode_records(table: pa.Table) -> list[bytes]:
    """``table``'s events as record values (``pipeline.wire``), split by rows to fit a record."""
    value = wire.encode(table)
    if len(value) <= wire.MAX_RECORD_BYTES or table.num_rows == 1:
        return [value]
    half = table.num_rows // 2
    return encode_records(table.slice(0, half)) + encode_records(table.slice(half))


class Publisher:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        linger_ms: int = 20,
        timeout_s: float = 120.0,
        spool: Spool | None = None,
        in_flight_max_bytes: int = 24 << 20,
        dead_letter_topic: str = "",
        stop: Callable[[], bool] | None = None,
        on_latency: Callable[[float], None] | None = None,
        on_backpressure: Callable[[bool], None] | None = None,
        prepare: Callable[[], None] | None = None,
        **extra: object,
    ) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.timeout_s = timeout_s
        self.stats = PublishStats()
        self.spool = spool
        self.in_flight_max_bytes = in_flight_max_bytes
        self.stop = stop or (lambda: False)
        self.on_latency = on_latency
        self.on_backpressure = on_backpressure
        self.prepare = prepare  # None once done: topics exist
        self._prepare_at = 0.0
        self.reading_paused = False  # the spool is full: send() blocks, so the reader stops
        self._queue: deque[_Entry] = deque()
        self._in_flight_bytes = 0
        self._n_spooled = 0
        # Records refused by kafka-python and waiting in memory for their turn
        # again: while there are any, a new record must not overtake them.
        self._n_retry = 0
        self._last_ack = time.monotonic()
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            # Event batches come compressed (pipeline.wire); dead letters are few and small.
            compression_type=None,
            linger_ms=linger_ms,
            batch_size=1024 * 1024,
            max_request_size=wire.MAX_REQUEST_BYTES,
            # kafka-python requires delivery > linger + request timeout; a short
            # send_timeout_s (a remote site's bound on a refused login) must still be valid.
            delivery_timeout_ms=max(int(timeout_s * 1000), min(30000, int(timeout_s * 500)) + linger_ms + 1),
            request_timeout_ms=min(30000, int(timeout_s * 500)),
            max_block_ms=5000,
            reconnect_backoff_max_ms=2000,
            client_id="fireplot-shipper",
            api_version=ASSUMED_BROKER_VERSION,
            **extra,
        )
        if spool is not None:
            # Records left by an earlier run go first: they are older than anything we read now.
            n = spool.unread
            for _ in range(n):
                self._queue.append(_Entry("", b"", None, [], None, state="spool"))
            self._n_spooled = n

    # -- queueing ---------------------------------------------------------------------------

    def send(self, key: bytes, table: pa.Table, on_ack: Callable[[], None] | None = None) -> None:
        """Queue ``table``'s events; ``on_ack`` runs once they and all queued before are acknowledged."""
        self.send_encoded(key, encode_records(table) if table.num_rows else [], table.num_rows, on_ack)

    def send_encoded(
        self, key: bytes, values: list[bytes], events: int, on_ack: Callable[[], None] | None = None
    ) -> None:
        """Queue records already encoded by ``encode_records`` (``events`` in all); as ``send``."""
        if not values:
            if on_ack:
                self._queue.append(_Entry("", b"", None, [], on_ack))
            return
        for i, value in enumerate(values):
            last = i == len(values) - 1
            self._put(self.topic, key, value, list(wire.HEADERS), on_ack if last else None)
        self.stats.events += events

    def fetch_metadata(self) -> None:
        """Learn the topic's partitions now (while the first records are still being made), not
        on the first send; a Kafka that does not answer in time is left to that send."""
        from kafka.errors import KafkaTimeoutError

        with contextlib.suppress(KafkaTimeoutError):
            self._producer.partitions_for(self.topic)

    def send_dead_letters(self, key: bytes, letters: list[dict[str, object]]) -> None:
        """Queue rejected lines for the dead-letter topic, one JSON record each, in line order."""
        if not self.dead_letter_topic:
            return
        for letter in letters:
            value = json.dumps(letter, ensure_ascii=True).encode()
            self._put(self.dead_letter_topic, key, value, list(DEAD_LETTER_HEADERS), None)

    def _put(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
        on_ack: Callable[[], None] | None,
    ) -> None:
        entry = _Entry(topic, key, value, headers, on_ack, size=len(value))
        self.stats.bytes += len(value)
        self.stats.records += 1
        while True:
            self.pump()
            if (
                self._n_spooled == 0
                and self._n_retry == 0
                and (
                    self._in_flight_bytes == 0
                    or self._in_flight_bytes + entry.size <= self.in_flight_max_bytes
                )
            ):
                if self._transmit(entry):
                    self._queue.append(entry)
                    self._pause(False)
                    return
            elif self.spool is None:
                if self.stop():
                    raise Stopped("stopping while waiting for Kafka")
                self._wait_for_acks()
                continue
            elif self._n_spooled == 0 and not self._stalled():
                # Kafka is acknowledging, just behind: wait rather than write to disk.
                self._wait_for_acks()
                continue
            if self.spool is not None and self.spool.has_room(entry.size + 64):
                self._spool(entry)
                self._pause(False)
                return
            if self.stop():
                raise Stopped("stopping while the spool is full")
            # Spool full: block the reader until Kafka drains some of it.
            self._pause(True)
            self._wait_for_acks(0.2)

    def _pause(self, paused: bool) -> None:
        # Back-pressure is an operator's business (logs pile up at the source): say so, once per episode.
        if paused == self.reading_paused:
            return
        self.reading_paused = paused
        where = {"spool": str(self.spool.directory), "spool_bytes": self.spool.bytes} if self.spool else {}
        if paused:
            log.warning("spool full: reading paused until Kafka takes records (back-pressure)", extra=where)
        else:
            log.info("spool has room again: reading resumed", extra=where)
        if self.on_backpressure:
            self.on_backpressure(paused)

    def _stalled(self) -> bool:
        head = next((e for e in self._queue if e.state == "flight"), None)
        return head is not None and time.monotonic() - max(head.started, self._last_ack) > STALL_S

    def _transmit(self, entry: _Entry) -> bool:
        from kafka.errors import KafkaTimeoutError

        assert entry.value is not None
        if self.prepare is not None and not self._prepared():
            if self.spool is None:
                raise PublishError("Kafka is unreachable and there is no spool to keep records in")
            return False
        try:
            entry.fut = self._producer.send(
                entry.topic, key=entry.key, value=entry.value, headers=entry.headers
            )
        except KafkaTimeoutError:
            # No metadata or no buffer space within max_block_ms: Kafka is away.
            if self.spool is None:
                raise
            return False
        entry.started = time.monotonic()
        if entry.state == "retry":
            self._n_retry -= 1
        entry.state = "flight"
        self._in_flight_bytes += entry.size
        return True

    def _prepared(self) -> bool:
        now = time.monotonic()
        if self.prepare is None or now < self._prepare_at:
            return self.prepare is None
        try:
            self.prepare()
        except Exception as exc:  # whatever kept Kafka away, the records wait on disk
            self._prepare_at = now + PREPARE_RETRY_S
            log.warning("Kafka still unreachable; records wait in the spool", extra={"error": str(exc)})
            return False
        log.info("Kafka answers: topics ready, sending")
        self.prepare = None
        return True

    def _spool(self, entry: _Entry) -> None:
        assert self.spool is not None and entry.value is not None
        if self._n_spooled == 0:
            log.warning(
                "Kafka is not acknowledging; spooling to disk", extra={"spool": str(self.spool.directory)}
            )
        entry.segment = self.spool.append(SpoolRecord(entry.topic, entry.key, entry.value, entry.headers))
        entry.value = None
        entry.state = "spool"
        self._n_spooled += 1
        self.stats.spooled += 1
        self._queue.append(entry)

    def _wait_for_acks(self, seconds: float = 0.05) -> None:
        head = next((e for e in self._queue if e.state == "flight"), None)
        if head is None:
            time.sleep(seconds)
            return
        # Only a wait: pump() reads the outcome, a failure included, in queue order.
        with contextlib.suppress(Exception):
            head.fut.get(timeout=seconds)

    # -- acknowledgements -------------------------------------------------------------------

    def pump(self) -> None:
        """Run callbacks of acknowledged records in order, resend failed ones, feed the spool to Kafka."""
        q = self._queue
        while q:
            e = q[0]
            if e.state in ("spool", "retry"):
                break
            if e.state == "flight":
                if not e.fut.is_done:
                    break
                if e.fut.failed():
                    self._resend(e)
                    break
                latency = time.monotonic() - e.started
                self.stats.send_seconds.append(latency)
                if self.on_latency:
                    self.on_latency(latency)
                self._in_flight_bytes -= e.size
                self._last_ack = time.monotonic()
                if e.segment is not None and self.spool is not None:
                    self.spool.ack(e.segment)
            q.popleft()
            if e.on_ack:
                e.on_ack()
        if q and q[0].state == "retry" and not self._transmit(q[0]):
            return
        if self._n_spooled and self.spool is not None:
            self._feed_from_spool()

    def _resend(self, e: _Entry) -> None:
        log.warning(
            "Kafka did not take a record; sending it again",
            extra={"topic": e.topic, "error": str(e.fut.exception)},
        )
        self._in_flight_bytes -= e.size
        self.stats.resent += 1
        if not self._transmit(e):
            e.state = "retry"
            self._n_retry += 1

    def _feed_from_spool(self) -> None:
        assert self.spool is not None
        if self._stalled():
            return
        for e in self._queue:
            if self._n_spooled == 0:
                break
            if e.state == "retry":
                return  # kafka-python refuses records for now; keep the order
            if e.state != "spool":
                continue
            if self._in_flight_bytes and self._in_flight_bytes + e.size > self.in_flight_max_bytes:
                return
            rec = self.spool.pop()
            if rec is None:
                raise PublishError("spool lost track of a record")  # would be a bug: fail loudly
            if not e.topic:  # a record left by an earlier run: its metadata is on disk only
                e.topic, e.key, e.headers = rec.topic, rec.key, rec.headers
            e.value, e.segment, e.size = rec.value, rec.segment, len(rec.value)
            self._n_spooled -= 1
            if not self._transmit(e):
                e.state = "retry"  # kept in memory, in place; the spool still holds it until acked
                self._n_retry += 1
                return

    def drain(self, wait: bool = True, deadline_s: float | None = None) -> None:
        """Run callbacks of what is acknowledged; with ``wait``, until nothing is pending.

        Raises PublishError when ``deadline_s`` passes first, Stopped when asked to stop.
        """
        self.pump()
        if not wait:
            return
        limit = time.monotonic() + (deadline_s if deadline_s is not None else self.timeout_s)
        while self._queue:
            if time.monotonic() > limit:
                raise PublishError(f"Kafka did not acknowledge {len(self._queue)} record(s) in time")
            if self.stop() and deadline_s is None:
                raise Stopped("stopping with records pending")
            if self._in_flight_bytes:
                # Only a nudge to send now: kafka-python raises when the acks take longer
                # than this (a first TLS + SASL connection to a leader does); the deadline above decides.
                from kafka.errors import KafkaTimeoutError

                with contextlib.suppress(KafkaTimeoutError):
                    self._producer.flush(timeout=0.2)
            self._wait_for_acks(0.1)
            self.pump()

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    @property
    def spool_bytes(self) -> int:
        return self.spool.bytes if self.spool else 0

    def close(self, grace_s: float | None = None) -> None:
        """Send what is pending (within ``grace_s``), then close; the rest stays spooled or unacked."""
        try:
            self.drain(deadline_s=grace_s)
        finally:
            self._producer.close(timeout=5)
            if self.spool:
                self.spool.close()
