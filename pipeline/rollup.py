"""Rollups: small per-hour summaries for plotting weeks and months without scanning every event.

Two rollups, computed in event time from the archive (never from faust
windows, which expire by wall clock and would drop history on replay):

- ``port_minute``: per (site, minute, dst_port, proto, ip_version): ``events``
  (sum of ``count``) and ``sources`` (distinct src_ip);
- ``source_hour``: per (site, hour, src_ip): ``events``, ``ports`` (distinct
  dst_port) and ``destinations`` (distinct dst_ip);
- ``talker_hour``: per (site, hour, src_ip, dst_ip, dst_port): ``events``. The
  exact sets behind ``fireplot top`` (:mod:`pipeline.top`): distinct counts
  do not add up across hours, the distinct (source, target, port) rows of each
  hour do.

Layout: ``<root>/rollups/<name>/site=<site>/date=<YYYY-MM-DD>/<HH>.parquet``,
one file per event hour, written atomically. Each file records a digest of
the input file names it was computed from, so a run recomputes exactly the
hours whose events changed (late events, compaction) and re-running an
unchanged hour is a no-op; recomputing writes the same rows. Retention of
events never deletes rollups.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import durable
from pipeline.store import FILE_SCHEMA, Store, closed_hours, file_lock, hour_lock_path, partition_dir

ROLLUPS_DIR = "rollups"
DIGEST_KEY = b"fireplot.rollup.inputs"
NAMES = ("port_minute", "source_hour", "talker_hour")


def rollup_path(store: Store, name: str, site: str, date: dt.date, hour: int) -> Path:
    return (
        store.root / ROLLUPS_DIR / name / f"site={site}" / f"date={date.isoformat()}" / f"{hour:02d}.parquet"
    )


def compute(events: pa.Table) -> dict[str, pa.Table]:
    """The rollups of one site-hour's events (columns of FILE_SCHEMA)."""
    return {
        "port_minute": port_minute(events),
        "source_hour": source_hour(events),
        "talker_hour": talker_hour(events),
    }


def port_minute(events: pa.Table) -> pa.Table:
    """Per (minute, destination port, protocol, IP version): events and distinct sources."""
    t = events.append_column("minute", pc.floor_temporal(events["ts"], unit="minute"))
    return (
        t.group_by(["minute", "dst_port", "proto", "ip_version"], use_threads=False)
        .aggregate([("count", "sum"), ("src_ip", "count_distinct")])
        .rename_columns(["minute", "dst_port", "proto", "ip_version", "events", "sources"])
        .sort_by([("minute", "ascending"), ("dst_port", "ascending"), ("proto", "ascending")])
    )


def source_hour(events: pa.Table) -> pa.Table:
    """Per (hour, source address): events, distinct ports, distinct destinations."""
    t = events.append_column("hour", pc.floor_temporal(events["ts"], unit="hour"))
    return (
        t.group_by(["hour", "src_ip"], use_threads=False)
        .aggregate([("count", "sum"), ("dst_port", "count_distinct"), ("dst_ip", "count_distinct")])
        .rename_columns(["hour", "src_ip", "events", "ports", "destinations"])
        .sort_by([("hour", "ascending"), ("src_ip", "ascending")])
    )


def talker_hour(events: pa.Table) -> pa.Table:
    """Per (source, target, destination port): events. Sorted by source, so a file's
    dictionary-coded address columns and run-length port column stay small."""
    return (
        events.group_by(["src_ip", "dst_ip", "dst_port"], use_threads=False)
        .aggregate([("count", "sum")])
        .rename_columns(["src_ip", "dst_ip", "dst_port", "events"])
        .sort_by([("src_ip", "ascending"), ("dst_ip", "ascending"), ("dst_port", "ascending")])
    )


def events_digest(directory: Path) -> tuple[str, list[Path]]:
    """Identity of a partition-hour's files (names are offset ranges or content digests):
    a rollup stamped with it is current exactly while the hour's files are unchanged."""
    files = sorted(p for p in directory.glob("*.parquet")) if directory.exists() else []
    return names_digest(p.name for p in files), files


def names_digest(names: Iterable[str]) -> str:
    """The digest `events_digest` gives an hour holding files of these names, in sorted order;
    for readers that list the hour elsewhere (an object store)."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _stored_digest(path: Path) -> str | None:
    try:
        meta = pq.read_schema(path).metadata or {}
    except FileNotFoundError:
        return None
    value = meta.get(DIGEST_KEY)
    return value.decode() if value else None


def rollup_hour(store: Store, site: str, date: dt.date, hour: int) -> bool:
    """(Re)compute one site-hour's rollups if its inputs changed; True if written."""
    directory = partition_dir(store.root, site, date, hour)
    # Shared hour lock: compaction cannot swap the directory while we read it.
    with file_lock(hour_lock_path(store.root, site, date, hour), shared=True):
        digest, files = events_digest(directory)
        if not files:
            return False
        if all(_stored_digest(rollup_path(store, n, site, date, hour)) == digest for n in NAMES):
            return False
        events = pa.concat_tables([pq.read_table(p, schema=FILE_SCHEMA) for p in files])
    # A compacted hour has no duplicate ids; a fresh one may only until
    # compaction, and the store's flush dedupe already keeps ids unique.
    for name, table in compute(events).items():
        table = table.replace_schema_metadata({DIGEST_KEY: digest.encode()})
        with durable.replacing(rollup_path(store, name, site, date, hour)) as fh:
            pq.write_table(table, fh, compression="zstd")
    return True


def update(
    store: Store, closed_before_s: float = 0.0, date: dt.date | None = None, now: dt.datetime | None = None
) -> int:
    """Roll up every closed hour (of one date, if given) whose events changed; hours written."""
    now = now or dt.datetime.now(dt.UTC)
    written = 0
    for site, d, hour in closed_hours(store, closed_before_s, now):
        if date is None or d == date:
            written += rollup_hour(store, site, d, hour)
    return written


def read(store: Store, name: str) -> pa.Table:
    """A whole rollup with its site and date columns (for tests and small stores)."""
    import pyarrow.dataset as ds

    root = store.root / ROLLUPS_DIR / name
    if not root.exists():
        return pa.table({})
    part = ds.partitioning(pa.schema([("site", pa.string()), ("date", pa.date32())]), flavor="hive")
    return ds.dataset(root, format="parquet", partitioning=part, ignore_prefixes=[".", "_"]).to_table()
