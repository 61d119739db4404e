"""The detectors: event-time grid evaluation in DuckDB, one SQL pipeline per kind.

Semantics (the same for replay and live, see ``pipeline.detect``):

* Each kind has a sliding window W and a grid step S. At every grid point ``b``
  (a multiple of S since the Unix epoch, in event time) the kind's measure is
  computed over the events with ``b - W <= ts < b``, per key. A grid point whose
  measure reaches the threshold is "hot".
* Consecutive hot grid points of one key form an island; an island is one scan.
  Islands never cross an epoch boundary (``fast_epoch_s`` / ``slow_epoch_s``),
  so an epoch can be evaluated on its own: that is what makes the live path
  (re-evaluate the current epoch up to the watermark) produce the very records
  replay produces (evaluate whole epochs).
* A scan's record summarises the key's events in ``[first_b - W, last_b)``; its
  id hashes kind, key, epoch and first grid point, so re-evaluation rewrites the
  same record rather than adding one. An island touching the evaluated end is
  ``open`` (it may grow); every other island is ``closed`` and final.

Every query is bounded: keys that cannot reach a threshold in the evaluated range
are dropped before any grid expansion, and at most ``max_candidate_keys`` keys per
kind survive (the rest are counted and the run marked flooded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import DetectConfig
from pipeline.detect.records import (
    KINDS,
    SCAN_SCHEMA,
    US,
    DetectStats,
    days_spanned,
    epoch_scan_id,
    records_table,
)

FAST_KINDS: Final = ("vertical", "horizontal", "coordinated")
SLOW_KINDS: Final = ("hammer",)  # grid kinds on the slow epoch; slow/distributed: pipeline.detect.slowtrack


@dataclass(frozen=True)
class KindSpec:
    kind: str
    keys: tuple[str, ...]
    window_us: int
    step_us: int
    epoch_us: int


def kind_specs(cfg: DetectConfig) -> dict[str, KindSpec]:
    fast_e, slow_e = int(cfg.fast_epoch_s * US), int(cfg.slow_epoch_s * US)
    v_step = int(cfg.vertical_step_s * US)
    return {
        "vertical": KindSpec(
            "vertical", ("site", "src_ip", "dst_ip"), int(cfg.vertical_window_s * US), v_step, fast_e
        ),
        "horizontal": KindSpec(
            "horizontal",
            ("site", "src_ip", "dst_port"),
            int(cfg.horizontal_window_s * US),
            int(cfg.horizontal_step_s * US),
            fast_e,
        ),
        "coordinated": KindSpec(
            "coordinated", ("site", "dst_ip"), int(cfg.coordinated_window_s * US), v_step, fast_e
        ),
        "hammer": KindSpec(
            "hammer",
            ("site", "src_ip", "dst_port"),
            int(cfg.hammer_window_s * US),
            int(cfg.hammer_step_s * US),
            slow_e,
        ),
    }


def lookback_us(cfg: DetectConfig) -> int:
    """How far before an epoch's start its evaluation reads events."""
    return max(s.window_us for s in kind_specs(cfg).values())


def connect(cfg: DetectConfig, threads: int | None = None) -> Any:
    import duckdb

    n = threads or cfg.duckdb_threads
    return duckdb.connect(config={"threads": n, "memory_limit": f"{cfg.duckdb_memory_mb}MB"})


def points(events: pa.Table, cfg: DetectConfig) -> pa.Table:
    """The columns detection needs, time as integer microseconds, the lower-bound flag."""
    prefix = events.column("prefix") if "prefix" in events.column_names else None
    lb = pc.is_in(events.column("site"), value_set=pa.array(list(cfg.rate_limited_sites), pa.string()))
    if prefix is not None:
        for p in cfg.rate_limited_prefixes:
            hit = pc.fill_null(pc.match_substring(prefix, p, ignore_case=True), False)
            lb = pc.or_(lb, hit)
    ts_us = pc.cast(pc.cast(events.column("ts"), pa.timestamp("us", tz="UTC")), pa.int64())
    cnt = events.column("count") if "count" in events.column_names else pa.array([1] * events.num_rows)
    return pa.table(
        {
            "site": events.column("site"),
            "src_ip": events.column("src_ip"),
            "dst_ip": events.column("dst_ip"),
            "dst_port": events.column("dst_port"),
            "ts_us": ts_us,
            "cnt": pc.cast(cnt, pa.int64()),
            "lb": lb,
        }
    )


