"""The health monitor: one refresh puts activity, rejects and lag together into a report."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from pipeline.archive.topics import raw_group
from pipeline.config import Config
from pipeline.health.activity import StoreActivity
from pipeline.health.lag import group_lag
from pipeline.health.rejects import UNKNOWN_SITE, ShipperDeadLetters, WorkerDeadLetters
from pipeline.health.report import HealthReport, SiteHealth


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
