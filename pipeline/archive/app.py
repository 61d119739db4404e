"""The archive worker's faust wiring: the events and raw-lines topics into the Parquet store.

``ArchiveWorker`` builds the faust app and names its parts: a ``SinkAgent``
for the events topic (an ``ArchiveSink`` with ``decode_event_batches``), a
``RawFeed`` for the raw-lines topic (an ``ArchiveSink`` with ``RawLines``,
read in batches beside faust: ``pipeline.archive.raw_feed``), topic
discovery for topic patterns, the maintenance and site-health timers, and
two pages on ``[worker] web_port``: ``/metrics`` (Prometheus) and ``/ready``
(readiness; ``/health`` answers the same for probes written before it had
its name). The flush protocol itself lives in ``pipeline.archive.sink``.

faust traps this design avoids:
- the sink agent runs with concurrency 1: with more, faust can commit past an
  event that is still being processed (faust issue 606);
- faust acks an event when the agent raises, so nothing escapes the loop: a
  record that cannot be decoded goes to the dead-letter directory with its
  reason, and a flush that cannot be written stops the process *without*
  acking, so Kafka redelivers after restart;
- faust 0.15's ``app.topic(pattern=...)`` subscribes to nothing, so topic
  patterns are resolved here and the agents' name lists grown in place
  (``pipeline.archive.topics``);
- faust sleeps 1 s before subscribing, for tables this app does not have
  (``NoTablesManager``), and 45 s after a subscription change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from pipeline import wire
from pipeline.archive.decoders import RawLines, Record, raw_parser
from pipeline.archive.metrics import Lag, SinkCollector
from pipeline.archive.raw_feed import RawFeed
from pipeline.archive.sink import EX_TEMPFAIL, ArchiveSink
from pipeline.archive.topics import PatternTopics, list_topics
from pipeline.config import Config
from pipeline.health import HealthMonitor, SiteHealthCollector, write_snapshot
from pipeline.store import Store

log = logging.getLogger("fireplot.worker")


class SinkAgent:
    """One topic's faust agent body: take records, flush them durably, then ack them."""

    def __init__(self, sink: ArchiveSink, max_records: int, within_s: float) -> None:
        self.sink = sink
        self.max_records = max_records
        self.within_s = within_s
        self.last_flush_at: float | None = None  # time.monotonic(), for /ready
        self.flushed_to: dict[tuple[str, int], int] = {}  # next offset to flush, per partition
        self.unread: int | None = None  # see next_flush_records

    async def run(self, stream: Any) -> None:
        loop = asyncio.get_running_loop()
        async for events in durable_take(stream, self.next_flush_records, self.within_s):
            records = [
                Record(
                    e.message.topic,
                    e.message.partition,
                    e.message.offset,
                    e.message.value or b"",
                    e.message.key,
                )
                for e in events
            ]
            try:
                # Parquet writing and fsync block; keep them off the loop so
                # heartbeats continue and the group does not rebalance under us.
                await loop.run_in_executor(None, self.sink.flush, records)
            except Exception:
                log.exception("flush failed; exiting without acking so Kafka redelivers")
                os._exit(EX_TEMPFAIL)
            self.last_flush_at = time.monotonic()
            for r in records:
                self.flushed_to[(r.topic, r.partition)] = r.offset + 1
            self.unread = self._unread(stream)
            for e in events:
                await stream.ack(e)

    def next_flush_records(self) -> int:
        """Records the next flush waits for: ``max_records``, or fewer at a backlog's tail.

        Evaluated once after each flush: when the partitions' ends (as of the last
        fetch) lie fewer than ``max_records`` records ahead of what is flushed, the
        next flush takes exactly those as soon as they are read, instead of waiting
        ``within_s`` for records that are not in Kafka yet (up to 0.5 s at the end
        of every backlog). Records that arrive later (a live trickle) still batch
        for ``within_s``: the count is not updated while the take fills."""
        unread, self.unread = self.unread, None
        return unread if unread else self.max_records

    def _unread(self, stream: Any) -> int | None:
        """Records between what is flushed and the assigned partitions' ends, or None if unknown."""
        try:
            consumer = stream.app.consumer
            total = 0
            for tp in consumer.assignment():
                high, done = consumer.highwater(tp), self.flushed_to.get((tp.topic, tp.partition))
                if high is None or (done is None and high != 0):
                    # not fetched yet, or nothing of it flushed by this process (where it
                    # was committed is faust's to know): unknown, so no tail shortcut
                    return None
                total += max(0, int(high) - (done or 0))
        except Exception:  # best effort: faust internals vary by version; the plain take is correct
            log.debug("partition ends unavailable", exc_info=True)
            return None
        return total if 0 < total < self.max_records else None


