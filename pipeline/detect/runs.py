"""Key-sorted runs: the vectorised steps persistent tracking is made of (numpy over Arrow).

Strings become order-preserving integer codes once per chunk (``encode``), so a sort by
codes is a sort by the strings (byte order, as DuckDB and Arrow order them) and every
tie-break of the definitions (``ORDER BY t, src_ip``) holds. Then one sort per step,
on one int64 key packed from the columns' ranges (``order_by``: an argsort of one
integer column is several times faster than a lexsort of several): ``sessionize`` cuts
each key's events at idle gaps, continuing the key's open session from the state;
``first_per`` keeps each (group, item) once with its first-hit time (and, for a port,
its first prober); ``kth_per`` reads a group's k-th smallest time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def encode(columns: Sequence[pa.ChunkedArray | pa.Array]) -> tuple[list[I64], pa.Array]:
    """One code space for several string columns; codes follow the strings' sort order
    (null last). Returns each column's codes and the sorted dictionary (code -> string).

    A dictionary-encoded column (``engine.points``) adds only the entries its rows use,
    not its rows: the result is the same as for its plain strings, without hashing them."""
    arrays: list[pa.Array] = []
    mapped: list[tuple[int, I64 | None]] = []  # per column: its entries in `whole`, its rows' codes
    for c in columns:
        chunks = c.chunks if isinstance(c, pa.ChunkedArray) else [c]
        if len(chunks) == 1 and pa.types.is_dictionary(chunks[0].type) and not chunks[0].null_count:
            d = chunks[0]
            idx = d.indices.to_numpy(zero_copy_only=False).astype(np.int64)
            used = np.flatnonzero(np.bincount(idx, minlength=len(d.dictionary)))
            pos = np.empty(len(d.dictionary), np.int64)
            pos[used] = np.arange(len(used), dtype=np.int64)
            arrays.append(pc.cast(d.dictionary.take(pa.array(used)), pa.string()))
            mapped.append((len(used), pos[idx]))
            continue
        c = pc.cast(c, pa.string())
        arrays += c.chunks if isinstance(c, pa.ChunkedArray) else [c]
        mapped.append((len(c), None))
    whole = pa.concat_arrays(arrays) if arrays else pa.array([], pa.string())
    enc = pc.dictionary_encode(whole, null_encoding="encode")
    order = pc.array_sort_indices(enc.dictionary, null_placement="at_end").to_numpy()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    codes = rank[enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    out: list[I64] = []
    at = 0
    for n, idx in mapped:
        out.append(codes[at : at + n] if idx is None else codes[at : at + n][idx])
        at += n
    return out, enc.dictionary.take(pa.array(order))


def ints(col: pa.ChunkedArray | pa.Array, fill: int = 0) -> I64:
    return np.asarray(pc.fill_null(col, fill).to_numpy(zero_copy_only=False), dtype=np.int64)


def bools(col: pa.ChunkedArray | pa.Array) -> Bools:
    return np.asarray(pc.fill_null(col, False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def run_starts(*sorted_cols: npt.NDArray[np.int64]) -> Bools:
    """True where a row starts a new run of equal values over all columns (rows already sorted)."""
    n = len(sorted_cols[0])
    start = np.zeros(n, np.bool_)
    if n:
        start[0] = True
        for c in sorted_cols:
            start[1:] |= c[1:] != c[:-1]
    return start


def run_ends(starts: Bools) -> I64:
    """Index of each run's last row, given its starts mask."""
    return np.append(np.flatnonzero(starts)[1:] - 1, len(starts) - 1).astype(np.int64)


@dataclass
class Sessions:
    """Sessions of one chunk sorted by (key, sess): the ones events touched and the state's.

    ``ev_gid`` / ``meta_gid``: each event's and each state meta row's session (row index here).
    """

    key: I64
    sess: I64
    last: I64
    packets: I64
    lb: Bools
    touched: Bools
    was: Bools
    open: Bools
    ev_gid: I64
    meta_gid: I64

    @property
    def emits(self) -> Bools:
        """Sessions whose record may change: touched, or closed by this chunk."""
        return self.touched | (self.was & ~self.open)


