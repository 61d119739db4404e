"""A replay's Kafka records, made ahead of sending on threads of their own.

A reader thread reads each hour (pruned to its partition-hour directories),
puts it in the replay's total order and lays it out for sending: step by step,
within a step sensor by sensor (one Kafka key each), in one take of the hour,
or none when the hour is already in order. The feed thread encodes the laid-out
steps into record values (``pipeline.wire``) while the reader reads the next
hour and the main thread hands earlier steps to kafka-python. pyarrow's
reading, sorting and zstd release the GIL, so these run on the second core
while the sender holds the GIL; encoding on the sending thread was a third of
a replay's time, a group-by per step another sixth (py-spy, 2026-12-08). At
most ``AHEAD_STEPS`` encoded steps wait, so memory stays bounded by two hours'
tables and those steps.
"""

from __future__ import annotations

import datetime as dt
import itertools
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import wire
from pipeline.store import Store
from producers.publisher import encode_records

# A total order (ties on ts broken by identity) so "the first k events of this
# hour" means the same events on every run: what a resumed run skips.
ORDER = [("ts", "ascending"), ("source_id", "ascending"), ("source_offset", "ascending")]
# Unpaced, a step (and, per sensor, a record) holds this many events: ~2.6 MB of
# zstd'd Arrow at ~40 bytes an event, under wire.MAX_RECORD_BYTES (larger records
# are split by encode_records). Encoding 8192-event records took 1.5x the CPU of
# 65536-event ones (IPC framing and a zstd set-up per buffer, per record).
MAX_BATCH_EVENTS = 65536
AHEAD_STEPS = 16
# Above this many equal timestamps an hour is simply sorted rather than checked pair by pair.
MAX_TIES_CHECKED = 4096


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes
    values: list[bytes]
    events: int


@dataclass(frozen=True, slots=True)
class Step:
    """Consecutive events of one hour, encoded: one record list per sensor, in key order."""

    hour: dt.datetime
    ts_us: int  # event time of the step's first event
    rows: int
    records: list[Record]


@dataclass(frozen=True, slots=True)
class HourEnd:
    """Every step of the hour [start, end) came before this."""

    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


def total_order(table: pa.Table) -> np.ndarray | None:
    """Row indices putting ``table`` in ``ORDER``; None when it already is.

    An hour already in order (compaction writes closed hours sorted by time; a
    single writer's files are too) needs no copy: checking costs one pass over ts."""
    ts = _ts_us(table)
    if len(ts) > 1:
        diff = np.diff(ts)
        ties = np.flatnonzero(diff == 0)
        if bool((diff >= 0).all()) and len(ties) <= MAX_TIES_CHECKED and _ties_ordered(table, ties):
            return None
        return np.asarray(pc.sort_indices(table, ORDER).to_numpy(), dtype=np.int64)
    return None


def _ts_us(table: pa.Table) -> np.ndarray:
    return np.asarray(pc.cast(table.column("ts"), pa.int64()).to_numpy(), dtype=np.int64)


def _ties_ordered(table: pa.Table, ties: np.ndarray) -> bool:
    """Whether each event sharing its ts with the next comes first by identity too."""
    if len(ties) == 0:
        return True
    rows = pa.array(np.concatenate([ties, ties + 1]))
    ids = table.select(["source_id", "source_offset"]).take(rows).to_pydict()
    n = len(ties)
    first = zip(ids["source_id"][:n], ids["source_offset"][:n], strict=True)
    second = zip(ids["source_id"][n:], ids["source_offset"][n:], strict=True)
    return all(a <= b for a, b in zip(first, second, strict=True))