async def durable_take(
    stream: Any, max_records: Callable[[], int], within_s: float
) -> AsyncIterator[list[Any]]:
    """faust's ``Stream.noack_take`` (0.15), with the batch size asked for anew before each batch.

    Events are neither acked nor buffered past the batch being handed out: the
    caller acks them after its flush is durable, so commits never pass an
    unflushed event (the same contract as ``noack_take``, which this copies, using
    the stream's own hooks; faust has no public way to change the size between
    batches)."""
    buffer: list[Any] = []
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    limit = max_records()
    enable_acks = stream.enable_acks

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take buffer found current_event is None")
            buffer.append(event)
            if len(buffer) >= limit:
                buffer_full.set()
                buffer_consumed.clear()
                await stream.wait(buffer_consumed)  # never more than the limit in a batch
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # the caller acks, after its flush
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(buffer_full, timeout=within_s)
            if buffer:
                consuming = asyncio.get_running_loop().create_future()
                try:
                    yield list(buffer)
                finally:
                    buffer.clear()
                    limit = max_records()
                    if not consuming.done():
                        consuming.set_result(None)
                    buffer_full.clear()
                    buffer_consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)


class ArchiveWorker:
    """The faust app of ``fireplot worker`` and the parts wired into it."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.app = faust_app(cfg)
        self.sinks = archive_sinks(cfg)
        pattern_of = {
            cfg.kafka.events_topic: cfg.kafka.events_topic_pattern,
            cfg.kafka.raw_topic: cfg.kafka.raw_topic_pattern,
        }
        self.topics = PatternTopics({name: pattern_of[name] for name in self.sinks})
        if self.topics.patterns:
            for name in self.topics.add(list_topics(cfg)):
                log.info("archiving topic %s (matches a topic pattern)", name)
        events = cfg.kafka.events_topic
        self.agents = {events: self._add_agent(events)}
        self.raw_feed: RawFeed | None = None
        if cfg.kafka.raw_topic in self.sinks:
            self.raw_feed = RawFeed(
                cfg, self.sinks[cfg.kafka.raw_topic], self.topics.names[cfg.kafka.raw_topic]
            )
            self.app.task(self.raw_feed.run)
        if self.topics.patterns:
            # faust waits 45 s after a subscription change to batch agents restarting
            # together; ours come one discovery at a time and should not wait that long.
            self.app.topics._resubscribe_sleep_lock_seconds = min(45.0, cfg.worker.topic_discovery_interval_s)
            self.app.timer(interval=cfg.worker.topic_discovery_interval_s)(self.discover_topics)
        self.app.on_partitions_revoked.connect(self.on_partitions_revoked)
        if cfg.worker.maintenance_enabled:
            self.app.timer(interval=cfg.worker.maintenance_interval_s)(self.maintain)
        self.site_health = HealthMonitor(cfg)
        self.app.timer(interval=cfg.health.interval_s)(self.refresh_site_health)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SinkCollector(self.sinks, self.consumer_lag))
        self.registry.register(SiteHealthCollector(lambda: self.site_health.latest))
        self.app.page("/metrics", name="metrics")(self.metrics)
        self.app.page("/ready", name="ready")(self.ready)
        self.app.page("/health", name="ready-as-health")(self.ready)

    def _add_agent(self, topic_name: str) -> SinkAgent:
        worker = self.cfg.worker
        topic = self.app.topic(
            topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        topic.topics = self.topics.names[topic_name]  # shared with the agent's clones; grows by discovery
        agent = SinkAgent(self.sinks[topic_name], worker.flush_max_records, worker.flush_interval_s)
        # concurrency > 1 can commit past unprocessed events (faust#606)
        self.app.agent(topic, concurrency=1, name=f"archive-{topic_name}")(agent.run)
        return agent

    async def discover_topics(self) -> None:
        """Timer: take up new topics that match a pattern, and make faust subscribe to them."""
        loop = asyncio.get_running_loop()
        try:
            existing = await loop.run_in_executor(None, list_topics, self.cfg)
        except Exception as exc:  # Kafka away: the topics we have keep flowing; try again
            log.warning("could not list topics for the topic patterns: %s", exc)
            return
        added = self.topics.add(existing)
        if added:
            log.info("archiving new topics %s (match a topic pattern); resubscribing", added)
        if self.raw_feed is not None:
            self.raw_feed.resubscribe()
        conductor: Any = self.app.topics
        lists = [id(names) for names in self.topics.names.values()]
        for channel in list(conductor):
            # Checked every round, not only when a topic was added: faust drops a
            # subscription change that arrives while the group rebalances (conductor
            # _subscriber), so a second new topic could otherwise never be read.
            ours = id(getattr(channel, "topics", None)) in lists
            if ours and conductor._topic_contain_unsubscribed_topics(channel):
                # discard + add: the conductor's public way to flag a changed subscription
                conductor.discard(channel)
                conductor.add(channel)

    async def on_partitions_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        for sink in self.sinks.values():
            sink.forget()
        for agent in self.agents.values():
            agent.flushed_to.clear()  # another worker may flush these partitions now

    async def maintain(self) -> None:
        """Timer: compaction, rollups and retention of closed hours (``pipeline.compact``)."""
        from pipeline.compact import maintain

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, maintain, self.cfg)
        except Exception:
            # Maintenance never loses data by failing: inputs stay until
            # their replacement is durable. Log and try again next round.
            log.exception("maintenance round failed")

    async def refresh_site_health(self) -> None:
        """Timer: recompute per-site health (``pipeline.health``) for /metrics and the web snapshot."""
        try:
            report = await asyncio.get_running_loop().run_in_executor(None, self.site_health.refresh)
            write_snapshot(self.cfg.worker.store_dir, report)
        except Exception:
            # Health is an observer: a failed round never stops archiving.
            log.exception("site health round failed")

    def consumer_lag(self) -> Lag:
        """Records between the last acked offset and the partition end, per assigned partition."""
        lag: Lag = {}
        try:
            consumer = self.app.consumer
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                committed = getattr(consumer, "_committed_offset", {}).get(tp)
                if high is not None:
                    # faust keeps the last acked offset; the next to read is one past it
                    done = -1 if committed is None else int(committed)
                    lag[(tp.topic, tp.partition)] = max(0, int(high) - (done + 1))
        except Exception:  # lag is best effort; faust internals vary by version
            log.debug("consumer lag unavailable", exc_info=True)
        if self.raw_feed is not None:
            lag.update(self.raw_feed.lag())
        return lag

    async def metrics(self, request: Any) -> Any:
        """Page /metrics: Prometheus exposition, the format negotiated as prometheus_client's server does."""
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return self.app.web.bytes(encode(self.registry), headers={"Content-Type": content_type})

    async def ready(self, request: Any) -> Any:
        """Page /ready: 200 when the worker can archive, else 503; the state as JSON."""
        status = self.readiness()
        ready = status["store_writable"] and status["consumer_running"]
        return self.app.web.json(status, status=200 if ready else 503)

    def readiness(self) -> dict[str, Any]:
        """Ready = the store is writable and the consumers run (faust's, and the raw feed's when the
        raw topic is archived); a worker with nothing to do is ready."""
        probe = Path(self.cfg.worker.store_dir) / "_sink" / ".ready"
        status: dict[str, Any] = {"store_writable": True, "consumer_running": False}
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
        except OSError as exc:
            status["store_writable"] = False
            status["error"] = str(exc)
        try:
            consumer = self.app.consumer
            status["consumer_running"] = bool(consumer and not consumer.should_stop)
            assigned = {f"{tp.topic}:{tp.partition}" for tp in consumer.assignment()}
            if self.raw_feed is not None:
                status["consumer_running"] &= self.raw_feed.consumer is not None
                assigned |= {f"{t}:{p}" for t, p in self.raw_feed.assignment()}
            status["assigned_partitions"] = sorted(assigned)
        except Exception:  # before start there is no consumer
            log.debug("consumer state unavailable", exc_info=True)
        now = time.monotonic()
        flushed = {topic: agent.last_flush_at for topic, agent in self.agents.items()}
        if self.raw_feed is not None:
            flushed[self.cfg.kafka.raw_topic] = self.raw_feed.last_flush_at
        status["seconds_since_flush"] = {
            topic: round(now - at, 3) for topic, at in flushed.items() if at is not None
        }
        return status


