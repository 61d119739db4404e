"""Where things are in the store: the partition layout, file names, schemas, write options.

Partition columns live in the path only; readers get them back typed from
``PARTITIONING`` (never inferred: an inferred ``hour`` is int32 and ``date`` a
string in one reader and a date in another).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipeline.event import EVENT_SCHEMA, FIELD_NAMES

EVENTS_DIR = "events"
SINK_DIR = "_sink"
LOCKS_DIR = "_locks"
ID_COLUMNS = ["source_id", "source_offset"]
PARTITION_KEYS = ("site", "date", "hour")
PARTITIONING_SCHEMA = pa.schema([("site", pa.string()), ("date", pa.date32()), ("hour", pa.int8())])
PARTITIONING = ds.partitioning(PARTITIONING_SCHEMA, flavor="hive")
# Files hold every event column except the ones the path already says.
FILE_SCHEMA = pa.schema([EVENT_SCHEMA.field(n) for n in FIELD_NAMES if n != "site"])
DATASET_SCHEMA = (
    FILE_SCHEMA.append(PARTITIONING_SCHEMA.field("site"))
    .append(PARTITIONING_SCHEMA.field("date"))
    .append(PARTITIONING_SCHEMA.field("hour"))
)
# How the sink writes a flush's files (the benchmark's reference writes with the same).
# Dictionary pages only for columns with few distinct values: for time, source
# port, source address and offset Parquet builds a dictionary, overflows it and
# falls back to plain encoding, about a third of the encoding time for larger files.
PARQUET_WRITE_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "row_group_size": 128 * 1024,
    "use_dictionary": [
        "host", "dst_ip", "dst_port", "proto", "ip_version", "action", "in_if", "out_if",
        "tcp_flags", "prefix", "count", "source_id", "schema_version",
    ],
}  # fmt: skip
_NAME_RE = re.compile(r"^(?P<topic>.+)\+(?P<partition>\d+)\+(?P<first>\d{20})\+(?P<last>\d{20})\.parquet$")
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(location: str | Path) -> bool:
    """True for a filesystem URI such as ``s3://bucket/prefix?region=eu-west-1`` (not a local path)."""
    return isinstance(location, str) and _URI_RE.match(location) is not None


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


def hour_lock_path(root: Path, site: str, date: dt.date, hour: int) -> Path:
    return root / LOCKS_DIR / f"site={site}" / f"{date.isoformat()}T{hour:02d}.lock"


def split_by_partition(table: pa.Table) -> Iterator[tuple[str, dt.date, int, pa.Table]]:
    """Group events by (site, UTC date, UTC hour) of their event time, each group sorted by time.

    One sort of the whole table by (site, hour, ts) and a slice per run of
    equal keys: filtering the table once per group costs a full pass each."""
    n = table.num_rows
    if n == 0:
        return
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    hour_index = np.floor_divide(ts, 3_600_000_000)
    sites = pc.dictionary_encode(table.column("site").combine_chunks())
    codes = sites.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    key = (codes << 32) + hour_index + 2**31  # biased: hours before 1970 stay non-negative
    order = np.lexsort((ts, key))
    sorted_key = key[order]
    bounds = np.flatnonzero(sorted_key[1:] != sorted_key[:-1]) + 1
    # Batches from one sensor usually arrive in time order: then no reordering copy.
    in_order = bool(np.all(order[1:] > order[:-1]))
    ordered = table if in_order else table.take(pa.array(order))
    names = sites.dictionary.to_pylist()
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for start, end in zip([0, *bounds.tolist()], [*bounds.tolist(), n], strict=True):
        k = int(sorted_key[start])
        hour_start = epoch + dt.timedelta(hours=k - ((k >> 32) << 32) - 2**31)
        yield names[k >> 32], hour_start.date(), hour_start.hour, ordered.slice(start, end - start)