def key_codes(table: pa.Table) -> tuple[np.ndarray | None, list[bytes]]:
    """Each event's sensor as an index into the returned keys; None when there is one sensor."""
    if table.num_rows == 0:
        return None, []
    site = pc.dictionary_encode(table.column("site").combine_chunks())
    host = pc.dictionary_encode(table.column("host").combine_chunks())
    sites, hosts = site.dictionary.to_pylist(), host.dictionary.to_pylist()
    if len(sites) == 1 and len(hosts) == 1:
        return None, [wire.record_key(sites[0], hosts[0])]
    combined = site.indices.to_numpy().astype(np.int64) * len(hosts) + host.indices.to_numpy()
    # The pairs present, numbered in order: a count per possible pair, not a sort.
    present = np.flatnonzero(np.bincount(combined))
    number = np.zeros(len(sites) * len(hosts), dtype=np.int64)
    number[present] = np.arange(len(present))
    keys = [wire.record_key(sites[int(c) // len(hosts)], hosts[int(c) % len(hosts)]) for c in present]
    return number[combined], keys


def step_bounds(ts: np.ndarray, step_us: int | None) -> list[int]:
    """Row bounds of consecutive steps of a ts-sorted hour: one per pacing step of event
    time, or (unpaced) of MAX_BATCH_EVENTS rows, so each Kafka record carries a real batch."""
    if len(ts) == 0:
        return [0]
    if step_us is None:
        return [*range(0, len(ts), MAX_BATCH_EVENTS), len(ts)]
    bucket = (ts - ts[0]) // step_us
    return [0, *(np.flatnonzero(np.diff(bucket)) + 1).tolist(), len(ts)]


@dataclass(frozen=True, slots=True)
class Layout:
    """An hour's events laid out for sending: step by step, within a step sensor by sensor.

    Row ``i`` of the layout is row ``order[i]`` of ``table`` (``i`` itself when
    ``order`` is None): each step's events grouped by sensor (key order), each
    sensor's events in the total order. ``steps`` says where: per step its first
    event time, its events, and one (key, first row, end row) per sensor."""

    table: pa.Table
    order: np.ndarray | None
    steps: list[tuple[int, int, list[tuple[bytes, int, int]]]]

    def rows(self, a: int, b: int) -> pa.Table:
        """Rows [a, b) of the layout; taken here, on the encoding thread, so that the reading
        thread (the replay's busiest: it does all a pyarrow read and sort does) only reads."""
        if self.order is None:
            return self.table.slice(a, b - a)
        return self.table.take(pa.array(self.order[a:b]))


def lay_out(table: pa.Table, skip_rows: int, step_us: int | None) -> Layout:
    """``table`` (one hour) in total order without its first ``skip_rows``, grouped per step and
    sensor, as row numbers: no copy here, whatever the order and the number of sensors."""
    order = total_order(table)
    codes, keys = key_codes(table)
    if skip_rows:
        order = (np.arange(table.num_rows, dtype=np.int64) if order is None else order)[skip_rows:]
    ts = _ts_us(table)
    if order is not None:
        ts = ts[order]
        codes = None if codes is None else codes[order]
    bounds = np.asarray(step_bounds(ts, step_us), dtype=np.int64)
    step_of = np.repeat(np.arange(len(bounds) - 1, dtype=np.int64), np.diff(bounds))
    # (step, sensor) of each event; a stable sort by it groups each step's events by
    # sensor and keeps each sensor's events in the total order.
    group = step_of if codes is None else step_of * len(keys) + codes
    if len(group) > 1 and not bool((np.diff(group) >= 0).all()):
        within = np.argsort(group, kind="stable")
        order, group = (within if order is None else order[within]), group[within]
    cuts = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), len(group)] if len(group) else []
    steps: list[tuple[int, int, list[tuple[bytes, int, int]]]] = []
    for g0, g1 in itertools.pairwise(cuts):
        step = int(step_of[g0]) if codes is None else int(group[g0]) // len(keys)
        key = keys[0] if codes is None else keys[int(group[g0]) % len(keys)]
        if not steps or steps[-1][0] != step:
            a, b = int(bounds[step]), int(bounds[step + 1])
            steps.append((step, b - a, []))
        steps[-1][2].append((key, g0, g1))
    laid = [(int(ts[bounds[step]]), rows, sensors) for step, rows, sensors in steps]
    # An hour read back is a chunk per file and row group; taking across chunks cost
    # 1.7x the CPU of one copy into a single chunk and takes from that.
    return Layout(table if order is None else table.combine_chunks(), order, laid)


class Feed:
    """Iterate the steps and hour ends of ``spans`` in order, made on a background thread.

    ``skip`` is (hour start, events): that hour's first events in the total
    order were acknowledged by an earlier run and are left out.
    """

    def __init__(
        self,
        store: Store,
        spans: list[tuple[dt.datetime, dt.datetime]],
        sites: list[str] | None,
        step_us: int | None,
        skip: tuple[dt.datetime | None, int] = (None, 0),
    ) -> None:
        self.store, self.spans, self.sites, self.step_us, self.skip = store, spans, sites, step_us, skip
        self._queue: queue.Queue[Step | HourEnd | _Failed | None] = queue.Queue(AHEAD_STEPS)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-feed", daemon=True)

    def __enter__(self) -> Feed:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed.set()
        while self._thread.is_alive():
            # Empty the queue so a put blocked on a full queue returns and sees _closed.
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(0.05)

    def __iter__(self) -> Iterator[Step | HourEnd]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def _put(self, item: Step | HourEnd | _Failed | None) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="replay-read") as pool:
                # The next hour is read and laid out on a second thread while this one encodes.
                ahead = [pool.submit(self._read, span) for span in self.spans[:1]]
                for i, (h_start, h_end) in enumerate(self.spans):
                    layout = ahead.pop().result()
                    if i + 1 < len(self.spans):
                        ahead.append(pool.submit(self._read, self.spans[i + 1]))
                    if not self._encode(h_start, h_end, layout):
                        for f in ahead:
                            f.cancel()
                        return
            self._put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))

    def _read(self, span: tuple[dt.datetime, dt.datetime]) -> Layout:
        skip_hour, skip_rows = self.skip
        table = self.store.read(span[0], span[1], sites=self.sites)
        return lay_out(table, skip_rows if skip_hour == span[0] else 0, self.step_us)

    def _encode(self, h_start: dt.datetime, h_end: dt.datetime, layout: Layout) -> bool:
        for ts_us, rows, sensors in layout.steps:
            records = [Record(key, encode_records(layout.rows(a, b)), b - a) for key, a, b in sensors]
            if not self._put(Step(h_start, ts_us, rows, records)):
                return False
        return self._put(HourEnd(h_start, h_end))
