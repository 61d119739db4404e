"""Persistent scan tracking in event time: slow scans in any port order, and distributed slow scans.

The grid detectors (``engine``) see a scan only inside one window and one epoch. A
``-T0`` scan (one probe every 5 minutes, 1,000 ports in 3.5 days) in nmap's default
random port order has neither a dense window nor a diagonal. This tracker follows
psad's persistent scan tracking and bro-simple-scan's idle expiry instead:

* **slow** - per (site, src) a *session*: the source's events, cut only where the source
  was silent for more than ``slow_idle_s``. The session accumulates the distinct ports
  (with each port's first-hit time) and distinct targets it probed. It is a slow scan
  once it holds ``slow_min_ports`` ports (or ``slow_min_targets`` targets), lasts at least
  ``slow_min_span_s`` and is slower than the fast kinds' rate (a burst is vertical or
  horizontal, not slow). Port order is a property: Kendall tau of port against first-hit
  time over the first ``slow_max_points`` ports gives ``ascending`` / ``descending`` (|tau|
  >= ``slow_min_abs_tau``) or ``random``.
* **distributed** - per (site, dst, port block of ``distributed_block_ports``) a session of
  the events that probe a (dst, port) not probed in the last ``slow_idle_s`` (so
  background traffic re-hitting the popular ports does not keep it alive), cut after
  ``distributed_idle_s`` without such an event. Each port is credited to the source that
  probed it first; sources credited with fewer than ``slow_min_ports`` ports are *light*.
  The session is a distributed scan once light sources (at least
  ``distributed_min_sources``) covered ``distributed_min_ports`` ports, slowly.

Sessions never look at the wall clock nor at day boundaries: a scan that keeps probing
is one scan across midnight and across days, growing, with its first and last time.
Its id hashes the kind, the defining key and the session's first event time, so every
later evaluation (live tick, restart, replay) rewrites the same record.

Determinism: a session is a pure function of the events (ordered by time, then by
their columns), so feeding the events in chunks cut anywhere gives the state, and the
records, one pass would give. Replay and live both start the tracker at a UTC day
boundary, from the checkpoint saved there (or empty when there is none), and save a
checkpoint at every day boundary they cross.

Bounds: a session holds at most 65,536 port rows (ports are 16-bit) and
``track_max_targets`` target rows; the whole state (port, target, port-memory rows of
all open sessions) at most ``track_max_rows`` rows - beyond, the sessions with the
fewest ports are evicted first and counted in ``DetectStats.dropped_keys`` (the run is
then ``flooded``). Closed sessions leave the state at once. Checkpoints on disk: the
newest ``track_checkpoints_kept`` days, each no bigger than the state. So memory and
files stay bounded however long a scan runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import DetectConfig
from pipeline.detect.engine import connect
from pipeline.detect.records import SCAN_SCHEMA, US, DetectStats
from pipeline.detect.sessions import SessionPass, scan_id
from pipeline.detect.trackstate import (
    DAY_US,
    STATE,
    bound,
    empty_state,
    load_checkpoint,
    save_checkpoint,
)

TRACK_KINDS: Final = ("slow", "distributed")


class SlowTracker:
    """Feeds events in event-time order through the slow and distributed session state.

    ``start(t_us)`` positions it at the UTC day boundary at or before ``t_us`` (state from
    that day's checkpoint, or empty); ``advance(events, end_us)`` consumes the events in
    ``[upto, end_us)`` and returns the scan records that changed.
    """

    def __init__(self, cfg: DetectConfig, root: Path | None) -> None:
        self.cfg = cfg
        self.root = root  # checkpoint directory; None: keep none (tests, evaluation)
        self.upto: int | None = None
        self.state: dict[str, pa.Table] = empty_state()
        self.stats = DetectStats()
        self.sessions = SessionPass(cfg)

    # ---- checkpoints ----------------------------------------------------------------------

    def start(self, t_us: int) -> int:
        """Begin at the day boundary at or before t_us; return it (events are needed from there)."""
        day = (t_us // DAY_US) * DAY_US
        self.upto = day
        saved = load_checkpoint(self.root, day) if self.root is not None else None
        self.state = saved if saved is not None else empty_state()
        return day

    def _save(self, day_us: int) -> None:
        if self.root is not None:
            save_checkpoint(self.root, day_us, self.state, self.cfg.track_checkpoints_kept)

    def rows(self) -> int:
        """State rows held now (the quantity ``track_max_rows`` bounds)."""
        return sum(t.num_rows for t in self.state.values())

    # ---- the stream -----------------------------------------------------------------------

    def advance(self, read: Callable[[int, int], pa.Table], end_us: int) -> list[pa.Table]:
        """Consume events up to end_us, a day at a time (checkpoint at each boundary crossed)."""
        if self.upto is None:
            raise RuntimeError("SlowTracker.start() first")
        out: list[pa.Table] = []
        while self.upto < end_us:
            nxt = min(end_us, (self.upto // DAY_US + 1) * DAY_US)
            out.append(self._chunk(read(self.upto, nxt), nxt))
            self.upto = nxt
            if nxt % DAY_US == 0:
                self._save(nxt)
        return out

    def _chunk(self, pts: pa.Table, hi: int) -> pa.Table:
        if pts.column("dst_port").null_count:  # a filter copies every string column
            pts = pts.filter(pc.is_valid(pts.column("dst_port")))
        e = pts.select(["site", "src_ip", "dst_ip", "dst_port", "ts_us", "cnt", "lb"])
        e = e.rename_columns(["site", "src_ip", "dst_ip", "port", "ts", "cnt", "lb"])
        self.stats.events += e.num_rows
        found, self.state = self.sessions.run(e, self.state, hi)
        if self.rows() > self.cfg.track_max_rows:
            self._bound_state()
        for kind in TRACK_KINDS:
            n = pc.sum(pc.equal(found.column("kind"), kind)).as_py() or 0
            self.stats.scans[kind] = self.stats.scans.get(kind, 0) + n
        return found

    def _bound_state(self) -> None:
        con = connect(self.cfg)
        try:
            for k, table in self.state.items():
                con.register(f"{k}_arrow", table)
                con.execute(f"CREATE TEMP TABLE {k} AS SELECT * FROM {k}_arrow")
            bound(con, self.cfg, self.stats)
            self.state = {k: con.sql(f"SELECT * FROM {k}").to_arrow_table().cast(s) for k, s in STATE.items()}
        finally:
            con.close()


def day_of(t_us: int) -> dt.date:
    return dt.datetime.fromtimestamp(t_us / US, dt.UTC).date()


__all__ = ["SCAN_SCHEMA", "TRACK_KINDS", "SlowTracker", "day_of", "scan_id"]
