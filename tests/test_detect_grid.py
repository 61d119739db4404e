"""The grid kinds' sorted passes against a straightforward Python reference, over random inputs.

``reference`` below follows the definitions in ``pipeline.detect.engine``'s docstring one
grid point at a time, with dicts and sets: at each grid point b of (start, end] the window
[b - W, b) per key, the kind's measure and threshold, islands of consecutive hot points
within one epoch, the candidate cut (and the flood cap: highest measure, then the smallest
key), one record per island from the key's events in [first_b - W, last_b). Hypothesis
draws small worlds (few sources, targets and ports, coarse times, so ties, window edges,
epoch boundaries and every threshold are hit), evaluation starts on any epoch and ends
anywhere (a live tick's cut); ``Detector.run`` must return the reference's records exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.config import DetectConfig
from pipeline.detect.engine import Detector, KindSpec, kind_specs
from pipeline.detect.records import days_spanned, epoch_scan_id, records_table

US = 1_000_000
T0 = 1_740_787_200 * US  # 2025-03-01 00:00 UTC

CFG = DetectConfig(
    vertical_min_ports=3,
    vertical_window_s=6.0,
    vertical_step_s=2.0,
    horizontal_min_targets=2,
    horizontal_window_s=7.0,  # not a multiple of its step: windows start between grid points
    horizontal_step_s=3.0,
    hammer_min_hits=4,
    hammer_window_s=20.0,
    hammer_step_s=4.0,
    hammer_min_active_slots=2,
    coordinated_min_sources=2,
    coordinated_min_ports=3,
    coordinated_min_ports_per_source=1,
    coordinated_min_disjoint=0.8,
    coordinated_window_s=6.0,
    fast_epoch_s=30.0,
    slow_epoch_s=60.0,
)
SITES = ("b-site", "a-site", "ü-site")
SRCS = ("10.0.0.9", "10.0.0.10", "2001:db8::1", "192.0.2.7")
DSTS = ("198.51.100.1", "198.51.100.20", "203.0.113.5")
PORTS = (0, 22, 23, 80, 443, 65535)


@dataclass(frozen=True)
class Ev:
    site: str
    src: str
    dst: str
    port: int
    ts: int
    cnt: int
    lb: bool


def table(events: list[Ev]) -> pa.Table:
    return pa.table(
        {
            "site": pa.array([e.site for e in events], pa.string()),
            "src_ip": pa.array([e.src for e in events], pa.string()),
            "dst_ip": pa.array([e.dst for e in events], pa.string()),
            "dst_port": pa.array([e.port for e in events], pa.int32()),
            "ts_us": pa.array([e.ts for e in events], pa.int64()),
            "cnt": pa.array([e.cnt for e in events], pa.int64()),
            "lb": pa.array([e.lb for e in events], pa.bool_()),
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


KEYS = {
    "vertical": lambda e: (e.site, e.src, e.dst),
    "horizontal": lambda e: (e.site, e.src, e.port),
    "hammer": lambda e: (e.site, e.src, e.port),
    "coordinated": lambda e: (e.site, e.dst),
}


def reference(events: list[Ev], kind: str, start: int, end: int, cfg: DetectConfig) -> list[dict[str, Any]]:
    spec = kind_specs(cfg)[kind]
    s, w, ep = spec.step_us, spec.window_us, spec.epoch_us
    evs = [e for e in events if start - w <= e.ts < end]
    key_of = KEYS[kind]
    by_key: dict[tuple[Any, ...], list[Ev]] = {}
    for e in evs:
        by_key.setdefault(key_of(e), []).append(e)
    part: set[tuple[Any, ...]] = set()
    if kind == "coordinated":
        ports: dict[tuple[Any, ...], set[int]] = {}
        for e in evs:
            ports.setdefault((e.site, e.dst, e.src), set()).add(e.port)
        part = {k for k, v in ports.items() if len(v) >= cfg.coordinated_min_ports_per_source}
    measure: dict[tuple[Any, ...], int] = {}
    for k, kev in by_key.items():
        if kind == "vertical" and len({e.port for e in kev}) >= cfg.vertical_min_ports:
            measure[k] = len({e.port for e in kev})
        elif kind == "horizontal" and len({e.dst for e in kev}) >= cfg.horizontal_min_targets:
            measure[k] = len({e.dst for e in kev})
        elif kind == "hammer":
            hits, slots = sum(e.cnt for e in kev), len({e.ts // s for e in kev})
            if hits >= cfg.hammer_min_hits and slots >= cfg.hammer_min_active_slots:
                measure[k] = hits
        elif kind == "coordinated":
            srcs = {e.src for e in kev if (e.site, e.dst, e.src) in part}
            if len(srcs) >= cfg.coordinated_min_sources:
                measure[k] = len(srcs)
    cands = sorted(measure, key=lambda k: (-measure[k], k))[: cfg.max_candidate_keys]
    out = []
    for k in cands:
        kev = by_key[k]
        if kind == "coordinated":
            kev = [e for e in kev if (e.site, e.dst, e.src) in part]
        hot: dict[int, tuple[int, set[str]]] = {}
        for b in range((start // s + 1) * s, (end // s) * s + 1, s):
            win = [e for e in kev if b - w <= e.ts < b]
            got = hot_at(kind, win, s, cfg)
            if got is not None:
                hot[b] = got
        for isl in runs(sorted(hot), s, ep):
            members = set().union(*(hot[b][1] for b in isl))
            rec_ev = [e for e in kev if isl[0] - w <= e.ts < isl[-1]]
            if kind == "coordinated":
                rec_ev = [e for e in rec_ev if e.src in members]
            out += record(spec, k, isl, max(hot[b][0] for b in isl), rec_ev, end, threshold(kind, cfg))
    return out


def hot_at(kind: str, win: list[Ev], s: int, cfg: DetectConfig) -> tuple[int, set[str]] | None:
    """The measure at a grid point if it is hot there (and, coordinated, the sources taking part)."""
    if kind == "vertical":
        n = len({e.port for e in win})
        return (n, set()) if n >= cfg.vertical_min_ports else None
    if kind == "horizontal":
        n = len({e.dst for e in win})
        return (n, set()) if n >= cfg.horizontal_min_targets else None
    if kind == "hammer":
        n, hits = len({e.ts // s for e in win}), sum(e.cnt for e in win)
        return (n, set()) if hits >= cfg.hammer_min_hits and n >= cfg.hammer_min_active_slots else None
    per: dict[str, set[int]] = {}
    for e in win:
        per.setdefault(e.src, set()).add(e.port)
    taking = {
        src: p
        for src, p in per.items()
        if cfg.coordinated_min_ports_per_source <= len(p) < cfg.vertical_min_ports
    }
    union = set().union(*taking.values()) if taking else set()
    total = sum(len(p) for p in taking.values())
    ok = (
        len(taking) >= cfg.coordinated_min_sources
        and len(union) >= cfg.coordinated_min_ports
        and len(union) / total >= cfg.coordinated_min_disjoint
    )
    return (len(union), set(taking)) if ok else None


def runs(points: list[int], s: int, ep: int) -> list[list[int]]:
    """Consecutive grid points, never across an epoch boundary."""
    out: list[list[int]] = []
    for b in points:
        if out and out[-1][-1] + s == b and (out[-1][-1] - 1) // ep == (b - 1) // ep:
            out[-1].append(b)
        else:
            out.append([b])
    return out


def threshold(kind: str, cfg: DetectConfig) -> int:
    return {
        "vertical": cfg.vertical_min_ports,
        "horizontal": cfg.horizontal_min_targets,
        "hammer": cfg.hammer_min_active_slots,
        "coordinated": cfg.coordinated_min_ports,
    }[kind]


def record(
    spec: KindSpec, key: tuple[Any, ...], isl: list[int], peak: int, evs: list[Ev], end: int, t: int
) -> list[dict[str, Any]]:
    epoch = (isl[0] - 1) // spec.epoch_us
    ts0, ts1 = min(e.ts for e in evs), max(e.ts for e in evs)
    if ts1 < epoch * spec.epoch_us:
        return []
    closed = isl[-1] < (end // spec.step_us) * spec.step_us or isl[-1] >= (epoch + 1) * spec.epoch_us
    return [
        {
            "scan_id": epoch_scan_id(spec.kind, key, epoch, isl[0]),
            "kind": spec.kind,
            "site": key[0],
            "sources": sorted({e.src for e in evs}),
            "first_ts": ts0,
            "last_ts": ts1,
            "detected_at": isl[0],
            "port_min": min(e.port for e in evs),
            "port_max": max(e.port for e in evs),
            "distinct_ports": len({e.port for e in evs}),
            "distinct_targets": len({e.dst for e in evs}),
            "packets": sum(e.cnt for e in evs),
            "sites": [key[0]],
            "score": round(peak / t, 4),
            "lower_bound": any(e.lb for e in evs),
            "status": "closed" if closed else "open",
            "epoch_start": epoch * spec.epoch_us,
            "order": None,
            "tau": None,
            "days_spanned": days_spanned(ts0, ts1),
            "distributed": spec.kind == "coordinated",
        }
    ]


@st.composite
def worlds(draw: st.DrawFn) -> list[Ev]:
    """Bursts of one source on few targets and ports (so thresholds are reached), plus noise;
    times on a coarse 1 s grid over 150 s, several epochs of every kind."""
    out: list[Ev] = []
    for _ in range(draw(st.integers(0, 6))):
        site, src = draw(st.sampled_from(SITES[:2])), draw(st.sampled_from(SRCS))
        t0 = draw(st.integers(0, 140))
        dsts = draw(st.lists(st.sampled_from(DSTS), min_size=1, max_size=3, unique=True))
        ports = draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=5, unique=True))
        for i in range(draw(st.integers(1, 14))):
            out.append(
                Ev(
                    site,
                    src,
                    draw(st.sampled_from(dsts)),
                    draw(st.sampled_from(ports)),
                    T0 + (t0 + i * draw(st.integers(0, 2))) * US + draw(st.sampled_from([0, 1, 999_999])),
                    draw(st.integers(1, 3)),
                    draw(st.booleans()),
                )
            )
    noise = st.builds(
        Ev,
        st.sampled_from(SITES),
        st.sampled_from(SRCS),
        st.sampled_from(DSTS),
        st.sampled_from(PORTS),
        st.integers(T0, T0 + 150 * US),
        st.integers(1, 2),
        st.booleans(),
    )
    # Several sources splitting one target's ports (coordinated), some overlapping.
    for _ in range(draw(st.integers(0, 3))):
        site, dst, t0 = (
            draw(st.sampled_from(SITES[:2])),
            draw(st.sampled_from(DSTS)),
            draw(st.integers(0, 140)),
        )
        for src in draw(st.lists(st.sampled_from(SRCS), min_size=1, max_size=4, unique=True)):
            ports = draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=2, unique=True))
            for p in ports:
                dt = draw(st.integers(0, 8)) * US + draw(st.sampled_from([0, 1, 999_999]))
                out.append(Ev(site, src, dst, p, T0 + t0 * US + dt, 1, draw(st.booleans())))
    return out + draw(st.lists(noise, max_size=12))


def check(
    events: list[Ev], start_epochs: dict[str, int], end_s: int, cfg: DetectConfig, coded: bool = False
) -> None:
    specs = kind_specs(cfg)
    end = T0 + end_s * US // 10
    starts = {k: T0 + n * specs[k].epoch_us for k, n in start_epochs.items()}
    starts = {k: v for k, v in starts.items() if v < end}
    pts = dictionary_coded(table(events)) if coded else table(events)
    got = Detector(cfg).run(pts, starts, end).to_pylist()
    want = records_table(
        [r for k, v in starts.items() for r in reference(events, k, v, end, cfg)]
    ).to_pylist()
    key = lambda r: r["scan_id"]  # noqa: E731
    for r in want:
        event(f"{r['kind']} {r['status']}")
    assert sorted(got, key=key) == sorted(want, key=key)
    assert len({r["scan_id"] for r in got}) == len(got)


EPOCHS = st.fixed_dictionaries(
    {
        "vertical": st.integers(0, 4),
        "horizontal": st.integers(0, 4),
        "coordinated": st.integers(0, 4),
        "hammer": st.integers(0, 2),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=worlds(), start_epochs=EPOCHS, end_s=st.integers(1, 1600), coded=st.booleans())
def test_grid_kinds_match_the_python_reference(
    events: list[Ev], start_epochs: dict[str, int], end_s: int, coded: bool
) -> None:
    check(events, start_epochs, end_s, CFG, coded)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=worlds(), start_epochs=EPOCHS, end_s=st.integers(1, 1600), coded=st.booleans())
def test_flood_cap_keeps_the_reference_keys(
    events: list[Ev], start_epochs: dict[str, int], end_s: int, coded: bool
) -> None:
    # One candidate key per kind: which one survives is the cap's order (measure, then key).
    check(events, start_epochs, end_s, dataclasses.replace(CFG, max_candidate_keys=1), coded)


def test_a_null_address_is_refused_rather_than_keyed() -> None:
    t = table([Ev("s", "10.0.0.1", "10.0.0.2", 22, T0, 1, False)])
    t = t.set_column(1, "src_ip", pa.array([None], pa.string()))
    with pytest.raises(ValueError, match="src_ip: 1 null"):
        Detector(CFG).run(t, {"vertical": T0}, T0 + 60 * US)


def test_a_port_out_of_range_is_refused_rather_than_aliased() -> None:
    bad = [Ev("s", "10.0.0.1", "10.0.0.2", 65_536, T0, 1, False)]
    with pytest.raises(ValueError, match="0-65535"):
        Detector(CFG).run(table(bad), {"vertical": T0}, T0 + 60 * US)
