"""The sessions of persistent tracking in one sorted pass: events + state -> scan records + state.

``SessionPass.run`` takes a chunk's events and the tracker's state tables (see
``pipeline.detect.trackstate``), returns the records of the sessions the chunk changed and
the new state. Vectorised over key-sorted runs (``pipeline.detect.runs``): strings become
order-preserving codes once, each step is one sort (sessions per key, first hit per port,
crediting per port) and run boundaries found by diffs. The definitions (sessions,
thresholds, port order) are in ``pipeline.detect.slowtrack``'s docstring.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import DetectConfig
from pipeline.detect.records import US, days_spanned, records_table
from pipeline.detect.runs import (
    I64,
    Sessions,
    bools,
    encode,
    first_per,
    ints,
    kendall_tau,
    kth_per,
    order_by,
    run_starts,
    sessionize,
    state_gid,
)
from pipeline.detect.trackstate import DAY_US, STATE

PORTS = 65_536


def scan_id(kind: str, key: tuple[object, ...], start_us: int) -> str:
    """The id of a tracked scan: its kind, defining key and first event time."""
    text = "\x1f".join([kind, *(str(k) for k in key), "t", str(start_us)])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _order(tau: float | None, min_abs_tau: float) -> str | None:
    if tau is None:
        return None
    return "ascending" if tau >= min_abs_tau else "descending" if tau <= -min_abs_tau else "random"


@dataclass
class Coded:
    """A chunk's events and the state, strings as codes of one shared dictionary per column."""

    site: dict[str, I64]
    src: dict[str, I64]
    dst: dict[str, I64]
    sites: pa.Array
    srcs: pa.Array
    dsts: pa.Array

    @classmethod
    def of(cls, tables: dict[str, pa.Table]) -> Coded:
        out: list[dict[str, I64]] = []
        dicts: list[pa.Array] = []
        for col in ("site", "src_ip", "dst_ip"):
            names = [n for n, t in tables.items() if col in t.column_names]
            codes, d = encode([tables[n].column(col) for n in names])
            out.append(dict(zip(names, codes, strict=True)))
            dicts.append(d)
        return cls(*out, *dicts)


def _take(d: pa.Array, codes: I64) -> pa.Array:
    return d.take(pa.array(codes))


def _spans(gid: I64, groups: I64) -> tuple[I64, I64]:
    """Row ranges [a, b) of each group in rows sorted by gid."""
    return np.searchsorted(gid, groups), np.searchsorted(gid, groups, side="right")