def sessionize(
    ekey: I64,
    ets: I64,
    ecnt: I64,
    elb: Bools,
    meta: tuple[I64, I64, I64, I64, Bools],
    idle: int,
    hi: int,
) -> Sessions:
    """Cut each key's events into sessions at gaps > idle; a key's first event continues the
    state's open session of that key (meta: key, sess, last_ts, packets, lb; one per key)
    when it comes within idle of its last event. Open: the key's newest session, which an
    event at hi could still continue."""
    mkey, msess, mlast, mpackets, mlb = meta
    n, nm = len(ekey), len(mkey)
    order = order_by(ekey, ets)
    k, t = ekey[order], ets[order]
    first = run_starts(k)
    start = first.copy()
    if n:
        start[1:] |= (t[1:] - t[:-1]) > idle
    rows = np.flatnonzero(start)
    sg = np.cumsum(start) - 1
    ne = len(rows)
    s_key, s_sess = k[rows], t[rows].copy()
    s_last = t[run_ends(start)] if n else np.zeros(0, np.int64)
    s_packets = np.add.reduceat(ecnt[order], rows) if n else np.zeros(0, np.int64)
    s_lb = np.logical_or.reduceat(elb[order], rows) if n else np.zeros(0, np.bool_)
    s_was = np.zeros(ne, np.bool_)
    # The key's first event: does it continue the state's session?
    fi = np.flatnonzero(first)
    by_key = np.argsort(mkey, kind="stable")
    pos = np.minimum(np.searchsorted(mkey[by_key], k[fi]), max(nm - 1, 0))
    hit = mkey[by_key][pos] == k[fi] if nm else np.zeros(len(fi), np.bool_)
    midx = by_key[pos] if nm else np.zeros(len(fi), np.int64)
    cont = hit & (t[fi] - mlast[midx] <= idle) if nm else hit
    cs, cm = sg[fi[cont]], midx[cont]
    s_sess[cs] = msess[cm]
    s_packets[cs] += mpackets[cm]
    s_lb[cs] |= mlb[cm]
    s_was[cs] = True
    rest = np.ones(nm, np.bool_)
    rest[cm] = False
    rm = np.flatnonzero(rest)
    key = np.concatenate([s_key, mkey[rm]])
    sess = np.concatenate([s_sess, msess[rm]])
    perm = order_by(key, sess)
    rank = np.empty(len(perm), np.int64)
    rank[perm] = np.arange(len(perm), dtype=np.int64)
    key, sess = key[perm], sess[perm]
    last = np.concatenate([s_last, mlast[rm]])[perm]
    newest = np.zeros(len(key), np.bool_)
    if len(key):
        newest[-1] = True
        newest[:-1] = key[1:] != key[:-1]
    ev_gid = np.empty(n, np.int64)
    ev_gid[order] = rank[sg]
    meta_gid = np.empty(nm, np.int64)
    meta_gid[cm] = rank[cs]
    meta_gid[rm] = rank[ne + np.arange(len(rm), dtype=np.int64)]
    return Sessions(
        key=key,
        sess=sess,
        last=last,
        packets=np.concatenate([s_packets, mpackets[rm]])[perm],
        lb=np.concatenate([s_lb, mlb[rm]])[perm],
        touched=np.concatenate([np.ones(ne, np.bool_), np.zeros(len(rm), np.bool_)])[perm],
        was=np.concatenate([s_was, np.ones(len(rm), np.bool_)])[perm],
        open=newest & (hi - last <= idle),
        ev_gid=ev_gid,
        meta_gid=meta_gid,
    )


def state_gid(rkey: I64, rsess: I64, mkey: I64, msess: I64, meta_gid: I64) -> I64:
    """The session of each state row (key, sess) through the state's meta rows (one per key);
    -1 for a row whose session is not in the state."""
    if not len(mkey):
        return np.full(len(rkey), -1, np.int64)
    by_key = np.argsort(mkey, kind="stable")
    pos = np.minimum(np.searchsorted(mkey[by_key], rkey), len(mkey) - 1)
    m = by_key[pos]
    ok = (mkey[m] == rkey) & (msess[m] == rsess)
    return np.where(ok, meta_gid[m], -1)


def first_per(gid: I64, item: I64, t: I64, tie: I64 | None = None) -> tuple[I64, I64, I64, I64]:
    """Each (gid, item) once, sorted by (gid, item), with its smallest t and, among the rows
    at that t, the smallest tie (tie None: zeros)."""
    order = order_by(gid, item)
    g, it, tt = gid[order], item[order], t[order]
    a = np.flatnonzero(run_starts(g, it))
    if not len(a):
        return g, it, tt, np.zeros(0, np.int64)
    tmin = np.minimum.reduceat(tt, a)
    if tie is None:
        return g[a], it[a], tmin, np.zeros(len(a), np.int64)
    at_min = tt == np.repeat(tmin, np.diff(np.append(a, len(g))))
    best = np.minimum.reduceat(np.where(at_min, tie[order], np.iinfo(np.int64).max), a)
    return g[a], it[a], tmin, best


def order_by(*cols: npt.NDArray[np.int64] | Bools) -> I64:
    """The row order sorting by cols, the first most significant. The columns are packed into
    one int64 key by their ranges and sorted by one argsort when they fit in 62 bits (rows with
    equal keys in every column come in any order), else lexsorted."""
    n = len(cols[0])
    if n == 0:
        return np.zeros(0, np.int64)
    ints_ = [np.asarray(c, dtype=np.int64) for c in cols]
    los = [int(c.min()) for c in ints_]
    spans = [int(c.max()) - lo + 1 for c, lo in zip(ints_, los, strict=True)]
    if math.prod(spans) >= 1 << 62:
        return np.lexsort(ints_[::-1]).astype(np.int64)
    packed = np.zeros(n, np.int64)
    for c, lo, span in zip(ints_, los, spans, strict=True):
        packed *= span
        packed += c - lo
    return np.argsort(packed).astype(np.int64)


def kth_per(gid: I64, t: I64, k: int, groups: I64) -> I64:
    """The k-th smallest t (1-based) of each of the given groups; -1 where a group has fewer."""
    want = np.isin(gid, groups)
    g, tt = gid[want], t[want]
    order = order_by(g, tt)
    g, tt = g[order], tt[order]
    starts = np.flatnonzero(run_starts(g))
    counts = np.diff(np.append(starts, len(g)))
    out = np.full(len(groups), -1, np.int64)
    pos = np.searchsorted(g[starts], groups) if len(starts) else np.zeros(len(groups), np.int64)
    pos = np.minimum(pos, max(len(starts) - 1, 0))
    if len(starts):
        ok = (g[starts][pos] == groups) & (counts[pos] >= k)
        out[ok] = tt[starts[pos[ok]] + k - 1]
    return out


def kendall_tau(port: I64, t: I64, max_points: int) -> float | None:
    """Kendall tau of port vs first-hit time over the first max_points ports (by t, then port);
    None under two ports. Every pair counts sign(t_b - t_a) for port_a < port_b."""
    order = np.lexsort((port, t))[:max_points]
    p, tt = port[order], t[order]
    if len(p) < 2:
        return None
    lower = p[:, None] < p[None, :]
    s = np.sign(tt[None, :] - tt[:, None])
    return float(int(s[lower].sum())) / float(int(lower.sum()))