class Detector:
    """Evaluates grid points in ``(start_us, end_us]`` for each kind over a points table.

    ``start_us`` must lie on every evaluated kind's epoch boundary, and the points
    must cover ``[start_us - lookback_us(cfg), end_us)``.
    """

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self.specs = kind_specs(cfg)
        self.stats = DetectStats()

    def run(self, pts: pa.Table, starts: dict[str, int], end_us: int) -> pa.Table:
        con = connect(self.cfg)
        try:
            con.register("pts_arrow", pts)
            con.execute("CREATE TEMP TABLE pts AS SELECT * FROM pts_arrow WHERE dst_port IS NOT NULL")
            n, approx = con.execute("SELECT count(*), approx_count_distinct(src_ip) FROM pts").fetchone()
            self.stats.events += int(n)
            self.stats.approx_sources = max(self.stats.approx_sources, int(approx or 0))
            out: list[pa.Table] = []
            for kind, start in sorted(starts.items()):
                if start >= end_us:
                    continue
                spec = self.specs[kind]
                if start % spec.epoch_us:
                    raise ValueError(f"{kind}: start {start} is not on an epoch boundary")
                table = getattr(self, f"_{kind}")(con, spec, start, end_us)
                self.stats.scans[kind] = self.stats.scans.get(kind, 0) + table.num_rows
                out.append(table)
        finally:
            con.close()
        if not out:
            return SCAN_SCHEMA.empty_table()
        return pa.concat_tables(out).sort_by([("first_ts", "ascending"), ("scan_id", "ascending")])

    # ---- shared steps ---------------------------------------------------------------------

    def _candidates(
        self, con: Any, kind: str, keys: Sequence[str], measure: str, having: str, lo: int, end: int
    ) -> None:
        """Keys able to reach the threshold in the range; capped, highest measure first."""
        k = ", ".join(keys)
        cap = self.cfg.max_candidate_keys
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE cand AS SELECT {k}, {measure} AS m FROM pts "
            f"WHERE ts_us >= {lo} AND ts_us < {end} GROUP BY {k} HAVING {having}"
        )
        total = con.execute("SELECT count(*) FROM cand").fetchone()[0]
        self.stats.candidates[kind] = self.stats.candidates.get(kind, 0) + int(total)
        dropped = max(0, int(total) - cap)
        self.stats.dropped_keys[kind] = self.stats.dropped_keys.get(kind, 0) + dropped
        if dropped:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE cand AS SELECT * FROM cand ORDER BY m DESC, {k} LIMIT {cap}"
            )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE ev AS SELECT p.* FROM pts p SEMI JOIN cand c USING ({k}) "
            f"WHERE p.ts_us >= {lo} AND p.ts_us < {end}"
        )

    @staticmethod
    def _grid(spec: KindSpec, start: int, end: int) -> str:
        """Grid points whose window holds the event: b - W <= ts < b, start < b <= end."""
        s, w = spec.step_us, spec.window_us
        return (
            f"unnest(generate_series(greatest((ts_us // {s} + 1) * {s}, ({start} // {s} + 1) * {s}), "
            f"least(((ts_us + {w}) // {s}) * {s}, ({end} // {s}) * {s}), {s})) AS b"
        )

    def _islands(self, con: Any, spec: KindSpec) -> None:
        """hot(keys, b, n) -> islands(keys, epoch, first_b, last_b, peak)."""
        k = ", ".join(spec.keys)
        s, e = spec.step_us, spec.epoch_us
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE islands AS SELECT {k}, epoch, min(b) AS first_b, "
            f"max(b) AS last_b, max(n) AS peak FROM (SELECT *, (b - 1) // {e} AS epoch, "
            f"b // {s} - row_number() OVER (PARTITION BY {k}, (b - 1) // {e} ORDER BY b) AS isl "
            f"FROM hot) GROUP BY {k}, epoch, isl"
        )

    def _records(
        self, con: Any, spec: KindSpec, end: int, threshold: float, src_filter: str = ""
    ) -> pa.Table:
        """One record per island from the key's events in [first_b - W, last_b)."""
        on = " AND ".join(f"i.{c} = e.{c}" for c in spec.keys)
        ik = ", ".join(f"i.{c}" for c in spec.keys)
        w, e = spec.window_us, spec.epoch_us
        rows = con.execute(
            f"SELECT {ik}, i.epoch, i.first_b, i.last_b, i.peak, min(e.ts_us), max(e.ts_us), "
            f"min(e.dst_port), max(e.dst_port), count(DISTINCT e.dst_port), count(DISTINCT e.dst_ip), "
            f"list(DISTINCT e.src_ip ORDER BY e.src_ip), sum(e.cnt), bool_or(e.lb) "
            f"FROM islands i JOIN ev e ON {on} AND e.ts_us >= i.first_b - {w} AND e.ts_us < i.last_b "
            f"{src_filter} GROUP BY {ik}, i.epoch, i.first_b, i.last_b, i.peak ORDER BY {ik}, i.first_b"
        ).fetchall()
        nk = len(spec.keys)
        recs: dict[str, list[Any]] = {f.name: [] for f in SCAN_SCHEMA}
        for r in rows:
            key, (epoch, first_b, last_b, peak) = r[:nk], r[nk : nk + 4]
            ts0, ts1, pmin, pmax, nports, ntargets, sources, packets, lb = r[nk + 4 :]
            epoch_end = (epoch + 1) * e
            if ts1 < epoch * e:
                # The window still reaches back over a scan the previous epoch reported.
                continue
            closed = last_b < (end // spec.step_us) * spec.step_us or last_b >= epoch_end
            recs["scan_id"].append(epoch_scan_id(spec.kind, key, epoch, first_b))
            recs["kind"].append(spec.kind)
            recs["site"].append(key[0])
            recs["sources"].append(list(sources))
            recs["first_ts"].append(ts0)
            recs["last_ts"].append(ts1)
            recs["detected_at"].append(first_b)
            recs["port_min"].append(pmin)
            recs["port_max"].append(pmax)
            recs["distinct_ports"].append(nports)
            recs["distinct_targets"].append(ntargets)
            recs["packets"].append(packets)
            recs["sites"].append([key[0]])
            recs["score"].append(round(float(peak) / threshold, 4))
            recs["lower_bound"].append(bool(lb))
            recs["status"].append("closed" if closed else "open")
            recs["epoch_start"].append(epoch * e)
            recs["order"].append(None)
            recs["tau"].append(None)
            recs["days_spanned"].append(days_spanned(ts0, ts1))
            recs["distributed"].append(spec.kind == "coordinated")
        n = len(recs["scan_id"])
        return records_table([{k: v[i] for k, v in recs.items()} for i in range(n)])

    def _distinct_kind(
        self, con: Any, spec: KindSpec, start: int, end: int, value: str, threshold: int
    ) -> None:
        """Grid + islands for kinds measured as distinct values of one column per key."""
        lo = start - spec.window_us
        k = ", ".join(spec.keys)
        self._candidates(
            con,
            spec.kind,
            spec.keys,
            f"count(DISTINCT {value})",
            f"count(DISTINCT {value}) >= {threshold}",
            lo,
            end,
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE hot AS SELECT {k}, b, count(DISTINCT v) AS n FROM "
            f"(SELECT {k}, {value} AS v, {self._grid(spec, start, end)} FROM ev) "
            f"GROUP BY {k}, b HAVING count(DISTINCT v) >= {threshold}"
        )
        self._islands(con, spec)

    # ---- kinds -----------------------------------------------------------------------------

    def _vertical(self, con: Any, spec: KindSpec, start: int, end: int) -> pa.Table:
        t = self.cfg.vertical_min_ports
        self._distinct_kind(con, spec, start, end, "dst_port", t)
        return self._records(con, spec, end, t)

    def _horizontal(self, con: Any, spec: KindSpec, start: int, end: int) -> pa.Table:
        t = self.cfg.horizontal_min_targets
        self._distinct_kind(con, spec, start, end, "dst_ip", t)
        return self._records(con, spec, end, t)

    def _hammer(self, con: Any, spec: KindSpec, start: int, end: int) -> pa.Table:
        c = self.cfg
        lo = start - spec.window_us
        k = ", ".join(spec.keys)
        s = spec.step_us
        self._candidates(
            con,
            "hammer",
            spec.keys,
            "sum(cnt)",
            f"sum(cnt) >= {c.hammer_min_hits} AND count(DISTINCT ts_us // {s}) >= "
            f"{c.hammer_min_active_slots}",
            lo,
            end,
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE hot AS SELECT {k}, b, count(DISTINCT slot) AS n FROM "
            f"(SELECT {k}, cnt, ts_us // {s} AS slot, {self._grid(spec, start, end)} FROM ev) "
            f"GROUP BY {k}, b HAVING sum(cnt) >= {c.hammer_min_hits} "
            f"AND count(DISTINCT slot) >= {c.hammer_min_active_slots}"
        )
        self._islands(con, spec)
        return self._records(con, spec, end, c.hammer_min_active_slots)

    def _coordinated(self, con: Any, spec: KindSpec, start: int, end: int) -> pa.Table:
        c = self.cfg
        lo = start - spec.window_us
        mps, vt = c.coordinated_min_ports_per_source, c.vertical_min_ports
        # A source takes part when it adds a few ports to the target, but fewer than a
        # vertical scan: a lone fast scanner is the vertical detector's.
        con.execute(
            "CREATE OR REPLACE TEMP TABLE part AS SELECT site, dst_ip, src_ip FROM pts "
            f"WHERE ts_us >= {lo} AND ts_us < {end} GROUP BY ALL "
            f"HAVING count(DISTINCT dst_port) >= {mps}"
        )
        self._candidates_from(con, "coordinated", lo, end)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE x AS SELECT site, dst_ip, src_ip, dst_port, "
            f"{self._grid(spec, start, end)} FROM ev"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE per_src AS SELECT site, dst_ip, b, src_ip, "
            "count(DISTINCT dst_port) AS n FROM x GROUP BY ALL "
            f"HAVING count(DISTINCT dst_port) >= {mps} AND count(DISTINCT dst_port) < {vt}"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE hot AS SELECT g.site, g.dst_ip, g.b, u.n AS n FROM "
            "(SELECT site, dst_ip, b, count(*) AS ns, sum(n) AS total FROM per_src GROUP BY ALL) g "
            "JOIN (SELECT x.site, x.dst_ip, x.b, count(DISTINCT x.dst_port) AS n FROM x SEMI JOIN per_src p "
            "USING (site, dst_ip, b, src_ip) GROUP BY ALL) u USING (site, dst_ip, b) "
            f"WHERE g.ns >= {c.coordinated_min_sources} AND u.n >= {c.coordinated_min_ports} "
            f"AND u.n::DOUBLE / g.total >= {c.coordinated_min_disjoint}"
        )
        self._islands(con, spec)
        # Only the sources that took part at a hot grid point of the island are the scan's.
        con.execute(
            "CREATE OR REPLACE TEMP TABLE members AS SELECT DISTINCT i.site, i.dst_ip, i.first_b, "
            "p.src_ip FROM islands i JOIN per_src p ON i.site = p.site AND i.dst_ip = p.dst_ip AND "
            "p.b >= i.first_b AND p.b <= i.last_b JOIN hot h ON h.site = p.site AND "
            "h.dst_ip = p.dst_ip AND h.b = p.b"
        )
        return self._records(
            con,
            spec,
            end,
            c.coordinated_min_ports,
            src_filter="AND EXISTS (SELECT 1 FROM members m WHERE m.site = i.site AND "
            "m.dst_ip = i.dst_ip AND m.first_b = i.first_b AND m.src_ip = e.src_ip)",
        )

    def _candidates_from(self, con: Any, kind: str, lo: int, end: int) -> None:
        c = self.cfg
        cap = c.max_candidate_keys
        con.execute(
            "CREATE OR REPLACE TEMP TABLE cand AS SELECT site, dst_ip, count(*) AS m FROM part "
            f"GROUP BY ALL HAVING count(*) >= {c.coordinated_min_sources}"
        )
        total = int(con.execute("SELECT count(*) FROM cand").fetchone()[0])
        self.stats.candidates[kind] = self.stats.candidates.get(kind, 0) + total
        dropped = max(0, total - cap)
        self.stats.dropped_keys[kind] = self.stats.dropped_keys.get(kind, 0) + dropped
        if dropped:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE cand AS SELECT * FROM cand "
                f"ORDER BY m DESC, site, dst_ip LIMIT {cap}"
            )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE ev AS SELECT p.* FROM pts p SEMI JOIN cand c USING (site, dst_ip) "
            "SEMI JOIN part q USING (site, dst_ip, src_ip) "
            f"WHERE p.ts_us >= {lo} AND p.ts_us < {end}"
        )


__all__ = [
    "FAST_KINDS",
    "KINDS",
    "SCAN_SCHEMA",
    "SLOW_KINDS",
    "US",
    "DetectStats",
    "Detector",
    "KindSpec",
    "connect",
    "kind_specs",
    "lookback_us",
    "points",
]
