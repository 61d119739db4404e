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
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import durable
from pipeline.config import DetectConfig
from pipeline.detect.engine import SCAN_SCHEMA, US, DetectStats, connect, days_spanned, records_table

TRACK_KINDS: Final = ("slow", "distributed")
DAY_US: Final = 86_400 * US

# The tracker's state, one Arrow table each (persisted as one Parquet file each per checkpoint).
STATE: Final = {
    "src_meta": pa.schema(
        [
            ("site", pa.string()),
            ("src_ip", pa.string()),
            ("sess", pa.int64()),
            ("last_ts", pa.int64()),
            ("packets", pa.int64()),
            ("lb", pa.bool_()),
        ]
    ),
    "src_ports": pa.schema(
        [
            ("site", pa.string()),
            ("src_ip", pa.string()),
            ("sess", pa.int64()),
            ("port", pa.int32()),
            ("t", pa.int64()),
        ]
    ),
    "src_targets": pa.schema(
        [
            ("site", pa.string()),
            ("src_ip", pa.string()),
            ("sess", pa.int64()),
            ("dst_ip", pa.string()),
            ("t", pa.int64()),
        ]
    ),
    "dpair": pa.schema(
        [("site", pa.string()), ("dst_ip", pa.string()), ("port", pa.int32()), ("last_ts", pa.int64())]
    ),
    "dist_meta": pa.schema(
        [
            ("site", pa.string()),
            ("dst_ip", pa.string()),
            ("blk", pa.int32()),
            ("sess", pa.int64()),
            ("last_ts", pa.int64()),
            ("lb", pa.bool_()),
        ]
    ),
    "dist_ports": pa.schema(
        [
            ("site", pa.string()),
            ("dst_ip", pa.string()),
            ("blk", pa.int32()),
            ("sess", pa.int64()),
            ("port", pa.int32()),
            ("t", pa.int64()),
            ("src_ip", pa.string()),
        ]
    ),
}


