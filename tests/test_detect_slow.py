"""Persistent slow-scan tracking: any port order, across midnight and days, distributed, one record each.

Event streams are built here from scanner behaviour (probe gaps, port order), then run
through the real Evaluator (DuckDB, Parquet scan dataset, daily checkpoints) by replay
and by a live-style loop with a moving watermark and a restart in the middle.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline.config import ConfigError, DetectConfig
from pipeline.detect.runner import Evaluator, replay, table_source, to_us
from pipeline.detect.scanstore import ScanStore
from pipeline.detect.slowtrack import SlowTracker

DAY0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
US = 1_000_000


class Events:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, t: float, src: str, dst: str, port: int, site: str = "a") -> None:
        self.rows.append(
            {
                "ts": DAY0 + dt.timedelta(seconds=t),
                "site": site,
                "src_ip": src,
                "dst_ip": dst,
                "dst_port": port,
                "prefix": "DROP ",
                "count": 1,
            }
        )

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows).sort_by("ts")


def run(ev: Events, root: Path, days: float, cfg: DetectConfig | None = None) -> list[dict[str, Any]]:
    e = Evaluator(cfg or DetectConfig(), table_source(ev.table()), ScanStore(root))
    replay(e, DAY0, DAY0 + dt.timedelta(days=days))
    return e.scans.read().to_pylist()


def t0_scan(ev: Events, src: str, dst: str, ports: list[int], start_s: float, gap_s: float = 300.0) -> float:
    """nmap -T0: one probe every gap_s (5 min), ports in the order given; returns the last probe's time."""
    t = start_s
    for p in ports:
        ev.add(t, src, dst, p)
        t += gap_s
    return t - gap_s


def noise(ev: Events, days: float, n: int, seed: int = 1) -> None:
    """Background: one-packet sources on popular ports and random ports of 20 addresses."""
    r = random.Random(seed)
    for i in range(n):
        port = r.choice((22, 23, 80, 443, 445, 3389)) if r.random() < 0.7 else r.randrange(1, 65536)
        ev.add(
            r.uniform(0, days * 86400),
            f"198.51.{i % 250}.{i // 250 % 250}",
            f"10.0.0.{r.randrange(20)}",
            port,
        )


def test_t0_scan_of_1000_random_ports_over_3_5_days_is_one_growing_scan(tmp_path: Path) -> None:
    """-T0, nmap's random order: one slow record, not cut at the three midnights, first and last time."""
    ev = Events()
    ports = random.Random(3).sample(range(1, 1001), 1000)
    start = 20 * 3600.0  # 20:00 on day 0
    last = t0_scan(ev, "203.0.113.5", "10.0.0.1", ports, start)
    noise(ev, 5, 3000)
    scans = run(ev, tmp_path, 5)
    rv = [s for s in scans if s["kind"] == "slow"]
    assert len(rv) == 1, [(s["kind"], s["first_ts"], s["distinct_ports"]) for s in scans]
    s = rv[0]
    assert (s["sources"], s["distinct_ports"]) == (["203.0.113.5"], 1000)
    assert (s["port_min"], s["port_max"]) == (1, 1000)
    assert s["first_ts"] == DAY0 + dt.timedelta(seconds=start)
    assert s["last_ts"] == DAY0 + dt.timedelta(seconds=last)
    assert (s["order"], s["days_spanned"], s["status"], s["distributed"]) == ("random", 5, "closed", False)
    assert all(s2["kind"] != "distributed" for s2 in scans)


def test_scan_across_midnight_under_the_threshold_on_each_day_is_found(tmp_path: Path) -> None:
    """Five ports before midnight and seven after, one every 50 minutes: each day alone has < 10."""
    ev = Events()
    ports = [8080, 21, 3306, 111, 5900, 25, 6379, 139, 1433, 53, 27017, 9200]
    t0_scan(ev, "203.0.113.6", "10.0.0.2", ports, 86400 - 4 * 3000 + 600, gap_s=3000)
    rv = run(ev, tmp_path, 3)
    assert [(s["kind"], s["distinct_ports"], s["days_spanned"], s["order"]) for s in rv] == [
        ("slow", 12, 2, "random")
    ]
    assert rv[0]["first_ts"].date() == DAY0.date()
    assert rv[0]["last_ts"].date() == DAY0.date() + dt.timedelta(days=1)


