"""Per-site activity from the store: last event, last arrival, event rate and usual gap.

Only the partitions of the history window are listed; each partition-hour
directory is summarised once into its active minutes and event counts (only
the ``ts`` column is read) and read again only when its file listing changes,
which in steady state is the current hour of each site.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.dataset as ds

from pipeline.config import HealthConfig
from pipeline.health.report import SiteHealth
from pipeline.store import EVENTS_DIR, FILE_SCHEMA, parse_file_name

US_PER_MINUTE: Final = 60_000_000


@dataclass(frozen=True)
class _HourActivity:
    """One partition-hour directory, summarised: its active minutes and their event counts."""

    signature: tuple[tuple[str, int, int], ...]
    minutes: npt.NDArray[np.int64]  # minutes since the epoch with events, ascending
    counts: npt.NDArray[np.int64]  # events in each of those minutes
    max_ts_us: int | None
    arrival_s: float | None  # newest flush file's mtime


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
