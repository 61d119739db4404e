"""Per-site health: when each site last sent, how fast, what was rejected, how far behind we are.

For every site in the store:

- **last event**: the newest event time stored, and the **last arrival**, the
  modification time of the newest flush file (``<topic>+<partition>+…``) in
  its recent partitions. Compacted files are rewritten later than their
  events arrived, so they never count as an arrival.
- **event rate**: events per minute over ``[health] rate_window_s``.
- **usual gap**: a high percentile (``usual_gap_percentile``) of the gaps
  between the site's active minutes over ``history_s`` of event time, never
  below ``min_usual_gap_s``. A site is **silent** when the time since its last
  event exceeds ``silent_gap_factor`` times its usual gap: a site that logs every
  second is silent after minutes, one that logs a few times a day after hours.
- **rejects**: shipper dead letters (the dead-letter topic, keyed by
  ``source_id`` = ``<site>:…``) and worker dead letters
  (``<store>/_dead_letters/*.jsonl``, which carry the record key's site).
- **consumer lag** of the worker's group, per topic: end offsets minus the
  group's committed offsets (kafka-python's admin client). With MirrorMaker 2
  each site's events come through their own replicated topic, so per-topic lag
  is that site's replication backlog at the centre.

Cheap enough to run every few seconds: only the partitions of the history
window are listed; each partition-hour directory is summarised once into its
active minutes and event counts (only the ``ts`` column is read) and read
again only when its file listing changes, which in steady state is the
current hour of each site. The silent flag is evaluated against the clock at
the moment it is asked for, so a metrics scrape between refreshes is exact.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.json as pajson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline import durable
from pipeline.archive.topics import raw_group
from pipeline.config import Config, HealthConfig, KafkaConfig
from pipeline.store import EVENTS_DIR, FILE_SCHEMA, parse_file_name

log = logging.getLogger("fireplot.health")

SNAPSHOT_PATH: Final = Path("_health") / "sites.json"
WORKER_DEAD_LETTERS: Final = "_dead_letters"
# Site names as the worker accepts them (pipeline.archive.decoders.SITE_RE); anything else
# found in a dead letter is attacker text and is counted under UNKNOWN_SITE.
SITE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
UNKNOWN_SITE: Final = ""
US_PER_MINUTE: Final = 60_000_000


@dataclass(frozen=True)
class _HourActivity:
    """One partition-hour directory, summarised: its active minutes and their event counts."""

    signature: tuple[tuple[str, int, int], ...]
    minutes: npt.NDArray[np.int64]  # minutes since the epoch with events, ascending
    counts: npt.NDArray[np.int64]  # events in each of those minutes
    max_ts_us: int | None
    arrival_s: float | None  # newest flush file's mtime


@dataclass(frozen=True)
class SiteHealth:
    """What the store says about one site at ``computed_at``."""

    site: str
    last_event: dt.datetime | None
    last_arrival: dt.datetime | None
    usual_gap_s: float
    events_per_min: float
    events_in_history: int
    active_minutes: int
    rejects_shipper: int = 0
    rejects_worker: int = 0

    def age_s(self, now: dt.datetime) -> float | None:
        """Seconds since the last event (0 for events dated ahead of ``now``)."""
        if self.last_event is None:
            return None
        return max(0.0, (now - self.last_event).total_seconds())

    def arrival_age_s(self, now: dt.datetime) -> float | None:
        if self.last_arrival is None:
            return None
        return max(0.0, (now - self.last_arrival).total_seconds())

    def silent(self, now: dt.datetime, factor: float) -> bool:
        age = self.age_s(now)
        return age is None or age > factor * self.usual_gap_s


@dataclass
class HealthReport:
    computed_at: dt.datetime
    config: HealthConfig
    sites: list[SiteHealth]
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    lag_error: str | None = None
    rejects_unknown_site: int = 0
    rejects_error: str | None = None

    def topic_lag(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (topic, _), n in sorted(self.lag.items()):
            out[topic] = out.get(topic, 0) + n
        return out

    def silent_sites(self, now: dt.datetime | None = None) -> list[str]:
        now = now or dt.datetime.now(dt.UTC)
        return [s.site for s in self.sites if s.silent(now, self.config.silent_gap_factor)]

    def as_dict(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """JSON-ready; ages and the silent flag evaluated at ``now``."""
        now = now or dt.datetime.now(dt.UTC)
        factor = self.config.silent_gap_factor
        return {
            "computed_at": _iso(self.computed_at),
            "now": _iso(now),
            "silent_gap_factor": factor,
            "sites": [
                {
                    "site": s.site,
                    "last_event": _iso(s.last_event),
                    "last_event_age_s": _round(s.age_s(now)),
                    "last_arrival": _iso(s.last_arrival),
                    "last_arrival_age_s": _round(s.arrival_age_s(now)),
                    "usual_gap_s": round(s.usual_gap_s, 3),
                    "silent_after_s": round(factor * s.usual_gap_s, 3),
                    "silent": s.silent(now, factor),
                    "events_per_min": round(s.events_per_min, 3),
                    "events_in_history": s.events_in_history,
                    "rejects_shipper": s.rejects_shipper,
                    "rejects_worker": s.rejects_worker,
                }
                for s in self.sites
            ],
            "consumer_lag": self.topic_lag(),
            "consumer_lag_error": self.lag_error,
            "rejects_unknown_site": self.rejects_unknown_site,
            "rejects_error": self.rejects_error,
        }


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


# ---- the store: activity per site ------------------------------------------------


class StoreActivity:
    """Per-site activity from the store's recent partitions, re-reading only what changed."""

    def __init__(self, store_root: str | Path) -> None:
        self.root = Path(store_root)
        self._hours: dict[Path, _HourActivity] = {}
        self.dirs_read = 0  # partition-hours (re)summarised, for tests and benchmarks

    def sites(self, now: dt.datetime, cfg: HealthConfig) -> list[SiteHealth]:
        start = now - dt.timedelta(seconds=cfg.history_s)
        start_min = int(start.timestamp()) // 60
        rate_start_min = int((now - dt.timedelta(seconds=cfg.rate_window_s)).timestamp()) // 60
        events = self.root / EVENTS_DIR
        seen: set[Path] = set()
        out: list[SiteHealth] = []
        site_dirs = sorted(p for p in events.glob("site=*") if p.is_dir()) if events.is_dir() else []
        for site_dir in site_dirs:
            hours = _hour_dirs(site_dir, start.date())
            seen.update(hours)
            summaries = [s for s in map(self._summary, hours) if s is not None]
            minutes = np.concatenate([s.minutes for s in summaries]) if summaries else np.empty(0, np.int64)
            counts = np.concatenate([s.counts for s in summaries]) if summaries else np.empty(0, np.int64)
            in_history = minutes >= start_min
            active = np.unique(minutes[in_history])  # dirs are disjoint hours: unique only sorts
            gaps_s = np.diff(active).astype(np.float64) * 60.0
            usual = cfg.min_usual_gap_s
            if gaps_s.size:
                usual = max(usual, float(np.percentile(gaps_s, cfg.usual_gap_percentile)))
            max_ts = max((s.max_ts_us for s in summaries if s.max_ts_us is not None), default=None)
            arrival = max((s.arrival_s for s in summaries if s.arrival_s is not None), default=None)
            recent = int(counts[minutes >= rate_start_min].sum())
            out.append(
                SiteHealth(
                    site=site_dir.name.removeprefix("site="),
                    last_event=None
                    if max_ts is None
                    else dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=max_ts),
                    last_arrival=None if arrival is None else dt.datetime.fromtimestamp(arrival, dt.UTC),
                    usual_gap_s=usual,
                    events_per_min=recent / (cfg.rate_window_s / 60.0),
                    events_in_history=int(counts[in_history].sum()),
                    active_minutes=int(active.size),
                )
            )
        for gone in set(self._hours) - seen:
            del self._hours[gone]
        return out

    def _summary(self, directory: Path) -> _HourActivity | None:
        for attempt in range(20):
            try:
                files = [
                    (p.name, st.st_size, st.st_mtime_ns)
                    for p in directory.iterdir()
                    if p.suffix == ".parquet" and not p.name.startswith(".")
                    for st in (p.stat(),)
                ]
                signature = tuple(sorted(files))
                cached = self._hours.get(directory)
                if cached is not None and cached.signature == signature:
                    return cached
                summary = _summarise(directory, signature)
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError) and "No such file" not in str(exc):
                    raise
                # compaction swapped the directory under us (or retention removed it)
                if not directory.exists():
                    self._hours.pop(directory, None)
                    return None
                time.sleep(min(0.2, 0.01 * (attempt + 1)))
                continue
            self.dirs_read += 1
            self._hours[directory] = summary
            return summary
        raise RuntimeError(f"{directory}: files kept vanishing while reading its activity")