def test_slow_horizontal_sweep_counts_distinct_targets(tmp_path: Path) -> None:
    ev = Events()
    for i in range(30):
        ev.add(3600 + i * 400, "203.0.113.7", f"10.0.1.{i}", 445)
    rv = run(ev, tmp_path, 1)
    assert [(s["kind"], s["distinct_targets"], s["distinct_ports"]) for s in rv] == [("slow", 30, 1)]


def distributed_walk(
    ev: Events,
    sources: int,
    ports: list[int],
    start_s: float,
    gap_s: float,
    dst: str = "10.0.0.9",
    seed: int = 5,
) -> list[str]:
    """One walk over a target's ports shared by many sources, each taking a few ports in turn."""
    r = random.Random(seed)
    srcs = [f"100.64.{i // 200}.{i % 200}" for i in range(sources)]
    t = start_s
    for i, p in enumerate(ports):
        ev.add(t, srcs[i % sources], dst, p)
        t += gap_s * r.uniform(0.5, 1.5)
    return srcs


def test_distributed_slow_walk_of_one_target_is_one_distributed_scan(tmp_path: Path) -> None:
    """60 sources share a random-order walk of 1-300 over 10 h (5 ports each): one distributed scan."""
    ev = Events()
    ports = random.Random(9).sample(range(1, 301), 300)
    srcs = distributed_walk(ev, 60, ports, 5000, 120)
    noise(ev, 1, 4000)
    scans = run(ev, tmp_path, 1)
    rv = [s for s in scans if s["kind"] == "distributed"]
    assert len(rv) == 1 and not [s for s in scans if set(s["sources"]) & set(srcs) and s is not rv[0]]
    s = rv[0]
    # Background sources that hit the block during the walk are credited too, never more than a few.
    extra = set(s["sources"]) - set(srcs)
    assert set(srcs) <= set(s["sources"]) and len(extra) <= 10 and all(x.startswith("198.51.") for x in extra)
    assert (s["site"], s["distinct_targets"], s["distributed"], s["order"]) == ("a", 1, True, "random")
    # A few noise hits on the same block may be credited too; the walk's 300 ports all are.
    assert 300 <= s["distinct_ports"] <= 310 and s["port_min"] == 1 and 300 <= s["port_max"] < 1024


def test_distributed_sequential_walk_reports_its_order(tmp_path: Path) -> None:
    ev = Events()
    distributed_walk(ev, 20, list(range(2048, 2148)), 3000, 200)
    rv = run(ev, tmp_path, 1)
    assert [(s["kind"], s["order"], len(s["sources"]), s["distinct_ports"]) for s in rv] == [
        ("distributed", "ascending", 20, 100)
    ]


def test_distributed_walk_across_a_block_boundary_is_reported_per_block(tmp_path: Path) -> None:
    """Known limit: ports are tracked in 1024-port blocks, so a walk over 2000-2099 is two records
    (2000-2047 and 2048-2099), each a distributed scan of its own."""
    ev = Events()
    distributed_walk(ev, 20, list(range(2000, 2100)), 3000, 200)
    rv = run(ev, tmp_path, 1)
    assert sorted((s["kind"], s["port_min"], s["port_max"], s["distinct_ports"]) for s in rv) == [
        ("distributed", 2000, 2047, 48),
        ("distributed", 2048, 2099, 52),
    ]


def test_background_on_popular_ports_for_days_is_not_distributed(tmp_path: Path) -> None:
    """Thousands of one-packet sources re-hitting popular ports of a few targets for three days."""
    ev = Events()
    noise(ev, 3, 30_000, seed=11)
    assert run(ev, tmp_path, 3) == []


def live(
    table: pa.Table, root: Path, start: int, end: int, step_us: int, restart_at: int | None, cfg: DetectConfig
) -> tuple[pa.Table, list[dict[str, Any]], list[dict[str, Any]]]:
    """Evaluate at a moving watermark (events revealed in time order); restart the detector once."""
    ts = pc.cast(table.column("ts"), pa.int64())
    upto = {"wm": start}

    def arrived(lo: int, hi: int) -> pa.Table:
        assert hi <= upto["wm"], "the live path never reads past its watermark"
        return table.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))

    alerts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []

    def fresh() -> Evaluator:
        return Evaluator(cfg, arrived, ScanStore(root), on_new=alerts.extend, on_update=updates.extend)

    ev = fresh()
    wm, first = start + step_us, True
    while wm < end:
        upto["wm"] = wm
        if restart_at is not None and wm >= restart_at:
            ev, first, restart_at = fresh(), True, None  # a new process: state from the checkpoint
        ev.evaluate(wm, since_us=wm - 8 * 3600 * US) if first else ev.evaluate(wm)
        first = False
        wm += step_us
    upto["wm"] = end
    ev.evaluate(end)
    return ev.scans.read(), alerts, updates


