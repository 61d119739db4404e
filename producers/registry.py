"""The durable read-position registry: where `fireplot ship` resumes each input.

A position is the byte offset just past the last line whose events (and
dead letters) Kafka has acknowledged, so after kill -9 the shipper re-reads
at most what was in flight: never less than was sent. Re-sent lines carry the
same ``(source_id, source_offset)`` and are dropped downstream.

Inputs are identified by content, not path: a file's fingerprint (hash of its
first line, ``producers.lines.fingerprint``) names it across renames and
compression (a rotated ``fw.log.1.gz`` is the same source as the ``fw.log``
it was), and device/inode are kept beside it so a truncated-and-rewritten
file with an unchanged first line can be told apart (a new generation).

The file is versioned JSON written with ``pipeline.durable`` (temp file, fsync,
rename, directory fsync), so a crash leaves either the old or the new registry.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline import durable

log = logging.getLogger("fireplot.shipper.registry")

VERSION = 1


class RegistryError(RuntimeError):
    """The registry file exists but cannot be used; refusing to guess positions."""


@dataclass
class Entry:
    """One input's acknowledged position."""

    source_id: str
    fingerprint: str
    offset: int  # bytes of the (decompressed) content acknowledged by Kafka
    dev: int = 0
    ino: int = 0
    path: str = ""  # last path seen: informative only, never used for identity
    updated: float = 0.0


class Registry:
    """Acknowledged read positions by source id, saved at most every ``flush_interval_s``."""

    def __init__(self, path: Path, flush_interval_s: float = 0.5) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.entries: dict[str, Entry] = {}
        self._dirty = False
        self._saved_at = 0.0
        self._load()

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            data = json.loads(raw)
            version = data["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{self.path}: not a fireplot registry: {exc}") from None
        if version != VERSION:
            raise RegistryError(f"{self.path}: registry version {version}, this shipper reads {VERSION}")
        for item in data["sources"]:
            e = Entry(**item)
            self.entries[e.source_id] = e

    def get(self, source_id: str) -> Entry | None:
        return self.entries.get(source_id)

    def by_inode(self, dev: int, ino: int) -> list[Entry]:
        return [e for e in self.entries.values() if e.dev == dev and e.ino == ino]

    def offset(self, source_id: str) -> int:
        e = self.entries.get(source_id)
        return e.offset if e else 0

    def advance(self, source_id: str, fingerprint: str, offset: int, dev: int, ino: int, path: str) -> None:
        """Record that everything before ``offset`` is acknowledged; a position never moves back."""
        e = self.entries.get(source_id)
        if e is None:
            self.entries[source_id] = Entry(source_id, fingerprint, offset, dev, ino, path, time.time())
        else:
            # Two readers of one content (a copytruncate copy and the live file) may
            # acknowledge out of step; what either acknowledged is delivered.
            e.offset = max(e.offset, offset)
            e.dev, e.ino, e.path, e.updated = dev, ino, path, time.time()
        self._dirty = True
        self.maybe_save()

    def maybe_save(self) -> None:
        if self._dirty and time.monotonic() - self._saved_at >= self.flush_interval_s:
            self.save()

    def save(self) -> None:
        if not self._dirty:
            return
        data = {"version": VERSION, "sources": [asdict(e) for e in self.entries.values()]}
        durable.write_bytes(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        self._dirty = False
        self._saved_at = time.monotonic()