def faust_app(cfg: Config) -> Any:
    """The faust app, configured for archiving: no tables, commits after every ack, bounded buffers."""
    import faust
    from faust.tables import TableManager

    from pipeline.kafka_security import faust_credentials

    class NoTablesManager(TableManager):
        """faust's table manager without its start-up second.

        faust sleeps 1 s before subscribing so that tables defined late still
        register; this app defines no tables, and a worker (re)started under a
        backlog would only lose that second of archiving."""

        async def on_start(self) -> None:
            if not self.should_stop:
                await self._update_channels()
                await self.recovery.start()

    datadir = Path(cfg.kafka.var_dir) / "faust" / cfg.worker.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        cfg.worker.app_id,
        TableManager=NoTablesManager,
        broker=",".join(f"kafka://{b.strip()}" for b in cfg.kafka.effective_bootstrap.split(",")),
        broker_credentials=faust_credentials(cfg.kafka),
        store="memory://",
        datadir=str(datadir),
        web_bind="127.0.0.1",
        web_port=cfg.worker.web_port,
        web_host="127.0.0.1",
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1,
        broker_commit_interval=0.5,
        consumer_max_fetch_size=16 * 1024 * 1024,
        # Bounds memory by events-topic records (up to 8192 events each); a raw
        # flush takes more, smaller records than this through the same stream.
        # With 4 flushes' worth the buffer filled while a flush was written, faust
        # paused fetching, and the worker then waited ~0.5 s per 4 flushes for the
        # next fetch to arrive (bench_sink); 8 keeps records flowing, same peak RSS.
        stream_buffer_maxsize=8 * cfg.worker.flush_max_records,
        broker_session_timeout=cfg.worker.session_timeout_s,
        # heartbeats well inside the session, as Kafka requires (< 1/3)
        broker_heartbeat_interval=min(3.0, cfg.worker.session_timeout_s / 4),
    )


