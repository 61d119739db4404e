"""Compaction and retention of the event archive.

The worker writes one small file per flush and partition-hour. Once an hour
is closed (its end older than ``[worker] compact_older_than_s``), compaction
merges its committed files into one, sorted by event time, without duplicate
ids, and swaps it in atomically:

1. a journal ``_compaction/<site>/<date>T<HH>.json`` names the inputs and the
   output, so a crash at any later step is cleaned up by ``recover``;
2. the merged file is written and fsynced into a hidden sibling directory
   ``.compacting-hour=HH`` (readers ignore names starting with ``.``);
3. under the hour's exclusive lock (flushes hold it shared while they write,
   so none is half-done) files that arrived meanwhile are hard-linked into the
   new directory, then the two directories are exchanged with one
   ``renameat2(RENAME_EXCHANGE)``: a reader's listing of ``hour=HH`` is either
   the old file set or the new one, never both and never neither; a reader
   that listed the old set and finds a file gone retries (``Store.read`` does);
4. the old directory (now the hidden one) and the journal are deleted.

Only files the partition's manifest has committed are merged; a file beyond
it (a flush cut short by kill -9) is carried over under its own name, so the
worker's recovery, which deletes such files by their offset-range names,
works as before. The merged file's name, ``compacted-<digest>.parquet``, is no
offset range, so recovery never touches it; the digest of the input names
makes a re-run after a crash produce the same file.

Retention removes whole ``date=`` directories of events older than
``[worker] retention_days_events`` (rename to a hidden name, then delete);
rollups are kept.

Readers other than ``Store`` should glob ``events/site=*/date=*/hour=*/*.parquet``
(as DuckDB's ``read_parquet(..., hive_partitioning=true)`` does with that
pattern), which skips the hidden staging directories.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import durable
from pipeline.config import Config
from pipeline.rollup import rollup_hour, update
from pipeline.store import (
    FILE_SCHEMA,
    PARQUET_WRITE_OPTIONS,
    Store,
    closed_hours,
    file_lock,
    hour_lock_path,
    parse_file_name,
    partition_dir,
    unique_ids,
)

log = logging.getLogger("fireplot.compact")

JOURNAL_DIR = "_compaction"
COMPACTED_PREFIX = "compacted-"
STAGING_PREFIX = ".compacting-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Swap two directory entries atomically (Linux renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"renameat2 exchange {a} <-> {b}: {os.strerror(err)}")


@dataclass
class CompactionReport:
    hours_compacted: int = 0
    files_merged: int = 0
    events_written: int = 0
    duplicates_dropped: int = 0
    dates_expired: list[str] = field(default_factory=list)
    recovered: int = 0

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def journal_path(store: Store, site: str, date: dt.date, hour: int) -> Path:
    """Where a compaction of this partition-hour keeps its journal while it runs.

    The file exists from before the merge is written until the swap is done or
    undone: a reader that must not see the hour change under it (an upload)
    leaves the hour alone while it exists."""
    return store.root / JOURNAL_DIR / f"site={site}" / f"{date.isoformat()}T{hour:02d}.json"


def _staging(directory: Path) -> Path:
    return directory.with_name(STAGING_PREFIX + directory.name)


def recover(store: Store) -> int:
    """Finish or undo compactions a crash interrupted; returns how many there were.

    Either way the staging directory goes: before the exchange it holds an
    unpublished merge, after it the superseded inputs."""
    journals = (
        sorted((store.root / JOURNAL_DIR).rglob("*.json")) if (store.root / JOURNAL_DIR).exists() else []
    )
    for journal in journals:
        entry = json.loads(journal.read_text())
        directory = Path(entry["directory"])
        staging = _staging(directory)
        if staging.exists():
            shutil.rmtree(staging)
            durable.fsync_dir(staging.parent)
        journal.unlink()
        log.warning("cleaned up an interrupted compaction of %s", directory)
    return len(journals)


def committed_inputs(store: Store, directory: Path) -> list[Path]:
    """The files of a partition-hour directory its partitions' manifests have committed, sorted.

    Earlier compactions' outputs count as committed; a file beyond its
    manifest (a flush cut short) or with a name that is no offset range is
    left out, so what is returned cannot be removed by a worker's recovery."""
    inputs = []
    committed: dict[tuple[str, int], int] = {}
    for path in sorted(directory.glob("*.parquet")):
        if path.name.startswith(COMPACTED_PREFIX):
            inputs.append(path)
            continue
        rng = parse_file_name(path.name)
        if rng is None:
            continue
        key = (rng.topic, rng.partition)
        if key not in committed:
            committed[key] = store.committed_offset(*key)
        if rng.last <= committed[key]:
            inputs.append(path)
    return inputs


