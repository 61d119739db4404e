"""The session SQL of persistent tracking: events -> sessions -> scan records (DuckDB).

``slow`` and ``distributed`` run over the temp tables ``SlowTracker`` loads into one
connection (the state tables and the chunk's events, see ``pipeline.detect.trackstate``),
return the records of the sessions the chunk changed, and leave the new state in the
same tables. The definitions (sessions, thresholds, port order) are in
``pipeline.detect.slowtrack``'s docstring.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from pipeline.config import DetectConfig
from pipeline.detect.records import US, days_spanned, records_table
from pipeline.detect.trackstate import DAY_US


def scan_id(kind: str, key: tuple[object, ...], start_us: int) -> str:
    """The id of a tracked scan: its kind, defining key and first event time."""
    text = "\x1f".join([kind, *(str(k) for k in key), "t", str(start_us)])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _order(tau: float | None, min_abs_tau: float) -> str | None:
    if tau is None:
        return None
    return "ascending" if tau >= min_abs_tau else "descending" if tau <= -min_abs_tau else "random"


class SessionQueries:
    """The SQL of the slow and distributed sessions, for one configuration."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg

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

    def slow(self, con: Any, hi: int) -> pa.Table:
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

    def distributed(self, con: Any, hi: int) -> pa.Table:
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