def archive_sinks(cfg: Config) -> dict[str, ArchiveSink]:
    """One sink per topic the worker archives, on one store and one dead-letter directory."""
    store = Store(cfg.worker.store_dir, check_all_ids=cfg.worker.check_all_ids)
    dead_dir = Path(cfg.worker.store_dir) / "_dead_letters"
    sinks = {
        cfg.kafka.events_topic: ArchiveSink(store, dead_dir, future_tolerance_s=cfg.worker.future_tolerance_s)
    }
    if cfg.worker.raw_enabled:
        sinks[cfg.kafka.raw_topic] = ArchiveSink(
            store,
            dead_dir,
            RawLines(raw_parser(cfg.worker.raw_format), cfg.worker.raw_default_site),
            future_tolerance_s=cfg.worker.future_tolerance_s,
        )
    return sinks


def missing_topics(cfg: Config, names: set[str], timeout_s: float = 10.0) -> set[str] | None:
    """Which of ``names`` the cluster lacks, asked with aiokafka; None when it could not be asked.

    The worker's usual start finds its topics in place; asking with the Kafka
    client faust loads anyway takes ~15 ms, where ``ensure_topics`` (kafka-python's
    admin client: its import and bootstrap) took 0.2-0.7 s of a 2.5 s archive run
    (bench_sink). Creating what is missing stays ``ensure_topics``'s job."""
    from aiokafka import AIOKafkaClient
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from pipeline.kafka_security import faust_credentials

    async def ask() -> set[str]:
        client = AIOKafkaClient(
            bootstrap_servers=cfg.kafka.effective_bootstrap,
            **credentials_to_aiokafka_auth(faust_credentials(cfg.kafka)),
        )
        try:
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
            return names - set(metadata.topics())
        finally:
            await client.close()

    # A loop of its own, closed before faust makes its own; asyncio.run would unset
    # the thread's event loop, which faust's start-up then fails to get.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(ask(), timeout_s))
    except Exception as exc:  # ensure_topics then tries, and explains a failure as it always has
        log.debug("topic check with aiokafka failed: %s", exc)
        return None
    finally:
        loop.close()


def make_app(cfg: Config) -> Any:
    """The worker's faust app, every part wired."""
    return ArchiveWorker(cfg).app


def run(cfg: Config, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGTERM/SIGINT."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:  # an operator's choice wins
        # Arrow's default pool here, mimalloc, has the kernel zero fresh huge pages for each
        # flush's buffers, the more so when one thread frees what another allocated (the raw
        # feed decodes beside the flush): 2-5x the CPU of jemalloc on the raw path (README).
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    from pipeline.broker import ensure_topics

    topics = {cfg.kafka.events_topic: cfg.kafka.events_partitions}
    if cfg.worker.raw_enabled:
        topics[cfg.kafka.raw_topic] = cfg.kafka.raw_partitions
    if missing_topics(cfg, set(topics)) != set():
        ensure_topics(cfg.kafka.effective_bootstrap, topics, wire.TOPIC_CONFIGS, cfg.kafka)
    app = make_app(cfg)
    # faust's entry point reads its own argv; ours has been parsed already.
    # faust spells its levels crit/error/warn/info/debug.
    faust_level = {"warning": "warn", "critical": "crit"}.get(loglevel, loglevel)
    sys.argv = ["fireplot-worker", "worker", "-l", faust_level]
    app.main()
