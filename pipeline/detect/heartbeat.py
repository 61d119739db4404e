"""The live detector's sign of life: ``<scans_dir>/_detector.json``, rewritten every follow tick.

The page reads it to tell an empty scans table apart from a detector that is not running: the
scan dataset alone cannot say that (no scans is also what a quiet day looks like). The file holds
the wall time of the last tick, the watermark evaluated up to (None before the first events) and
the tick interval, so a reader can judge staleness without knowing the detector's config.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Final

from pipeline import durable

FILE: Final = "_detector.json"
# A heartbeat older than this many tick intervals (and at least MIN_STALE_S) means no detector runs.
STALE_INTERVALS: Final = 10
MIN_STALE_S: Final = 30.0


def write(scans_root: Path, watermark_us: int | None, interval_s: float) -> None:
    body = {"wall_time": time.time(), "watermark_us": watermark_us, "interval_s": interval_s}
    durable.make_dirs(scans_root)
    durable.write_text(scans_root / FILE, json.dumps(body))


def read(scans_root: Path) -> dict[str, Any] | None:
    """The last heartbeat, or None when there is none (or it cannot be read)."""
    try:
        body = json.loads((scans_root / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def running(scans_root: Path, now: float | None = None) -> bool:
    """Whether a detector ticked recently enough: within max(MIN_STALE_S, STALE_INTERVALS ticks)."""
    body = read(scans_root)
    if body is None:
        return False
    try:
        wall, interval = float(body["wall_time"]), float(body.get("interval_s") or 0.0)
    except (KeyError, TypeError, ValueError):
        return False
    age = (time.time() if now is None else now) - wall
    return age <= max(MIN_STALE_S, STALE_INTERVALS * interval)
