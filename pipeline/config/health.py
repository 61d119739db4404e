"""[health]: when a site counts as silent, and what its rate covers."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.keys import ConfigError, doc


@dataclass(frozen=True)
class HealthConfig:
    """Per-site health (pipeline.health): when a site counts as silent, what the rate covers."""

    silent_gap_factor: float = doc(
        "a site is silent when the time since its last event exceeds this many times its usual gap", 3.0
    )
    usual_gap_percentile: float = doc(
        "usual gap = this percentile of the site's gaps between active minutes over history_s", 99.0
    )
    min_usual_gap_s: float = doc(
        "floor of the usual gap: a site active every minute is not silent sooner", 300.0
    )
    history_s: float = doc(
        "event-time history the usual gap is learnt from (only these partitions are read)", 86400.0
    )
    rate_window_s: float = doc("event rate = events per minute over this recent window", 300.0)
    interval_s: float = doc("how often the worker recomputes health (metrics, web snapshot)", 5.0)

    def __post_init__(self) -> None:
        if not self.silent_gap_factor > 0:
            raise ConfigError(f"[health] silent_gap_factor: must be > 0, got {self.silent_gap_factor}")
        if not 0 < self.usual_gap_percentile <= 100:
            raise ConfigError(
                f"[health] usual_gap_percentile: must be in (0, 100], got {self.usual_gap_percentile}"
            )