def scan_id(kind: str, key: tuple[object, ...], start_us: int) -> str:
    """The id of a tracked scan: its kind, defining key and first event time."""
    text = "\x1f".join([kind, *(str(k) for k in key), "t", str(start_us)])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _order(tau: float | None, min_abs_tau: float) -> str | None:
    if tau is None:
        return None
    return "ascending" if tau >= min_abs_tau else "descending" if tau <= -min_abs_tau else "random"


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
        self.state: dict[str, pa.Table] = {k: s.empty_table() for k, s in STATE.items()}
        self.stats = DetectStats()
        self._idle: dict[str, pa.Table] = {}

    # ---- checkpoints ----------------------------------------------------------------------

    def _ckpt(self, day_us: int) -> Path:
        assert self.root is not None
        return self.root / f"{day_us:020d}"

    def start(self, t_us: int) -> int:
        """Begin at the day boundary at or before t_us; return it (events are needed from there)."""
        day = (t_us // DAY_US) * DAY_US
        self.upto = day
        self.state = {k: s.empty_table() for k, s in STATE.items()}
        if self.root is not None:
            path = self._ckpt(day)
            if not path.is_dir():
                # A save killed between moving the old checkpoint aside and renaming the new one in.
                path = self.root / f".{path.name}.old"
            if path.is_dir():
                self.state = {k: pq.read_table(path / f"{k}.parquet").cast(s) for k, s in STATE.items()}
        return day

    def _save(self, day_us: int) -> None:
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        final = self._ckpt(day_us)
        tmp = self.root / f".{final.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for k, table in self.state.items():
            pq.write_table(table, tmp / f"{k}.parquet", compression="zstd")
            with open(tmp / f"{k}.parquet", "rb") as fh:
                os.fsync(fh.fileno())
        # The checkpoint is a directory of files, so it is swapped whole (as compaction swaps
        # hours): the old one is moved aside first, so a crash leaves one or the other.
        old = self.root / f".{final.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        durable.fsync_dir(self.root)
        shutil.rmtree(old, ignore_errors=True)
        kept = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for old in kept[: -self.cfg.track_checkpoints_kept]:
            shutil.rmtree(old, ignore_errors=True)

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
            slow = self._slow(con, hi)
            dist = self._distributed(con, hi)
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
        ek = _key(e)
        sk = _key(meta)
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
            singles = _plain_sessions(e.filter(single).append_column("k", pc.filter(ek, single)), hi, idle)
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
            act = pc.is_in(_key(t), value_set=active_keys)
            passive[k] = t.filter(act)
            self._idle[k] = t.filter(pc.invert(act))
        return e_slow, singles, passive

    def _sessions(self, con: Any, keys: str, meta: str, events: str, idle_us: int, out: str) -> None:
        """Cut each key's events into sessions at gaps > idle, continuing the open ones in meta."""
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT * EXCLUDE (st, o) FROM ("
            f"SELECT *, max(st) OVER (PARTITION BY {keys} ORDER BY ts, o ROWS UNBOUNDED PRECEDING) AS sess "
            f"FROM (SELECT *, CASE WHEN o = 0 THEN st0 WHEN ts - lag(ts) OVER (PARTITION BY {keys} "
            f"ORDER BY ts, o) <= {idle_us} THEN NULL ELSE ts END AS st FROM ("
            f"SELECT {keys}, last_ts AS ts, 0 AS o, sess AS st0 FROM {meta} UNION ALL "
            f"SELECT {keys}, ts, 1 AS o, NULL::BIGINT AS st0 FROM {events}))) WHERE o = 1"
        )

    def _slow(self, con: Any, hi: int) -> pa.Table:
        c = self.cfg
        idle = int(c.slow_idle_s * US)
        k = "site, src_ip"
        # Sessions are decided per distinct (key, ts); events join back to them.
        con.execute(f"CREATE OR REPLACE TEMP TABLE kt AS SELECT DISTINCT {k}, ts FROM e_slow")
        self._sessions(con, k, "src_meta", "kt", idle, "kts")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE es AS SELECT e.*, s.sess FROM e_slow e JOIN kts s USING ({k}, ts)"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE nm AS SELECT site, src_ip, sess, max(last_ts) AS last_ts, "
            "sum(packets)::BIGINT AS packets, bool_or(lb) AS lb, bool_or(touched) AS touched, "
            "bool_or(NOT touched) AS was FROM (SELECT *, false AS touched FROM src_meta UNION ALL "
            "SELECT site, src_ip, sess, max(ts), sum(cnt), bool_or(lb), true FROM es GROUP BY ALL) "
            "GROUP BY ALL"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE np AS SELECT site, src_ip, sess, port, min(t) AS t FROM ("
            "SELECT * FROM src_ports UNION ALL SELECT site, src_ip, sess, port, ts FROM es) GROUP BY ALL"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE nt AS SELECT site, src_ip, sess, dst_ip, min(t) AS t FROM ("
            "SELECT * FROM src_targets UNION ALL SELECT site, src_ip, sess, dst_ip, ts FROM es) GROUP BY ALL"
        )
        widest = con.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM nt GROUP BY site, src_ip, sess)")
        if (widest.fetchall()[0][0] or 0) > c.track_max_targets:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE nt AS SELECT * FROM nt QUALIFY row_number() OVER "
                f"(PARTITION BY site, src_ip, sess ORDER BY t, dst_ip) <= {c.track_max_targets}"
            )
        # Open: the key's newest session, and an event at hi could still continue it.
        con.execute(
            "CREATE OR REPLACE TEMP TABLE nm AS SELECT *, sess = max(sess) OVER (PARTITION BY site, src_ip) "
            f"AND {hi} - last_ts <= {idle} AS open FROM nm"
        )
        fast_p = c.vertical_min_ports / (c.vertical_window_s * US)
        fast_t = c.horizontal_min_targets / (c.horizontal_window_s * US)
        span = int(c.slow_min_span_s * US)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE summ AS SELECT m.*, p.n AS nports, p.pmin, p.pmax, p.first_ts, "
            "t.n AS ntargets FROM nm m JOIN (SELECT site, src_ip, sess, count(*) AS n, "
            "min(port) AS pmin, max(port) AS pmax, min(t) AS first_ts FROM np GROUP BY ALL) p "
            "USING (site, src_ip, sess) JOIN (SELECT site, src_ip, sess, count(*) AS n FROM nt "
            "GROUP BY ALL) t "
            f"USING (site, src_ip, sess) WHERE (m.touched OR (m.was AND NOT m.open)) AND "
            f"(p.n >= {c.slow_min_ports} OR t.n >= {c.slow_min_targets})"
        )
        # The time a session reached a threshold, computed for the few over one.
        con.execute(
            "CREATE OR REPLACE TEMP TABLE summ AS SELECT s.*, p.tp, t.tt FROM summ s "
            f"JOIN (SELECT site, src_ip, sess, list(t ORDER BY t)[{c.slow_min_ports}] AS tp FROM np "
            "SEMI JOIN summ USING (site, src_ip, sess) GROUP BY ALL) p USING (site, src_ip, sess) "
            f"JOIN (SELECT site, src_ip, sess, list(t ORDER BY t)[{c.slow_min_targets}] AS tt FROM nt "
            "SEMI JOIN summ USING (site, src_ip, sess) GROUP BY ALL) t USING (site, src_ip, sess)"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE hits AS SELECT *, "
            f"CASE WHEN nports >= {c.slow_min_ports} AND (nports - 1)::DOUBLE / (last_ts - first_ts) < "
            f"{fast_p!r} THEN tp END AS dp, "
            f"CASE WHEN ntargets >= {c.slow_min_targets} AND (ntargets - 1)::DOUBLE / (last_ts - first_ts) < "
            f"{fast_t!r} THEN tt END AS dt FROM summ WHERE last_ts - first_ts >= {span}"
        )
        con.execute("DELETE FROM hits WHERE dp IS NULL AND dt IS NULL")
        taus = self._taus(con, "np", "hits", "site, src_ip, sess")
        rows = con.execute(
            "SELECT h.site, h.src_ip, h.sess, h.last_ts, h.packets, h.lb, h.open, h.nports, h.pmin, "
            "h.pmax, h.ntargets, least(coalesce(h.dp, h.dt), coalesce(h.dt, h.dp)), "
            f"h.ntargets >= {c.track_max_targets} "
            "FROM hits h ORDER BY h.site, h.src_ip, h.sess"
        ).fetchall()
        recs = []
        for site, src, sess, last, packets, lb, is_open, nports, pmin, pmax, ntargets, det, capped in rows:
            score = max(nports / c.slow_min_ports, ntargets / c.slow_min_targets)
            recs.append(
                self._rec(
                    "slow",
                    (site, src),
                    site,
                    [src],
                    sess,
                    last,
                    det,
                    pmin,
                    pmax,
                    nports,
                    ntargets,
                    packets,
                    score,
                    bool(lb or capped),
                    is_open,
                    taus.get((site, src, sess)),
                    distributed=False,
                )
            )
        # The new state: open sessions only.
        con.execute(
            "CREATE OR REPLACE TEMP TABLE src_meta AS SELECT site, src_ip, sess, last_ts, packets, lb "
            "FROM nm WHERE open"
        )
        for name, src in (("src_ports", "np"), ("src_targets", "nt")):
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT x.* FROM {src} x "
                "SEMI JOIN src_meta m USING (site, src_ip, sess)"
            )
        return records_table(recs)

    def _distributed(self, con: Any, hi: int) -> pa.Table:
        c = self.cfg
        mem, idle = int(c.slow_idle_s * US), int(c.distributed_idle_s * US)
        shift = c.distributed_block_ports.bit_length() - 1
        # Events probing a (dst, port) not probed within the port memory: "new" to the target.
        con.execute(
            "CREATE OR REPLACE TEMP TABLE q AS SELECT site, dst_ip, port, ts, src_ip, lb FROM ("
            "SELECT *, lag(ts) OVER (PARTITION BY site, dst_ip, port ORDER BY ts, o, src_ip) AS prev FROM ("
            "SELECT site, dst_ip, port, last_ts AS ts, NULL::VARCHAR AS src_ip, false AS lb, 0 AS o "
            "FROM dpair "
            "UNION ALL SELECT site, dst_ip, port, ts, src_ip, lb, 1 FROM e)) "
            f"WHERE o = 1 AND (prev IS NULL OR ts - prev > {mem})"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE dpair AS SELECT site, dst_ip, port, max(last_ts) AS last_ts FROM ("
            "SELECT * FROM dpair UNION ALL SELECT site, dst_ip, port, max(ts) FROM e GROUP BY ALL) "
            f"GROUP BY ALL HAVING max(last_ts) >= {hi - mem}"
        )
        k = "site, dst_ip, blk"
        con.execute(f"CREATE OR REPLACE TEMP TABLE q AS SELECT *, (port >> {shift})::INTEGER AS blk FROM q")
        con.execute(f"CREATE OR REPLACE TEMP TABLE kt AS SELECT DISTINCT {k}, ts FROM q")
        self._sessions(con, k, "dist_meta", "kt", idle, "kts")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE qs AS SELECT q.*, s.sess FROM q JOIN kts s USING ({k}, ts)"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE dm AS SELECT {k}, sess, max(last_ts) AS last_ts, "
            "bool_or(lb) AS lb, bool_or(touched) AS touched, bool_or(NOT touched) AS was FROM ("
            "SELECT *, false AS touched "
            f"FROM dist_meta UNION ALL SELECT {k}, sess, max(ts), bool_or(lb), true FROM qs GROUP BY ALL) "
            "GROUP BY ALL"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE dm AS SELECT *, sess = max(sess) OVER (PARTITION BY {k}) "
            f"AND {hi} - last_ts <= {idle} AS open FROM dm"
        )
        # A port stays credited to its first prober (ties: the smallest address).
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE dp AS SELECT {k}, sess, port, t, src_ip FROM ("
            f"SELECT * FROM dist_ports UNION ALL SELECT {k}, sess, port, ts, src_ip FROM qs) "
            f"QUALIFY row_number() OVER (PARTITION BY {k}, sess, port ORDER BY t, src_ip) = 1"
        )
        # Light sources: credited with fewer ports than a slow scan; only their ports count.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE lp AS SELECT * FROM dp SEMI JOIN (SELECT {k}, sess FROM dm "
            f"WHERE touched OR (was AND NOT open)) USING ({k}, sess) "
            f"QUALIFY count(*) OVER (PARTITION BY {k}, sess, src_ip) < {c.slow_min_ports}"
        )
        fast_p = c.vertical_min_ports / (c.vertical_window_s * US)
        span = int(c.slow_min_span_s * US)
        rows = con.execute(
            f"SELECT {k}, sess, count(*) AS n, count(DISTINCT src_ip) AS ns, min(port), max(port), min(t), "
            f"max(t), list(t ORDER BY t)[{c.distributed_min_ports}], list(DISTINCT src_ip ORDER BY src_ip) "
            f"FROM lp GROUP BY ALL HAVING count(*) >= {c.distributed_min_ports} AND "
            f"count(DISTINCT src_ip) >= {c.distributed_min_sources} AND max(t) - min(t) >= {span} AND "
            f"(count(*) - 1)::DOUBLE / (max(t) - min(t)) < {fast_p!r} ORDER BY {k}, sess"
        ).fetchall()
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE lp AS SELECT lp.* FROM lp SEMI JOIN (SELECT {k}, sess "
            f"FROM lp GROUP BY ALL HAVING count(*) >= {c.distributed_min_ports}) USING ({k}, sess)"
        )
        taus = self._taus(con, "lp", "lp", f"{k}, sess")
        meta = {
            (r[0], r[1], r[2], r[3]): (bool(r[4]), bool(r[5]))
            for r in con.execute(f"SELECT {k}, sess, lb, open FROM dm").fetchall()
        }
        recs = []
        for site, dst, blk, sess, n, _ns, pmin, pmax, first, last, det, sources in rows:
            lb, is_open = meta[(site, dst, blk, sess)]
            score = n / c.distributed_min_ports
            rec = self._rec(
                "distributed",
                (site, dst, blk),
                site,
                list(sources),
                sess,
                last,
                det,
                pmin,
                pmax,
                n,
                1,
                n,
                score,
                lb,
                is_open,
                taus.get((site, dst, blk, sess)),
                distributed=True,
            )
            rec["first_ts"] = first
            recs.append(rec)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE dist_meta AS SELECT {k}, sess, last_ts, lb FROM dm WHERE open"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE dist_ports AS SELECT * FROM dp SEMI JOIN dist_meta "
            f"USING ({k}, sess)"
        )
        return records_table(recs)

    def _taus(self, con: Any, table: str, hit: str, keys: str) -> dict[tuple[Any, ...], float]:
        """Kendall tau of port vs first-hit time over each hit session's first slow_max_points ports."""
        on = " AND ".join(f"a.{x.strip()} = b.{x.strip()}" for x in keys.split(","))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE fp AS SELECT {keys}, port, t FROM {table} "
            f"SEMI JOIN (SELECT DISTINCT {keys} FROM {hit}) USING ({keys}) "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY t, port) <= {self.cfg.slow_max_points}"
        )
        rows = con.execute(
            f"SELECT {', '.join('a.' + x.strip() for x in keys.split(','))}, "
            f"sum(sign(b.t - a.t))::DOUBLE / count(*) FROM fp a JOIN fp b ON {on} AND a.port < b.port "
            "GROUP BY ALL"
        ).fetchall()
        return {tuple(r[:-1]): float(r[-1]) for r in rows}

    def _rec(
        self,
        kind: str,
        key: tuple[Any, ...],
        site: str,
        sources: list[str],
        sess: int,
        last: int,
        det: int,
        pmin: int,
        pmax: int,
        nports: int,
        ntargets: int,
        packets: int,
        score: float,
        lb: bool,
        is_open: bool,
        tau: float | None,
        distributed: bool,
    ) -> dict[str, Any]:
        return {
            "scan_id": scan_id(kind, key, sess),
            "kind": kind,
            "site": site,
            "sources": sources,
            "first_ts": sess,
            "last_ts": last,
            "detected_at": det,
            "port_min": pmin,
            "port_max": pmax,
            "distinct_ports": nports,
            "distinct_targets": ntargets,
            "packets": packets,
            "sites": [site],
            "score": round(score, 4),
            "lower_bound": lb,
            "status": "open" if is_open else "closed",
            "epoch_start": (sess // DAY_US) * DAY_US,
            "order": _order(tau, self.cfg.slow_min_abs_tau),
            "tau": None if tau is None else round(tau, 4),
            "days_spanned": days_spanned(sess, last),
            "distributed": distributed,
        }

    def _bound_state(self) -> None:
        con = connect(self.cfg, threads=1)
        try:
            for k, table in self.state.items():
                con.register(f"{k}_arrow", table)
                con.execute(f"CREATE TEMP TABLE {k} AS SELECT * FROM {k}_arrow")
            self._bound(con)
            self.state = {k: con.sql(f"SELECT * FROM {k}").to_arrow_table().cast(s) for k, s in STATE.items()}
        finally:
            con.close()

    def _bound(self, con: Any) -> None:
        """Evict the sessions with the fewest ports until the state fits track_max_rows."""
        cap = self.cfg.track_max_rows
        sizes = {k: int(con.execute(f"SELECT count(*) FROM {k}").fetchall()[0][0]) for k in STATE}
        over = sum(sizes.values()) - cap
        if over <= 0:
            return
        # Port memory first (it only guards against background re-hits), oldest first.
        drop = min(over, sizes["dpair"])
        if drop:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE dpair AS SELECT * FROM dpair ORDER BY last_ts DESC "
                f"LIMIT {sizes['dpair'] - drop}"
            )
            over -= drop
        for kind, meta, parts, keys in (
            ("slow", "src_meta", ("src_ports", "src_targets"), "site, src_ip, sess"),
            ("distributed", "dist_meta", ("dist_ports",), "site, dst_ip, blk, sess"),
        ):
            if over <= 0:
                break
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE sz AS SELECT {keys}, sum(n) AS n, sum(np) AS np FROM ("
                + " UNION ALL ".join(
                    f"SELECT {keys}, count(*) + {1 if i == 0 else 0} AS n, "
                    f"{'count(*)' if i == 0 else '0'} AS np FROM {p} GROUP BY ALL"
                    for i, p in enumerate(parts)
                )
                + f") GROUP BY ALL ORDER BY np, {keys}"
            )
            con.execute(
                "CREATE OR REPLACE TEMP TABLE gone AS SELECT * FROM (SELECT *, sum(n) OVER "
                f"(ORDER BY np, {keys} ROWS UNBOUNDED PRECEDING) - n AS before FROM sz) WHERE before < {over}"
            )
            dropped, rows = con.execute("SELECT count(*), coalesce(sum(n), 0) FROM gone").fetchall()[0]
            for t in (meta, *parts):
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {t} AS SELECT * FROM {t} ANTI JOIN gone USING ({keys})"
                )
            self.stats.dropped_keys[kind] = self.stats.dropped_keys.get(kind, 0) + int(dropped)
            over -= int(rows)


