"""Running detection over the store: replay of a range, and the live follow loop.

Both paths call ``Evaluator.evaluate(end_us)``: detect every kind over the epochs
from the last evaluated end up to ``end_us`` (event time) and rewrite those
epochs' rows in the scan dataset. Replay calls it once per day; the live loop
calls it every ``follow_interval_s`` with ``end = newest event time - lateness_s``
(the watermark). Because a scan record depends only on events before its own
grid points, and an epoch's rows are a pure function of the epoch's events, the
live loop ends with byte-for-byte the records replay writes.

Late events (reaching the store after the watermark passed their time): each tick
re-evaluates a kind's whole current epoch, so a late event of the current epoch is
counted at the next tick and the live records converge to replay's; if it moves a
scan's first hot grid point earlier, the scan gets a new id (announced as new; the
old record is replaced). A late event of an epoch the live loop has left is seen
only by a replay. Keep ``lateness_s`` above the worker's flush interval.

Announcements (alert command, webhook, scans topic): a scan is announced when an
evaluation first finds it absent from the scan dataset - before the dataset is
written, so a crash in between announces it again after a restart (at least once,
same ``scan_id``: consumers dedupe on it), and never again once written. A restart
re-evaluates the recent epochs and announces nothing the dataset already holds.
The announced record is the scan as first seen (``status`` ``open``: counts so far);
the dataset holds its final version. A failed announcement is logged and counted
(``alerts_failed``), not retried.

Live cost: ``follow`` keeps the detect columns of the current fast epoch's files in
memory (``RecentFiles``) and reads only new files each tick; the slow kinds' rare
re-evaluations (every ``slow_step_s`` / ``hammer_step_s``) read the store. Latency
from a fast scan's 15th port to its announcement is about the grid step
(``vertical_step_s``) + ``lateness_s`` + ``follow_interval_s`` + one evaluation
(benchmarks/bench_detect_latency.py).
"""

from __future__ import annotations

import copy
import ctypes
import datetime as dt
import platform
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipeline.config import Config, DetectConfig
from pipeline.detect import heartbeat
from pipeline.detect.announce import alert_hooks, scan_json, topic_publisher
from pipeline.detect.crosssite import cross_site
from pipeline.detect.engine import FAST_KINDS, SLOW_KINDS, Detector, kind_specs, lookback_us, points
from pipeline.detect.records import SCAN_SCHEMA, US, DetectStats
from pipeline.detect.scanstore import ScanStore
from pipeline.detect.slowtrack import SlowTracker
from pipeline.detect.sources import (
    DETECT_COLUMNS,
    EventSource,
    RecentFiles,
    fast_floor_us,
    from_us,
    store_source,
    table_source,
    to_us,
)
from pipeline.store import Store


