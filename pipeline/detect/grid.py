"""The grid kinds in sorted passes: vertical, horizontal and hammering (coordinated:
``pipeline.detect.coordinated``), from a points table to islands to scan records.

The definitions are ``pipeline.detect.engine``'s docstring; this is how they are computed.
Strings become order-preserving codes once per run (``Coded``), so ties and the flood
cap's order follow the strings as before. Per kind: a hash-bucket cut drops the keys that
cannot reach the threshold (``cover.maybe``, no sort), the survivors get exact candidate
measures from one sort, and the candidates' events go through ``cover.merged`` ->
``cover.sweep`` -> ``cover.islands`` - intervals of grid indices, never the expanded grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.detect.cover import (
    Grid,
    Islands,
    dense,
    distinct_per,
    first_cut,
    islands,
    maybe,
    merged,
    pack,
    sweep,
)
from pipeline.detect.records import DetectStats, days_spanned, epoch_scan_id, records_table
from pipeline.detect.runs import I64, Bools, bools, ints, order_by

PORTS = 65_536


def _codes(col: pa.ChunkedArray) -> tuple[I64, pa.Array]:
    """Exact codes of a string column and its dictionary (code -> string). In first-seen
    order, not sorted: sorting half a million addresses cost more than the grid work; the
    few places whose result depends on string order sort the strings they output. A
    dictionary column (``engine.points``) gives its codes as they are, less the entries
    no row uses (rows a filter dropped), so the dictionary holds exactly the values seen."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    idx = arr.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    used = np.bincount(idx, minlength=len(arr.dictionary)) > 0
    if used.all():
        return idx, arr.dictionary
    keep = np.flatnonzero(used)
    pos = np.empty(len(used), np.int64)
    pos[keep] = np.arange(len(keep), dtype=np.int64)
    return pos[idx], arr.dictionary.take(pa.array(keep))


@dataclass
class Coded:
    """A run's points (rows with a port), strings as exact integer codes."""

    site: I64
    src: I64
    dst: I64
    port: I64
    ts: I64
    cnt: I64
    lb: Bools
    sites: pa.Array
    srcs: pa.Array
    dsts: pa.Array

    @classmethod
    def of(cls, pts: pa.Table) -> Coded:
        if pts.column("dst_port").null_count:
            pts = pts.filter(pc.is_valid(pts.column("dst_port")))
        port = ints(pts.column("dst_port"))
        if len(port) and (port.min() < 0 or port.max() >= PORTS):
            # Ports are packed into integer keys: one out of range would alias another.
            raise ValueError(f"destination ports must lie in 0-65535, got {port.min()}..{port.max()}")
        for name in ("site", "src_ip", "dst_ip"):
            # The event schema has none; a null would key no scan (or count as a target).
            if pts.column(name).null_count:
                raise ValueError(f"{name}: {pts.column(name).null_count} null values in detection points")
        site, sites = _codes(pts.column("site"))
        src, srcs = _codes(pts.column("src_ip"))
        dst, dsts = _codes(pts.column("dst_ip"))
        ts, cnt, lb = ints(pts.column("ts_us")), ints(pts.column("cnt")), bools(pts.column("lb"))
        return cls(site, src, dst, port, ts, cnt, lb, sites, srcs, dsts)

    def sub(self, rows: I64) -> Coded:
        """Some of the rows, the same codes."""
        return Coded(
            self.site[rows],
            self.src[rows],
            self.dst[rows],
            self.port[rows],
            self.ts[rows],
            self.cnt[rows],
            self.lb[rows],
            self.sites,
            self.srcs,
            self.dsts,
        )

    def rows(self, lo: int, end: int) -> I64:
        return np.flatnonzero((self.ts >= lo) & (self.ts < end))

    def packed(self, names: tuple[str, ...], rows: I64) -> I64:
        """The key (names) of the given rows as one code (``cover.pack``): the whole run's rows
        are not copied, only the key's columns gathered."""
        return pack(*(self.gather(n, rows) for n in names))

    def gather(self, name: str, rows: I64) -> I64:
        """A column at the given rows (``rows()``: sorted, distinct); all of them - a replay's
        slow kinds and the kinds reading furthest back - is the column itself, not a copy
        (read-only: nothing writes into a column)."""
        return self.col(name) if len(rows) == len(self.ts) else self.col(name)[rows]

    def col(self, name: str) -> I64:
        return {"site": self.site, "src_ip": self.src, "dst_ip": self.dst, "dst_port": self.port}[name]

    def value(self, name: str, code: int) -> Any:
        d = {"site": self.sites, "src_ip": self.srcs, "dst_ip": self.dsts}.get(name)
        return int(code) if d is None else d[int(code)].as_py()

    def key_order(self, names: tuple[str, ...], rows: I64) -> I64:
        """The rank of each row's key (names) in the order of the strings (and ports)."""
        cols = {
            n: (
                self.col(n)[rows]
                if n == "dst_port"
                else self.value_array(n).take(pa.array(self.col(n)[rows]))
            )
            for n in names
        }
        order = pc.sort_indices(pa.table(cols), sort_keys=[(n, "ascending") for n in names]).to_numpy()
        rank = np.empty(len(rows), np.int64)
        rank[order] = np.arange(len(rows), dtype=np.int64)
        return rank

    def value_array(self, name: str) -> pa.Array:
        return {"site": self.sites, "src_ip": self.srcs, "dst_ip": self.dsts}[name]


