"""The shipper: log files → parsed, filtered Arrow batches → the events topic, losing nothing.

One loop per run: read a batch of lines, parse it into events (columns, not
rows), drop what the edge filter rules out (counted per reason), keep the
rejected lines with their reasons (dead-letter file and topic), publish the
rest. The parsing of files and stdin runs in a thread (``[shipper]
parse_thread``) or in child processes (``[shipper] parse_processes``, both in
``producers.parse_pool``) while this thread reads the next batch and publishes
the previous one; results are taken strictly in input order, so everything
after parsing happens exactly as if it were done in line. Each
batch's end offset is written to the read-position registry only when Kafka
has acknowledged it and everything before it (the publisher runs
acknowledgement callbacks in send order), so a restart resumes at a line that
was surely delivered and re-sends at most what was in flight, under the same
``(source_id, source_offset)`` identity.

Inputs are named by content (``producers.registry``): ``<site>:<fingerprint>``
where the fingerprint hashes the first line, so a renamed or compressed
rotated file keeps its name and its position. ``--follow`` tails globs across
rename+create, copytruncate and truncate-and-rewrite rotation.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import logging
import os
import select
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from zoneinfo import ZoneInfo

import pyarrow.compute as pc

from pipeline import parsers, wire
from pipeline.config import Config
from pipeline.event import EVENT_SCHEMA
from pipeline.filters import EdgeFilter, FilterResult
from pipeline.parsers import ParseContext, Reject
from producers.lines import LineBatch, fingerprint, read_batches
from producers.parse_pool import BatchParser, ParsePool, ParseThread
from producers.publisher import Publisher
from producers.registry import Registry

if TYPE_CHECKING:
    # prometheus_client is imported only when metrics are served.
    from producers.metrics import ShipperMetrics

log = logging.getLogger("fireplot.shipper")

STDIN = Path("-")
# After rename+create, the old file is read until it has been quiet this many polls:
# the writer may still append to it until it reopens its log.
ROTATE_QUIET_POLLS = 5


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


def _letters(rejects: list[Reject]) -> list[dict[str, object]]:
    return [
        {"source_id": r.source_id, "offset": r.offset, "reason": r.reason, "line": r.line} for r in rejects
    ]


class DeadLetters:
    """Rejected lines, one JSON object per line, with source position and reason."""

    def __init__(self, directory: Path, site: str) -> None:
        self.path = directory / f"{site}.rejects.jsonl"

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            # ensure_ascii keeps control characters from the log escaped.
            fh.write("".join(json.dumps(d, ensure_ascii=True) + "\n" for d in _letters(rejects)))


@dataclass
class Source:
    """One input being read: its identity, where it is read, what is acknowledged."""

    source_id: str
    fingerprint: str
    path: Path
    fh: BinaryIO
    pos: int  # next byte to read (of the decompressed content for .gz)
    dev: int = 0
    ino: int = 0
    compressed: bool = False
    quiet_polls: int = 0
    rotated: bool = False  # its path now names another file; read to the end and close
    awaiting_identity: bool = False  # truncated to less than a line: no fingerprint yet


@dataclass
class _Parsing:
    """A batch handed to the parse pool, waiting for its turn to be published."""

    lines: int
    source_id: str
    on_ack: Callable[[], None] | None
    in_pool: bool  # False: nothing to parse (an empty batch), only its acknowledgement to keep in order


def _is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


class Shipper:
    def __init__(
        self,
        cfg: Config,
        publisher: Publisher,
        fmt: str = "auto",
        host: str | None = None,
        registry: Registry | None = None,
        metrics: ShipperMetrics | None = None,
        progress: Callable[[Path, int, bool], None] | None = None,
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
        self.registry = registry
        self.metrics = metrics
        self.dead = DeadLetters(Path(cfg.shipper.dead_letter_dir), self.site)
        self.tz = ZoneInfo(cfg.shipper.timezone)
        self.stats = ShipStats()
        self._ctx: dict[str, ParseContext] = {}
        # (path, bytes read so far, file finished): for backfill's progress bar.
        self.progress = progress
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
                cls = _reason_class(r.reason)
                self.stats.rejected[cls] = self.stats.rejected.get(cls, 0) + 1
                if m:
                    m.rejected.labels(cls).inc()
            self.dead.write(result.rejects)
            self.publisher.send_dead_letters(source_id.encode(), _letters(result.rejects))
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

    def _submit(self, batch: LineBatch, source_id: str, on_ack: Callable[[], None] | None = None) -> None:
        """Ship ``batch``, parsing it in the pool when there is one; ``flush_parsed`` finishes the rest."""
        if self._ahead == 0:
            self.ship_batch(batch, source_id, on_ack)
            return
        if len(batch) == 0 and not self._parsing:
            if on_ack:
                on_ack()
            return
        pool = self._start_pool()
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

    def flush_parsed(self) -> None:
        """Publish every batch still in the parse pool, in order."""
        while self._parsing:
            self._publish_next()

    def _start_pool(self) -> BatchParser:
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

    def _acker(self, src: Source, end: int) -> Callable[[], None]:
        reg, m = self.registry, self.metrics
        sid, fp, dev, ino, path = src.source_id, src.fingerprint, src.dev, src.ino, str(src.path)

        def ack() -> None:
            if reg is not None:
                reg.advance(sid, fp, end, dev, ino, path)
            if m:
                m.acked.inc()

        return ack

    # -- sources -------------------------------------------------------------------------------

    def _source_id(self, fp: str) -> str:
        return f"{self.site}:{fp}"

    def open_source(self, path: Path) -> Source | None:
        """Open ``path`` at its acknowledged position; None while it has no complete first line."""
        try:
            raw = open(path, "rb")  # noqa: SIM115 - owned by the Source
        except FileNotFoundError:
            return None
        st = os.fstat(raw.fileno())
        fh: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if _is_gzip(path) else raw  # type: ignore[assignment]
        try:
            fp = fingerprint(fh)
        except (OSError, EOFError) as exc:  # a .gz still being written, or not gzip at all
            log.warning("cannot read compressed file yet", extra={"path": str(path), "error": str(exc)})
            fp = None
        if fp is None:
            fh.close()
            raw.close()
            return None
        sid, pos = self._resume(fp, st, compressed=_is_gzip(path))
        return Source(sid, fp, path, fh, pos, st.st_dev, st.st_ino, compressed=_is_gzip(path))

    def _resume(self, fp: str, st: os.stat_result, compressed: bool) -> tuple[str, int]:
        """The source id and acknowledged position of a file with fingerprint ``fp``."""
        base = self._source_id(fp)
        if self.registry is None:
            return base, 0
        # Generations: a file truncated and rewritten with the same first line is a new source.
        gens = [e for e in self.registry.entries.values() if e.fingerprint == fp]
        if not gens:
            return base, 0
        latest = max(gens, key=lambda e: (e.updated, e.offset))
        if (
            not compressed
            and latest.offset > st.st_size
            and (latest.dev, latest.ino) == (st.st_dev, st.st_ino)
        ):
            return self._next_generation(fp), 0
        return latest.source_id, latest.offset

    def _next_generation(self, fp: str) -> str:
        n = 1
        while self.registry is not None and self.registry.get(f"{self._source_id(fp)}~{n}") is not None:
            n += 1
        return f"{self._source_id(fp)}~{n}"

    def _read(self, src: Source, final: bool) -> bool:
        """Ship what ``src`` has past its position; True if anything was read."""
        got = False
        for batch in read_batches(src.fh, src.pos, final=final, max_lines=self.cfg.shipper.batch_lines):
            self._submit(batch, src.source_id, self._acker(src, batch.end_offset))
            src.pos = batch.end_offset
            got = True
            if self.progress:
                self.progress(src.path, src.pos, False)
        # What was read is published before anything else happens to the source
        # (rotation, truncation, close), and a follow poll adds no latency.
        self.flush_parsed()
        return got

    def ship_file(self, path: Path) -> None:
        """Ship one file from its acknowledged position to its end (a .gz is read whole)."""
        self.stats.files += 1
        src = self.open_source(path)
        if src is None:
            log.info("empty file or no complete first line, skipped", extra={"path": str(path)})
            return
        try:
            self._read(src, final=True)
        finally:
            src.fh.close()
        if self.progress:
            self.progress(path, src.pos, True)

    def ship_stream(self, fh: BinaryIO, name: str = "stdin") -> None:
        """Ship a non-seekable stream (stdin): named by its first line, offsets from its start."""
        self.stats.files += 1
        for batch, sid in _stream_batches(fh, self.cfg.shipper.batch_lines, self.site, name):
            self._submit(batch, sid)
            if self._parsing and not _readable_now(fh):
                # A live pipe with nothing more yet: what came is shipped now, not
                # held in the pool until more lines arrive.
                self.flush_parsed()
        self.flush_parsed()

    # -- follow --------------------------------------------------------------------------------

    def follow(self, patterns: list[str], stop: Callable[[], bool]) -> None:
        """Tail every file matching ``patterns`` (re-globbed each poll) until ``stop()``."""
        poll_s = self.cfg.shipper.follow_poll_interval_ms / 1000
        live: dict[tuple[int, int], Source] = {}
        finished: set[tuple[int, int, str]] = set()  # compressed files read whole
        while not stop():
            seen = self._scan(patterns)
            for ident, path in seen.items():
                src = live.get(ident)
                if src is not None:
                    src.path = path
                    continue
                if (ident[0], ident[1], str(path)) in finished:
                    continue
                if _is_gzip(path):
                    self._ship_compressed(path, live)
                    finished.add((ident[0], ident[1], str(path)))
                    continue
                opened = self.open_source(path)
                if opened is not None:
                    twin = next((s for s in live.values() if s.source_id == opened.source_id), None)
                    if twin is not None and twin.pos > opened.pos:
                        # A copy of a file being read (copytruncate): what the original has read
                        # is already with the publisher, past the acknowledged position.
                        opened.pos = twin.pos
                    self.stats.files += 1
                    live[ident] = opened
                    log.info("following", extra={"path": str(path), "source_id": opened.source_id})
            for ident, src in list(live.items()):
                if ident not in seen:
                    src.rotated = True  # renamed away (to a name outside the globs) or deleted
                self._poll_source(src)
                if src.rotated and src.quiet_polls >= ROTATE_QUIET_POLLS:
                    self._read(src, final=True)
                    src.fh.close()
                    del live[ident]
                    log.info("rotated file read to its end", extra={"source_id": src.source_id})
            self.publisher.drain(wait=False)
            if self.registry:
                self.registry.maybe_save()
            time.sleep(poll_s)
        for src in live.values():
            src.fh.close()

    def _scan(self, patterns: list[str]) -> dict[tuple[int, int], Path]:
        seen: dict[tuple[int, int], Path] = {}
        for pattern in patterns:
            for name in sorted(glob.glob(pattern), key=_mtime):
                try:
                    st = os.stat(name)
                except FileNotFoundError:
                    continue
                seen.setdefault((st.st_dev, st.st_ino), Path(name))
        return seen

    def _ship_compressed(self, path: Path, live: dict[tuple[int, int], Source]) -> None:
        src = self.open_source(path)
        if src is None:
            return
        try:
            if any(s.source_id == src.source_id for s in live.values()):
                return  # its uncompressed original is still open and being read
            self.stats.files += 1
            self._read(src, final=True)
        finally:
            src.fh.close()

    def _poll_source(self, src: Source) -> None:
        size = os.fstat(src.fh.fileno()).st_size
        # A shrunk file, or one whose first line changed, was truncated (and maybe rewritten).
        changed = src.awaiting_identity or size < src.pos or fingerprint(src.fh) != src.fingerprint
        if changed and not self._reidentify(src):
            src.quiet_polls += 1
            return
        if self._read(src, final=False):
            src.quiet_polls = 0
        else:
            src.quiet_polls += 1

    def _reidentify(self, src: Source) -> bool:
        # copytruncate or truncate-and-rewrite: what was before the cut is either
        # in the copy (its own source, same fingerprint) or gone; this is new content.
        old = src.source_id
        src.pos = 0
        fp = fingerprint(src.fh)
        if fp is None:
            if not src.awaiting_identity:
                where = {"path": str(src.path), "old": old}
                log.warning("file truncated, waiting for its first line", extra=where)
            src.awaiting_identity = True  # empty after the cut: named once its first line is complete
            return False
        src.awaiting_identity = False
        known = self.registry is not None and any(e.fingerprint == fp for e in self.registry.entries.values())
        # Same first line as before (or as an older file): a new generation keeps ids distinct.
        src.source_id = self._next_generation(fp) if fp == src.fingerprint or known else self._source_id(fp)
        src.fingerprint = fp
        if self.registry is not None:
            # Reserve the name now, so that a restart does not pick the same generation.
            self.registry.advance(src.source_id, fp, 0, src.dev, src.ino, str(src.path))
        log.warning(
            "file truncated, reading from its start",
            extra={"path": str(src.path), "old": old, "new": src.source_id},
        )
        return True

    # -- entry point ---------------------------------------------------------------------------

    def ship_paths(
        self, paths: Iterable[Path], follow: bool = False, stop: Callable[[], bool] | None = None
    ) -> ShipStats:
        stop = stop or (lambda: False)
        paths = list(paths)
        if follow and STDIN in paths:
            raise ValueError("--follow reads files; stdin is read to its end without it")
        if self.parse_processes:
            self._start_pool()  # the children start up while the first lines are read
        try:
            if follow:
                self.follow([str(p) for p in paths], stop)
            else:
                for path in expand_paths(paths):
                    if stop():
                        break
                    if path == STDIN:
                        import sys

                        self.ship_stream(sys.stdin.buffer)
                    else:
                        self.ship_file(path)
        finally:
            self.close()
        self.publisher.drain(wait=not stop(), deadline_s=None if not stop() else 10)
        if self.registry:
            self.registry.save()
        return self.stats


EMPTY_EVENTS = EVENT_SCHEMA.empty_table()


def _readable_now(fh: BinaryIO) -> bool:
    try:
        ready, _, _ = select.select([fh], [], [], 0)
    except (OSError, ValueError):  # not a selectable stream: treat as a file, always readable
        return True
    return bool(ready)


def _mtime(name: str) -> float:
    try:
        return os.stat(name).st_mtime
    except FileNotFoundError:
        return 0.0


def expand_paths(paths: list[Path]) -> Iterator[Path]:
    """Paths and globs, each glob's files oldest first (rotated files before the live one)."""
    for p in paths:
        if p == STDIN:
            yield p
            continue
        s = str(p)
        if glob.has_magic(s):
            matches = sorted(glob.glob(s), key=_mtime)
            if not matches:
                log.warning("pattern matches no file", extra={"pattern": s})
            yield from (Path(m) for m in matches)
        else:
            yield p


def _stream_batches(fh: BinaryIO, max_lines: int, site: str, name: str) -> Iterator[tuple[LineBatch, str]]:
    # A stream has no file identity: its first line names it, so a restart
    # that pipes the same data again gets the same event ids.
    sid: str | None = None
    for batch in read_batches(fh, start=None, max_lines=max_lines):
        if sid is None and len(batch):
            first = str(batch.lines[0].as_py()).encode() + b"\n"
            sid = f"{site}:{name}:{hashlib.blake2b(first, digest_size=8).hexdigest()}"
        yield batch, sid or f"{site}:{name}"