def _hour_dirs(site_dir: Path, start: dt.date) -> list[Path]:
    """The site's hour directories from ``start`` on, plus its newest one in any case
    (so a site silent for longer than the history still has a last event)."""
    dates = sorted(p for p in site_dir.glob("date=*") if p.is_dir() and _date_of(p) is not None)
    recent = [d for d in dates if (_date_of(d) or start) >= start]
    if dates and not recent:
        recent = dates[-1:]
    hours = [h for d in recent for h in sorted(d.glob("hour=*")) if h.is_dir()]
    if not hours:
        older = [h for d in reversed(dates) for h in sorted(d.glob("hour=*")) if h.is_dir()]
        hours = older[-1:]
    return hours


def _date_of(path: Path) -> dt.date | None:
    try:
        return dt.date.fromisoformat(path.name.removeprefix("date="))
    except ValueError:
        return None


def _summarise(directory: Path, signature: tuple[tuple[str, int, int], ...]) -> _HourActivity:
    paths = [str(directory / name) for name, _, _ in signature]
    if not paths:
        empty = np.empty(0, np.int64)
        return _HourActivity(signature, empty, empty, None, None)
    ts = ds.dataset(paths, format="parquet", schema=FILE_SCHEMA).to_table(columns=["ts"]).column("ts")
    us = ts.cast(pa.int64()).to_numpy()
    minutes, counts = np.unique(np.floor_divide(us, US_PER_MINUTE), return_counts=True)
    flush_mtimes = [mtime for name, _, mtime in signature if parse_file_name(name) is not None]
    return _HourActivity(
        signature,
        minutes.astype(np.int64),
        counts.astype(np.int64),
        int(us.max()) if us.size else None,
        max(flush_mtimes) / 1e9 if flush_mtimes else None,
    )