def compact_hour(store: Store, site: str, date: dt.date, hour: int) -> tuple[int, int, int]:
    """Merge one partition-hour's committed files; (files merged, events written, duplicates dropped)."""
    directory = partition_dir(store.root, site, date, hour)
    inputs = committed_inputs(store, directory)
    if len(inputs) < 2:
        return 0, 0, 0
    names = sorted(p.name for p in inputs)
    output = COMPACTED_PREFIX + hashlib.sha256("\n".join(names).encode()).hexdigest()[:20] + ".parquet"
    journal = journal_path(store, site, date, hour)
    durable.write_bytes(
        journal, json.dumps({"directory": str(directory), "inputs": names, "output": output}).encode()
    )
    staging = _staging(directory)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    table = pa.concat_tables([pq.read_table(p, schema=FILE_SCHEMA) for p in inputs])
    merged = unique_ids(table).sort_by([("ts", "ascending")])
    # Not durable.replacing: the merged file replaces no file but a whole
    # directory (the exchange below), so it is fsynced in the staging
    # directory here and the directories are fsynced around the exchange.
    pq.write_table(merged, staging / output, **PARQUET_WRITE_OPTIONS)  # as the sink writes them
    with open(staging / output, "rb") as fh:
        os.fsync(fh.fileno())
    with file_lock(hour_lock_path(store.root, site, date, hour)):
        present = {p.name for p in directory.iterdir()}
        if not set(names) <= present:
            # Someone else (another compactor) changed the hour; leave it to them.
            shutil.rmtree(staging)
            journal.unlink()
            return 0, 0, 0
        for name in present - set(names):
            if name.startswith(".") or not name.endswith(".parquet"):
                continue  # a crashed flush's temp file: recovery deletes it
            # the worker's recovery may have removed a leftover meanwhile
            with contextlib.suppress(FileNotFoundError):
                os.link(directory / name, staging / name)
        durable.fsync_dir(staging)
        exchange(staging, directory)
        durable.fsync_dir(directory.parent)
    shutil.rmtree(staging)
    journal.unlink()
    return len(inputs), merged.num_rows, table.num_rows - merged.num_rows


def expire(
    store: Store,
    retention_days: int,
    now: dt.datetime,
    *,
    ready: Callable[[str, dt.date, list[int]], bool] | None = None,
    rolled_up: Callable[[str, dt.date, int], None] | None = None,
) -> list[str]:
    """Delete event dates older than the retention; 0 keeps everything.

    ``ready(site, date, hours)`` may keep a date for now (`fireplot store sync`
    expires only dates whose every hour is uploaded); ``rolled_up`` is called
    for each hour once its rollups are current, before its events go."""
    if retention_days <= 0 or not store.events_root.exists():
        return []
    cutoff = now.date() - dt.timedelta(days=retention_days)
    gone = []
    for date_dir in sorted(store.events_root.glob("site=*/date=*")):
        date = dt.date.fromisoformat(date_dir.name.removeprefix("date="))
        if date >= cutoff:
            continue
        site = date_dir.parent.name.removeprefix("site=")
        hours = [int(h.name.removeprefix("hour=")) for h in date_dir.glob("hour=*")]
        if ready is not None and not ready(site, date, hours):
            continue
        # Rollups outlive events: bring this date's up to date before its events go.
        for hour in hours:
            rollup_hour(store, site, date, hour)
            if rolled_up is not None:
                rolled_up(site, date, hour)
        hidden = date_dir.with_name(".expired-" + date_dir.name)
        # A directory rename, not a file write (so not pipeline.durable), and
        # not fsynced: undone by power loss, the date is only expired again.
        os.replace(date_dir, hidden)  # vanishes from readers in one step
        shutil.rmtree(hidden)
        gone.append(str(date_dir.relative_to(store.events_root)))
    return gone


def compact(
    store: Store, older_than_s: float, retention_days: int = 0, now: dt.datetime | None = None
) -> CompactionReport:
    """One round: recover interrupted compactions, compact closed hours, apply retention."""
    now = now or dt.datetime.now(dt.UTC)
    report = CompactionReport(recovered=recover(store))
    for site, date, hour in closed_hours(store, older_than_s, now):
        files, events, dups = compact_hour(store, site, date, hour)
        if files:
            report.hours_compacted += 1
            report.files_merged += files
            report.events_written += events
            report.duplicates_dropped += dups
    report.dates_expired = expire(store, retention_days, now)
    return report


def maintain(cfg: Config) -> None:
    """The worker's periodic round: compaction, retention, then rollups of closed hours."""
    store = Store(cfg.worker.store_dir)
    report = compact(store, cfg.worker.compact_older_than_s, cfg.worker.retention_days_events)
    rolled = update(store, closed_before_s=cfg.worker.compact_older_than_s)
    log.info("maintenance", extra={"compaction": report.as_dict(), "rollup_hours": rolled})
