"""Event identity within a flush: duplicates in a batch, and which events may already be stored.

An event is ``(source_id, source_offset)``. A topic-partition's manifest keeps
the highest ``source_offset`` stored per ``source_id``; events above it are new
without a read, events at or below it are candidates checked against the
stored ids of their partition-hour.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.store.layout import ID_COLUMNS


def unique_ids(table: pa.Table) -> pa.Table:
    """The table without repeated (source_id, source_offset), first occurrence kept."""
    n = table.num_rows
    if n < 2:
        return table
    sources = pc.dictionary_encode(table.column("source_id").combine_chunks())
    offsets = table.column("source_offset").to_numpy()
    if len(sources.dictionary) < 2**22 and offsets.min() >= 0 and offsets.max() < 2**41:
        # Both id columns packed into one int64 sort key: a sort of 8-byte keys
        # is several times cheaper than hashing (string, int64) pairs.
        key = (sources.indices.to_numpy(zero_copy_only=False).astype(np.int64) << 41) | offsets
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        repeat = sorted_key[1:] == sorted_key[:-1]
        if not repeat.any():
            return table
        keep = np.ones(n, dtype=bool)
        keep[order[1:][repeat]] = False  # stable sort: the first occurrence leads each run
        return table.filter(pa.array(keep))
    indexed = table.select(ID_COLUMNS).append_column("_i", pa.array(np.arange(n)))
    first = indexed.group_by(ID_COLUMNS, use_threads=False).aggregate([("_i", "min")]).column("_i_min")
    if len(first) == n:
        return table
    return table.take(pc.sort_indices(first))


def high_water_of(table: pa.Table) -> dict[str, int]:
    """Highest source_offset per source_id in the table."""
    g = (
        table.select(ID_COLUMNS)
        .group_by("source_id", use_threads=False)
        .aggregate([("source_offset", "max")])
    )
    return dict(
        zip(g.column("source_id").to_pylist(), g.column("source_offset_max").to_pylist(), strict=True)
    )


def candidate_mask(table: pa.Table, high_water: dict[str, int]) -> pa.Array:
    """True where an event's offset is at or below its source's high-water mark (maybe stored)."""
    if not high_water:
        return pa.array(np.zeros(table.num_rows, dtype=bool))
    keys = pa.array(list(high_water), pa.string())
    marks = pa.array(list(high_water.values()), pa.int64())
    pos = pc.index_in(table.column("source_id"), value_set=keys)
    mark = pc.take(marks, pos)  # null where the source is new
    return pc.fill_null(pc.less_equal(table.column("source_offset"), mark), False)
