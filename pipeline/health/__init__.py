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

Modules: ``report`` (the report and its JSON form), ``activity`` (the store),
``rejects`` (dead letters), ``lag`` (consumer lag), ``monitor`` (a refresh
puts them together), ``prometheus``, ``snapshot`` and ``table`` (outputs).

Cheap enough to run every few seconds: only the partitions of the history
window are listed; each partition-hour directory is summarised once into its
active minutes and event counts (only the ``ts`` column is read) and read
again only when its file listing changes, which in steady state is the
current hour of each site. The silent flag is evaluated against the clock at
the moment it is asked for, so a metrics scrape between refreshes is exact.
"""

from __future__ import annotations

from pipeline.health.activity import StoreActivity
from pipeline.health.lag import group_lag
from pipeline.health.monitor import HealthMonitor
from pipeline.health.prometheus import SiteHealthCollector, metrics_text
from pipeline.health.rejects import (
    SITE_RE,
    UNKNOWN_SITE,
    WORKER_DEAD_LETTERS,
    ShipperDeadLetters,
    WorkerDeadLetters,
)
from pipeline.health.report import HealthReport, SiteHealth
from pipeline.health.snapshot import SNAPSHOT_PATH, read_snapshot, write_snapshot
from pipeline.health.table import duration_text, table_text

__all__ = [
    "SITE_RE",
    "SNAPSHOT_PATH",
    "UNKNOWN_SITE",
    "WORKER_DEAD_LETTERS",
    "HealthMonitor",
    "HealthReport",
    "ShipperDeadLetters",
    "SiteHealth",
    "SiteHealthCollector",
    "StoreActivity",
    "WorkerDeadLetters",
    "duration_text",
    "group_lag",
    "metrics_text",
    "read_snapshot",
    "table_text",
    "write_snapshot",
]