@dataclass
class Evaluator:
    """Incremental detection over an event source, writing the scan dataset."""

    cfg: DetectConfig
    source: EventSource
    scans: ScanStore
    on_new: Callable[[list[dict[str, Any]]], None] | None = None
    # Every record an evaluation adds or changes (the scans topic: the latest version per scan_id).
    on_update: Callable[[list[dict[str, Any]]], None] | None = None
    evaluated_us: int | None = None  # end of the last evaluation; None: nothing yet
    stats: DetectStats = field(default_factory=DetectStats)
    tracker: SlowTracker | None = None
    # Set (the live path): the tracker runs in its own thread reading this source, so a
    # tracker chunk never holds up the grid kinds' tick; None: in line (replay, tests).
    track_source: EventSource | None = None
    _track_job: Future[list[dict[str, Any]]] | None = field(default=None, repr=False)
    _track_pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _stats_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The last evaluation's points and their range [lo, hi): the in-line tracker reads its
    # chunk from them (already read, strings already dictionary-encoded) when they cover it.
    _pts: tuple[int, int, pa.Table] | None = field(default=None, repr=False)

    def evaluate(self, end_us: int, since_us: int | None = None) -> list[dict[str, Any]]:
        """Detect up to end_us; return the scans not in the dataset before (new ones)."""
        t = time.perf_counter()
        try:
            return self._evaluate(end_us, since_us)
        finally:
            self._pts = None  # events of this evaluation only: a later one may see late ones
            # Live latency = grid step + lateness + follow interval + this: worth watching.
            took = time.perf_counter() - t
            self.stats.evaluations += 1
            self.stats.eval_s_total += took
            self.stats.eval_s_max = max(self.stats.eval_s_max, took)

    def _evaluate(self, end_us: int, since_us: int | None) -> list[dict[str, Any]]:
        specs = kind_specs(self.cfg)
        prev = self.evaluated_us if self.evaluated_us is not None else (since_us or end_us)
        if end_us <= prev and self.evaluated_us is not None:
            return []
        if self.evaluated_us is None or self.tracker is None:
            # Persistent tracking restarts at the day boundary at or before prev, from the
            # checkpoint saved there (replay and a restarted live detector alike).
            self.tracker = SlowTracker(self.cfg, self.scans.root / "_track")
            self.tracker.start(prev)
        starts: dict[str, int] = {}
        for kind, spec in specs.items():
            # A kind changes only when a new grid point falls at or before the end.
            if self.evaluated_us is not None and end_us // spec.step_us == prev // spec.step_us:
                continue
            starts[kind] = (prev // spec.epoch_us) * spec.epoch_us
        if self.evaluated_us is None:
            starts = {k: (prev // s.epoch_us) * s.epoch_us for k, s in specs.items()}
        self.evaluated_us = end_us
        if not starts:
            return self._track_step(end_us)
        # Each kind reads back only its own window: a tick that re-evaluates the fast kinds
        # must not read the slow kinds' look-back (that would grow every tick's cost).
        lo = min(start - specs[kind].window_us for kind, start in starts.items())
        pts = points(self.source(lo, end_us), self.cfg)
        self._pts = (lo, end_us, pts)
        detector = Detector(self.cfg)
        found = detector.run(pts, starts, end_us)
        self._merge_stats(detector.stats)
        plans: list[tuple[str, int, pa.Table]] = []
        for kind, start in starts.items():
            spec = specs[kind]
            for epoch in range(start, end_us, spec.epoch_us):
                part = found.filter(
                    pc.and_(
                        pc.equal(found.column("kind"), kind),
                        pc.equal(pc.cast(found.column("epoch_start"), pa.int64()), epoch),
                    )
                )
                plans.append((kind, epoch, part))
        # The grid kinds are announced before the tracker runs: a tracker chunk must not
        # delay a fast scan's alert. Cross-site reads the tracker's records, so it comes last.
        new = self._announce_then_write(plans)
        new += self._track_step(end_us)
        if any(k in starts for k in (*FAST_KINDS, *SLOW_KINDS)):
            new += self._cross_site(min(starts.values()), end_us)
        return new

    def _track_step(self, end_us: int) -> list[dict[str, Any]]:
        """Track in line, or hand the step to the tracker thread unless it is still busy
        (it then catches up to a later end on a later tick)."""
        if self.track_source is None:
            return self._track(end_us)
        job = self._track_job
        if job is not None and not job.done():
            return []
        if job is not None:
            job.result()  # a failed step raises here, on the detector's own thread
        if self._track_pool is None:
            self._track_pool = ThreadPoolExecutor(1, thread_name_prefix="fp-track")
        self._track_job = self._track_pool.submit(self._track, end_us)
        return []

    def drain(self) -> None:
        """Wait for the tracker thread's step (raising its error), catch the tracker up to the
        last evaluation (steps skipped while it was busy) and stop the thread."""
        job, self._track_job = self._track_job, None
        try:
            if job is not None:
                job.result()
            if self.evaluated_us is not None and self.tracker is not None:
                self._track(self.evaluated_us)
        finally:
            if self._track_pool is not None:
                self._track_pool.shutdown(wait=True)
                self._track_pool = None

    def _track(self, end_us: int) -> list[dict[str, Any]]:
        """Advance the slow/distributed tracker to end_us; upsert the records it changed."""
        assert self.tracker is not None
        tracker = self.tracker
        before = copy.deepcopy(tracker.stats)  # fmt: skip
        # Only to a step boundary: live ticks then cost one chunk a step, and replay and live
        # stopped at the same end hold the very same state.
        step = int(self.cfg.track_step_s * US)
        upto = (end_us // step) * step
        if tracker.upto is None or upto <= tracker.upto:
            return []
        source = self.track_source or self.source
        cached = self._pts if self.track_source is None else None

        def read(lo: int, hi: int) -> pa.Table:
            if cached is not None and cached[0] <= lo and hi <= cached[1]:
                ts = cached[2].column("ts_us")
                return cached[2].filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))
            return points(source(lo, hi), self.cfg)

        changed = tracker.advance(read, upto)
        self._merge_stats(_minus(tracker.stats, before))
        found = pa.concat_tables(changed) if changed else SCAN_SCHEMA.empty_table()
        if found.num_rows == 0:
            return []
        # A scan's newest version wins when it changed in several day chunks of one call.
        rows = {r["scan_id"]: r for r in found.to_pylist()}
        found = pa.Table.from_pylist(list(rows.values()), schema=SCAN_SCHEMA)
        groups: dict[tuple[str, int], list[int]] = {}
        kinds = found.column("kind").to_pylist()
        epochs = pc.cast(found.column("epoch_start"), pa.int64()).to_pylist()
        for i, key in enumerate(zip(kinds, epochs, strict=True)):
            groups.setdefault(key, []).append(i)
        parts = [(kind, epoch, found.take(pa.array(idx))) for (kind, epoch), idx in sorted(groups.items())]
        new = [r for kind, epoch, part in parts for r in self.scans.new_in(kind, epoch, part)]
        updated = [r for kind, epoch, part in parts for r in self.scans.changed_in(kind, epoch, part)]
        if new and self.on_new is not None:
            self.on_new(new)
        if updated and self.on_update is not None:
            self.on_update(updated)
        for kind, epoch, part in parts:
            self.scans.upsert(kind, epoch, part)
        return new

    def _announce_then_write(self, plans: list[tuple[str, int, pa.Table]]) -> list[dict[str, Any]]:
        """Announce the scans the dataset lacks, then write: a crash in between announces them
        again on restart (at least once, same scan_id) rather than never."""
        new = [scan for kind, epoch, part in plans for scan in self.scans.new_in(kind, epoch, part)]
        updated = [r for kind, epoch, part in plans for r in self.scans.changed_in(kind, epoch, part)]
        if new and self.on_new is not None:
            self.on_new(new)
        if updated and self.on_update is not None:
            self.on_update(updated)
        self.scans.replace_epochs(plans)  # one file write per (kind, day), not per epoch
        return new

    def _cross_site(self, start_us: int, end_us: int) -> list[dict[str, Any]]:
        epoch_us = int(self.cfg.slow_epoch_s * US)
        plans: list[tuple[str, int, pa.Table]] = []
        for epoch in range((start_us // epoch_us) * epoch_us, end_us, epoch_us):
            base = self.scans.read(from_us(epoch), from_us(epoch + epoch_us), by="epoch_start")
            plans.append(("cross_site", epoch, cross_site(base, self.cfg, epoch_us)))
        return self._announce_then_write(plans)

    def _merge_stats(self, s: DetectStats) -> None:
        with self._stats_lock:  # the tracker thread merges too
            self._merge_stats_locked(s)

    def _merge_stats_locked(self, s: DetectStats) -> None:
        self.stats.events += s.events
        self.stats.approx_sources = max(self.stats.approx_sources, s.approx_sources)
        for name in ("candidates", "dropped_keys", "scans"):
            mine, theirs = getattr(self.stats, name), getattr(s, name)
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v


def _minus(a: DetectStats, b: DetectStats) -> DetectStats:
    """What a's counters added since b (the tracker keeps running totals)."""
    out = DetectStats()  # events: the grid detector counts them once
    for name in ("candidates", "dropped_keys", "scans"):
        mine, old = getattr(a, name), getattr(b, name)
        setattr(out, name, {k: v - old.get(k, 0) for k, v in mine.items() if v - old.get(k, 0)})
    return out


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def keep_freed_pages() -> None:
    """Let glibc's heap keep the detection passes' arrays (tens of MB, freed and taken again
    every kind and chunk) rather than map fresh pages for each and unmap them on free: the
    page faults of those first touches were as much kernel time as the whole user time of a
    replay (bench_detect: kernel 1.9 s -> 0.5 s beside user 1.7 s). The cost: up to
    ``trim`` bytes of freed heap stay with the process. Once per process; glibc only."""
    if platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's upper limit on 64-bit
        libc.mallopt(_M_TRIM_THRESHOLD, 512 << 20)
    except (OSError, AttributeError):
        return


def replay(ev: Evaluator, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    """Detect over [since, until): whole slow epochs from the one holding since."""
    keep_freed_pages()
    day = int(ev.cfg.slow_epoch_s * US)
    start = (to_us(since) // day) * day
    end = to_us(until)
    ev.evaluated_us = None
    new: list[dict[str, Any]] = []
    t = start
    first = True
    while t < end:
        step_end = min(t + day, end)
        if first:
            new += ev.evaluate(step_end, since_us=t)
            first = False
        else:
            new += ev.evaluate(step_end)
        t = step_end
    return new


def newest_event_us(store: Store, after_us: int | None) -> int | None:
    flt = None
    if after_us is not None:
        flt = ds.field("date") >= from_us(after_us).date() - dt.timedelta(days=1)
    # Through store.scan: compaction swaps directories under a live detector's listing.
    empty = pa.table({"ts": pa.array([], pa.timestamp("us", "UTC"))})
    table = store.scan(lambda d: d.to_table(columns=["ts"], filter=flt), empty)
    if table.num_rows == 0:
        return None
    newest = pc.max(table.column("ts")).as_py()
    return to_us(newest) if newest is not None else None


def follow(
    ev: Evaluator,
    store: Store,
    since: dt.datetime | None,
    stop: Callable[[], bool],
    on_tick: Callable[[int], None] | None = None,
) -> None:
    """The live path: re-evaluate up to the watermark every follow_interval_s until stop()."""
    keep_freed_pages()
    lateness = int(ev.cfg.lateness_s * US)
    since_us = to_us(since) if since is not None else None
    recent = RecentFiles(store)
    full = ev.source
    ev.source = recent.source(full)
    # The tracker thread reads the store itself: the recent-files cache belongs to this loop.
    ev.track_source = full
    try:
        _follow_loop(ev, store, since_us, stop, on_tick, recent, lateness)
    finally:
        ev.drain()
        ev.track_source = None


def _follow_loop(
    ev: Evaluator,
    store: Store,
    since_us: int | None,
    stop: Callable[[], bool],
    on_tick: Callable[[int], None] | None,
    recent: RecentFiles,
    lateness: int,
) -> None:
    while not stop():
        if ev.evaluated_us is None:
            newest = newest_event_us(store, since_us)
        else:
            # Events newer than the last watermark can only be in the hours at and after it.
            recent.refresh(fast_floor_us(ev.cfg, ev.evaluated_us))
            newest = recent.newest_us()
        if newest is not None:
            wm = newest - lateness
            if ev.evaluated_us is None:
                ev.evaluate(wm, since_us=since_us if since_us is not None else wm - lookback_us(ev.cfg))
            else:
                ev.evaluate(wm)
            if on_tick is not None:
                on_tick(wm)
        heartbeat.write(ev.scans.root, ev.evaluated_us, ev.cfg.follow_interval_s)
        time.sleep(ev.cfg.follow_interval_s)


def evaluator_for(cfg: Config, store_dir: str | None = None, hooks: bool = True) -> tuple[Evaluator, Store]:
    store = Store(store_dir or cfg.worker.store_dir)
    scans_dir = cfg.detect.scans_dir or str(Path(store.root) / "scans")
    ev = Evaluator(cfg.detect, store_source(store), ScanStore(scans_dir))
    if hooks:
        ev.on_new = alert_hooks(cfg.detect, ev.stats)
        bootstrap = cfg.kafka.effective_bootstrap
        if cfg.detect.publish and bootstrap:
            ev.on_update = topic_publisher(cfg.detect, bootstrap, ev.stats, security=cfg.kafka)
    return ev, store


def rows_of(tables: Iterable[pa.Table]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in tables:
        out += t.cast(SCAN_SCHEMA).to_pylist()
    return out


# What callers import from here: the announcing and the sources are runner's parts.
__all__ = [
    "DETECT_COLUMNS",
    "Evaluator",
    "RecentFiles",
    "alert_hooks",
    "evaluator_for",
    "follow",
    "replay",
    "rows_of",
    "scan_json",
    "store_source",
    "table_source",
    "to_us",
    "topic_publisher",
]
