"""The shipper: log files → parsed, filtered Arrow batches → the events topic, losing nothing.

This module is about the files: it reads batches of lines and hands them to
``BatchShipper`` (``producers.batch_shipper``: parse, filter, keep rejects,
publish, in input order). Each batch's end offset is written to the
read-position registry only when Kafka has acknowledged it and everything
before it, so a restart resumes at a line that was surely delivered and
re-sends at most what was in flight, under the same ``(source_id,
source_offset)`` identity.

Inputs are named by content (``producers.registry``): ``<site>:<fingerprint>``
where the fingerprint hashes the first line, so a renamed or compressed
rotated file keeps its name and its position. ``--follow`` tails globs across
rename+create, copytruncate and truncate-and-rewrite rotation.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import logging
import os
import select
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pipeline.config import Config
from producers.batch_shipper import BatchShipper, ShipStats
from producers.lines import LineBatch, fingerprint, read_batches
from producers.publisher import Publisher
from producers.registry import Registry

if TYPE_CHECKING:
    from producers.metrics import ShipperMetrics

log = logging.getLogger("fireplot.shipper")

STDIN = Path("-")
# After rename+create, the old file is read until it has been quiet this many polls:
# the writer may still append to it until it reopens its log.
ROTATE_QUIET_POLLS = 5


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


def _is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


class Shipper(BatchShipper):
    """Files and streams → batches, with read positions (registry), ``--follow`` and rotation."""

    def __init__(
        self,
        cfg: Config,
        publisher: Publisher,
        *,
        registry: Registry | None = None,
        progress: Callable[[Path, int, bool], None] | None = None,
        # the batch side's
        fmt: str = "auto",
        host: str | None = None,
        metrics: ShipperMetrics | None = None,
    ) -> None:
        """``progress(path, bytes read so far, file finished)``: for backfill's progress bar."""
        super().__init__(cfg, publisher, fmt, host, metrics)
        self.registry = registry
        self.progress = progress

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
            self.submit(batch, src.source_id, self._acker(src, batch.end_offset))
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
            self.submit(batch, sid)
            if self.pending and not _readable_now(fh):
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
            self.start_pool()  # the children start up while the first lines are read
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
