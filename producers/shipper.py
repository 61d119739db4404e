"""The shipper: log files → parsed, filtered Arrow batches → the events topic.

One loop per run: read a batch of lines, parse it into events (columns, not
rows), drop what the edge filter rules out (counted per reason), keep the
rejected lines with their reasons in the dead-letter file, publish the rest.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.compute as pc

from pipeline import parsers, wire
from pipeline.config import Config
from pipeline.filters import EdgeFilter
from pipeline.parsers import ParseContext, Reject
from producers.lines import LineBatch, fingerprint, read_batches
from producers.publisher import Publisher

log = logging.getLogger("fireplot.shipper")


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


def _reason_class(reason: str) -> str:
    # Reasons carry the offending value ("bad SRC address '…'"); metrics and
    # summaries group by the part before it so attacker text cannot explode them.
    return reason.split("'", 1)[0].split(":", 1)[0].strip() or "unknown"


class DeadLetters:
    """Rejected lines, one JSON object per line, with source position and reason."""

    def __init__(self, directory: Path, site: str) -> None:
        self.path = directory / f"{site}.rejects.jsonl"

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            for r in rejects:
                fh.write(
                    json.dumps(
                        {"source_id": r.source_id, "offset": r.offset, "reason": r.reason, "line": r.line},
                        ensure_ascii=True,  # keep control characters from the log escaped
                    )
                    + "\n"
                )


class Shipper:
    def __init__(
        self, cfg: Config, publisher: Publisher, fmt: str = "netfilter", host: str | None = None
    ) -> None:
        self.cfg = cfg
        self.site = cfg.shipper.site
        self.host = host if host is not None else cfg.shipper.host
        self.parse = parsers.get(fmt)
        self.filter = EdgeFilter(cfg.shipper)
        self.publisher = publisher
        self.dead = DeadLetters(Path(cfg.shipper.dead_letter_dir), self.site)
        self.tz = ZoneInfo(cfg.shipper.timezone)
        self.stats = ShipStats()

    def _source_id(self, path: Path, fp: str | None) -> str:
        return f"{self.site}:{fp}" if fp else f"{self.site}:path:{path.resolve()}"

    def ship_batch(self, batch: LineBatch, source_id: str) -> None:
        if len(batch) == 0:
            return
        ctx = ParseContext(site=self.site, source_id=source_id, host=self.host, tz=self.tz)
        result = self.parse(batch.lines, batch.offsets, ctx)
        self.stats.lines += len(batch)
        for r in result.rejects:
            cls = _reason_class(r.reason)
            self.stats.rejected[cls] = self.stats.rejected.get(cls, 0) + 1
        self.dead.write(result.rejects)
        filtered = self.filter(result.events)
        for reason, n in filtered.dropped.items():
            self.stats.filtered[reason] = self.stats.filtered.get(reason, 0) + n
        events = filtered.kept
        if events.num_rows:
            hosts = events.column("host").unique().to_pylist()
            for host in hosts:
                part = events if len(hosts) == 1 else events.filter(pc.equal(events.column("host"), host))
                self.publisher.send(wire.record_key(self.site, host), part)
            self.stats.events_sent += events.num_rows
        self.publisher.drain(wait=False)

    def ship_file(self, path: Path, follow: bool = False, stop: Callable[[], bool] | None = None) -> None:
        """Ship one file from its start; with ``follow``, keep shipping what is appended."""
        self.stats.files += 1
        poll_s = self.cfg.shipper.follow_poll_interval_ms / 1000
        with open(path, "rb") as fh:
            fp = fingerprint(fh)
            while follow and fp is None and not (stop and stop()):
                time.sleep(poll_s)
                fp = fingerprint(fh)
            source_id = self._source_id(path, fp)
            pos = 0
            ino = os.fstat(fh.fileno()).st_ino
            while True:
                for batch in read_batches(fh, pos, final=not follow, max_lines=self.cfg.shipper.batch_lines):
                    self.ship_batch(batch, source_id)
                    pos = batch.end_offset
                if not follow or (stop and stop()):
                    break
                self.publisher.drain(wait=False)
                time.sleep(poll_s)
                size = os.fstat(fh.fileno()).st_size
                if size < pos:
                    log.warning("file truncated, reading from its start: %s", path)
                    pos = 0
                    fp = fingerprint(fh)
                    source_id = self._source_id(path, fp)
                try:
                    if path.stat().st_ino != ino:
                        log.info("file rotated; the new file will be picked up by a new run: %s", path)
                except FileNotFoundError:
                    pass
        self.publisher.drain()

    def ship_paths(
        self, paths: Iterable[Path], follow: bool = False, stop: Callable[[], bool] | None = None
    ) -> ShipStats:
        paths = list(paths)
        if follow and len(paths) != 1:
            raise ValueError("--follow takes exactly one file")
        for path in paths:
            self.ship_file(path, follow=follow, stop=stop)
        self.publisher.drain()
        return self.stats