# ---- rejects ---------------------------------------------------------------------


def _site_of(text: str) -> str:
    return text if SITE_RE.match(text) else UNKNOWN_SITE


class WorkerDeadLetters:
    """Counts the worker's dead letters per site, reading only what was appended since last time."""

    def __init__(self, store_root: str | Path) -> None:
        self.directory = Path(store_root) / WORKER_DEAD_LETTERS
        self._pos: dict[Path, tuple[int, int]] = {}  # path -> (inode, bytes consumed)
        self.counts: Counter[str] = Counter()

    def refresh(self) -> Counter[str]:
        if not self.directory.is_dir():
            return self.counts
        for path in sorted(self.directory.glob("*.jsonl")):
            try:
                with open(path, "rb") as fh:
                    ino = os.fstat(fh.fileno()).st_ino
                    known_ino, pos = self._pos.get(path, (ino, 0))
                    if known_ino != ino:
                        pos = 0  # replaced: a new file
                    fh.seek(pos)
                    chunk = fh.read()
            except FileNotFoundError:
                continue
            end = chunk.rfind(b"\n") + 1  # a line still being appended waits for next time
            if end:
                self.counts.update(_sites_of_letters(chunk[:end]))
            self._pos[path] = (ino, pos + end)
        return self.counts


_LETTER_SCHEMA: Final = pa.schema([("site", pa.string())])


