"""Running detection over the store: replay of a range, and the live follow loop.

Both paths call ``Evaluator.evaluate(end_us)``: detect every kind over the epochs
from the last evaluated end up to ``end_us`` (event time) and rewrite those
epochs' files in the scan dataset. Replay calls it once per day; the live loop
calls it every ``follow_interval_s`` with ``end = newest event time - lateness_s``
(the watermark). Because a scan record depends only on events before its own
grid points, and an epoch's file is a pure function of the epoch's events, the
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
import datetime as dt
import json
import logging
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipeline.config import Config, DetectConfig, KafkaConfig
from pipeline.detect import heartbeat
from pipeline.detect.engine import (
    FAST_KINDS,
    SCAN_SCHEMA,
    SLOW_KINDS,
    US,
    Detector,
    DetectStats,
    cross_site,
    kind_specs,
    lookback_us,
    points,
)
from pipeline.detect.scanstore import ScanStore
from pipeline.detect.slowtrack import SlowTracker
from pipeline.event import EVENT_SCHEMA
from pipeline.store import DATASET_SCHEMA, PARTITIONING, Store

log = logging.getLogger("fireplot.detect")

DETECT_COLUMNS = ["ts", "site", "src_ip", "dst_ip", "dst_port", "prefix", "count"]


def to_us(t: dt.datetime) -> int:
    return int(t.astimezone(dt.UTC).timestamp() * US)


def from_us(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / US, dt.UTC)


def scan_json(row: dict[str, Any]) -> str:
    out = dict(row)
    for k, v in out.items():
        if isinstance(v, dt.datetime):
            out[k] = v.isoformat().replace("+00:00", "Z")
    return json.dumps(out, sort_keys=True)


EventSource = Callable[[int, int], pa.Table]


class RecentFiles:
    """The detect columns of the store's recent files, each file read once: the live path's source.

    A live tick re-evaluates only the current fast epoch, so it needs the files of the
    hours from just before that epoch on. Reading them whole every tick costs O(files)
    per tick while the worker adds a few files a second; store files are immutable (a
    flush writes new ones, compaction and recovery replace or delete whole files), so
    following the listing - read new files, forget vanished ones - costs O(new files).
    Reads reaching back before the floor (the slow kinds' look-back) go to the store.
    """

    SCHEMA = pa.schema([EVENT_SCHEMA.field(c) for c in DETECT_COLUMNS])

    def __init__(self, store: Store) -> None:
        self.store = store
        self.floor_us: int | None = None
        self.files: dict[str, tuple[pa.Table, int | None]] = {}  # path -> (rows, newest ts us)
        self._merged: pa.Table | None = None

    def _listing(self, floor_us: int) -> set[str]:
        floor = from_us(floor_us)
        first = (floor.date(), floor.hour)
        out: set[str] = set()
        for date_dir in self.store.events_root.glob("site=*/date=*"):
            try:
                day = dt.date.fromisoformat(date_dir.name.removeprefix("date="))
            except ValueError:
                continue
            if day < floor.date():
                continue
            for hour_dir in date_dir.glob("hour=*"):
                hour = hour_dir.name.removeprefix("hour=")
                if hour.isdigit() and (day, int(hour)) >= first:
                    out.update(
                        str(f) for f in hour_dir.glob("*.parquet") if not f.name.startswith((".", "_"))
                    )
        return out

    def refresh(self, floor_us: int) -> None:
        """Follow the listing of the hours at and after floor_us."""
        for attempt in range(50):
            listed = self._listing(floor_us)
            new = sorted(listed - self.files.keys())
            try:
                read = self._read(new)
            except (FileNotFoundError, OSError) as exc:
                if not isinstance(exc, FileNotFoundError) and "No such file" not in str(exc):
                    raise
                time.sleep(min(0.2, 0.01 * (attempt + 1)))  # compaction swapped an hour: list again
                continue
            kept = {f: self.files[f] for f in listed if f in self.files}
            if read or len(kept) != len(self.files):
                self._merged = None
            self.files = kept | read
            self.floor_us = floor_us
            return
        raise RuntimeError(f"{self.store.events_root}: files kept vanishing during a listing")

    def _read(self, paths: list[str]) -> dict[str, tuple[pa.Table, int | None]]:
        if not paths:
            return {}
        dataset = ds.dataset(
            paths,
            format="parquet",
            partitioning=PARTITIONING,
            partition_base_dir=str(self.store.events_root),
            schema=DATASET_SCHEMA,
        )
        out: dict[str, tuple[pa.Table, int | None]] = {}
        for frag in dataset.get_fragments():
            table = frag.to_table(columns=DETECT_COLUMNS, schema=dataset.schema).cast(self.SCHEMA)
            newest = pc.max(table.column("ts")).as_py()
            out[frag.path] = (table, to_us(newest) if newest is not None else None)
        return out

    def newest_us(self) -> int | None:
        stamps = [n for _, n in self.files.values() if n is not None]
        return max(stamps) if stamps else None

    def source(self, fallback: EventSource) -> EventSource:
        def read(lo_us: int, hi_us: int) -> pa.Table:
            if self.floor_us is None or lo_us < self.floor_us:
                return fallback(lo_us, hi_us)
            if self._merged is None:
                # One chunk: DuckDB and pyarrow compute are slow over thousands of tiny ones.
                tables = [t for t, _ in self.files.values()]
                self._merged = (
                    pa.concat_tables(tables).combine_chunks() if tables else self.SCHEMA.empty_table()
                )
            table = self._merged
            ts = pc.cast(table.column("ts"), pa.int64())
            return table.filter(pc.and_(pc.greater_equal(ts, lo_us), pc.less(ts, hi_us)))

        return read


def fast_floor_us(cfg: DetectConfig, evaluated_us: int) -> int:
    """The earliest event time a tick that re-evaluates only the fast kinds reads."""
    specs = kind_specs(cfg)
    epoch = max(specs[k].epoch_us for k in FAST_KINDS)
    return (evaluated_us // epoch) * epoch - max(specs[k].window_us for k in FAST_KINDS)


def store_source(store: Store) -> EventSource:
    def read(lo_us: int, hi_us: int) -> pa.Table:
        return store.read(from_us(lo_us), from_us(hi_us), columns=DETECT_COLUMNS)

    return read


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

    def evaluate(self, end_us: int, since_us: int | None = None) -> list[dict[str, Any]]:
        """Detect up to end_us; return the scans not in the dataset before (new ones)."""
        t = time.perf_counter()
        try:
            return self._evaluate(end_us, since_us)
        finally:
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
        changed = tracker.advance(lambda lo, hi: points(source(lo, hi), self.cfg), upto)
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
        for kind, epoch, part in plans:
            self.scans.replace(kind, epoch, part)
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


def replay(ev: Evaluator, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    """Detect over [since, until): whole slow epochs from the one holding since."""
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


def alert_hooks(
    cfg: DetectConfig, stats: DetectStats | None = None
) -> Callable[[list[dict[str, Any]]], None]:
    """Per new scan: the alert command (scan JSON on stdin) and the webhook - once per scan_id.

    Called with the scans an evaluation found absent from the scan dataset, just before
    it writes them (see the module docstring for the exact semantics). A failed
    announcement is logged and counted in ``stats.alerts_failed`` by channel, not retried.
    """

    def fire(scans: list[dict[str, Any]]) -> None:
        for scan in scans:
            body = scan_json(scan)
            if cfg.alert_command:
                try:
                    proc = subprocess.run(
                        list(cfg.alert_command),
                        input=body,
                        text=True,
                        capture_output=True,
                        timeout=30,
                        check=False,
                    )
                    if proc.returncode != 0:
                        _failed(stats, "command", scan, f"exit {proc.returncode}: {proc.stderr}")
                except (OSError, subprocess.TimeoutExpired) as exc:
                    _failed(stats, "command", scan, str(exc))
            if cfg.alert_webhook:
                req = urllib.request.Request(  # noqa: S310 - the operator's configured URL
                    cfg.alert_webhook,
                    data=body.encode(),
                    method="POST",
                    headers={"content-type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(req, timeout=10):  # noqa: S310 - operator's URL
                        pass
                except OSError as exc:
                    _failed(stats, "webhook", scan, str(exc))

    return fire


def _failed(stats: DetectStats | None, channel: str, scan: dict[str, Any], error: str) -> None:
    log.warning(
        "alert failed", extra={"channel": channel, "scan_id": scan.get("scan_id"), "error": error[-500:]}
    )
    if stats is not None:
        stats.alerts_failed[channel] = stats.alerts_failed.get(channel, 0) + 1


def topic_publisher(
    cfg: DetectConfig,
    kafka_bootstrap: str,
    stats: DetectStats | None = None,
    security: KafkaConfig | None = None,
) -> Callable[[list[dict[str, Any]]], None]:
    """Every new or changed scan record to the scans topic, keyed by scan_id.

    The topic is compacted (``cleanup.policy=compact``): a scan that grows is published
    again under the same key, and compaction keeps its latest record - one per scan.
    """
    from kafka import KafkaProducer

    from pipeline.broker import ensure_topics
    from pipeline.kafka_security import client_kwargs

    # The broker does not auto-create topics; one partition keeps scans in detection order.
    # A topic made before (by hand, or by an older fireplot) is made compacted too: without
    # it the topic keeps every version of a growing scan until retention drops them all.
    ensure_topics(
        kafka_bootstrap,
        {cfg.kafka_topic: 1},
        configs={"cleanup.policy": "compact"},
        security=security,
        align_existing=True,
    )
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", **(client_kwargs(security) if security else {})
    )

    def publish(scans: list[dict[str, Any]]) -> None:
        sent = [
            (
                scan,
                producer.send(
                    cfg.kafka_topic, key=str(scan["scan_id"]).encode(), value=scan_json(scan).encode()
                ),
            )
            for scan in scans
        ]
        producer.flush(timeout=30)
        for scan, fut in sent:
            try:
                fut.get(timeout=1)
            except Exception as exc:
                _failed(stats, "topic", scan, repr(exc))

    return publish


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


def table_source(table: pa.Table) -> EventSource:
    """An in-memory event source (tests, the evaluation corpus)."""
    ts = pc.cast(pc.cast(table.column("ts"), pa.timestamp("us", tz="UTC")), pa.int64())

    def read(lo_us: int, hi_us: int) -> pa.Table:
        mask = pc.and_(pc.greater_equal(ts, lo_us), pc.less(ts, hi_us))
        return table.filter(mask)

    return read


def rows_of(tables: Iterable[pa.Table]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in tables:
        out += t.cast(SCAN_SCHEMA).to_pylist()
    return out
