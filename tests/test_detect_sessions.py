"""The vectorised session pass against a straightforward Python reference, over random inputs.

``ReferenceTracker`` below follows the definitions in ``pipeline.detect.slowtrack``'s
docstring one event at a time, with dicts: per (site, src) sessions cut at gaps > idle,
distinct ports and targets with first-hit times; per (site, dst, port block) sessions of
the events new to the (dst, port) within the port memory, each port credited to its first
prober (ties: the smallest address). Hypothesis draws small worlds (few sources, targets,
ports, coarse times, so ties and every threshold are hit) and random chunk cuts; the
tracker must return the reference's records chunk by chunk and hold its state.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.config import DetectConfig
from pipeline.detect.sessions import scan_id
from pipeline.detect.slowtrack import SlowTracker

US = 1_000_000
DAY0 = 1_740_787_200 * US  # 2025-03-01 00:00 UTC
CFG = DetectConfig(
    slow_min_ports=3,
    slow_min_targets=3,
    slow_idle_s=300.0,
    slow_min_span_s=40.0,
    slow_max_points=5,
    track_max_targets=4,
    distributed_min_ports=4,
    distributed_min_sources=2,
    distributed_block_ports=16,
    distributed_idle_s=200.0,
    vertical_min_ports=15,
    vertical_window_s=60.0,
    horizontal_min_targets=25,
    horizontal_window_s=300.0,
)
GRID_US = 25 * US  # event times: idle limits of 300 s and 200 s are whole numbers of steps
Event = tuple[str, str, str, int, int, int, bool]  # site, src, dst, port, ts, cnt, lb


@dataclass
class SlowSession:
    sess: int
    last: int
    packets: int = 0
    lb: bool = False
    ports: dict[int, int] = field(default_factory=dict)  # port -> first-hit time
    targets: dict[str, int] = field(default_factory=dict)
    touched: bool = False
    was: bool = False


@dataclass
class DistSession:
    sess: int
    last: int
    lb: bool = False
    ports: dict[int, tuple[int, str]] = field(default_factory=dict)  # port -> (first t, prober)
    touched: bool = False
    was: bool = False


def tau_of(points: list[tuple[int, int]], cfg: DetectConfig) -> float | None:
    """Kendall tau over the first slow_max_points (t, port) points."""
    pts = sorted(points)[: cfg.slow_max_points]
    pairs = [(a, b) for a in pts for b in pts if a[1] < b[1]]
    if not pairs:
        return None
    return sum((b[0] > a[0]) - (b[0] < a[0]) for a, b in pairs) / len(pairs)


def order_of(tau: float | None, cfg: DetectConfig) -> str | None:
    if tau is None:
        return None
    return (
        "ascending"
        if tau >= cfg.slow_min_abs_tau
        else "descending"
        if tau <= -cfg.slow_min_abs_tau
        else "random"
    )


class ReferenceTracker:
    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self.slow: dict[tuple[str, str], SlowSession] = {}  # open sessions, one per key
        self.dpair: dict[tuple[str, str, int], int] = {}
        self.dist: dict[tuple[str, str, int], DistSession] = {}

    def chunk(self, events: list[Event], hi: int) -> list[dict[str, Any]]:
        return self._slow(events, hi) + self._distributed(events, hi)

    def _slow(self, events: list[Event], hi: int) -> list[dict[str, Any]]:
        c = self.cfg
        idle = int(c.slow_idle_s * US)
        sessions: dict[tuple[str, str], list[SlowSession]] = {}
        for key, s in self.slow.items():
            s.touched, s.was = False, True
            sessions[key] = [s]
        for site, src, dst, port, ts, cnt, lb in sorted(events, key=lambda e: (e[0], e[1], e[4])):
            runs = sessions.setdefault((site, src), [])
            if not runs or ts - runs[-1].last > idle:
                runs.append(SlowSession(ts, ts))
            s = runs[-1]
            s.last, s.packets, s.lb, s.touched = ts, s.packets + cnt, s.lb or lb, True
            s.ports.setdefault(port, ts)
            s.targets.setdefault(dst, ts)
        recs, self.slow = [], {}
        for (site, src), runs in sorted(sessions.items()):
            for i, s in enumerate(runs):
                if len(s.targets) > c.track_max_targets:
                    keep = sorted((t, d) for d, t in s.targets.items())[: c.track_max_targets]
                    s.targets = {d: t for t, d in keep}
                is_open = i == len(runs) - 1 and hi - s.last <= idle
                if is_open:
                    self.slow[(site, src)] = s
                if not (s.touched or (s.was and not is_open)):
                    continue
                first = min(s.ports.values())
                nports, ntargets = len(s.ports), len(s.targets)
                if s.last - first < int(c.slow_min_span_s * US):
                    continue
                dur = s.last - first
                dets = []
                if nports >= c.slow_min_ports and (nports - 1) / dur < c.vertical_min_ports / (
                    c.vertical_window_s * US
                ):
                    dets.append(sorted(s.ports.values())[c.slow_min_ports - 1])
                if ntargets >= c.slow_min_targets and (ntargets - 1) / dur < c.horizontal_min_targets / (
                    c.horizontal_window_s * US
                ):
                    dets.append(sorted(s.targets.values())[c.slow_min_targets - 1])
                if not dets:
                    continue
                tau = tau_of([(t, p) for p, t in s.ports.items()], c)
                recs.append(
                    {
                        "scan_id": scan_id("slow", (site, src), s.sess),
                        "kind": "slow",
                        "site": site,
                        "sources": [src],
                        "first_ts": s.sess,
                        "last_ts": s.last,
                        "detected_at": min(dets),
                        "port_min": min(s.ports),
                        "port_max": max(s.ports),
                        "distinct_ports": nports,
                        "distinct_targets": ntargets,
                        "packets": s.packets,
                        "score": round(max(nports / c.slow_min_ports, ntargets / c.slow_min_targets), 4),
                        "lower_bound": s.lb or ntargets >= c.track_max_targets,
                        "status": "open" if is_open else "closed",
                        "order": order_of(tau, c),
                        "tau": None if tau is None else round(tau, 4),
                    }
                )
        return recs

    def _distributed(self, events: list[Event], hi: int) -> list[dict[str, Any]]:
        c = self.cfg
        mem, idle = int(c.slow_idle_s * US), int(c.distributed_idle_s * US)
        block = c.distributed_block_ports
        new: list[Event] = []
        for e in sorted(events, key=lambda e: (e[0], e[2], e[3], e[4], e[1], not e[6])):
            pair = (e[0], e[2], e[3])
            prev = self.dpair.get(pair)
            if prev is None or e[4] - prev > mem:
                new.append(e)
            self.dpair[pair] = e[4]
        self.dpair = {k: v for k, v in self.dpair.items() if v >= hi - mem}
        sessions: dict[tuple[str, str, int], list[DistSession]] = {}
        for key, s in self.dist.items():
            s.touched, s.was = False, True
            sessions[key] = [s]
        for site, src, dst, port, ts, _cnt, lb in sorted(
            new, key=lambda e: (e[0], e[2], e[3] // block, e[4])
        ):
            runs = sessions.setdefault((site, dst, port // block), [])
            if not runs or ts - runs[-1].last > idle:
                runs.append(DistSession(ts, ts))
            s = runs[-1]
            s.last, s.lb, s.touched = ts, s.lb or lb, True
            s.ports[port] = min(s.ports.get(port, (ts, src)), (ts, src))
        recs, self.dist = [], {}
        for (site, dst, blk), runs in sorted(sessions.items()):
            for i, s in enumerate(runs):
                is_open = i == len(runs) - 1 and hi - s.last <= idle
                if is_open:
                    self.dist[(site, dst, blk)] = s
                if not (s.touched or (s.was and not is_open)):
                    continue
                credited: dict[str, int] = {}
                for _t, src in s.ports.values():
                    credited[src] = credited.get(src, 0) + 1
                light = {p: v for p, v in s.ports.items() if credited[v[1]] < c.slow_min_ports}
                srcs = sorted({v[1] for v in light.values()})
                n = len(light)
                if n < c.distributed_min_ports or len(srcs) < c.distributed_min_sources:
                    continue
                t0, t1 = min(v[0] for v in light.values()), max(v[0] for v in light.values())
                if t1 - t0 < int(c.slow_min_span_s * US) or not (n - 1) / (t1 - t0) < c.vertical_min_ports / (
                    c.vertical_window_s * US
                ):
                    continue
                tau = tau_of([(v[0], p) for p, v in light.items()], c)
                recs.append(
                    {
                        "scan_id": scan_id("distributed", (site, dst, blk), s.sess),
                        "kind": "distributed",
                        "site": site,
                        "sources": srcs,
                        "first_ts": t0,
                        "last_ts": t1,
                        "detected_at": sorted(v[0] for v in light.values())[c.distributed_min_ports - 1],
                        "port_min": min(light),
                        "port_max": max(light),
                        "distinct_ports": n,
                        "distinct_targets": 1,
                        "packets": n,
                        "score": round(n / c.distributed_min_ports, 4),
                        "lower_bound": s.lb,
                        "status": "open" if is_open else "closed",
                        "order": order_of(tau, c),
                        "tau": None if tau is None else round(tau, 4),
                    }
                )
        return recs

    def state(self) -> dict[str, set[tuple[Any, ...]]]:
        return {
            "src_meta": {(k[0], k[1], s.sess, s.last, s.packets, s.lb) for k, s in self.slow.items()},
            "src_ports": {
                (k[0], k[1], s.sess, p, t) for k, s in self.slow.items() for p, t in s.ports.items()
            },
            "src_targets": {
                (k[0], k[1], s.sess, d, t) for k, s in self.slow.items() for d, t in s.targets.items()
            },
            "dpair": {(*k, v) for k, v in self.dpair.items()},
            "dist_meta": {(*k, s.sess, s.last, s.lb) for k, s in self.dist.items()},
            "dist_ports": {
                (*k, s.sess, p, t, src) for k, s in self.dist.items() for p, (t, src) in s.ports.items()
            },
        }


FIELDS = [
    "scan_id", "kind", "site", "sources", "first_ts", "last_ts", "detected_at", "port_min", "port_max",
    "distinct_ports", "distinct_targets", "packets", "score", "lower_bound", "status", "order", "tau",
]  # fmt: skip


def as_plain(table: pa.Table) -> list[dict[str, Any]]:
    out = []
    for r in table.to_pylist():
        row = {k: r[k] for k in FIELDS}
        for k in ("first_ts", "last_ts", "detected_at"):
            row[k] = (row[k] - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
        out.append(row)
    return sorted(out, key=lambda r: r["scan_id"])


def points_of(events: list[Event]) -> pa.Table:
    cols = list(zip(*events, strict=True)) if events else [[] for _ in range(7)]
    return pa.table(
        {
            "site": pa.array(cols[0], pa.string()),
            "src_ip": pa.array(cols[1], pa.string()),
            "dst_ip": pa.array(cols[2], pa.string()),
            "dst_port": pa.array(cols[3], pa.int32()),
            "ts_us": pa.array(cols[4], pa.int64()),
            "cnt": pa.array(cols[5], pa.int64()),
            "lb": pa.array(cols[6], pa.bool_()),
        }
    )


def dictionary_coded(t: pa.Table) -> pa.Table:
    """The strings as the runner hands them over (``engine.points``: dictionary-encoded), in a
    dictionary of another order than first-seen and with an entry no row uses (a filter's leftover)."""
    for name in ("site", "src_ip", "dst_ip"):
        values = t.column(name).to_pylist()
        words = sorted({*values, "~unused"}, reverse=True)
        at = {w: i for i, w in enumerate(words)}
        idx = pa.array([at[v] for v in values], pa.int32())
        t = t.set_column(t.schema.get_field_index(name), name, pa.DictionaryArray.from_arrays(idx, words))
    return t


SITES = st.sampled_from(["a", "b"])
SRCS = ["10.0.0.1", "10.0.0.2", "10.0.0.10", "9.9.9.9", "192.0.2.1"]
DSTS = ["172.16.0.1", "172.16.0.2", "172.16.0.3", "172.16.0.20", "172.16.1.1"]
# Ports 0-40 and 1020-1030 span several 16-port blocks.
PORTS = st.one_of(st.integers(0, 40), st.integers(1020, 1030))


@st.composite
def worlds(draw: st.DrawFn) -> list[Event]:
    """Noise plus a few walks: one or several sources probing ports of a target (or one port of
    several targets) every few grid steps. Times on a 25 s grid over 2 h, against idle limits of
    300 s and 200 s: equal times, and gaps just under, at and over every limit."""
    slot = st.integers(0, 288).map(lambda k: DAY0 + k * GRID_US)
    noise = st.tuples(
        SITES, st.sampled_from(SRCS), st.sampled_from(DSTS), PORTS, slot, st.integers(1, 3), st.booleans()
    )
    events = draw(st.lists(noise, max_size=60))
    # Re-probes of one (dst, port) at the port memory (12 steps) and the distributed idle limit
    # (8 steps), one step under, at and over each.
    for _ in range(draw(st.integers(0, 2))):
        site, dst, port, k = draw(SITES), draw(st.sampled_from(DSTS)), draw(PORTS), draw(st.integers(0, 200))
        period = draw(st.sampled_from([7, 8, 9, 11, 12, 13]))
        srcs = draw(st.lists(st.sampled_from(SRCS), min_size=1, max_size=3, unique=True))
        for i in range(draw(st.integers(2, 5))):
            events.append((site, srcs[i % len(srcs)], dst, port, DAY0 + (k + i * period) * GRID_US, 1, False))
    for _ in range(draw(st.integers(0, 4))):
        site, kind = draw(SITES), draw(st.sampled_from(["ports", "targets", "shared"]))
        # shared: a walk of several sources, each taking a port or two (distributed).
        srcs = draw(
            st.lists(st.sampled_from(SRCS), min_size=2 if kind == "shared" else 1, max_size=5, unique=True)
        )
        dsts = DSTS if kind == "targets" else [draw(st.sampled_from(DSTS))]
        # A shared walk stays in one 16-port block (blocks are tracked apart); the others roam.
        base = 16 * draw(st.sampled_from([0, 1, 64]))
        pool = st.integers(base, base + 15) if kind == "shared" else PORTS
        ports = (
            [draw(PORTS)] if kind == "targets" else draw(st.lists(pool, min_size=2, max_size=14, unique=True))
        )
        probes = draw(st.integers(2, 2 * len(srcs) + 1 if kind == "shared" else 14))
        k, gap, lb = draw(st.integers(0, 280)), draw(st.integers(0, 10)), draw(st.booleans())
        for i in range(probes):
            if k > 288:
                break
            src, dst, port = srcs[i % len(srcs)], dsts[i % len(dsts)], ports[i % len(ports)]
            events.append((site, src, dst, port, DAY0 + k * GRID_US, 1, lb))
            k += gap + draw(st.integers(0, 3))
    return events


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(events=worlds(), cuts=st.lists(st.integers(1, 287), max_size=6), coded=st.booleans())
def test_session_pass_matches_the_python_reference(events: list[Event], cuts: list[int], coded: bool) -> None:
    table = dictionary_coded(points_of(events)) if coded else points_of(events)
    ts = table.column("ts_us")

    def read(lo: int, hi: int) -> pa.Table:
        return table.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))

    tracker, ref = SlowTracker(CFG, None), ReferenceTracker(CFG)
    tracker.start(DAY0)
    ends = [DAY0 + k * GRID_US + 5 * US for k in sorted(set(cuts))] + [DAY0 + 7300 * US]
    lo, latest = DAY0, {}
    for hi in ends:
        got = as_plain(pa.concat_tables(tracker.advance(read, hi)))
        want = sorted(ref.chunk([e for e in events if lo <= e[4] < hi], hi), key=lambda r: r["scan_id"])
        assert got == want
        latest.update({r["scan_id"]: r for r in got})
        lo = hi
        state = {k: {tuple(r.values()) for r in t.to_pylist()} for k, t in tracker.state.items()}
        assert state == ref.state()
        assert all(t.num_rows == len(state[k]) for k, t in tracker.state.items()), "a state row twice"
    event(f"kinds found: {sorted({r['kind'] for r in latest.values()})}")
    # And in one chunk: each record is the chunked run's latest version of it. (Not the converse:
    # a record is never retracted, and a later chunk can take a session under a threshold again,
    # such as a light source of a distributed walk credited with more ports and no longer light.)
    whole = SlowTracker(CFG, None)
    whole.start(DAY0)
    once = {r["scan_id"]: r for r in as_plain(pa.concat_tables(whole.advance(read, ends[-1])))}
    assert {k: latest.get(k) for k in once} == once


def test_a_port_out_of_range_is_refused_rather_than_aliased() -> None:
    """Ports are packed into integer keys: 70000 would otherwise pose as another port or block."""
    for port in (70_000, -1):
        tracker = SlowTracker(CFG, None)
        tracker.start(DAY0)
        table = points_of([("a", "10.0.0.1", "172.16.0.1", port, DAY0 + US, 1, False)])
        with pytest.raises(ValueError, match="0-65535"):
            tracker.advance(lambda lo, hi, t=table: t, DAY0 + 60 * US)
