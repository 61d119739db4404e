"""Grid coverage in sorted passes: what the grid kinds (``pipeline.detect.grid``) are made of.

A grid point ``b = i * S`` sees the events with ``b - W <= ts < b``, so an event at ``ts``
is seen by the grid indices ``ts // S + 1 .. (ts + W) // S`` - an interval, never a list
of points. Everything here works on such intervals, so no step expands the grid:

* ``merged``: the intervals of each (group, value) merged into disjoint runs; the number
  of runs covering ``i`` is then the number of distinct values a group has at ``i``;
* ``sweep``: intervals with weights -> per key, the piecewise-constant sums over the grid,
  as segments ``[lo, hi]`` with their values (a difference array, cumulated once);
* ``islands``: hot segments -> runs of consecutive hot grid indices of one key that never
  cross an epoch boundary, with each run's peak.

Keys and groups are int64 codes (``pipeline.detect.runs``: order-preserving, packed).
``maybe`` / ``first_cut``: the cheap first cut every kind makes over all events - keys
whose hash bucket cannot reach a threshold are dropped before any sort (a bucket's count
of distinct pairs bounds each of its keys' counts from above, so the cut never drops a key
that could qualify).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipeline.detect.runs import I64, Bools, order_by, run_starts

F64 = npt.NDArray[np.float64]
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def pack(*cols: I64) -> I64:
    """One int64 code per row, ordered as the rows' columns are (the first most significant);
    partial products that would overflow are made dense first (a sort of the distinct ones)."""
    code = np.asarray(cols[0], dtype=np.int64)
    for c in cols[1:]:
        span = int(c.max()) + 1 if len(c) else 1
        top = int(code.max()) + 1 if len(code) else 1
        if top * span >= 1 << 62:
            code = np.unique(code, return_inverse=True)[1].astype(np.int64).reshape(-1)
        code = code * span  # a new array: the caller's column is never written
        code += c
    return code


def _bits(n: int) -> int:
    # About one bucket per row, within what stays in cache: a bigger table cuts little more.
    return max(12, min(21, int(n).bit_length()))


def _bucket(code: I64, bits: int) -> I64:
    with np.errstate(over="ignore"):
        return ((code.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - bits)).astype(np.int64)


def maybe(code: I64, need: float, weight: F64 | None = None) -> Bools:
    """Rows whose key (code) may have ``need`` rows (or total weight): their bucket has."""
    n = len(code)
    if n == 0 or (need <= 1 and weight is None):
        return np.ones(n, np.bool_)
    bits = _bits(n)
    bucket = _bucket(code, bits)
    sums = np.bincount(bucket, weights=weight, minlength=1 << bits)
    return np.asarray(sums[bucket] >= need, dtype=np.bool_)


def first_cut(key: I64, pair: I64, need: int) -> Bools:
    """Rows whose key may have ``need`` distinct pairs (key, value): repeated pairs are set
    aside exactly (a row is a repeat when the row owning its hash slot holds the same pair,
    so a pair always keeps one row), then the distinct rows are counted per key bucket."""
    n = len(key)
    if n == 0 or need <= 1:
        return np.ones(n, np.bool_)
    bits = _bits(n)
    slot = _bucket(pair, bits)
    owner = np.empty(1 << bits, np.int64)
    owner[slot] = np.arange(n, dtype=np.int64)
    o = owner[slot]
    distinct = (o == np.arange(n)) | (pair[o] != pair)
    bucket = _bucket(key, bits)
    sums = np.bincount(bucket[distinct], minlength=1 << bits)
    return np.asarray(sums[bucket] >= need, dtype=np.bool_)


def dense(code: I64) -> tuple[I64, I64]:
    """The distinct codes (sorted) and each row's index among them."""
    uniq, inv = np.unique(code, return_inverse=True)
    return uniq.astype(np.int64), inv.astype(np.int64).reshape(-1)


def distinct_per(group: I64, value: I64, ngroups: int) -> I64:
    """How many distinct values each group 0..ngroups-1 has."""
    order = order_by(group, value)
    starts = run_starts(group[order], value[order])
    return np.bincount(group[order][starts], minlength=ngroups).astype(np.int64)


