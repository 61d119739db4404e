"""The archive worker: a faust app that writes the events topic into the Parquet store.

Exactly-once effect without Kafka transactions (see ``pipeline.store``):
records are taken with ``noack_take`` and acknowledged only after the flush
that holds them is durable; on first sight of a partition the worker trims
whatever an interrupted flush left and skips offsets the store already has.

faust traps this design avoids:
- the sink agent runs with concurrency 1: with more, faust can commit past an
  event that is still being processed (faust issue 606);
- faust acks an event when the agent raises, so nothing escapes the loop: a
  record that cannot be decoded goes to the dead-letter directory with its
  reason, and a flush that cannot be written stops the process *without*
  acking, so Kafka redelivers after restart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import wire
from pipeline.config import Config
from pipeline.store import OffsetRange, Store

log = logging.getLogger("fireplot.worker")


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass
class SinkStats:
    records: int = 0
    events_written: int = 0
    files_written: int = 0
    skipped_records: int = 0
    dead_letters: int = 0
    flushes: int = 0
    last_flush_s: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


class ArchiveSink:
    """Turns batches of Kafka records into committed Parquet flushes. No faust inside:
    the same object serves the worker and the tests and benchmarks that drive it directly."""

    def __init__(self, store: Store, dead_letter_dir: Path) -> None:
        self.store = store
        self.dead_letter_dir = dead_letter_dir
        self.committed: dict[tuple[str, int], int] = {}
        self.stats = SinkStats()

    def forget(self) -> None:
        """Forget what we know of partitions (after a rebalance another worker may have written)."""
        self.committed.clear()

    def _committed(self, topic: str, partition: int) -> int:
        key = (topic, partition)
        if key not in self.committed:
            committed, removed = self.store.recover(topic, partition)
            for path in removed:
                log.warning("removed leftover of an interrupted flush: %s", path)
            self.committed[key] = committed
        return self.committed[key]

    def flush(self, records: Sequence[Record]) -> None:
        started = time.monotonic()
        by_tp: dict[tuple[str, int], list[Record]] = {}
        for r in records:
            by_tp.setdefault((r.topic, r.partition), []).append(r)
        for (topic, partition), recs in by_tp.items():
            done = self._committed(topic, partition)
            fresh = [r for r in recs if r.offset > done]
            self.stats.skipped_records += len(recs) - len(fresh)
            if not fresh:
                continue
            tables: list[pa.Table] = []
            for r in fresh:
                try:
                    tables.append(wire.decode(r.value))
                except wire.WireError as exc:
                    self._dead_letter(r, str(exc))
            rng = OffsetRange(topic, partition, fresh[0].offset, fresh[-1].offset)
            table = pa.concat_tables(tables) if tables else None
            if table is not None and table.num_rows:
                paths = self.store.write_flush(rng, table)
                self.stats.files_written += len(paths)
                self.stats.events_written += table.num_rows
            else:
                # Nothing to write, but the offsets are done: move the manifest on.
                self.store.commit_offsets(rng)
            self.committed[(topic, partition)] = rng.last
            self.stats.records += len(fresh)
        self.stats.flushes += 1
        self.stats.last_flush_s = time.monotonic() - started

    def _dead_letter(self, r: Record, reason: str) -> None:
        self.stats.dead_letters += 1
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
        path = self.dead_letter_dir / f"{r.topic}.jsonl"
        entry = {
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "reason": reason,
            "value_base64": base64.b64encode(r.value).decode(),
        }
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.error("record %s[%d]@%d sent to dead letters: %s", r.topic, r.partition, r.offset, reason)


def make_app(cfg: Config) -> Any:
    import faust

    bootstrap = cfg.kafka.effective_bootstrap
    datadir = Path(cfg.kafka.var_dir) / "faust" / cfg.worker.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        cfg.worker.app_id,
        broker=",".join(f"kafka://{b.strip()}" for b in bootstrap.split(",")),
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
        stream_buffer_maxsize=4 * cfg.worker.flush_max_records,
    )
    topic = app.topic(
        cfg.kafka.events_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    store = Store(cfg.worker.store_dir)
    sink = ArchiveSink(store, Path(cfg.worker.store_dir) / "_dead_letters")

    @app.agent(topic, concurrency=1)  # concurrency > 1 can commit past unprocessed events (faust#606)
    async def archive(stream: Any) -> None:
        loop = asyncio.get_running_loop()
        async for events in stream.noack_take(
            cfg.worker.flush_max_records, within=cfg.worker.flush_interval_s
        ):
            records = [
                Record(e.message.topic, e.message.partition, e.message.offset, e.message.value or b"")
                for e in events
            ]
            try:
                # Parquet writing and fsync block; keep them off the loop so
                # heartbeats continue and the group does not rebalance under us.
                await loop.run_in_executor(None, sink.flush, records)
            except Exception:
                log.exception("flush failed; exiting without acking so Kafka redelivers")
                os._exit(75)  # EX_TEMPFAIL: the supervisor restarts us
            for e in events:
                await stream.ack(e)

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        sink.forget()

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        s = sink.stats
        body = "".join(
            f"fireplot_worker_{name} {value}\n"
            for name, value in (
                ("records_total", s.records),
                ("events_written_total", s.events_written),
                ("files_written_total", s.files_written),
                ("records_skipped_total", s.skipped_records),
                ("dead_letters_total", s.dead_letters),
                ("flushes_total", s.flushes),
                ("last_flush_seconds", s.last_flush_s),
            )
        )
        return web.text(body, content_type="text/plain; version=0.0.4")

    return app


def run(cfg: Config, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGTERM/SIGINT."""
    from pipeline.broker import ensure_topics

    ensure_topics(
        cfg.kafka.effective_bootstrap,
        {cfg.kafka.events_topic: cfg.kafka.events_partitions},
        wire.TOPIC_CONFIGS,
    )
    app = make_app(cfg)
    # faust's entry point reads its own argv; ours has been parsed already.
    # faust spells its levels crit/error/warn/info/debug.
    faust_level = {"warning": "warn", "critical": "crit"}.get(loglevel, loglevel)
    sys.argv = ["fireplot-worker", "worker", "-l", faust_level]
    app.main()
