"""Replay archived events from Parquet to a replay topic, in event-time order, at Nx speed.

Events keep their original event times and identities ``(source_id,
source_offset)``; only the Kafka record timestamp is the publish time (old
event times as record timestamps would let time-based retention delete a
replay topic's segments as soon as they roll). The replay topic is created
with ``retention.ms=-1`` for the same reason (``pipeline.datasets``).

The store is read one hour partition at a time, the next hour read and
sorted on another thread while this one is encoded and sent (pyarrow's
reading, sorting and zstd release the GIL, so the two overlap on two
cores), so memory stays bounded by the two largest hours, and a state file
records how far Kafka acknowledged the run: Ctrl-C and run again continues where it stopped. An hour cut
short resumes after the events Kafka acknowledged (see ``ReplayState``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import durable, wire
from pipeline.progress import ProgressLine
from pipeline.store import Store
from producers.publisher import Publisher

# Events within one pacing step are sent together: fine enough for a 60x
# replay to look continuous, coarse enough to keep records large.
PACE_STEP_S = 0.2
SAVE_EVERY_S = 2.0
MAX_BATCH_EVENTS = 8192
ORDER = [("ts", "ascending"), ("source_id", "ascending"), ("source_offset", "ascending")]


class Progress:
    """Replay progress: share of the event-time range sent, events, rate."""

    def __init__(self, total_span_s: float) -> None:
        self.total_span_s = total_span_s
        self.events = 0
        self.line = ProgressLine()

    def update(self, events: int, event_time_done_s: float, final: bool = False) -> None:
        self.events += events
        share = event_time_done_s / self.total_span_s if self.total_span_s else 1.0
        rate = self.events / self.line.elapsed_s
        self.line.show(share, f"{self.events:,} events  {rate:,.0f}/s", final)


class ReplayState:
    """How far Kafka has acknowledged a replay run, persisted atomically.

    The position is an hour boundary plus the number of that hour's events
    (in the replay's total order) already acknowledged, so an interrupted
    run resumes at the exact event, not at the start of the hour.
    """

    def __init__(self, path: Path, run: dict[str, object]) -> None:
        self.path = path
        self.run = run
        self.done_until: dt.datetime | None = None
        self.hour: dt.datetime | None = None
        self.rows_into_hour = 0
        if path.exists():
            data = json.loads(path.read_text())
            if data.get("run") != run:
                raise ValueError(
                    f"{path} belongs to a different replay ({data.get('run')}); "
                    "use another --into name or delete the file to start over"
                )
            self.done_until = dt.datetime.fromisoformat(data["done_until"]) if data["done_until"] else None
            self.hour = dt.datetime.fromisoformat(data["hour"]) if data.get("hour") else None
            self.rows_into_hour = int(data.get("rows_into_hour", 0))

    def acked(self, hour: dt.datetime, rows: int) -> None:
        self.hour, self.rows_into_hour = hour, self.rows_into_hour + rows if self.hour == hour else rows

    def hour_done(self, until: dt.datetime) -> None:
        self.done_until, self.hour, self.rows_into_hour = until, None, 0
        self.save()

    def save(self) -> None:
        data = {
            "run": self.run,
            "done_until": self.done_until.isoformat() if self.done_until else None,
            "hour": self.hour.isoformat() if self.hour else None,
            "rows_into_hour": self.rows_into_hour,
        }
        durable.write_text(self.path, json.dumps(data))


def hours(start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    t = start.replace(minute=0, second=0, microsecond=0)
    while t < end:
        nxt = t + dt.timedelta(hours=1)
        yield max(t, start), min(nxt, end)
        t = nxt


def _sorted_hours(
    store: Store, begin: dt.datetime, end: dt.datetime, sites: list[str] | None
) -> Iterator[tuple[dt.datetime, dt.datetime, pa.Table]]:
    """Each hour's events in the replay's total order; the next hour is read while this one is sent."""

    def read(span: tuple[dt.datetime, dt.datetime]) -> pa.Table:
        # A total order (ties on ts broken by identity) so "the first k events
        # of this hour" means the same events on every run.
        return store.read(span[0], span[1], sites=sites).sort_by(ORDER)

    spans = list(hours(begin, end))
    with ThreadPoolExecutor(1, thread_name_prefix="replay-read") as pool:
        pending: Future[pa.Table] | None = pool.submit(read, spans[0]) if spans else None
        for i, span in enumerate(spans):
            assert pending is not None
            table = pending.result()
            pending = pool.submit(read, spans[i + 1]) if i + 1 < len(spans) else None
            yield span[0], span[1], table


def _steps(table: pa.Table, step_us: int | None) -> Iterator[tuple[int, pa.Table]]:
    """Consecutive slices of a ts-sorted table: one per pacing step of event time, or
    (unpaced) of MAX_BATCH_EVENTS rows, so each Kafka record carries a real batch."""
    if table.num_rows == 0:
        return
    ts = pc.cast(table.column("ts"), pa.int64()).to_numpy()
    if step_us is None:
        bounds = [*range(0, len(ts), MAX_BATCH_EVENTS), len(ts)]
    else:
        bucket = (ts - ts[0]) // step_us
        bounds = [0, *(np.flatnonzero(np.diff(bucket)) + 1).tolist(), len(ts)]
    for a, b in itertools.pairwise(bounds):
        yield int(ts[a]), table.slice(a, b - a)


def replay(
    store: Store,
    publisher: Publisher,
    start: dt.datetime,
    end: dt.datetime,
    state: ReplayState,
    sites: list[str] | None = None,
    speed: float | None = None,
    stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> int:
    """Publish events with start <= ts < end in event-time order; returns events sent.

    ``speed`` None sends as fast as Kafka takes them; otherwise Nx real time.
    """
    sent = 0
    wall0: float | None = None
    ts0_us: int | None = None
    step_us = int(PACE_STEP_S * speed * 1e6) if speed else None
    begin = state.done_until or start
    saved = time.monotonic()
    for h_start, h_end, table in _sorted_hours(store, begin, end, sites):
        if state.hour == h_start and state.rows_into_hour:
            table = table.slice(state.rows_into_hour)
        for ts_us, part in _steps(table, step_us):
            if stop and stop():
                publisher.drain()
                state.save()
                if progress:
                    progress.update(0, (ts_us / 1e6) - start.timestamp(), final=True)
                return sent
            if speed:
                if wall0 is None or ts0_us is None:
                    wall0, ts0_us = time.monotonic(), ts_us
                delay = wall0 + (ts_us - ts0_us) / 1e6 / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            groups = list(_by_key(part))
            for i, ((site, host), group) in enumerate(groups):
                last = i == len(groups) - 1
                on_ack = partial(state.acked, h_start, part.num_rows) if last else None
                publisher.send(wire.record_key(site, host), group, on_ack)
            sent += part.num_rows
            if time.monotonic() - saved > SAVE_EVERY_S:
                # Bounds what a kill -9 re-sends; Ctrl-C saves the exact position.
                publisher.drain(wait=False)
                state.save()
                saved = time.monotonic()
            if progress:
                progress.update(part.num_rows, (ts_us / 1e6) - start.timestamp())
        publisher.drain()
        state.hour_done(h_end)
        if progress:
            progress.update(0, (h_end - start).total_seconds())
    if progress:
        progress.update(0, (end - start).total_seconds(), final=True)
    return sent


def _by_key(table: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    keys = table.select(["site", "host"]).group_by(["site", "host"]).aggregate([])
    for site, host in zip(keys.column("site").to_pylist(), keys.column("host").to_pylist(), strict=True):
        if keys.num_rows == 1:
            yield (site, host), table
        else:
            mask = pc.and_(pc.equal(table.column("site"), site), pc.equal(table.column("host"), host))
            yield (site, host), table.filter(mask)
