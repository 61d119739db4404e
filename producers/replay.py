"""Replay archived events from Parquet to a replay topic, in event-time order, at Nx speed.

Events keep their original event times and identities ``(source_id,
source_offset)``; only the Kafka record timestamp is the publish time (old
event times as record timestamps would let time-based retention delete a
replay topic's segments as soon as they roll). The replay topic is created
with ``retention.ms=-1`` for the same reason (``pipeline.datasets``).

The store is read one hour at a time; a thread of its own reads, orders and
encodes the records ahead of the sending (``producers.replay_feed``), so
memory stays bounded by one hour and a few encoded steps. A state file records
how far Kafka acknowledged the run (callbacks in send order, saved every
``SAVE_EVERY_S`` and at the end, never waiting for Kafka at an hour's end):
Ctrl-C and run again continues where it stopped. An hour cut short resumes
after the events Kafka acknowledged (see ``ReplayState``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from pipeline import durable
from pipeline.progress import ProgressLine
from pipeline.store import Store
from producers.publisher import Publisher
from producers.replay_feed import Feed, HourEnd

# Events within one pacing step are sent together: fine enough for a 60x
# replay to look continuous, coarse enough to keep records large.
PACE_STEP_S = 0.2
SAVE_EVERY_S = 2.0


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
        # Saved with the next periodic save: an fsync per hour cost more than the hour's sending.
        self.done_until, self.hour, self.rows_into_hour = until, None, 0

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
    spans = list(hours(state.done_until or start, end))
    saved = time.monotonic()
    with Feed(store, spans, sites, step_us, skip=(state.hour, state.rows_into_hour)) as feed:
        publisher.fetch_metadata()
        for item in feed:
            if isinstance(item, HourEnd):
                # Runs in turn, once Kafka acknowledged every step of the hour.
                publisher.send_encoded(b"", [], 0, partial(state.hour_done, item.end))
                if progress:
                    progress.update(0, (item.end - start).total_seconds())
                continue
            if stop and stop():
                publisher.drain()
                state.save()
                if progress:
                    progress.update(0, (item.ts_us / 1e6) - start.timestamp(), final=True)
                return sent
            if speed:
                if wall0 is None or ts0_us is None:
                    wall0, ts0_us = time.monotonic(), item.ts_us
                delay = wall0 + (item.ts_us - ts0_us) / 1e6 / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            for i, record in enumerate(item.records):
                last = i == len(item.records) - 1
                on_ack = partial(state.acked, item.hour, item.rows) if last else None
                publisher.send_encoded(record.key, record.values, record.events, on_ack)
            sent += item.rows
            if time.monotonic() - saved > SAVE_EVERY_S:
                # Bounds what a kill -9 re-sends; Ctrl-C saves the exact position.
                publisher.drain(wait=False)
                state.save()
                saved = time.monotonic()
            if progress:
                progress.update(item.rows, (item.ts_us / 1e6) - start.timestamp())
    publisher.drain()
    state.save()
    if progress:
        progress.update(0, (end - start).total_seconds(), final=True)
    return sent
