"""The Parquet store: layout, durable writes, and reads by site and time.

Modules: ``layout`` (paths, names, schemas), ``locks``, ``dedupe`` (event
identity in a flush), ``store`` (the Store: flushes and reads).

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

Fencing. Every flush of a topic-partition runs under an exclusive ``flock`` on
``_sink/<topic>+<partition>.lock`` and re-reads the manifest inside it, so a
worker that lost the partition in a rebalance but is still flushing what it
had taken, and the new owner recovering the partition, are serialised: the
second skips what the first committed, and a file beyond the manifest seen
under the lock can only be a crashed flush's. Each partition-hour directory a
flush writes into is held under a shared lock on ``_locks/...`` that
compaction takes exclusively for its directory swap (``pipeline.compact``).
Locks are local ``flock``s: the store must be a local (or NFSv4) file system.

Duplicates from at-least-once shippers. An event is ``(source_id,
source_offset)``; a shipper that re-sends after a crash sends the same ids
again under new Kafka offsets, with the same key (site/host), so on the same
topic-partition. The manifest keeps, per source_id, the highest source_offset
that partition has stored. Events above it are new without looking at any
file (the steady state costs one hash lookup per batch, not a read); events at
or below it are *candidates* and are checked exactly against the id columns of
their partition-hour's files (only the two id columns, pruned by row-group
statistics). A candidate is dropped only when its id is really stored, so an
out-of-order source costs a read, never an event.
"""

from __future__ import annotations

from pipeline.store.dedupe import candidate_mask, high_water_of, unique_ids
from pipeline.store.layout import (
    DATASET_SCHEMA,
    EVENTS_DIR,
    FILE_SCHEMA,
    ID_COLUMNS,
    LOCKS_DIR,
    PARQUET_WRITE_OPTIONS,
    PARTITION_KEYS,
    PARTITIONING,
    PARTITIONING_SCHEMA,
    SINK_DIR,
    OffsetRange,
    hour_lock_path,
    is_uri,
    parse_file_name,
    partition_dir,
    split_by_partition,
)
from pipeline.store.locks import file_lock
from pipeline.store.store import FlushResult, PartitionState, Store, closed_hours

__all__ = [
    "DATASET_SCHEMA",
    "EVENTS_DIR",
    "FILE_SCHEMA",
    "ID_COLUMNS",
    "LOCKS_DIR",
    "PARQUET_WRITE_OPTIONS",
    "PARTITIONING",
    "PARTITIONING_SCHEMA",
    "PARTITION_KEYS",
    "SINK_DIR",
    "FlushResult",
    "OffsetRange",
    "PartitionState",
    "Store",
    "candidate_mask",
    "closed_hours",
    "file_lock",
    "high_water_of",
    "hour_lock_path",
    "is_uri",
    "parse_file_name",
    "partition_dir",
    "split_by_partition",
    "unique_ids",
]
