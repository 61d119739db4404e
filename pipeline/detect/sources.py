"""Where detection reads events: the store, the live path's recent files, an in-memory table.

An event source is ``read(lo_us, hi_us)``: the detect columns of the events with
``lo_us <= ts < hi_us`` (event time, integer microseconds).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipeline.config import DetectConfig
from pipeline.detect.engine import FAST_KINDS, kind_specs
from pipeline.detect.records import US
from pipeline.event import EVENT_SCHEMA
from pipeline.store import DATASET_SCHEMA, PARTITIONING, Store

DETECT_COLUMNS = ["ts", "site", "src_ip", "dst_ip", "dst_port", "prefix", "count"]


def to_us(t: dt.datetime) -> int:
    return int(t.astimezone(dt.UTC).timestamp() * US)


def from_us(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / US, dt.UTC)


EventSource = Callable[[int, int], pa.Table]


class RecentFiles:
    """The detect columns of the store's recent files, each file read once: the live path's source.

    A live tick re-evaluates only the current fast epoch, so it needs the files of the
    hours from just before that epoch on. Reading them whole every tick costs O(files)
    per tick while the worker adds a few files a second; store files are immutable (a
    flush writes new ones, compaction and recovery replace or delete whole files), so
    following the listing - read new files, forget vanished ones - costs O(new files).
    Reads reaching back before the floor (the slow kinds' look-back) go to the store.
    """

    SCHEMA = pa.schema([EVENT_SCHEMA.field(c) for c in DETECT_COLUMNS])

    def __init__(self, store: Store) -> None:
        self.store = store
        self.floor_us: int | None = None
        self.files: dict[str, tuple[pa.Table, int | None]] = {}  # path -> (rows, newest ts us)
        self._merged: pa.Table | None = None

    def _listing(self, floor_us: int) -> set[str]:
        floor = from_us(floor_us)
        first = (floor.date(), floor.hour)
        out: set[str] = set()
        for date_dir in self.store.events_root.glob("site=*/date=*"):
            try:
                day = dt.date.fromisoformat(date_dir.name.removeprefix("date="))
            except ValueError:
                continue
            if day < floor.date():
                continue
            for hour_dir in date_dir.glob("hour=*"):
                hour = hour_dir.name.removeprefix("hour=")
                if hour.isdigit() and (day, int(hour)) >= first:
                    out.update(
                        str(f) for f in hour_dir.glob("*.parquet") if not f.name.startswith((".", "_"))
                    )
        return out

    def refresh(self, floor_us: int) -> None:
        """Follow the listing of the hours at and after floor_us."""
        for attempt in range(50):
            listed = self._listing(floor_us)
            new = sorted(listed - self.files.keys())
            try:
                read = self._read(new)
            except (FileNotFoundError, OSError) as exc:
                if not isinstance(exc, FileNotFoundError) and "No such file" not in str(exc):
                    raise
                time.sleep(min(0.2, 0.01 * (attempt + 1)))  # compaction swapped an hour: list again
                continue
            kept = {f: self.files[f] for f in listed if f in self.files}
            if read or len(kept) != len(self.files):
                self._merged = None
            self.files = kept | read
            self.floor_us = floor_us
            return
        raise RuntimeError(f"{self.store.events_root}: files kept vanishing during a listing")

    def _read(self, paths: list[str]) -> dict[str, tuple[pa.Table, int | None]]:
        if not paths:
            return {}
        dataset = ds.dataset(
            paths,
            format="parquet",
            partitioning=PARTITIONING,
            partition_base_dir=str(self.store.events_root),
            schema=DATASET_SCHEMA,
        )
        out: dict[str, tuple[pa.Table, int | None]] = {}
        for frag in dataset.get_fragments():
            table = frag.to_table(columns=DETECT_COLUMNS, schema=dataset.schema).cast(self.SCHEMA)
            newest = pc.max(table.column("ts")).as_py()
            out[frag.path] = (table, to_us(newest) if newest is not None else None)
        return out

    def newest_us(self) -> int | None:
        stamps = [n for _, n in self.files.values() if n is not None]
        return max(stamps) if stamps else None

    def source(self, fallback: EventSource) -> EventSource:
        def read(lo_us: int, hi_us: int) -> pa.Table:
            if self.floor_us is None or lo_us < self.floor_us:
                return fallback(lo_us, hi_us)
            if self._merged is None:
                # One chunk: DuckDB and pyarrow compute are slow over thousands of tiny ones.
                tables = [t for t, _ in self.files.values()]
                self._merged = (
                    pa.concat_tables(tables).combine_chunks() if tables else self.SCHEMA.empty_table()
                )
            table = self._merged
            ts = pc.cast(table.column("ts"), pa.int64())
            return table.filter(pc.and_(pc.greater_equal(ts, lo_us), pc.less(ts, hi_us)))

        return read


def fast_floor_us(cfg: DetectConfig, evaluated_us: int) -> int:
    """The earliest event time a tick that re-evaluates only the fast kinds reads."""
    specs = kind_specs(cfg)
    epoch = max(specs[k].epoch_us for k in FAST_KINDS)
    return (evaluated_us // epoch) * epoch - max(specs[k].window_us for k in FAST_KINDS)


def store_source(store: Store) -> EventSource:
    def read(lo_us: int, hi_us: int) -> pa.Table:
        return store.read(from_us(lo_us), from_us(hi_us), columns=DETECT_COLUMNS)

    return read


def table_source(table: pa.Table) -> EventSource:
    """An in-memory event source (tests, the evaluation corpus)."""
    ts = pc.cast(pc.cast(table.column("ts"), pa.timestamp("us", tz="UTC")), pa.int64())

    def read(lo_us: int, hi_us: int) -> pa.Table:
        mask = pc.and_(pc.greater_equal(ts, lo_us), pc.less(ts, hi_us))
        return table.filter(mask)

    return read
