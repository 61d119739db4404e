"""Coordinated scans in sorted passes: several light sources splitting one target's ports.

Per (site, dst) key at grid point b, over the window's events:

* a source takes part when it adds ``mps <= n < vertical_min_ports`` distinct ports (fewer:
  noise; more: the vertical detector's lone scanner);
* hot when at least ``min_sources`` sources take part, their ports together number at
  least ``min_ports``, and that union over the sum of their counts is at least
  ``min_disjoint`` (1.0: every source probes its own ports);
* a scan's sources are those that take part at one of its island's grid points.

As intervals of grid indices (``pipeline.detect.cover``): each source's port runs give its
count n over the grid; the runs where n qualifies (Q) cut each port run to the indices its
source takes part at, and the union of those pieces per (key, port) counts the ports.
"""

from __future__ import annotations

import numpy as np

from pipeline.detect.cover import Grid, dense, distinct_per, first_cut, islands, merged, pack, sweep
from pipeline.detect.grid import Coded, Found, cap_candidates, count_candidates, keyed, restrict_to
from pipeline.detect.records import DetectStats
from pipeline.detect.runs import I64, order_by, run_starts


def coordinated(
    whole: Coded,
    mps: int,
    vt: int,
    min_sources: int,
    min_ports: int,
    min_disjoint: float,
    grid: Grid,
    lo: int,
    end: int,
    cap: int,
    stats: DetectStats,
) -> Found:
    names = ("site", "dst_ip")
    rows = whole.rows(lo, end)
    pc_ = whole.packed((*names, "src_ip"), rows)
    c = whole.sub(rows[first_cut(pc_, pack(pc_, whole.gather("dst_port", rows)), mps)])
    # Taking part over the whole range: a (site, dst, src) with mps distinct ports.
    pairs, pid = dense(keyed(c, (*names, "src_ip")))
    part = distinct_per(pid, c.port, len(pairs)) >= mps
    keys, kid = dense(keyed(c, names))
    kid = np.where(part[pid], kid, -1)
    m = distinct_per(kid[kid >= 0], c.src[kid >= 0], len(keys))
    cand = np.flatnonzero(m >= max(min_sources, 1))
    count_candidates(stats, "coordinated", len(cand), cap)
    cand = cap_candidates(c, names, kid, cand, m, cap)
    ev, kid, keys, key_rows = restrict_to(kid, keys, cand, c.ts)
    # Sources as dense ids in (key, src) order.
    pairs, sid = dense(kid * (int(c.src.max()) + 1 if len(c.src) else 1) + c.src[ev])
    skey = np.zeros(len(pairs), np.int64)
    skey[sid] = kid
    # Each source's distinct ports over the grid, and where that count qualifies.
    g, port, a, b = merged(sid, c.port[ev], c.ts[ev], grid)
    per = sweep(g, a, b, [np.ones(len(g), np.int64)])
    n = per.vals[0]
    q = (n >= max(mps, 1)) & (n < vt)
    q_sid, q_lo, q_hi, q_n = per.key[q], per.lo[q], per.hi[q], n[q]
    # Q runs: touching qualifying segments of one source joined.
    start = run_starts(q_sid)
    if len(q_sid):
        start[1:] |= q_lo[1:] != q_hi[:-1] + 1
    qa = np.flatnonzero(start)
    qb = np.append(qa[1:] - 1, len(q_sid) - 1) if len(qa) else qa
    r_sid, r_lo, r_hi = q_sid[qa], q_lo[qa], q_hi[qb]
    p_sid, p_port, p_lo, p_hi = _intersect(g, port, a, b, r_sid, r_lo, r_hi, grid)
    # Ports of the taking-part sources, per key: the union of their pieces per (key, port).
    u_key, u_lo, u_hi = _union(skey[p_sid], p_port, p_lo, p_hi)
    zq, zu = np.zeros(len(q_sid), np.int64), np.zeros(len(u_key), np.int64)
    seg = sweep(
        np.concatenate([skey[q_sid], u_key]),
        np.concatenate([q_lo, u_lo]),
        np.concatenate([q_hi, u_hi]),
        [
            np.concatenate([np.ones(len(q_sid), np.int64), zu]),
            np.concatenate([q_n, zu]),
            np.concatenate([zq, np.ones(len(u_key), np.int64)]),
        ],
    )
    ns, total, union = seg.vals
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = union.astype(np.float64) / total.astype(np.float64)
    hot = (ns >= min_sources) & (union >= min_ports) & (total > 0) & (ratio >= min_disjoint)
    isl = islands(seg, hot, union, grid)
    found = Found("coordinated", c, names, grid, isl, ev, kid, keys, key_rows)
    # An island's sources: those with a Q run overlapping its grid indices (all hot).
    src_of = np.zeros(len(pairs), np.int64)
    src_of[sid] = c.src[ev]
    rk = skey[r_sid]
    ka, kb = np.searchsorted(rk, isl.key), np.searchsorted(rk, isl.key, side="right")
    for i in range(len(isl.key)):
        sl = slice(ka[i], kb[i])
        over = (r_lo[sl] <= isl.last[i]) & (r_hi[sl] >= isl.first[i])
        found.members.append(np.unique(src_of[r_sid[sl][over]]))
    return found


def _intersect(
    g: I64, port: I64, a: I64, b: I64, r_sid: I64, r_lo: I64, r_hi: I64, grid: Grid
) -> tuple[I64, I64, I64, I64]:
    """Each port run [a, b] of source g cut to that source's Q runs (disjoint, sorted)."""
    span = grid.g1 - grid.g0 + 3
    base = grid.g0 - 1
    hi_key = r_sid * span + (r_hi - base)
    lo_key = r_sid * span + (r_lo - base)
    first = np.searchsorted(hi_key, g * span + (a - base))
    last = np.searchsorted(lo_key, g * span + (b - base), side="right") - 1
    cnt = np.maximum(last - first + 1, 0)
    idx = np.repeat(np.arange(len(g)), cnt)
    j = np.repeat(first, cnt) + (np.arange(len(idx)) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    return g[idx], port[idx], np.maximum(a[idx], r_lo[j]), np.minimum(b[idx], r_hi[j])


def _union(key: I64, port: I64, lo: I64, hi: I64) -> tuple[I64, I64, I64]:
    """Per (key, port), the union of intervals as disjoint runs: (key, lo, hi) per run."""
    order = order_by(key, port, lo)
    k, p, lo, hi = key[order], port[order], lo[order], hi[order]
    grp = run_starts(k, p)
    # The running end of each group's intervals: a cumulative max that restarts per group
    # (offset by the group's rank, which only grows down the rows).
    rank = np.cumsum(grp) - 1
    off = int(hi.max()) + 2 if len(hi) else 1
    reach = np.maximum.accumulate(rank * off + hi) - rank * off
    start = grp.copy()
    if len(lo):
        start[1:] |= lo[1:] > reach[:-1] + 1
    sa = np.flatnonzero(start)
    sb = np.append(sa[1:] - 1, len(lo) - 1) if len(sa) else sa
    return k[sa], lo[sa], reach[sb]