class SessionPass:
    """The slow and distributed sessions, for one configuration."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self.fast_p = cfg.vertical_min_ports / (cfg.vertical_window_s * US)
        self.fast_t = cfg.horizontal_min_targets / (cfg.horizontal_window_s * US)
        self.span = int(cfg.slow_min_span_s * US)

    def run(self, e: pa.Table, state: dict[str, pa.Table], hi: int) -> tuple[pa.Table, dict[str, pa.Table]]:
        """Events (site, src_ip, dst_ip, port, ts, cnt, lb) of [upto, hi) and the state at upto:
        the records that changed (slow, then distributed) and the state at hi."""
        if e.num_rows:
            # Ports are packed into integer keys below: one out of range would alias another.
            mm = pc.min_max(e.column("port")).as_py()
            if mm["min"] < 0 or mm["max"] >= PORTS:
                raise ValueError(f"destination ports must lie in 0-65535, got {mm['min']}..{mm['max']}")
        codes = Coded.of({"e": e, **state})
        new: dict[str, pa.Table] = {}
        slow = self.slow(e, state, codes, hi, new)
        dist = self.distributed(e, state, codes, hi, new)
        return pa.concat_tables([slow, dist]), new

    # ---- slow: per (site, src) ------------------------------------------------------------

    def slow(
        self, e: pa.Table, st: dict[str, pa.Table], c: Coded, hi: int, new: dict[str, pa.Table]
    ) -> pa.Table:
        cfg = self.cfg
        ns = max(len(c.srcs), 1)
        meta, ports, targets = st["src_meta"], st["src_ports"], st["src_targets"]
        ets = ints(e.column("ts"))
        mkey = c.site["src_meta"] * ns + c.src["src_meta"]
        msess = ints(meta.column("sess"))
        s = sessionize(
            c.site["e"] * ns + c.src["e"],
            ets,
            ints(e.column("cnt")),
            bools(e.column("lb")),
            (
                mkey,
                msess,
                ints(meta.column("last_ts")),
                ints(meta.column("packets")),
                bools(meta.column("lb")),
            ),
            int(cfg.slow_idle_s * US),
            hi,
        )
        g = len(s.key)
        sgs = {
            table: state_gid(
                c.site[table] * ns + c.src[table], ints(st[table].column("sess")), mkey, msess, s.meta_gid
            )
            for table in ("src_ports", "src_targets")
        }
        # Only an open session (state) or one with rows enough to reach a threshold needs its
        # distinct ports and targets: background sessions of a few events skip those sorts.
        n_ev = np.bincount(s.ev_gid, minlength=g)
        need = (
            s.open
            | (n_ev + np.bincount(sgs["src_ports"][sgs["src_ports"] >= 0], minlength=g) >= cfg.slow_min_ports)
            | (
                n_ev + np.bincount(sgs["src_targets"][sgs["src_targets"] >= 0], minlength=g)
                >= cfg.slow_min_targets
            )
        )

        def rows(table: str, item: I64, t: I64) -> tuple[I64, I64, I64]:
            """A session's distinct items (ports or targets), each with its first-hit time."""
            gid = np.concatenate([sgs[table], s.ev_gid])
            ok = gid >= 0
            ok[ok] = need[gid[ok]]
            gid, item, t = gid[ok], item[ok], t[ok]
            g_, i_, t_, _ = first_per(gid, item, t)
            return g_, i_, t_

        p_gid, p_port, p_t = rows(
            "src_ports",
            np.concatenate([ints(ports.column("port")), ints(e.column("port"))]),
            np.concatenate([ints(ports.column("t")), ets]),
        )
        d_gid, d_dst, d_t = rows(
            "src_targets",
            np.concatenate([c.dst["src_targets"], c.dst["e"]]),
            np.concatenate([ints(targets.column("t")), ets]),
        )
        nt = np.bincount(d_gid, minlength=g)
        if g and nt.max() > cfg.track_max_targets:
            # A session keeps its first track_max_targets targets (by time, then address).
            order = np.lexsort((d_dst, d_t, d_gid))
            starts = np.flatnonzero(run_starts(d_gid[order]))
            rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
            keep = np.sort(order[rank < cfg.track_max_targets])
            d_gid, d_dst, d_t = d_gid[keep], d_dst[keep], d_t[keep]
            nt = np.bincount(d_gid, minlength=g)
        npo = np.bincount(p_gid, minlength=g)
        pmin, pmax, first = np.zeros(g, np.int64), np.zeros(g, np.int64), np.zeros(g, np.int64)
        if len(p_gid):
            st_mask = run_starts(p_gid)
            a = np.flatnonzero(st_mask)
            b = np.append(a[1:] - 1, len(p_gid) - 1)
            pmin[p_gid[a]], pmax[p_gid[a]] = p_port[a], p_port[b]
            first[p_gid[a]] = np.minimum.reduceat(p_t, a)
        mp, mt = cfg.slow_min_ports, cfg.slow_min_targets
        cand = np.flatnonzero(
            s.emits & (npo > 0) & (nt > 0) & ((npo >= mp) | (nt >= mt)) & (s.last - first >= self.span)
        )
        dur = (s.last[cand] - first[cand]).astype(np.float64)
        tp, tt = kth_per(p_gid, p_t, mp, cand), kth_per(d_gid, d_t, mt, cand)
        okp = (npo[cand] >= mp) & ((npo[cand] - 1).astype(np.float64) / dur < self.fast_p)
        okt = (nt[cand] >= mt) & ((nt[cand] - 1).astype(np.float64) / dur < self.fast_t)
        big = np.iinfo(np.int64).max
        det = np.minimum(np.where(okp, tp, big), np.where(okt, tt, big))
        hit = okp | okt
        hits, det = cand[hit], det[hit]
        pa_, pb_ = _spans(p_gid, hits)
        recs = []
        for i, gi in enumerate(hits):
            site = c.sites[int(s.key[gi] // ns)].as_py()
            src = c.srcs[int(s.key[gi] % ns)].as_py()
            n_p, n_t = int(npo[gi]), int(nt[gi])
            tau = kendall_tau(p_port[pa_[i] : pb_[i]], p_t[pa_[i] : pb_[i]], cfg.slow_max_points)
            recs.append(
                self._rec(
                    "slow",
                    (site, src),
                    site,
                    [src],
                    int(s.sess[gi]),
                    int(s.last[gi]),
                    int(det[i]),
                    int(pmin[gi]),
                    int(pmax[gi]),
                    n_p,
                    n_t,
                    int(s.packets[gi]),
                    max(n_p / mp, n_t / mt),
                    bool(s.lb[gi] or n_t >= cfg.track_max_targets),
                    bool(s.open[gi]),
                    tau,
                    distributed=False,
                )
            )
        # The new state: open sessions only.
        o = np.flatnonzero(s.open)
        site_o, src_o = s.key[o] // ns, s.key[o] % ns
        new["src_meta"] = pa.table(
            [_take(c.sites, site_o), _take(c.srcs, src_o), s.sess[o], s.last[o], s.packets[o], s.lb[o]],
            schema=STATE["src_meta"],
        )
        for name, gid, item, t in (("src_ports", p_gid, p_port, p_t), ("src_targets", d_gid, d_dst, d_t)):
            live = s.open[gid]
            gk = gid[live]
            key = s.key[gk]
            col = pa.array(item[live].astype(np.int32)) if name == "src_ports" else _take(c.dsts, item[live])
            new[name] = pa.table(
                [_take(c.sites, key // ns), _take(c.srcs, key % ns), s.sess[gk], col, t[live]],
                schema=STATE[name],
            )
        return records_table(recs)

    # ---- distributed: per (site, dst, port block) -----------------------------------------

    def distributed(
        self, e: pa.Table, st: dict[str, pa.Table], c: Coded, hi: int, new: dict[str, pa.Table]
    ) -> pa.Table:
        cfg = self.cfg
        mem, idle = int(cfg.slow_idle_s * US), int(cfg.distributed_idle_s * US)
        shift = cfg.distributed_block_ports.bit_length() - 1
        nblk = PORTS >> shift
        nd = max(len(c.dsts), 1)
        dpair, meta, dports = st["dpair"], st["dist_meta"], st["dist_ports"]
        ets, eport, esrc, elb = (
            ints(e.column("ts")),
            ints(e.column("port")),
            c.src["e"],
            bools(e.column("lb")),
        )
        epk = (c.site["e"] * nd + c.dst["e"]) * PORTS + eport
        dpk = (c.site["dpair"] * nd + c.dst["dpair"]) * PORTS + ints(dpair.column("port"))
        dlast = ints(dpair.column("last_ts"))
        # Events probing a (dst, port) not probed within the port memory: "new" to the target.
        # Time order first (ties: the smallest address, a lower bound first), then its rank is
        # the time within each (dst, port): two short sorts instead of one wide one.
        by_time = order_by(ets, esrc, ~elb)
        rank = np.empty(len(ets), np.int64)
        rank[by_time] = np.arange(len(ets), dtype=np.int64)
        order = order_by(epk, rank)
        k, t = epk[order], ets[order]
        first = run_starts(k)
        fresh = np.zeros(len(k), np.bool_)
        fresh[1:] = t[1:] - t[:-1] > mem
        fi = np.flatnonzero(first)
        if len(dpk):
            by = np.argsort(dpk, kind="stable")
            pos = np.minimum(np.searchsorted(dpk[by], k[fi]), len(dpk) - 1)
            m = by[pos]
            fresh[fi] = (dpk[m] != k[fi]) | (t[fi] - dlast[m] > mem)
        else:
            fresh[fi] = True
        q = order[fresh]
        # The port memory: each (dst, port)'s newest probe, while within the memory.
        last_rows = np.append(fi[1:] - 1, len(k) - 1) if len(k) else np.zeros(0, np.int64)
        mk = np.concatenate([dpk, k[last_rows]])
        mt = np.concatenate([dlast, t[last_rows]])
        mo = order_by(mk)
        mk, mt = mk[mo], mt[mo]
        a = np.flatnonzero(run_starts(mk))
        mk, mt = mk[a], (np.maximum.reduceat(mt, a) if len(a) else mt[a])
        keep = mt >= hi - mem
        mk, mt = mk[keep], mt[keep]
        sd = mk // PORTS
        new["dpair"] = pa.table(
            [_take(c.sites, sd // nd), _take(c.dsts, sd % nd), pa.array((mk % PORTS).astype(np.int32)), mt],
            schema=STATE["dpair"],
        )
        # Sessions per (site, dst, block) over the new-to-the-target events.
        qkey = epk[q] // PORTS * nblk + (eport[q] >> shift)
        mkey = (c.site["dist_meta"] * nd + c.dst["dist_meta"]) * nblk + ints(meta.column("blk"))
        msess = ints(meta.column("sess"))
        zeros = np.zeros(meta.num_rows, np.int64)
        s = sessionize(
            qkey,
            ets[q],
            np.zeros(len(q), np.int64),
            elb[q],
            (mkey, msess, ints(meta.column("last_ts")), zeros, bools(meta.column("lb"))),
            idle,
            hi,
        )
        # A port stays credited to its first prober (ties: the smallest address).
        pkey = (c.site["dist_ports"] * nd + c.dst["dist_ports"]) * nblk + ints(dports.column("blk"))
        sg = state_gid(pkey, ints(dports.column("sess")), mkey, msess, s.meta_gid)
        gid = np.concatenate([sg, s.ev_gid])
        port = np.concatenate([ints(dports.column("port")), eport[q]])
        pt = np.concatenate([ints(dports.column("t")), ets[q]])
        psrc = np.concatenate([c.src["dist_ports"], esrc[q]])
        ok = gid >= 0
        # Only an open session (state) or one with rows enough to reach the threshold.
        need = s.open | (np.bincount(gid[ok], minlength=len(s.key)) >= cfg.distributed_min_ports)
        ok[ok] = need[gid[ok]]
        gid, port, pt, psrc = gid[ok], port[ok], pt[ok], psrc[ok]
        gid, port, pt, psrc = first_per(gid, port, pt, tie=psrc)
        recs = self._dist_records(s, gid, port, pt, psrc, c, nd, nblk)
        keep = s.open[gid]
        gk = gid[keep]
        o = np.flatnonzero(s.open)
        new["dist_meta"] = pa.table(
            [*self._dist_keys(c, s.key[o], nd, nblk), s.sess[o], s.last[o], s.lb[o]],
            schema=STATE["dist_meta"],
        )
        new["dist_ports"] = pa.table(
            [
                *self._dist_keys(c, s.key[gk], nd, nblk),
                s.sess[gk],
                pa.array(port[keep].astype(np.int32)),
                pt[keep],
                _take(c.srcs, psrc[keep]),
            ],
            schema=STATE["dist_ports"],
        )
        return recs

    @staticmethod
    def _dist_keys(c: Coded, key: I64, nd: int, nblk: int) -> list[Any]:
        sd = key // nblk
        return [_take(c.sites, sd // nd), _take(c.dsts, sd % nd), pa.array((key % nblk).astype(np.int32))]

    def _dist_records(
        self, s: Sessions, gid: I64, port: I64, pt: I64, psrc: I64, c: Coded, nd: int, nblk: int
    ) -> pa.Table:
        cfg = self.cfg
        # Light sources: credited with fewer ports than a slow scan; only their ports count.
        em = s.emits[gid]
        gid, port, pt, psrc = gid[em], port[em], pt[em], psrc[em]
        order = order_by(gid, psrc)
        runs = run_starts(gid[order], psrc[order])
        a = np.flatnonzero(runs)
        size = np.diff(np.append(a, len(order)))
        credited = np.empty(len(order), np.int64)
        credited[order] = np.repeat(size, size)
        light = credited < cfg.slow_min_ports
        gid, port, pt, psrc = gid[light], port[light], pt[light], psrc[light]
        g = len(s.key)
        n = np.bincount(gid, minlength=g)
        dmp = cfg.distributed_min_ports
        cand = np.flatnonzero(n >= dmp)
        if not len(cand):
            return records_table([])
        ra, rb = _spans(gid, cand)
        recs = []
        det = kth_per(gid, pt, dmp, cand)
        for i, gi in enumerate(cand):
            p, tt, sr = port[ra[i] : rb[i]], pt[ra[i] : rb[i]], psrc[ra[i] : rb[i]]
            t0, t1 = int(tt.min()), int(tt.max())
            srcs = np.unique(sr)
            cnt = int(n[gi])
            if (
                len(srcs) < cfg.distributed_min_sources
                or t1 - t0 < self.span
                or not float(cnt - 1) / float(t1 - t0) < self.fast_p
            ):
                continue
            site, dst, blk = (x[0].as_py() for x in self._dist_keys(c, s.key[gi : gi + 1], nd, nblk))
            rec = self._rec(
                "distributed",
                (site, dst, blk),
                site,
                _take(c.srcs, srcs).to_pylist(),
                int(s.sess[gi]),
                t1,
                int(det[i]),
                int(p.min()),
                int(p.max()),
                cnt,
                1,
                cnt,
                cnt / dmp,
                bool(s.lb[gi]),
                bool(s.open[gi]),
                kendall_tau(p, tt, cfg.slow_max_points),
                distributed=True,
            )
            rec["first_ts"] = t0
            recs.append(rec)
        return records_table(recs)

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