def _sites_of_letters(data: bytes) -> Counter[str]:
    """Sites of JSON-lines dead letters, columnar; letters written before they carried a site
    (or with a site that is not one) count as unknown."""
    try:
        table = pajson.read_json(
            pa.BufferReader(data),
            parse_options=pajson.ParseOptions(
                explicit_schema=_LETTER_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
        sites = table.column("site")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        sites = pa.chunked_array([pa.array([None] * data.count(b"\n"), pa.string())])
    counts = pc.value_counts(pc.fill_null(sites, UNKNOWN_SITE).combine_chunks())
    out: Counter[str] = Counter()
    for value, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
        out[_site_of(value)] += n
    return out


class ShipperDeadLetters:
    """Counts the shippers' dead letters per site from the dead-letter topic(s).

    Records are keyed by ``source_id`` (``<site>:<file>:<hash>``). Topics named
    ``[kafka] dead_letter_topic`` or ``<alias>.<that name>`` (MirrorMaker 2
    replicas) are read; counts cover what the topics retain."""

    def __init__(self, kafka: KafkaConfig, max_poll_s: float = 2.0) -> None:
        self.kafka = kafka
        self.max_poll_s = max_poll_s
        self.counts: Counter[str] = Counter()
        self.behind = 0  # records not counted yet when the last refresh ran out of time
        self._consumer: Any = None
        self._assigned: set[Any] = set()

    def _topics(self, names: set[str]) -> list[str]:
        base = self.kafka.dead_letter_topic
        return sorted(n for n in names if n == base or n.endswith("." + base))

    def refresh(self) -> Counter[str]:
        if not self.kafka.dead_letter_topic:
            return self.counts
        from kafka import KafkaConsumer, TopicPartition

        from pipeline.kafka_security import client_kwargs

        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.kafka.effective_bootstrap,
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=10000,
                **client_kwargs(self.kafka),
            )
        consumer = self._consumer
        tps = {
            TopicPartition(t, p)
            for t in self._topics(set(consumer.topics()))
            for p in (consumer.partitions_for_topic(t) or ())
        }
        if tps != self._assigned:
            new = tps - self._assigned
            consumer.assign(sorted(tps))
            if new:
                consumer.seek_to_beginning(*new)
            self._assigned = tps
        if not tps:
            return self.counts
        end = consumer.end_offsets(list(tps))
        deadline = time.monotonic() + self.max_poll_s
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                keys = [(r.key or b"").split(b":", 1)[0].decode("utf-8", "replace") for r in records]
                self.counts.update(_site_of(k) for k in keys)
        self.behind = sum(max(0, end[tp] - consumer.position(tp)) for tp in tps)
        return self.counts

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


# ---- consumer lag ----------------------------------------------------------------


def group_lag(kafka: KafkaConfig, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Records between the group's committed offset and the end, per topic-partition.

    Covers every topic the group has committed offsets for (a pattern
    subscription's topics included) and ``topics``; a partition the group has
    never committed counts from its earliest offset."""
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import OffsetSpec

    from pipeline.kafka_security import client_kwargs

    admin = KafkaAdminClient(
        bootstrap_servers=kafka.effective_bootstrap, request_timeout_ms=5000, **client_kwargs(kafka)
    )
    try:
        committed = _group_offsets(admin, group)
        names = sorted({tp.topic for tp in committed} | set(topics))
        existing = set(admin.list_topics())
        tps = [
            TopicPartition(t["name"], p["partition_index"])
            for t in admin.describe_topics([n for n in names if n in existing])
            for p in t["partitions"]
        ]
        if not tps:
            return {}
        latest = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        missing = [tp for tp in tps if tp not in committed or committed[tp].offset < 0]
        earliest = (
            admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in missing}) if missing else {}
        )
        lag: dict[tuple[str, int], int] = {}
        for tp in tps:
            done = committed[tp].offset if tp not in earliest else earliest[tp].offset
            lag[(tp.topic, tp.partition)] = max(0, int(latest[tp].offset) - int(done))
        return lag
    finally:
        admin.close()


def _group_offsets(admin: Any, group: str, timeout_s: float = 10.0) -> dict[Any, Any]:
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return dict(admin.list_group_offsets({group: None}).get(group, {}))
        except KafkaError as exc:
            # A broker whose offsets topic is still being created answers
            # "coordinator not available" for a while: retriable, so retry.
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# ---- putting it together -----------------------------------------------------------


class HealthMonitor:
    """Computes health reports; keeps its caches and Kafka clients between refreshes."""

    def __init__(self, cfg: Config, *, with_kafka: bool = True, max_poll_s: float = 2.0) -> None:
        """``max_poll_s``: time a refresh spends counting new shipper dead letters; a worker
        catches up over several refreshes, a one-shot command should allow more."""
        self.cfg = cfg
        self.with_kafka = with_kafka
        self.activity = StoreActivity(cfg.worker.store_dir)
        self.worker_dead = WorkerDeadLetters(cfg.worker.store_dir)
        self.shipper_dead = ShipperDeadLetters(cfg.kafka, max_poll_s) if with_kafka else None
        self.latest: HealthReport | None = None

    def refresh(self, now: dt.datetime | None = None) -> HealthReport:
        now = now or dt.datetime.now(dt.UTC)
        sites = self.activity.sites(now, self.cfg.health)
        worker_rejects = self.worker_dead.refresh()
        shipper_rejects: Counter[str] = Counter()
        report = HealthReport(now, self.cfg.health, [])
        if self.shipper_dead is not None:
            try:
                shipper_rejects = self.shipper_dead.refresh()
                if self.shipper_dead.behind:
                    report.rejects_error = (
                        f"shipper dead letters: {self.shipper_dead.behind} records not counted yet"
                    )
            except Exception as exc:  # health must answer when Kafka does not
                report.rejects_error = f"shipper dead letters unavailable: {exc}"
                self.shipper_dead.close()
        known = {s.site for s in sites}
        # A site that so far only ever had rejects is still a site to show.
        for extra in sorted((set(worker_rejects) | set(shipper_rejects)) - known - {UNKNOWN_SITE}):
            sites.append(SiteHealth(extra, None, None, self.cfg.health.min_usual_gap_s, 0.0, 0, 0))
        report.sites = [
            _with_rejects(s, shipper_rejects.get(s.site, 0), worker_rejects.get(s.site, 0))
            for s in sorted(sites, key=lambda s: s.site)
        ]
        report.rejects_unknown_site = shipper_rejects[UNKNOWN_SITE] + worker_rejects[UNKNOWN_SITE]
        if self.with_kafka:
            try:
                report.lag = group_lag(self.cfg.kafka, self.cfg.worker.app_id, [self.cfg.kafka.events_topic])
                if self.cfg.worker.raw_enabled:
                    # the raw-lines reader commits in a group of its own (pipeline.archive.raw_feed)
                    group = raw_group(self.cfg.worker.app_id)
                    report.lag.update(group_lag(self.cfg.kafka, group, [self.cfg.kafka.raw_topic]))
            except Exception as exc:
                report.lag_error = f"consumer lag unavailable: {exc}"
        self.latest = report
        return report

    def close(self) -> None:
        if self.shipper_dead is not None:
            self.shipper_dead.close()


def _with_rejects(s: SiteHealth, shipper: int, worker: int) -> SiteHealth:
    return SiteHealth(
        s.site,
        s.last_event,
        s.last_arrival,
        s.usual_gap_s,
        s.events_per_min,
        s.events_in_history,
        s.active_minutes,
        shipper,
        worker,
    )


# ---- outputs: Prometheus, snapshot, table --------------------------------------------


# Per-site gauges: (name, help, the site's value at `now` with `silent_gap_factor`; None = no sample).
_SITE_GAUGES: Final[tuple[tuple[str, str, Callable[[SiteHealth, dt.datetime, float], float | None]], ...]] = (
    (
        "site_last_event_age_seconds",
        "seconds since the site's newest stored event (event time)",
        lambda s, now, factor: s.age_s(now),
    ),
    (
        "site_last_arrival_age_seconds",
        "seconds since the site's newest flush file was written (arrival)",
        lambda s, now, factor: s.arrival_age_s(now),
    ),
    (
        "site_usual_gap_seconds",
        "the site's usual gap between active minutes (percentile, floored)",
        lambda s, now, factor: s.usual_gap_s,
    ),
    (
        "site_silent",
        "1 when the time since the last event exceeds silent_gap_factor x the usual gap",
        lambda s, now, factor: 1.0 if s.silent(now, factor) else 0.0,
    ),
    (
        "site_events_per_second",
        "events per second over [health] rate_window_s",
        lambda s, now, factor: s.events_per_min / 60.0,
    ),
)


class SiteHealthCollector(Collector):
    """Prometheus collector over a health report: ages and silence evaluated at scrape time.

    ``report`` is asked at each scrape (the worker's latest; None before the
    first refresh: no samples); ``now``, when given, fixes the clock instead."""

    def __init__(self, report: Callable[[], HealthReport | None], now: dt.datetime | None = None) -> None:
        self.report = report
        self.now = now

    def collect(self) -> Iterator[Metric]:
        report = self.report()
        if report is None:
            return
        now = self.now or dt.datetime.now(dt.UTC)
        for name, help_, value in _SITE_GAUGES:
            gauge = GaugeMetricFamily(f"fireplot_{name}", help_, labels=["site"])
            for s in report.sites:
                v = value(s, now, report.config.silent_gap_factor)
                if v is not None:
                    gauge.add_metric([s.site], v)
            yield gauge
        rejects = CounterMetricFamily(
            "fireplot_site_rejects_total",
            "dead letters by site and stage (shipper: dead-letter topic, worker: store dead letters)",
            labels=["site", "stage"],
        )
        for s in report.sites:
            rejects.add_metric([s.site, "shipper"], s.rejects_shipper)
            rejects.add_metric([s.site, "worker"], s.rejects_worker)
        rejects.add_metric(["", "any"], report.rejects_unknown_site)
        yield rejects
        lag = GaugeMetricFamily(
            "fireplot_topic_consumer_lag_records",
            "records of the topic the worker's consumer group has not committed yet",
            labels=["topic"],
        )
        for topic, n in report.topic_lag().items():
            lag.add_metric([topic], n)
        yield lag
        yield GaugeMetricFamily(
            "fireplot_health_report_age_seconds",
            "seconds since the health report was computed",
            value=max(0.0, (now - report.computed_at).total_seconds()),
        )


def metrics_text(report: HealthReport, now: dt.datetime | None = None) -> str:
    """Prometheus text exposition of one report, ages and silence evaluated at ``now``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SiteHealthCollector(lambda: report, now))
    return generate_latest(registry).decode()


def write_snapshot(store_root: str | Path, report: HealthReport) -> Path:
    """The report as JSON under the store, for readers without Kafka (the web UI); atomic replace."""
    path = Path(store_root) / SNAPSHOT_PATH
    data = report.as_dict(report.computed_at)
    data["interval_s"] = report.config.interval_s
    durable.write_text(path, json.dumps(data))
    return path


def read_snapshot(store_root: str | Path) -> dict[str, Any] | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        data = json.loads((Path(store_root) / SNAPSHOT_PATH).read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    return None


def duration_text(seconds: float | None) -> str:
    """A compact age for tables (CLI and web): 45s, 3m05s, 2h10m, 1d04h; '-' for none."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def table_text(report: HealthReport, now: dt.datetime | None = None) -> str:
    """A fixed-width table for terminals; site names are printed with control characters escaped."""
    data = report.as_dict(now)
    header = ("SITE", "LAST EVENT (UTC)", "AGE", "ARRIVED", "USUAL GAP", "EV/MIN", "REJECTS S/W", "STATUS")
    rows = [header]
    for s in data["sites"]:
        rows.append(
            (
                s["site"].encode("unicode_escape").decode("ascii"),
                (s["last_event"] or "-").replace("T", " ").replace("Z", "")[:19],
                duration_text(s["last_event_age_s"]),
                duration_text(s["last_arrival_age_s"]),
                duration_text(s["usual_gap_s"]),
                f"{s['events_per_min']:.1f}",
                f"{s['rejects_shipper']}/{s['rejects_worker']}",
                "SILENT" if s["silent"] else "ok",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if not data["sites"]:
        lines.append("(no sites in the store yet)")
    for topic, n in data["consumer_lag"].items():
        lines.append(f"consumer lag {topic}: {n} records")
    for key in ("consumer_lag_error", "rejects_error"):
        if data[key]:
            lines.append(str(data[key]))
    if data["rejects_unknown_site"]:
        lines.append(f"rejects without a known site: {data['rejects_unknown_site']}")
    return "\n".join(lines) + "\n"
