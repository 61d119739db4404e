"""The Parquet store: layout, durable writes, and reads by site and time.

Layout (hive-partitioned by event time, UTC)::

    <root>/events/site=<site>/date=<YYYY-MM-DD>/hour=<HH>/<file>.parquet
    <root>/_sink/<topic>+<partition>.json      committed Kafka offsets

Data files name the Kafka records they hold,
``<topic>+<partition>+<first offset:020d>+<last offset:020d>.parquet``, so a
redelivered batch rewrites the same name instead of adding a copy. Partition
columns live in the path only; readers get them back typed from
``PARTITIONING`` (never inferred: an inferred ``hour`` is int32 and ``date`` a
string in one reader and a date in another).

A flush is committed in three steps, each durable before the next:
1. every file is written under a hidden temporary name and fsynced;
2. each is renamed to its final name and its directory fsynced;
3. the partition's ``_sink`` manifest records the last offset, atomically.
On start a worker reads the manifest, deletes files of that partition beyond
it (a flush cut short between steps 2 and 3) and skips records at or below it
(a crash between step 3 and the Kafka offset commit). That is how the store
stays exact through kill -9 without Kafka transactions.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.event import EVENT_SCHEMA, FIELD_NAMES

EVENTS_DIR = "events"
SINK_DIR = "_sink"
PARTITION_KEYS = ("site", "date", "hour")
PARTITIONING_SCHEMA = pa.schema([("site", pa.string()), ("date", pa.date32()), ("hour", pa.int8())])
PARTITIONING = ds.partitioning(PARTITIONING_SCHEMA, flavor="hive")
# Files hold every event column except the ones the path already says.
FILE_SCHEMA = pa.schema([EVENT_SCHEMA.field(n) for n in FIELD_NAMES if n != "site"])
_NAME_RE = re.compile(r"^(?P<topic>.+)\+(?P<partition>\d+)\+(?P<first>\d{20})\+(?P<last>\d{20})\.parquet$")


@dataclass(frozen=True)
class OffsetRange:
    topic: str
    partition: int
    first: int
    last: int

    def file_name(self) -> str:
        return f"{self.topic}+{self.partition}+{self.first:020d}+{self.last:020d}.parquet"


def parse_file_name(name: str) -> OffsetRange | None:
    m = _NAME_RE.match(name)
    if not m:
        return None
    return OffsetRange(m["topic"], int(m["partition"]), int(m["first"]), int(m["last"]))


def partition_dir(root: Path, site: str, date: dt.date, hour: int) -> Path:
    return root / EVENTS_DIR / f"site={site}" / f"date={date.isoformat()}" / f"hour={hour:02d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def split_by_partition(table: pa.Table) -> Iterator[tuple[str, dt.date, int, pa.Table]]:
    """Group events by (site, UTC date, UTC hour) of their event time."""
    if table.num_rows == 0:
        return
    ts = table.column("ts")
    keyed = table.append_column("_date", pc.cast(ts, pa.date32())).append_column(
        "_hour", pc.hour(ts).cast(pa.int8())
    )
    groups = keyed.group_by(["site", "_date", "_hour"]).aggregate([])
    for site, date, hour in zip(
        groups.column("site").to_pylist(),
        groups.column("_date").to_pylist(),
        groups.column("_hour").to_pylist(),
        strict=True,
    ):
        mask = pc.and_(
            pc.and_(pc.equal(keyed.column("site"), site), pc.equal(keyed.column("_date"), date)),
            pc.equal(keyed.column("_hour"), hour),
        )
        part = table.filter(mask).sort_by([("ts", "ascending")])
        yield site, date, hour, part


class Store:
    """A fireplot store rooted at a directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def events_root(self) -> Path:
        return self.root / EVENTS_DIR

    # ---- writing ---------------------------------------------------------

    def manifest_path(self, topic: str, partition: int) -> Path:
        return self.root / SINK_DIR / f"{topic}+{partition}.json"

    def committed_offset(self, topic: str, partition: int) -> int:
        """Last Kafka offset of this topic-partition durably in the store, -1 if none."""
        try:
            data = json.loads(self.manifest_path(topic, partition).read_text())
        except FileNotFoundError:
            return -1
        return int(data["last_offset"])

    def recover(self, topic: str, partition: int) -> tuple[int, list[Path]]:
        """Remove the leftovers of a flush that did not commit; return the committed offset."""
        committed = self.committed_offset(topic, partition)
        removed: list[Path] = []
        prefix = f"{topic}+{partition}+"
        if self.events_root.exists():
            for path in self.events_root.rglob(f"*{prefix}*"):
                if path.name.startswith(".") and path.name.endswith(".tmp"):
                    path.unlink(missing_ok=True)
                    removed.append(path)
                    continue
                rng = parse_file_name(path.name)
                if rng and rng.topic == topic and rng.partition == partition and rng.last > committed:
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return committed, removed

    def write_flush(self, rng: OffsetRange, table: pa.Table) -> list[Path]:
        """Write one flush of events from one topic-partition and commit it."""
        staged: list[tuple[Path, Path]] = []
        for site, date, hour, part in split_by_partition(table):
            final = partition_dir(self.root, site, date, hour) / rng.file_name()
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.tmp")
            pq.write_table(
                part.drop_columns(["site"]).cast(FILE_SCHEMA),
                tmp,
                compression="zstd",
                row_group_size=128 * 1024,
            )
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            staged.append((tmp, final))
        for tmp, final in staged:
            os.replace(tmp, final)
        for directory in {final.parent for _, final in staged}:
            _fsync_dir(directory)
        self.commit_offsets(rng)
        return [final for _, final in staged]

    def commit_offsets(self, rng: OffsetRange) -> None:
        """Record that every record of the partition up to ``rng.last`` is in the store."""
        manifest = {"topic": rng.topic, "partition": rng.partition, "last_offset": rng.last}
        _atomic_write_bytes(self.manifest_path(rng.topic, rng.partition), json.dumps(manifest).encode())

    # ---- reading ---------------------------------------------------------

    def dataset(self) -> ds.Dataset | None:
        if not self.events_root.exists():
            return None
        return ds.dataset(
            self.events_root,
            format="parquet",
            partitioning=PARTITIONING,
            schema=FILE_SCHEMA.append(PARTITIONING_SCHEMA.field("site"))
            .append(PARTITIONING_SCHEMA.field("date"))
            .append(PARTITIONING_SCHEMA.field("hour")),
            ignore_prefixes=[".", "_"],
        )

    def read(
        self,
        start: dt.datetime,
        end: dt.datetime,
        sites: Iterable[str] | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Events with start <= ts < end, pruned by the date partitions first."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        dataset = self.dataset()
        cols = columns or list(FIELD_NAMES)
        if dataset is None:
            return EVENT_SCHEMA.empty_table().select(cols)
        start_utc, end_utc = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        flt = (
            (ds.field("date") >= start_utc.date())
            & (ds.field("date") <= end_utc.date())
            & (ds.field("ts") >= pa.scalar(start_utc, pa.timestamp("us", tz="UTC")))
            & (ds.field("ts") < pa.scalar(end_utc, pa.timestamp("us", tz="UTC")))
        )
        site_list = list(sites) if sites is not None else None
        if site_list is not None:
            flt = flt & ds.field("site").isin(site_list)
        table = dataset.to_table(columns=cols, filter=flt)
        return table.cast(pa.schema([EVENT_SCHEMA.field(c) for c in cols]))

    def read_all(self) -> pa.Table:
        dataset = self.dataset()
        if dataset is None:
            return EVENT_SCHEMA.empty_table()
        return dataset.to_table(columns=list(FIELD_NAMES)).cast(EVENT_SCHEMA)

    def sites(self) -> list[str]:
        if not self.events_root.exists():
            return []
        return sorted(p.name[len("site=") :] for p in self.events_root.glob("site=*") if p.is_dir())
