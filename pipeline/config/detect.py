"""[detect]: scan detection thresholds, windows, limits and alerts."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.keys import ConfigError, doc


@dataclass(frozen=True)
class DetectConfig:
    """Scan detection (pipeline.detect); defaults from /work/shared/reference/scan-detection.md §7."""

    vertical_min_ports: int = doc("fast/vertical scan: distinct dst ports from one src to one dst", 15)
    vertical_window_s: float = doc("fast/vertical scan: sliding window those ports must fit in", 60.0)
    vertical_step_s: float = doc(
        "fast kinds are evaluated at grid points this far apart (bounds live detection delay)", 1.0
    )
    horizontal_min_targets: int = doc("horizontal sweep: distinct dsts on one port from one src", 25)
    horizontal_window_s: float = doc("horizontal sweep: sliding window", 300.0)
    horizontal_step_s: float = doc("horizontal sweep: grid step", 15.0)
    slow_min_ports: int = doc(
        "slow scan: distinct dst ports one src probes in one tracking session (any port order)", 10
    )
    slow_min_targets: int = doc("slow scan: or distinct dsts one src probes in one tracking session", 25)
    slow_idle_s: float = doc(
        "slow scan: a src's tracking session ends after this long without an event (psad SCAN_TIMEOUT); "
        "a session has no length limit, so a scan that keeps probing spans days as one scan",
        3600.0,
    )
    slow_min_abs_tau: float = doc(
        "slow scan: |Kendall tau| of port vs first-hit time at or above which the order is "
        "ascending/descending (else random)",
        0.8,
    )
    slow_min_span_s: float = doc("slow/distributed scan: the session lasts at least this long", 60.0)
    slow_max_points: int = doc("slow/distributed scan: first-hit points per scan used for tau", 512)
    distributed_min_ports: int = doc(
        "distributed slow scan: distinct ports of one dst's port block probed by light sources", 30
    )
    distributed_min_sources: int = doc("distributed slow scan: light sources sharing the walk", 4)
    distributed_block_ports: int = doc(
        "distributed slow scan: ports are tracked per dst in blocks this wide (power of two)", 1024
    )
    distributed_idle_s: float = doc(
        "distributed slow scan: a dst block's session ends after this long without a port new to it", 900.0
    )
    track_step_s: float = doc(
        "slow/distributed tracking consumes events up to the last multiple of this (event time) at or "
        "before each evaluation's end (must divide a day)",
        60.0,
    )
    track_max_rows: int = doc(
        "slow/distributed tracking state: rows kept at most (ports, targets, port memory); beyond, the "
        "sessions with the fewest ports are evicted and counted",
        2_000_000,
    )
    track_max_targets: int = doc(
        "slow scan: distinct dsts remembered per session (more: distinct_targets is a lower bound)", 4096
    )
    track_checkpoints_kept: int = doc("slow tracking: daily state checkpoints kept (restart, replay)", 8)
    hammer_min_hits: int = doc("hammering: packets on one port from one src within the window", 30)
    hammer_window_s: float = doc("hammering: sliding window", 3600.0)
    hammer_step_s: float = doc("hammering: grid step = width of one activity slot", 300.0)
    hammer_min_active_slots: int = doc("hammering: slots of the window with hits (persistence)", 6)
    coordinated_min_sources: int = doc("coordinated scan: sources acting together on one dst", 3)
    coordinated_min_ports: int = doc("coordinated scan: distinct ports of all sources together", 15)
    coordinated_min_ports_per_source: int = doc("coordinated scan: distinct ports each source adds", 3)
    coordinated_min_disjoint: float = doc(
        "coordinated scan: union/sum of the sources' port counts (1.0 = fully disjoint)", 0.8
    )
    coordinated_window_s: float = doc("coordinated scan: sliding window", 60.0)
    cross_site_min_sites: int = doc("cross-site: sites the same source was detected scanning", 2)
    fast_epoch_s: float = doc("fast kinds: a scan never spans an epoch (live re-evaluation unit)", 3600.0)
    slow_epoch_s: float = doc("slow/hammer/cross-site: epoch length (must divide a day)", 86400.0)
    rate_limited_sites: tuple[str, ...] = doc(
        "sites whose logging is rate-limited: counts are lower bounds", ()
    )
    rate_limited_prefixes: tuple[str, ...] = doc(
        "log prefixes (substring, case-insensitive) of rate-limited rules, e.g. UFW's 3/min", ("UFW",)
    )
    max_candidate_keys: int = doc(
        "per kind and run: candidate keys kept under a flood (rest counted)", 100_000
    )
    duckdb_memory_mb: int = doc(
        "DuckDB memory limit of the tracker's state bound (`track_max_rows`; spills beyond)", 512
    )
    scans_dir: str = doc("scan dataset; empty: <[worker] store_dir>/scans", "")
    follow_interval_s: float = doc("`detect --follow`: how often the store is re-evaluated", 1.0)
    lateness_s: float = doc(
        "`detect --follow`: watermark = newest event time minus this (> worker flush_interval_s)", 1.0
    )
    kafka_topic: str = doc("topic new scans are published to as JSON (when publish is on)", "fireplot.scans")
    publish: bool = doc("publish new scans to kafka_topic", False)
    alert_command: tuple[str, ...] = doc("argv run per new scan, the scan as JSON on stdin", ())
    alert_webhook: str = doc("URL POSTed per new scan (JSON body); empty: none", "")

    def __post_init__(self) -> None:
        b = self.distributed_block_ports
        if b < 1 or b > 65536 or b & (b - 1):
            raise ConfigError(f"[detect] distributed_block_ports: a power of two in 1..65536, got {b}")
        for key in ("slow_idle_s", "distributed_idle_s", "slow_min_span_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"[detect] {key}: must be > 0, got {getattr(self, key)}")
        for key in (
            "slow_min_ports",
            "slow_min_targets",
            "distributed_min_ports",
            "distributed_min_sources",
            "track_max_rows",
            "track_max_targets",
            "track_checkpoints_kept",
            "slow_max_points",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"[detect] {key}: must be >= 1, got {getattr(self, key)}")
        if not self.track_step_s > 0 or 86400 % self.track_step_s:
            raise ConfigError(f"[detect] track_step_s: must divide a day, got {self.track_step_s}")
        if 86400 % self.slow_epoch_s:
            raise ConfigError(f"[detect] slow_epoch_s: must divide a day, got {self.slow_epoch_s}")
