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
from pipeline.detect.sessions import SessionQueries, scan_id
from pipeline.detect.trackstate import (
    DAY_US,
    STATE,
    bound,
    empty_state,
    load_checkpoint,
    plain_sessions,
    save_checkpoint,
    track_key,
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
        self.queries = SessionQueries(cfg)
        self._idle: dict[str, pa.Table] = {}

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
        e = pts.filter(pc.is_valid(pts.column("dst_port"))).select(
            ["site", "src_ip", "dst_ip", "dst_port", "ts_us", "cnt", "lb"]
        )
        e = e.rename_columns(["site", "src_ip", "dst_ip", "port", "ts", "cnt", "lb"])
        self.stats.events += e.num_rows
        e_slow, singles, passive = self._split(e, hi)
        # One thread: a chunk is dozens of small statements, where waking a second thread
        # on a busy machine costs more than it saves; big replays are a day per chunk.
        con = connect(self.cfg, threads=1)
        try:
            for k, table in self.state.items():
                con.register(f"{k}_arrow", passive.get(k, table))
                con.execute(f"CREATE TEMP TABLE {k} AS SELECT * FROM {k}_arrow")
            con.register("e_arrow", e)
            con.execute("CREATE TEMP TABLE e AS SELECT * FROM e_arrow")
            con.register("e_slow", e_slow)
            slow = self.queries.slow(con, hi)
            dist = self.queries.distributed(con, hi)
            state = {k: con.sql(f"SELECT * FROM {k}").to_arrow_table().cast(s) for k, s in STATE.items()}
        finally:
            con.close()
        for k, part in singles.items():
            state[k] = pa.concat_tables([state[k], part, self._idle[k]])
        self.state = state
        if self.rows() > self.cfg.track_max_rows:
            self._bound_state()
        for kind, t in (("slow", slow), ("distributed", dist)):
            self.stats.scans[kind] = self.stats.scans.get(kind, 0) + t.num_rows
        return pa.concat_tables([slow, dist])

    def _split(self, e: pa.Table, hi: int) -> tuple[pa.Table, dict[str, pa.Table], dict[str, pa.Table]]:
        """Keep the slow SQL to the sources that could change a record: columnar work for the rest.

        A source new to the state whose events in the chunk hit one port of one target has
        sessions that are never scans (both thresholds are >= 2): its state rows (the newest
        session, if open) are built here with Arrow/numpy (a spoofed flood is mostly such
        sources, and so is background radiation). Open sessions of
        sources without events in the chunk stay as they are (set aside in ``self._idle``);
        only touched ones and those the chunk closes go through the SQL (a closing scan
        still gets its final record). Same state and records as running everything through it.
        """
        c = self.cfg
        idle = int(c.slow_idle_s * US)
        meta, ports, targets = (self.state[k] for k in ("src_meta", "src_ports", "src_targets"))
        ek = track_key(e)
        sk = track_key(meta)
        empty = {k: STATE[k].empty_table() for k in ("src_meta", "src_ports", "src_targets")}
        singles = dict(empty)
        if min(c.slow_min_ports, c.slow_min_targets) >= 2 and e.num_rows:
            g = (
                pa.table({"k": ek, "p": e.column("port"), "d": e.column("dst_ip")})
                .group_by("k")
                .aggregate([("p", "count_distinct"), ("d", "count_distinct")])
            )
            plain = g.filter(
                pc.and_(pc.equal(g.column("p_count_distinct"), 1), pc.equal(g.column("d_count_distinct"), 1))
            ).column("k")
            single = pc.and_(pc.is_in(ek, value_set=plain), pc.invert(pc.is_in(ek, value_set=sk)))
            singles = plain_sessions(e.filter(single).append_column("k", pc.filter(ek, single)), hi, idle)
            e_slow = e.filter(pc.invert(single))
            ek = pc.filter(ek, pc.invert(single))
        else:
            e_slow = e
        # Untouched sessions still open at hi pass through unchanged.
        touched = pc.is_in(sk, value_set=pc.unique(ek))
        due = pc.greater(pc.subtract(hi, meta.column("last_ts")), idle)
        active_keys = pc.filter(sk, pc.or_(touched, due))
        passive, self._idle = {}, {}
        for k, t in (("src_meta", meta), ("src_ports", ports), ("src_targets", targets)):
            act = pc.is_in(track_key(t), value_set=active_keys)
            passive[k] = t.filter(act)
            self._idle[k] = t.filter(pc.invert(act))
        return e_slow, singles, passive

    def _bound_state(self) -> None:
        con = connect(self.cfg, threads=1)
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