@dataclass
class Found:
    """A kind's islands and what their records read: the candidate keys' events (rows of
    ``c``) sorted by (key, ts), ``kid`` the key index of each, ``keys`` the keys' codes and
    ``key_rows`` a row of each key."""

    kind: str
    c: Coded
    key_names: tuple[str, ...]
    grid: Grid
    isl: Islands
    ev: I64
    kid: I64
    keys: I64
    key_rows: I64
    members: list[I64] = field(default_factory=list)


def count_candidates(stats: DetectStats, kind: str, total: int, cap: int) -> None:
    stats.candidates[kind] = stats.candidates.get(kind, 0) + total
    stats.dropped_keys[kind] = stats.dropped_keys.get(kind, 0) + max(0, total - cap)


def keyed(c: Coded, names: tuple[str, ...]) -> I64:
    return pack(*(c.col(n) for n in names))


def cap_candidates(c: Coded, names: tuple[str, ...], kid: I64, cand: I64, m: I64, cap: int) -> I64:
    """The candidates kept under a flood: highest measure first, then the smallest key."""
    if len(cand) <= cap:
        return cand
    rows = np.flatnonzero(kid >= 0)
    first = np.full(int(kid.max()) + 1, -1, np.int64)
    first[kid[rows][::-1]] = rows[::-1]
    rank = c.key_order(names, first[cand])
    return np.sort(cand[np.lexsort((rank, -m[cand]))[:cap]])


def distinct_kind(
    whole: Coded,
    kind: str,
    names: tuple[str, ...],
    value: str,
    threshold: int,
    grid: Grid,
    lo: int,
    end: int,
    cap: int,
    stats: DetectStats,
) -> Found:
    """Vertical (ports per src, dst) and horizontal (targets per src, port): hot where the
    distinct values of the window reach the threshold."""
    rows = whole.rows(lo, end)
    kc = whole.packed(names, rows)
    c = whole.sub(rows[first_cut(kc, pack(kc, whole.gather(value, rows)), threshold)])
    keys, kid = dense(keyed(c, names))
    m = distinct_per(kid, c.col(value), len(keys))
    cand = np.flatnonzero(m >= threshold)
    count_candidates(stats, kind, len(cand), cap)
    cand = cap_candidates(c, names, kid, cand, m, cap)
    ev, kid, keys, key_rows = restrict_to(kid, keys, cand, c.ts)
    g, _, a, b = merged(kid, c.col(value)[ev], c.ts[ev], grid)
    seg = sweep(g, a, b, [np.ones(len(g), np.int64)])
    n = seg.vals[0]
    return Found(kind, c, names, grid, islands(seg, n >= threshold, n, grid), ev, kid, keys, key_rows)


