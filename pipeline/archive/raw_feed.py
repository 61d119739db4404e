"""The raw-lines topics read in batches: thousands of records a fetch, one durable flush, then the commit.

faust hands an agent one record at a time (an Event, a queue hop, a task for
every message): nothing for an events-topic record of 8192 events, and
everything for a raw record of one line. Through a faust agent the worker
spent ~190 µs of CPU per raw line and sat idle most of the time
(``benchmarks/bench_raw.py``). ``RawFeed`` reads the raw topics with
aiokafka's consumer, the client faust itself runs on, directly, and takes
what it fetched as Arrow columns, one ``RecordColumns`` per partition
(``pipeline.archive.kafka_batches``: no Python object per record); they go
to the same ``ArchiveSink`` (and ``RawLines`` decoder) as before.

Fetch, decode and flush overlap, three batches at most: the loop fetches
batch N+2 while a thread of its own decodes batch N+1
(``ArchiveSink.decode_ahead``) and the default executor flushes batch N. The
loop reads no further until flush N is durable and committed (backpressure).
The early decode is only a result: the flush uses it under its partition
locks only when the store holds none of those records (see the sink).

Exactly once into the store, as for the events topic (``pipeline.archive.sink``):
- offsets are committed only after the flush holding them is durable, and a
  flush that fails stops the process without a commit (``EX_TEMPFAIL``);
- the store's offsets manifest is the truth, the group's commit a position
  for lag tools: on assignment each partition is sought to the record after
  the last one stored, so a kill between a flush and its commit re-reads
  nothing, and the sink skips whatever is already stored in any case;
- on revocation the flush in flight is awaited before the partitions go;
  records read but not yet flushed are still flushed (never dropped: their
  partition's position has moved past them), and the store's partition
  locks and manifests make that flush skip whatever the new owner stored.

The consumer group is ``<app_id>-raw`` (``raw_group``): faust's group speaks
faust's own assignor protocol, and Kafka admits no member of another to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipeline.archive import kafka_batches
from pipeline.archive.decoders import Record, RecordColumns
from pipeline.archive.sink import EX_TEMPFAIL, ArchiveSink, Decoded
from pipeline.archive.topics import raw_group
from pipeline.config import Config

log = logging.getLogger("fireplot.worker")


class RawFeed:
    """The raw-lines topics' reader: fetch in batches, flush durably, commit; one flush in flight."""

    def __init__(self, cfg: Config, sink: ArchiveSink, topics: list[str]) -> None:
        self.cfg = cfg
        self.sink = sink
        self.topics = topics  # shared with PatternTopics: grows by topic discovery
        self.max_records = cfg.worker.raw_flush_max_records
        self.within_s = cfg.worker.flush_interval_s
        self.last_flush_at: float | None = None  # time.monotonic(), for /ready
        self.consumer: Any = None  # aiokafka.AIOKafkaConsumer once started
        self.committed: dict[tuple[str, int], int] = {}  # next offset to read, as committed
        self._subscribed: frozenset[str] = frozenset()
        self._inflight: asyncio.Task[dict[tuple[str, int], int]] | None = None
        # Bumped by each revocation: what was read before it is flushed apart from what comes after.
        self._generation = 0
        self._carried: list[RecordColumns] = []
        self._carried_generation = 0
        self._columnar = False  # records read as columns (kafka_batches), else through getmany
        # One thread: batches are decoded in order, and at most one beside the flush in flight.
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="fireplot-raw-decode")

    async def run(self) -> None:
        """Read, flush and commit until cancelled (the worker stopping); any failure ends the process.

        A reader that died while faust's side went on would leave the raw topic
        unread with a worker that looks healthy: exit, so the supervisor restarts it."""
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("raw-lines reader failed; exiting so the worker restarts")
            os._exit(EX_TEMPFAIL)

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

        from pipeline.kafka_security import faust_credentials

        worker = self.cfg.worker
        session_ms = int(worker.session_timeout_s * 1000)
        kept = kafka_batches.keep_fetched_bytes()  # before the consumer's first fetch
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.cfg.kafka.effective_bootstrap,
            group_id=raw_group(worker.app_id),
            client_id=f"{worker.app_id}-raw",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # One fetch brings a whole flush's worth of small records, not a few thousand.
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            session_timeout_ms=session_ms,
            # heartbeats well inside the session, as Kafka requires (< 1/3)
            heartbeat_interval_ms=min(3000, session_ms // 4),
            **credentials_to_aiokafka_auth(faust_credentials(self.cfg.kafka)),
        )
        await consumer.start()
        self.consumer = consumer
        self._columnar = kept and kafka_batches.usable(consumer)
        if not self._columnar:
            log.warning("aiokafka's fetcher is not the one kafka_batches knows: raw records read one by one")
        loop = asyncio.get_running_loop()
        try:
            self.resubscribe()
            while True:
                parts = await self._collect()
                # Decoded on its own thread while the flush in flight writes and fsyncs.
                decoding = loop.run_in_executor(self._decoder, self._decode, parts) if parts else None
                await self._finish()
                if decoding is not None:
                    # Flushed even when a rebalance came between: the store's partition
                    # locks and manifests make a late flush skip what the new owner
                    # stored, and dropping read records would leave them unread.
                    self._inflight = asyncio.ensure_future(self._flush(decoding))
        finally:
            if self._inflight is not None:  # stopping: let the flush in flight end, not cut it short
                await asyncio.wait([self._inflight])
            self.consumer = None
            self._decoder.shutdown(wait=False)
            await consumer.stop()

    def resubscribe(self) -> None:
        """Subscribe to the topic list again when topic discovery grew it."""
        if self.consumer is None or frozenset(self.topics) == self._subscribed:
            return
        from aiokafka import ConsumerRebalanceListener

        feed = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await feed._revoked()

            async def on_partitions_assigned(self, assigned: Any) -> None:
                await feed._assigned(assigned)

        self._subscribed = frozenset(self.topics)
        self.consumer.subscribe(topics=sorted(self._subscribed), listener=Listener())

    async def _collect(self) -> list[RecordColumns]:
        """Records until ``raw_flush_max_records``, or ``flush_interval_s`` after the first arrived.

        A fetch drains whole partition buffers: what goes past the limit is
        carried to the next flush, as is what was read before a rebalance."""
        parts, self._carried = self._carried, []
        generation = self._carried_generation if parts else self._generation
        count = sum(len(p) for p in parts)
        deadline = time.monotonic() + self.within_s if parts else None
        while count < self.max_records:
            if self._inflight is not None and self._inflight.done():
                # Committed as soon as it is durable, not when the next batch is full: a
                # feed that ran out of records would otherwise hold its last commit back.
                await self._finish()
            wait_s = 1.0 if deadline is None else deadline - time.monotonic()
            if wait_s <= 0:
                break
            fetched = await self._fetch(max(0.001, wait_s))
            if generation != self._generation and parts:
                # A rebalance came between: the new assignment may read some records
                # again, so they go to the next flush, never twice into one flush.
                self._carried, self._carried_generation = fetched, self._generation
                return parts
            generation = self._generation
            parts.extend(fetched)
            count += sum(len(p) for p in fetched)
            if parts and deadline is None:
                deadline = time.monotonic() + self.within_s
        if count > self.max_records:
            parts = self._carry_over(parts, generation)
        return parts

    def _carry_over(self, parts: list[RecordColumns], generation: int) -> list[RecordColumns]:
        """The first ``max_records`` records; the rest carried to the next flush."""
        kept: list[RecordColumns] = []
        room = self.max_records
        for i, part in enumerate(parts):
            if len(part) > room:
                if room:
                    kept.append(part[:room])
                self._carried = [part[room:], *parts[i + 1 :]]
                self._carried_generation = generation
                break
            kept.append(part)
            room -= len(part)
        return kept

    async def _fetch(self, wait_s: float) -> list[RecordColumns]:
        """What the consumer fetched, one ``RecordColumns`` per partition."""
        if self._columnar:
            return await kafka_batches.fetch_columns(self.consumer, wait_s)
        batch = await self.consumer.getmany(timeout_ms=max(1, int(wait_s * 1000)))
        return [
            RecordColumns.of(
                tp.topic,
                tp.partition,
                [Record(tp.topic, tp.partition, m.offset, m.value or b"", m.key) for m in msgs],
            )
            for tp, msgs in batch.items()
            if msgs
        ]

    def _decode(self, parts: list[RecordColumns]) -> tuple[dict[tuple[str, int], RecordColumns], Decoded]:
        """One flush's records, each partition's parts joined, and what the sink's decoder makes of them."""
        by_tp: dict[tuple[str, int], list[RecordColumns]] = {}
        for part in parts:
            by_tp.setdefault((part.topic, part.partition), []).append(part)
        joined = {tp: RecordColumns.concat(ps) for tp, ps in by_tp.items()}
        return joined, self.sink.decode_ahead(joined)

    async def _flush(
        self, decoding: asyncio.Future[tuple[dict[tuple[str, int], RecordColumns], Decoded]]
    ) -> dict[tuple[str, int], int]:
        """Flush durably what is being decoded; the next offset to read per partition."""
        loop = asyncio.get_running_loop()
        try:
            joined, decoded = await decoding
            # Parquet writing and fsync block; off the loop, so fetching and heartbeats go on.
            await loop.run_in_executor(None, self.sink.flush_partitions, joined, decoded)
        except Exception:
            log.exception("raw flush failed; exiting without committing so Kafka redelivers")
            os._exit(EX_TEMPFAIL)
        self.last_flush_at = time.monotonic()
        log.debug(
            "raw flush of %d records in %.3f s", sum(map(len, joined.values())), self.sink.stats.last_flush_s
        )
        return {tp: cols.offsets[-1].as_py() + 1 for tp, cols in joined.items()}

    async def _finish(self) -> None:
        """Wait for the flush in flight, then commit its offsets."""
        if self._inflight is None:
            return
        ends = await self._inflight
        self._inflight = None
        from aiokafka import TopicPartition

        assigned = self.consumer.assignment()
        offsets = {TopicPartition(t, p): o for (t, p), o in ends.items()}
        offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
        try:
            if offsets:
                await self.consumer.commit(offsets)
            self.committed.update({(tp.topic, tp.partition): o for tp, o in offsets.items()})
        except Exception as exc:
            # Durable already (a rebalance came between): the next owner starts after
            # it, from the store's manifest.
            log.warning("raw offsets not committed (%s); the store's manifest has them", exc)

    async def _revoked(self) -> None:
        """Let the flush in flight end before the partitions go; commit nothing here.

        A commit waits for the group coordinator, and the coordinator waits for
        this listener: committing here can hang the rebalance. Not needed either:
        the next owner starts from the store's manifest."""
        self._generation += 1
        if self._inflight is not None:
            await asyncio.wait([self._inflight])
        self.sink.forget()  # another worker may write these partitions from now on
        self.committed.clear()

    async def _assigned(self, assigned: Any) -> None:
        store = self.sink.store
        for tp in assigned:
            stored = store.committed_offset(tp.topic, tp.partition)
            if stored >= 0:
                # The store, not the group's commit, says where this partition's archive ends.
                self.consumer.seek(tp, stored + 1)

    def assignment(self) -> list[tuple[str, int]]:
        if self.consumer is None:
            return []
        return sorted((tp.topic, tp.partition) for tp in self.consumer.assignment())

    def lag(self) -> dict[tuple[str, int], int]:
        """Records between the last commit and the partition end, per assigned partition."""
        lag: dict[tuple[str, int], int] = {}
        if self.consumer is None:
            return lag
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                done = self.committed.get((tp.topic, tp.partition))
                if done is None:
                    done = self.sink.store.committed_offset(tp.topic, tp.partition) + 1
                lag[(tp.topic, tp.partition)] = max(0, int(high) - done)
        return lag
