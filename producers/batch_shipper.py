"""One batch of lines through the shipper: parse, count, keep rejects, filter, publish, in order.

The parsing runs in a thread (``[shipper] parse_thread``) or in child
processes (``[shipper] parse_processes``, both in ``producers.parse_pool``)
while the caller reads the next batch and this publishes the previous one;
results are taken strictly in input order, so everything after parsing happens
exactly as if it were done in line. A batch's ``on_ack`` runs when Kafka has
acknowledged it and everything before it (the publisher runs acknowledgement
callbacks in send order). Where the lines come from (files, stdin, syslog) is
the callers' business (``producers.shipper``, ``producers.syslog_receiver``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pyarrow.compute as pc

from pipeline import parsers, wire
from pipeline.config import Config
from pipeline.event import EVENT_SCHEMA
from pipeline.filters import EdgeFilter, FilterResult
from pipeline.parsers import ParseContext
from producers.dead_letters import DeadLetters, letters, reason_class
from producers.lines import LineBatch
from producers.parse_pool import BatchParser, ParsePool, ParseThread
from producers.publisher import Publisher

if TYPE_CHECKING:
    # prometheus_client is imported only when metrics are served.
    from producers.metrics import ShipperMetrics

log = logging.getLogger("fireplot.shipper")

EMPTY_EVENTS = EVENT_SCHEMA.empty_table()


@dataclass
class ShipStats:
    lines: int = 0
    events_sent: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, int] = field(default_factory=dict)
    files: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "lines": self.lines,
            "events_sent": self.events_sent,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "filtered_by_reason": self.filtered,
        }


@dataclass
class _Parsing:
    """A batch handed to the parse pool, waiting for its turn to be published."""

    lines: int
    source_id: str
    on_ack: Callable[[], None] | None
    in_pool: bool  # False: nothing to parse (an empty batch), only its acknowledgement to keep in order


class BatchShipper:
    """Batches of lines → parsed, filtered events on the events topic, in order, rejects kept."""

    def __init__(
        self,
        cfg: Config,
        publisher: Publisher,
        fmt: str = "auto",
        host: str | None = None,
        metrics: ShipperMetrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.site = cfg.shipper.site
        self.host = host if host is not None else cfg.shipper.host
        self.fmt = fmt
        self.parse = parsers.get(fmt)
        if fmt in ("auto", "netfilter"):
            from pipeline.parsers import netfilter, netfilter_native

            chosen = netfilter.engine()
            if chosen == "native":
                log.info(
                    "netfilter parser: native scanner", extra={"library": netfilter_native.library_path()}
                )
            else:
                # Same events, about a third of the speed: worth a line in the log.
                log.warning(
                    "netfilter parser: pyarrow path only",
                    extra={"why": netfilter_native.why_unavailable() or "FIREPLOT_NETFILTER_ENGINE=arrow"},
                )
        self.filter = EdgeFilter(cfg.shipper)
        self.publisher = publisher
        self.metrics = metrics
        self.dead = DeadLetters(Path(cfg.shipper.dead_letter_dir), self.site)
        self.tz = ZoneInfo(cfg.shipper.timezone)
        self.stats = ShipStats()
        self._ctx: dict[str, ParseContext] = {}
        self.parse_processes = cfg.shipper.parse_processes
        # Batches parsing or parsed and waiting while this thread reads on: one
        # being parsed and one waiting per parser, so no parser idles while
        # this thread publishes; more only costs memory.
        self._ahead = 2 * self.parse_processes if self.parse_processes else 2 * cfg.shipper.parse_thread
        self._pool: BatchParser | None = None
        self._parsing: deque[_Parsing] = deque()

    # -- one batch -----------------------------------------------------------------------------

    def ship_batch(self, batch: LineBatch, source_id: str, on_ack: Callable[[], None] | None = None) -> None:
        """Parse, filter and queue one batch; ``on_ack`` runs when Kafka has all of it (and all before)."""
        if len(batch) == 0:
            if on_ack:
                on_ack()
            return
        result = self.parse(batch.lines, batch.offsets, self._context(source_id))
        self._publish(len(batch), source_id, result, on_ack)

    def _context(self, source_id: str) -> ParseContext:
        ctx = self._ctx.get(source_id)
        if ctx is None:
            ctx = ParseContext(site=self.site, source_id=source_id, host=self.host, tz=self.tz)
            self._ctx = {source_id: ctx}  # one live context: sources change rarely
        return ctx

    def _publish(
        self,
        n_lines: int,
        source_id: str,
        result: parsers.ParseResult,
        on_ack: Callable[[], None] | None,
        filtered: FilterResult | None = None,
    ) -> None:
        """Everything after parsing, for one batch: counts, dead letters, edge filter (unless
        ``filtered`` is its outcome already), Kafka."""
        self.stats.lines += n_lines
        m = self.metrics
        if m:
            m.lines.inc(n_lines)
        if result.rejects:
            for r in result.rejects:
                cls = reason_class(r.reason)
                self.stats.rejected[cls] = self.stats.rejected.get(cls, 0) + 1
                if m:
                    m.rejected.labels(cls).inc()
            self.dead.write(result.rejects)
            self.publisher.send_dead_letters(source_id.encode(), letters(result.rejects))
        if filtered is None:
            filtered = self.filter(result.events)
        for reason, n in filtered.dropped.items():
            self.stats.filtered[reason] = self.stats.filtered.get(reason, 0) + n
            if m and n:
                m.filtered.labels(reason).inc(n)
        events = filtered.kept
        if events.num_rows:
            hosts = events.column("host").unique().to_pylist()
            for i, host in enumerate(hosts):
                part = events if len(hosts) == 1 else events.filter(pc.equal(events.column("host"), host))
                last = i == len(hosts) - 1
                self.publisher.send(wire.record_key(self.site, host), part, on_ack if last else None)
            self.stats.events_sent += events.num_rows
            if m:
                m.events.inc(events.num_rows)
        elif on_ack:
            self.publisher.send(b"", events, on_ack)  # nothing to send: acknowledged in turn
        self.publisher.drain(wait=False)
        if m:
            m.spool_bytes.set(self.publisher.spool_bytes)

    # -- batches through the parse pool -----------------------------------------------------------

    def submit(self, batch: LineBatch, source_id: str, on_ack: Callable[[], None] | None = None) -> None:
        """Ship ``batch``, parsing it in the pool when there is one; ``flush_parsed`` finishes the rest."""
        if self._ahead == 0:
            self.ship_batch(batch, source_id, on_ack)
            return
        if len(batch) == 0 and not self._parsing:
            if on_ack:
                on_ack()
            return
        pool = self.start_pool()
        if len(batch):
            pool.submit(batch.lines, batch.offsets, self._context(source_id))
        self._parsing.append(_Parsing(len(batch), source_id, on_ack, in_pool=len(batch) > 0))
        while len(self._parsing) > self._ahead:
            self._publish_next()

    def _publish_next(self) -> None:
        item = self._parsing.popleft()
        if not item.in_pool:
            if item.on_ack:
                self.publisher.send(b"", EMPTY_EVENTS, item.on_ack)  # acknowledged in turn
            return
        pool = self._pool
        assert pool is not None
        batch = pool.result()
        self._publish(item.lines, item.source_id, batch.parsed, item.on_ack, batch.filtered)

    @property
    def pending(self) -> int:
        """Batches submitted and not yet published."""
        return len(self._parsing)

    def flush_parsed(self) -> None:
        """Publish every batch still in the parse pool, in order."""
        while self._parsing:
            self._publish_next()

    def start_pool(self) -> BatchParser:
        """The parse thread or processes, started on first use (or early, to overlap their start-up)."""
        if self._pool is None:
            self._pool = (
                ParsePool(self.fmt, self.parse_processes)
                if self.parse_processes
                else ParseThread(self.fmt, self.filter)
            )
            self._pool.start()
        return self._pool

    def close(self) -> None:
        """Stop the parse thread or processes; batches still in them were never published nor acknowledged."""
        self._parsing.clear()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