def hammer(
    whole: Coded, min_hits: int, min_slots: int, grid: Grid, lo: int, end: int, cap: int, stats: DetectStats
) -> Found:
    """Hammering (src, port): hot where the window holds min_hits packets over at least
    min_slots distinct step-wide slots."""
    names = ("site", "src_ip", "dst_port")
    rows = whole.rows(lo, end)
    kc = whole.packed(names, rows)
    ok = maybe(kc, min_hits, whole.cnt[rows].astype(np.float64))
    ok &= first_cut(kc, pack(kc, whole.ts[rows] // grid.step_us), min_slots)
    c = whole.sub(rows[ok])
    keys, kid = dense(keyed(c, names))
    slot = c.ts // grid.step_us
    hits = np.bincount(kid, weights=c.cnt, minlength=len(keys)).astype(np.int64)
    cand = np.flatnonzero((hits >= min_hits) & (distinct_per(kid, slot, len(keys)) >= min_slots))
    count_candidates(stats, "hammer", len(cand), cap)
    cand = cap_candidates(c, names, kid, cand, hits, cap)
    ev, kid, keys, key_rows = restrict_to(kid, keys, cand, c.ts)
    ts = c.ts[ev]
    g, _, a, b = merged(kid, ts // grid.step_us, ts, grid)
    ea, eb, eok = grid.seen(ts)
    one, zero = np.ones(len(g), np.int64), np.zeros(int(eok.sum()), np.int64)
    seg = sweep(
        np.concatenate([g, kid[eok]]),
        np.concatenate([a, ea[eok]]),
        np.concatenate([b, eb[eok]]),
        [np.concatenate([one, zero]), np.concatenate([one * 0, c.cnt[ev][eok]])],
    )
    slots, packets = seg.vals
    hot = (packets >= min_hits) & (slots >= min_slots)
    return Found("hammer", c, names, grid, islands(seg, hot, slots, grid), ev, kid, keys, key_rows)


def restrict_to(kid: I64, keys: I64, cand: I64, ts: I64) -> tuple[I64, I64, I64, I64]:
    """The candidates' events (rows) sorted by (key, ts), key indices renumbered over the
    candidates; rows of key -1 never kept."""
    keep = np.zeros(len(keys) + 1, np.bool_)
    keep[cand] = True
    sel = keep[kid]
    renum = np.cumsum(keep) - 1
    ev, k = np.flatnonzero(sel), renum[kid[sel]]
    order = order_by(k, ts[ev])
    ev, k = ev[order], k[order]
    return ev, k, keys[cand], ev[np.searchsorted(k, np.arange(len(cand)))] if len(k) else ev


def records(f: Found, end: int, threshold: float) -> pa.Table:
    """One record per island from the key's events in [first_b - W, last_b) (coordinated:
    the island's member sources' events only)."""
    c, grid, isl = f.c, f.grid, f.isl
    s, w, e = grid.step_us, grid.window_us, grid.epoch_us
    ts = c.ts[f.ev]
    span = int(end - ts.min() + 1) if len(ts) else 1
    base = int(ts.min()) if len(ts) else 0
    sk = f.kid * span + (ts - base)
    first_b, last_b = isl.first * s, isl.last * s
    ra = np.searchsorted(sk, isl.key * span + np.maximum(first_b - w - base, 0))
    rb = np.searchsorted(sk, isl.key * span + (last_b - base))
    grid_end = (end // s) * s
    recs: list[dict[str, Any]] = []
    for i in range(len(isl.key)):
        ev = f.ev[ra[i] : rb[i]]
        if f.members:
            ev = ev[np.isin(c.src[ev], f.members[i])]
        t = c.ts[ev]
        ts0, ts1 = int(t[0]), int(t[-1])
        epoch = int(isl.epoch[i])
        if ts1 < epoch * e:
            # The window still reaches back over a scan the previous epoch reported.
            continue
        krow = int(f.key_rows[isl.key[i]])
        key = tuple(c.value(n, int(c.col(n)[krow])) for n in f.key_names)
        port = c.port[ev]
        fb, lb_ = int(first_b[i]), int(last_b[i])
        closed = lb_ < grid_end or lb_ >= (epoch + 1) * e
        recs.append(
            {
                "scan_id": epoch_scan_id(f.kind, key, epoch, fb),
                "kind": f.kind,
                "site": key[0],
                "sources": sorted(c.srcs.take(pa.array(np.unique(c.src[ev]))).to_pylist()),
                "first_ts": ts0,
                "last_ts": ts1,
                "detected_at": fb,
                "port_min": int(port.min()),
                "port_max": int(port.max()),
                "distinct_ports": len(np.unique(port)),
                "distinct_targets": len(np.unique(c.dst[ev])),
                "packets": int(c.cnt[ev].sum()),
                "sites": [key[0]],
                "score": round(float(isl.peak[i]) / threshold, 4),
                "lower_bound": bool(c.lb[ev].any()),
                "status": "closed" if closed else "open",
                "epoch_start": epoch * e,
                "order": None,
                "tau": None,
                "days_spanned": days_spanned(ts0, ts1),
                "distributed": f.kind == "coordinated",
            }
        )
    return records_table(recs)