def test_live_with_a_restart_writes_what_replay_writes_one_record_and_one_alert_per_scan(
    tmp_path: Path,
) -> None:
    ev = Events()
    ports = random.Random(4).sample(range(1, 65536), 400)
    t0_scan(ev, "203.0.113.8", "10.0.0.3", ports, 3 * 3600.0, gap_s=400)  # 1.85 days
    distributed_walk(ev, 40, random.Random(2).sample(range(1, 1025), 200), 30 * 3600.0, 150)
    for i in range(15):  # and a fast one, for the grid kinds
        ev.add(50 * 3600 + i, "203.0.113.9", "10.0.0.4", 1000 + i)
    noise(ev, 3, 3000)
    table = ev.table()
    cfg = DetectConfig()
    end = to_us(DAY0 + dt.timedelta(days=3))
    batch = Evaluator(cfg, table_source(table), ScanStore(tmp_path / "replay"))
    replay(batch, DAY0, DAY0 + dt.timedelta(days=3))
    want = batch.scans.read()
    assert sorted(want.column("kind").to_pylist()) == ["distributed", "slow", "vertical"]

    start = to_us(DAY0)
    got, alerts, updates = live(table, tmp_path / "live", start, end, 7_321 * US, start + 40 * 3600 * US, cfg)
    assert got.equals(want)
    ids = sorted(want.column("scan_id").to_pylist())
    assert sorted(a["scan_id"] for a in alerts) == ids, "each scan alerted once, across the restart"
    # Updates (the scans topic) repeat a scan as it grows; the latest of each is the stored record.
    latest = {u["scan_id"]: u for u in updates}
    assert sorted(latest) == ids and list(latest.values()) != updates
    assert sorted(latest.values(), key=lambda r: r["scan_id"]) == sorted(
        want.to_pylist(), key=lambda r: r["scan_id"]
    )
    # And replaying again over the live dataset changes nothing and announces nothing.
    again = Evaluator(cfg, table_source(table), ScanStore(tmp_path / "live"), on_new=alerts.extend)
    replay(again, DAY0, DAY0 + dt.timedelta(days=3))
    assert again.scans.read().equals(want) and len(alerts) == len(ids)


def test_replay_from_a_later_day_continues_from_the_checkpoint(tmp_path: Path) -> None:
    """Replaying day 2 alone resumes the scan that started on day 1: the same id, one record."""
    ev = Events()
    t0_scan(ev, "203.0.113.10", "10.0.0.5", random.Random(8).sample(range(1, 5000), 500), 12 * 3600.0)
    table = ev.table()
    e = Evaluator(DetectConfig(), table_source(table), ScanStore(tmp_path))
    replay(e, DAY0, DAY0 + dt.timedelta(days=3))
    whole = e.scans.read()
    e2 = Evaluator(DetectConfig(), table_source(table), ScanStore(tmp_path))
    replay(e2, DAY0 + dt.timedelta(days=1, hours=5), DAY0 + dt.timedelta(days=3))
    rv = e2.scans.read()
    assert rv.num_rows == 1 and rv.equals(whole)
    assert rv.column("first_ts")[0].as_py() == DAY0 + dt.timedelta(hours=12)


def test_replay_resumes_from_a_checkpoint_a_crash_left_moved_aside(tmp_path: Path) -> None:
    """A save killed between moving the old checkpoint aside and renaming the new one in leaves
    only ``.<day>.old``: the next start reads it, and the next save replaces it."""
    ev = Events()
    t0_scan(ev, "203.0.113.10", "10.0.0.5", random.Random(8).sample(range(1, 5000), 500), 12 * 3600.0)
    table = ev.table()
    e = Evaluator(DetectConfig(), table_source(table), ScanStore(tmp_path))
    replay(e, DAY0, DAY0 + dt.timedelta(days=3))
    whole = e.scans.read()
    day1 = to_us(DAY0 + dt.timedelta(days=1))
    ckpt = tmp_path / "_track" / f"{day1:020d}"
    saved = SlowTracker(DetectConfig(), tmp_path / "_track")
    saved.start(day1)
    assert saved.rows() > 0
    ckpt.rename(ckpt.with_name(f".{ckpt.name}.old"))  # the crash
    crashed = SlowTracker(DetectConfig(), tmp_path / "_track")
    crashed.start(day1)
    assert all(crashed.state[k].equals(saved.state[k]) for k in saved.state)
    e2 = Evaluator(DetectConfig(), table_source(table), ScanStore(tmp_path))
    replay(e2, DAY0 + dt.timedelta(days=1, hours=5), DAY0 + dt.timedelta(days=3))
    assert e2.scans.read().equals(whole)
    names = sorted(p.name for p in (tmp_path / "_track").iterdir())
    assert not [n for n in names if n.startswith(".")], names