def _plain_sessions(one: pa.Table, hi: int, idle: int) -> dict[str, pa.Table]:
    """State rows of sources probing one port of one target: the newest session, if still open.

    Their sessions never hold two ports or two targets, so none is a scan; only the last
    one can continue into later chunks. Cut at gaps > idle as ``_sessions`` does.
    """
    one = one.sort_by([("k", "ascending"), ("ts", "ascending")])
    n = one.num_rows
    if n == 0:
        return {k: STATE[k].empty_table() for k in ("src_meta", "src_ports", "src_targets")}
    k = one.column("k")
    ts = one.column("ts").to_numpy()
    newk = np.ones(n, dtype=bool)
    newk[1:] = pc.not_equal(k.slice(1), k.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    start = newk.copy()
    start[1:] |= (ts[1:] - ts[:-1]) > idle
    seg = np.flatnonzero(start)
    last = np.flatnonzero(np.append(newk[1:], True))
    last_seg = (np.cumsum(start) - 1)[last]
    sess = ts[seg][last_seg]
    packets = np.add.reduceat(pc.fill_null(one.column("cnt"), 0).to_numpy(), seg)[last_seg]
    lb = np.maximum.reduceat(one.column("lb").to_numpy(zero_copy_only=False).astype(np.int8), seg)[last_seg]
    keep = (hi - ts[last]) <= idle
    rows = one.take(pa.array(last[keep]))
    sess, packets, lb = pa.array(sess[keep]), pa.array(packets[keep]), pa.array(lb[keep] > 0)
    site, src, t_last = rows.column("site"), rows.column("src_ip"), rows.column("ts")
    return {
        "src_meta": pa.table([site, src, sess, t_last, packets, lb], schema=STATE["src_meta"]),
        "src_ports": pa.table(
            [site, src, sess, pc.cast(rows.column("port"), pa.int32()), sess], schema=STATE["src_ports"]
        ),
        "src_targets": pa.table([site, src, sess, rows.column("dst_ip"), sess], schema=STATE["src_targets"]),
    }


def _key(t: pa.Table) -> pa.ChunkedArray:
    """One string per (site, src_ip), for membership tests in Arrow."""
    return pc.binary_join_element_wise(t.column("site"), t.column("src_ip"), "\x1f")


def day_of(t_us: int) -> dt.date:
    return dt.datetime.fromtimestamp(t_us / US, dt.UTC).date()


__all__ = ["SCAN_SCHEMA", "TRACK_KINDS", "SlowTracker", "day_of", "scan_id"]
