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
from tests.support.events import events, records
from tests.support.system import ids

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


def test_metrics_read_the_sink_counters_per_topic_reason_and_partition(tmp_path: Path) -> None:
    """The worker's /metrics families come from SinkStats at scrape time: every name and label
    set operators alert on, each value what the flushes did, lag per partition as asked."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.archive.decoders import DEAD_LETTER_KINDS
    from pipeline.archive.metrics import SinkCollector

    s = ArchiveSink(Store(tmp_path / "store"), tmp_path / "dead")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SinkCollector({"ev": s}, lambda: {("ev", 0): 7, ("ev", 2): 0}))

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = generate_latest(registry).decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    ev = (("topic", "ev"),)
    assert scrape()[("fireplot_worker_records_total", ev)] == 0
    recs, expected = three_partitions()
    s.flush([*recs, Record("ev", 5, 0, b"not an arrow batch", b"a/fw1")])
    s.flush(recs)  # redelivered: skipped, nothing written
    got = scrape()
    per_topic = {
        "records_total": len(recs) + 1,
        "events_written_total": len(expected),
        "files_written_total": s.stats.files_written,
        "bytes_written_total": s.stats.bytes_written,
        "records_skipped_total": len(recs),
        "duplicate_events_dropped_total": 0,
        "future_events_total": 0,
        "dead_letters_total": 1,
        "flushes_total": 2,
        "flush_seconds_total": s.stats.flush_seconds_sum,
        "last_flush_seconds": s.stats.last_flush_s,
    }
    assert s.stats.files_written >= 3 and s.stats.bytes_written > 0
    assert {k: got[(f"fireplot_worker_{k}", ev)] for k in per_topic} == per_topic
    by_reason = {
        kind: got[("fireplot_worker_dead_letters_by_reason_total", (("reason", kind), ("topic", "ev")))]
        for kind in DEAD_LETTER_KINDS
    }
    assert by_reason == {kind: 1 if kind == "undecodable_record" else 0 for kind in DEAD_LETTER_KINDS}
    lag = {labels: v for (name, labels), v in got.items() if name == "fireplot_worker_consumer_lag_records"}
    assert lag == {(("partition", "0"), ("topic", "ev")): 7, (("partition", "2"), ("topic", "ev")): 0}
    assert got[("fireplot_worker_uptime_seconds", ())] >= 0
    names = {name for name, _ in got}
    assert names == {f"fireplot_worker_{k}" for k in per_topic} | {
        "fireplot_worker_dead_letters_by_reason_total",
        "fireplot_worker_consumer_lag_records",
        "fireplot_worker_uptime_seconds",
    }