def test_state_and_checkpoints_stay_bounded_and_a_flood_is_counted(tmp_path: Path) -> None:
    """More sources than track_max_rows allows: the state never exceeds it, evictions are counted,
    the scanning source (most ports) survives, and only track_checkpoints_kept days stay on disk."""
    ev = Events()
    r = random.Random(6)
    for i in range(6000):  # each flood source: 3 ports, minutes apart, on every day
        for j in range(3):
            ev.add(
                (i % 10) * 86400 / 10 + i * 7 + j * 60,
                f"100.{i // 250}.{i % 250}.1",
                "10.0.0.7",
                r.randrange(1, 65536),
            )
    last = t0_scan(ev, "203.0.113.11", "10.0.0.8", r.sample(range(1, 65536), 40), 3600.0, gap_s=600)
    cfg = DetectConfig(track_max_rows=2000, track_checkpoints_kept=3)
    tracker_rows: list[int] = []
    e = Evaluator(cfg, table_source(ev.table()), ScanStore(tmp_path))
    day = DAY0
    e.evaluated_us = None
    for k in range(10):
        e.evaluate(to_us(day + dt.timedelta(days=k + 1)), since_us=to_us(day) if k == 0 else None)
        assert e.tracker is not None
        tracker_rows.append(e.tracker.rows())
    assert max(tracker_rows) <= 2000
    assert e.stats.dropped_keys.get("slow", 0) > 0 and "slow" in e.stats.flooded
    slow = [s for s in e.scans.read().to_pylist() if s["kind"] == "slow"]
    assert [(s["sources"], s["distinct_ports"]) for s in slow] == [(["203.0.113.11"], 40)]
    assert slow[0]["last_ts"] == DAY0 + dt.timedelta(seconds=last)
    assert len([p for p in (tmp_path / "_track").iterdir()]) == 3


def test_chunking_does_not_change_the_state(tmp_path: Path) -> None:
    """The tracker fed a day at once or in 7-minute chunks ends with identical state and records."""
    ev = Events()
    t0_scan(ev, "203.0.113.12", "10.0.0.1", random.Random(1).sample(range(1, 3000), 120), 1000.0, 500)
    distributed_walk(ev, 30, list(range(100, 250)), 2000, 250)
    noise(ev, 1, 2000)
    pts_src = table_source(ev.table())
    from pipeline.detect.engine import points

    def read(lo: int, hi: int) -> pa.Table:
        return points(pts_src(lo, hi), DetectConfig())

    a, b = SlowTracker(DetectConfig(), None), SlowTracker(DetectConfig(), None)
    a.start(to_us(DAY0))
    b.start(to_us(DAY0))
    end = to_us(DAY0 + dt.timedelta(hours=23))
    recs_a = a.advance(read, end)
    recs_b: list[pa.Table] = []
    t = to_us(DAY0)
    while t < end:
        t = min(end, t + 420 * US)
        recs_b += b.advance(read, t)
    for k in a.state:
        key = [(c, "ascending") for c in a.state[k].column_names]
        assert a.state[k].sort_by(key).equals(b.state[k].sort_by(key)), k
    latest = {r["scan_id"]: r for t_ in recs_b for r in t_.to_pylist()}
    assert {r["scan_id"]: r for t_ in recs_a for r in t_.to_pylist()} == latest
    assert sorted(r["kind"] for r in latest.values()) == ["distributed", "slow"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("distributed_block_ports", 1000), ("track_step_s", 7.0), ("slow_idle_s", 0.0), ("track_max_rows", 0)],
)
def test_bad_tracking_config_is_refused_with_its_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        DetectConfig(**{key: value})
