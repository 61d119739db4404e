"""Health as Prometheus metrics: per-site gauges and reject counters, evaluated at scrape time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.health.report import HealthReport, SiteHealth

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
