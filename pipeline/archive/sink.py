"""Batches of Kafka records in, durable Parquet flushes out: the archive sink.

Exactly-once effect without Kafka transactions (see ``pipeline.store``): the
caller acknowledges records only after the flush that holds them returned.
On first sight of a partition the sink trims whatever an interrupted flush
left, and every flush skips offsets the store already has and event ids it
already holds (shipper re-sends). Each flush of a partition runs under that
partition's lock and re-reads its manifest, so a worker that lost the
partition in a rebalance while flushing and the new owner never interleave.

What a decoder could not use goes to ``<store>/_dead_letters/<topic>.jsonl``
with its reason, counted by kind in ``SinkStats`` (served as metrics by
``pipeline.archive.metrics``). Events dated beyond ``future_tolerance_s`` are
stored in their event-time partition and counted; nothing is dropped for it.
No faust here: the worker, ``fireplot rebuild``, the tests and the benchmarks
drive the same object.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.archive.decoders import (
    SITE_RE,
    DeadLetter,
    Decoder,
    Record,
    RecordColumns,
    decode_event_batches,
    key_site,
)
from pipeline.event import EVENT_SCHEMA, TS_TYPE
from pipeline.store import OffsetRange, PartitionState, Store

log = logging.getLogger("fireplot.worker")

EX_TEMPFAIL = 75  # a flush failed: the supervisor restarts the worker and Kafka redelivers

# Per topic-partition, its records' events and dead letters (``ArchiveSink.decode_ahead``).
Decoded = dict[tuple[str, int], tuple[pa.Table, list[DeadLetter]]]


@dataclass
class SinkStats:
    """What one sink has done since it started; read at scrape time by ``pipeline.archive.metrics``."""

    records: int = 0
    events_written: int = 0
    bytes_written: int = 0
    files_written: int = 0
    skipped_records: int = 0
    duplicates_dropped: int = 0
    future_events: int = 0
    dead_letters: int = 0
    dead_letters_by_kind: dict[str, int] = field(default_factory=dict)
    flushes: int = 0
    last_flush_s: float = 0.0
    flush_seconds_sum: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


class ArchiveSink:
    """Turns batches of Kafka records into committed Parquet flushes. No faust inside:
    the same object serves the worker and the tests and benchmarks that drive it directly."""

    def __init__(
        self,
        store: Store,
        dead_letter_dir: Path,
        decode: Decoder = decode_event_batches,
        future_tolerance_s: float = 3600.0,
    ) -> None:
        self.store = store
        self.dead_letter_dir = dead_letter_dir
        self.decode = decode
        self.future_tolerance_s = future_tolerance_s
        self.recovered: set[tuple[str, int]] = set()
        self.stats = SinkStats()

    def forget(self) -> None:
        """Forget what we know of partitions (after a rebalance another worker may have written)."""
        self.recovered.clear()

    def flush(self, records: Sequence[Record]) -> None:
        by_tp: dict[tuple[str, int], list[Record]] = {}
        for r in records:
            by_tp.setdefault((r.topic, r.partition), []).append(r)
        self.flush_partitions(by_tp)

    def decode_ahead(self, by_tp: Mapping[tuple[str, int], Sequence[Record]]) -> Decoded:
        """Each partition's records decoded before their flush, outside its locks and on any thread.

        Only a result: nothing is counted or written until ``flush_partitions``
        uses it, under the locks, and only for records none of which the store
        holds by then (else it decodes the records it lacks again)."""
        return {tp: self._decode(recs) for tp, recs in by_tp.items() if len(recs)}

    def flush_partitions(
        self, by_tp: Mapping[tuple[str, int], Sequence[Record]], decoded: Decoded | None = None
    ) -> None:
        """Flush each partition's records (in offset order), durably: ``RecordColumns`` as they are;
        ``decoded``: what ``decode_ahead`` made of these same records."""
        started = time.monotonic()
        with contextlib.ExitStack() as locks:
            # Under the partition locks the manifests are the truth: a worker that
            # lost a partition in a rebalance may have flushed since we looked.
            # Taken in one order, so two workers never wait on each other in a cycle.
            for topic, partition in sorted(by_tp):
                locks.enter_context(self.store.partition_lock(topic, partition))
            # A generator: the store encodes one partition's files while the next is decoded.
            results = self.store.write_many(self._prepare(by_tp, decoded or {}))
        for result in results:
            self.stats.files_written += len(result.paths)
            self.stats.events_written += result.events_written
            self.stats.bytes_written += result.bytes_written
            self.stats.duplicates_dropped += result.duplicates_dropped
        self.stats.flushes += 1
        self.stats.last_flush_s = time.monotonic() - started
        self.stats.flush_seconds_sum += self.stats.last_flush_s

    def _prepare(
        self, by_tp: Mapping[tuple[str, int], Sequence[Record]], decoded: Decoded
    ) -> Iterator[tuple[OffsetRange, pa.Table, PartitionState]]:
        """Each partition's records not yet in the store, decoded: (range, events, manifest state).

        Runs under the partition locks: the manifests read here are the truth."""
        for (topic, partition), recs in by_tp.items():
            if (topic, partition) not in self.recovered:
                _, removed = self.store.recover(topic, partition)
                for path in removed:
                    log.warning("removed leftover of an interrupted flush: %s", path)
                self.recovered.add((topic, partition))
            state = self.store.partition_state(topic, partition)
            fresh = (
                recs.after(state.last_offset)
                if isinstance(recs, RecordColumns)
                else [r for r in recs if r.offset > state.last_offset]
            )
            self.stats.skipped_records += len(recs) - len(fresh)
            if not fresh:
                continue
            ahead = decoded.get((topic, partition))
            table, dead = ahead if ahead is not None and len(fresh) == len(recs) else self._decode(fresh)
            table, bad = _valid_sites(table)
            if bad.num_rows:
                dead.append(
                    DeadLetter(
                        fresh[0],
                        f"{bad.num_rows} events with invalid site names: "
                        f"{sorted(set(bad.column('site').to_pylist()))[:5]!r}",
                        kind="invalid_site",
                    )
                )
            self._dead_letters(dead)
            self._count_future(table)
            self.stats.records += len(fresh)
            yield OffsetRange(topic, partition, fresh[0].offset, fresh[-1].offset), table, state

    def _decode(self, records: Sequence[Record]) -> tuple[pa.Table, list[DeadLetter]]:
        """Decode a partition's records; a record that makes the decoder itself fail is
        isolated and dead-lettered, so one poisonous record cannot wedge the partition
        in a crash-and-redeliver loop."""
        try:
            return self.decode(records)
        except Exception as exc:
            if len(records) == 1:
                log.exception(
                    "decoder failed on %s[%d]@%d", records[0].topic, records[0].partition, records[0].offset
                )
                return EVENT_SCHEMA.empty_table(), [
                    DeadLetter(records[0], f"decoder failed: {exc!r}", kind="decoder_failed")
                ]
        mid = len(records) // 2
        left, right = self._decode(records[:mid]), self._decode(records[mid:])
        return pa.concat_tables([left[0], right[0]]), left[1] + right[1]

    def _count_future(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        limit = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.future_tolerance_s)
        n = pc.sum(pc.greater(table["ts"], pa.scalar(limit, TS_TYPE))).as_py() or 0
        if n:
            # Kept in their event-time partition (a skewed firewall clock is
            # not a reason to lose packets); counted so the skew gets fixed.
            self.stats.future_events += n
            log.warning("%d events dated more than %.0f s in the future", n, self.future_tolerance_s)

    def _dead_letters(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        self.stats.dead_letters += len(dead)
        for d in dead:
            self.stats.dead_letters_by_kind[d.kind] = self.stats.dead_letters_by_kind.get(d.kind, 0) + 1
        path = write_dead_letters(self.dead_letter_dir, dead)
        log.error(
            "%d records or lines of %s sent to dead letters, first: %s", len(dead), path.name, dead[0].reason
        )


def write_dead_letters(directory: Path, dead: Sequence[DeadLetter]) -> Path:
    """Append dead letters of one topic to ``directory/<topic>.jsonl``, durably; the file's path.

    One JSON object a line: where the record was, the reason and its kind, the
    record key's site (per-site rejects, ``pipeline.health``), and the bad line
    or, for a whole record, its value in base64. Fsynced before the flush that
    holds these records can be acknowledged."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dead[0].record.topic}.jsonl"
    entries = []
    for d in dead:
        entry: dict[str, object] = {
            "topic": d.record.topic,
            "partition": d.record.partition,
            "offset": d.record.offset,
            "reason": d.reason,
            "kind": d.kind,
            "site": key_site(d.record.key),
        }
        if d.line is not None:
            entry["line"] = d.line
        else:
            entry["value_base64"] = base64.b64encode(d.record.value).decode()
        entries.append(json.dumps(entry) + "\n")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(entries))
        fh.flush()
        os.fsync(fh.fileno())
    return path


def _valid_sites(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Split off events whose site could escape the store's directory layout."""
    if not table.num_rows:
        return table, table
    distinct = pc.unique(table["site"])
    if pc.all(pc.match_substring_regex(distinct, SITE_RE.pattern)).as_py():
        return table, table.slice(0, 0)
    ok = pc.match_substring_regex(table["site"], SITE_RE.pattern)
    return table.filter(ok), table.filter(pc.invert(ok))