@dataclass(frozen=True)
class Grid:
    """A kind's grid over one evaluation: window, step, and the evaluated indices g0..g1."""

    window_us: int
    step_us: int
    epoch_us: int
    g0: int
    g1: int

    @classmethod
    def of(cls, window_us: int, step_us: int, epoch_us: int, start_us: int, end_us: int) -> Grid:
        return cls(window_us, step_us, epoch_us, start_us // step_us + 1, end_us // step_us)

    def seen(self, ts: I64) -> tuple[I64, I64, Bools]:
        """The grid indices [lo, hi] that see each event, clipped to the evaluation; ok: any."""
        lo = np.maximum(ts // self.step_us + 1, self.g0)
        hi = np.minimum((ts + self.window_us) // self.step_us, self.g1)
        return lo, hi, lo <= hi


def merged(group: I64, value: I64, ts: I64, grid: Grid) -> tuple[I64, I64, I64, I64]:
    """Each (group, value)'s seen intervals merged into disjoint runs (touching ones too):
    (group, value, lo, hi) per run, sorted by (group, value, lo)."""
    lo, hi, ok = grid.seen(ts)
    group, value, lo, hi = group[ok], value[ok], lo[ok], hi[ok]
    # lo and hi both grow with ts, so after sorting by (group, value, lo, hi) - hi too: rows
    # of one lo may differ in hi when W is not a multiple of S - a run's hi is its last row's
    # and a row starts a new run when it begins past the previous row's hi + 1.
    order = order_by(group, value, lo, hi)
    g, v, lo, hi = group[order], value[order], lo[order], hi[order]
    start = run_starts(g, v)
    if len(lo):
        start[1:] |= lo[1:] > hi[:-1] + 1
    a = np.flatnonzero(start)
    b = np.append(a[1:] - 1, len(lo) - 1) if len(a) else a
    return g[a], v[a], lo[a], hi[b]


@dataclass
class Segments:
    """Per key, maximal index ranges [lo, hi] over which the swept sums stay constant."""

    key: I64
    lo: I64
    hi: I64
    vals: list[I64]


def sweep(key: I64, lo: I64, hi: I64, weights: list[I64]) -> Segments:
    """Sums of the weights of the intervals [lo, hi] covering each index, per key."""
    n = len(key)
    k = np.concatenate([key, key])
    at = np.concatenate([lo, hi + 1])
    order = order_by(k, at)
    k, at = k[order], at[order]
    sums = [np.cumsum(np.concatenate([w, -w])[order]) for w in weights]
    if 2 * n == 0:
        e = np.zeros(0, np.int64)
        return Segments(e, e, e, [e for _ in weights])
    # The last delta at each (key, index) holds the sums from that index to the next one's.
    last = np.ones(2 * n, np.bool_)
    last[:-1] = (k[1:] != k[:-1]) | (at[1:] != at[:-1])
    same_key_next = np.zeros(2 * n, np.bool_)
    same_key_next[:-1] = k[1:] == k[:-1]
    nxt = np.empty(2 * n, np.int64)
    nxt[:-1] = at[1:]
    nxt[-1] = at[-1]
    rows = np.flatnonzero(last & same_key_next)
    # The next index after the run of equal (key, index): the row after the last one.
    return Segments(k[rows], at[rows], nxt[rows] - 1, [s[rows] for s in sums])


@dataclass
class Islands:
    """Runs of consecutive hot grid indices of one key within one epoch."""

    key: I64
    epoch: I64
    first: I64
    last: I64
    peak: I64


def islands(seg: Segments, hot: Bools, peak: I64, grid: Grid) -> Islands:
    """The hot segments cut at epoch boundaries, touching pieces of one key and epoch joined."""
    key, lo, hi, pk = seg.key[hot], seg.lo[hot], seg.hi[hot], peak[hot]
    s, e = grid.step_us, grid.epoch_us
    e_lo, e_hi = (lo * s - 1) // e, (hi * s - 1) // e
    reps = (e_hi - e_lo + 1).astype(np.int64)
    idx = np.repeat(np.arange(len(key)), reps)
    first_of = np.repeat(np.cumsum(reps) - reps, reps)
    ep = e_lo[idx] + (np.arange(len(idx)) - first_of)
    # The first index of epoch ep: the smallest i with (i * s - 1) // e >= ep.
    p_lo = np.maximum(lo[idx], -((-(ep * e + 1)) // s))
    p_hi = np.minimum(hi[idx], -((-((ep + 1) * e + 1)) // s) - 1)
    k, pk = key[idx], pk[idx]
    # Segments come sorted by (key, lo): pieces too. Join a piece to the previous one when
    # it continues it (same key and epoch, next index).
    start = np.ones(len(k), np.bool_)
    if len(k):
        start[1:] = (k[1:] != k[:-1]) | (ep[1:] != ep[:-1]) | (p_lo[1:] != p_hi[:-1] + 1)
    a = np.flatnonzero(start)
    b = np.append(a[1:] - 1, len(k) - 1) if len(a) else a
    peak_ = np.maximum.reduceat(pk, a) if len(a) else pk[a]
    return Islands(k[a], ep[a], p_lo[a], p_hi[b], peak_)
