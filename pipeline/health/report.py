"""A health report: what the store and Kafka say about each site at one moment.

Ages and the silent flag are evaluated against the clock at the moment they
are asked for (``as_dict(now)``, ``silent_sites(now)``), not when the report
was computed, so a scrape between refreshes is exact.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import HealthConfig


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
