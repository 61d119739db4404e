"""One sink flush spanning several topic-partitions, on real Parquet files: each partition
commits exactly its own records, a redelivery writes nothing, and a crash between the
files and the manifests is undone by recovery."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.archive.decoders import Record
from pipeline.archive.sink import ArchiveSink
from pipeline.store import PARQUET_WRITE_OPTIONS, OffsetRange, Store, parse_file_name
from tests.test_archive_store import events, ids, records

T0 = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)


def interleaved(*parts: list[Record]) -> list[Record]:
    """Records of several partitions in the order a consumer hands them over: mixed."""
    out: list[Record] = []
    for i in range(max(len(p) for p in parts)):
        out += [p[i] for p in parts if i < len(p)]
    return out


def three_partitions() -> tuple[list[Record], set[tuple[str, int]]]:
    tables = [events(600, start=T0 + dt.timedelta(hours=p), source=f"s:{p}", seed=p) for p in range(3)]
    recs = interleaved(*(records(t, partition=p, first_offset=10 * p) for p, t in enumerate(tables)))
    return recs, {i for t in tables for i in ids(t)}


def test_flush_of_three_partitions_commits_each_with_its_own_offsets(tmp_path: Path) -> None:
    s = ArchiveSink(Store(tmp_path / "store"), tmp_path / "dead")
    recs, expected = three_partitions()
    s.flush(recs)
    stored = s.store.read_all()
    assert stored.num_rows == len(expected) and set(ids(stored)) == expected
    for p in range(3):
        assert s.store.committed_offset("ev", p) == 10 * p + 5  # 6 records of 100 events each
        names = [parse_file_name(f.name) for f in s.store.events_root.rglob(f"ev+{p}+*.parquet")]
        assert names and all(n is not None and (n.first, n.last) == (10 * p, 10 * p + 5) for n in names)
    # The same records again (Kafka redelivers after a lost commit): nothing new is written.
    s.flush(recs)
    assert s.store.read_all().num_rows == len(expected)
    assert s.stats.skipped_records == len(recs)


def test_crash_after_some_manifests_is_undone_by_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = ArchiveSink(Store(tmp_path / "store"), tmp_path / "dead")
    recs, expected = three_partitions()
    commit = Store.commit_offsets

    def crash_on_partition_1(self: Store, rng: OffsetRange, high_water: dict[str, int] | None = None) -> None:
        if rng.partition == 1:
            raise OSError("disk gone (injected)")
        commit(self, rng, high_water)

    monkeypatch.setattr(Store, "commit_offsets", crash_on_partition_1)
    with pytest.raises(OSError, match="injected"):
        s.flush(recs)
    monkeypatch.undo()
    # Partition 1's files are renamed but its manifest never written: they are beyond it.
    assert s.store.committed_offset("ev", 1) == -1
    assert list(s.store.events_root.rglob("ev+1+*.parquet"))
    # A restarted worker (new sink) recovers and Kafka redelivers everything uncommitted.
    again = ArchiveSink(Store(tmp_path / "store"), tmp_path / "dead")
    again.flush(recs)
    stored = again.store.read_all()
    assert stored.num_rows == len(expected) and set(ids(stored)) == expected


def test_flush_files_use_dictionaries_only_for_low_cardinality_columns(tmp_path: Path) -> None:
    s = ArchiveSink(Store(tmp_path / "store"), tmp_path / "dead")
    s.flush(records(events(2000, start=T0, span_s=600)))
    [path] = list(s.store.events_root.rglob("*.parquet"))
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    dictionary = set(PARQUET_WRITE_OPTIONS["use_dictionary"])  # type: ignore[call-overload]
    assert {"ts", "src_ip", "source_offset"}.isdisjoint(dictionary)
    for column, used in encodings.items():
        assert ("RLE_DICTIONARY" in used) == (column in dictionary), column
