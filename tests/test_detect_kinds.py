"""Scan detection on crafted event streams: each kind, its look-alikes, live == replay, floods."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.config import DetectConfig
from pipeline.detect.runner import Evaluator, replay, table_source, to_us
from pipeline.detect.scanstore import ScanStore
from tests.support.scans import T0, Events, mixed


def detect(ev: Events, tmp: Path, cfg: DetectConfig | None = None, hours: float = 12) -> list[dict[str, Any]]:
    e = Evaluator(cfg or DetectConfig(), table_source(ev.table()), ScanStore(tmp))
    replay(e, T0, T0 + dt.timedelta(hours=hours))
    return e.scans.read().to_pylist()


def kinds(scans: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((s["kind"], tuple(s["sources"])) for s in scans)


class TestVertical:
    def test_fifteen_ports_in_a_minute_is_a_fast_scan(self, tmp_path: Path) -> None:
        """15 distinct ports from one source to one target within 60 s is one vertical scan."""
        ev = Events()
        for i in range(15):
            ev.add(100 + i * 3, "1.1.1.1", "10.0.0.1", 1000 + i * 7)
        rv = detect(ev, tmp_path)
        assert kinds(rv) == [("vertical", ("1.1.1.1",))]
        assert (rv[0]["distinct_ports"], rv[0]["port_min"], rv[0]["port_max"]) == (15, 1000, 1098)
        assert rv[0]["status"] == "closed" and rv[0]["lower_bound"] is False

    def test_fourteen_ports_or_fifteen_spread_over_two_minutes_is_not(self, tmp_path: Path) -> None:
        """One port short, or the same ports spread too thin in time, detects nothing."""
        ev = Events()
        for i in range(14):
            ev.add(100 + i, "1.1.1.1", "10.0.0.1", 1000 + i)
        for i in range(15):
            ev.add(1000 + i * 9, "2.2.2.2", "10.0.0.1", 2000 + i)
        # The slow one walks 15 ports over two minutes: a (short) slow scan, not vertical.
        assert kinds(detect(ev, tmp_path)) == [("slow", ("2.2.2.2",))]

    def test_ufw_prefix_makes_counts_lower_bounds(self, tmp_path: Path) -> None:
        ev = Events()
        for i in range(20):
            ev.add(100 + i, "1.1.1.1", "10.0.0.1", 1000 + i, prefix="[UFW BLOCK] ")
        rv = detect(ev, tmp_path)
        assert [s["lower_bound"] for s in rv] == [True]


class TestHorizontal:
    def test_one_port_across_25_targets_in_5_minutes(self, tmp_path: Path) -> None:
        ev = Events()
        for i in range(25):
            ev.add(10 + i * 10, "3.3.3.3", f"10.0.1.{i}", 23)
        rv = detect(ev, tmp_path)
        assert kinds(rv) == [("horizontal", ("3.3.3.3",))]
        assert rv[0]["distinct_targets"] == 25

    def test_24_targets_is_not_a_sweep(self, tmp_path: Path) -> None:
        ev = Events()
        for i in range(24):
            ev.add(10 + i, "3.3.3.3", f"10.0.1.{i}", 23)
        assert detect(ev, tmp_path) == []


class TestSlow:
    @pytest.mark.parametrize(("direction", "order"), [(1, "ascending"), (-1, "descending")])
    def test_monotonic_walk_over_hours_is_a_slow_scan_ordered(
        self, tmp_path: Path, direction: int, order: str
    ) -> None:
        ev = Events()
        for i in range(12):
            ev.add(600 + i * 1200, "4.4.4.4", "10.0.0.2", 5000 + direction * i * 11)
        rv = detect(ev, tmp_path)
        assert kinds(rv) == [("slow", ("4.4.4.4",))]
        assert (rv[0]["order"], rv[0]["tau"], rv[0]["distinct_ports"]) == (order, float(direction), 12)

    def test_random_order_over_hours_is_a_slow_scan_in_random_order(self, tmp_path: Path) -> None:
        """Twelve ports over hours without a trend (|tau| < 0.8): still a slow scan, order random."""
        ev = Events()
        ports = [31, 5, 77, 12, 90, 44, 3, 61, 25, 80, 18, 50]
        for i, p in enumerate(ports):
            ev.add(600 + i * 1200, "4.4.4.4", "10.0.0.2", p)
        rv = detect(ev, tmp_path)
        assert kinds(rv) == [("slow", ("4.4.4.4",))]
        assert rv[0]["order"] == "random" and abs(rv[0]["tau"]) < 0.8
        assert (rv[0]["distinct_ports"], rv[0]["port_min"], rv[0]["port_max"]) == (12, 3, 90)

    def test_nine_ports_or_a_gap_longer_than_the_idle_timeout_is_not(self, tmp_path: Path) -> None:
        """Nine ports are one short; twelve ports with a 61-minute silence in the middle are two sessions."""
        ev = Events()
        for i in range(9):
            ev.add(600 + i * 1200, "4.4.4.4", "10.0.0.2", 100 + i * 7)
        for i in range(12):
            ev.add(600 + i * 600 + (3660 if i >= 6 else 0), "4.4.4.5", "10.0.0.2", 100 + i * 7)
        assert detect(ev, tmp_path) == []

    def test_fast_sequential_walk_is_vertical_not_slow(self, tmp_path: Path) -> None:
        ev = Events()
        for i in range(200):
            ev.add(100 + i * 0.05, "4.4.4.4", "10.0.0.2", 1 + i)
        assert kinds(detect(ev, tmp_path)) == [("vertical", ("4.4.4.4",))]


class TestHammer:
    def test_one_port_every_minute_for_an_hour(self, tmp_path: Path) -> None:
        ev = Events()
        for i in range(60):
            ev.add(100 + i * 60, "5.5.5.5", "10.0.0.3", 3389)
        rv = detect(ev, tmp_path)
        assert kinds(rv) == [("hammer", ("5.5.5.5",))]
        assert rv[0]["packets"] == 60

    def test_a_burst_of_hits_is_not_persistent(self, tmp_path: Path) -> None:
        """100 hits within two minutes fill only one activity slot: a burst, not hammering."""
        ev = Events()
        for i in range(100):
            ev.add(100 + i, "5.5.5.5", "10.0.0.3", 3389)
        assert detect(ev, tmp_path) == []


class TestCoordinated:
    def test_disjoint_port_slices_in_lock_step(self, tmp_path: Path) -> None:
        ev = Events()
        for s in range(5):
            for j in range(4):
                ev.add(100 + j * 2 + s * 0.1, f"6.6.6.{s}", "10.0.0.9", 200 + s * 4 + j)
        rv = detect(ev, tmp_path)
        assert [("coordinated", tuple(f"6.6.6.{s}" for s in range(5)))] == kinds(rv)
        assert rv[0]["distinct_ports"] == 20

    def test_sources_hitting_the_same_ports_are_not_coordinated(self, tmp_path: Path) -> None:
        """Five sources each trying the same popular ports overlap: union/sum = 0.2."""
        ev = Events()
        for s in range(5):
            for j, p in enumerate((22, 23, 80, 443)):
                ev.add(100 + j + s * 0.1, f"6.6.6.{s}", "10.0.0.9", p)
        assert detect(ev, tmp_path) == []


class TestCrossSite:
    def test_same_source_scanning_two_sites(self, tmp_path: Path) -> None:
        ev = Events()
        for site, t in (("a", 100), ("b", 4000)):
            for i in range(20):
                ev.add(t + i, "7.7.7.7", "10.0.0.1", 1000 + i, site=site)
        rv = detect(ev, tmp_path)
        assert kinds(rv) == [
            ("cross_site", ("7.7.7.7",)),
            ("vertical", ("7.7.7.7",)),
            ("vertical", ("7.7.7.7",)),
        ]
        assert [s["sites"] for s in rv if s["kind"] == "cross_site"] == [["a", "b"]]

    def test_one_site_only_is_not_cross_site(self, tmp_path: Path) -> None:
        ev = Events()
        for t in (100, 4000):
            for i in range(20):
                ev.add(t + i, "7.7.7.7", "10.0.0.1", 1000 + i, site="a")
        assert {"vertical"} == {s["kind"] for s in detect(ev, tmp_path)}


def test_live_incremental_evaluation_writes_exactly_what_replay_writes(tmp_path: Path) -> None:
    """Events revealed in event-time order, evaluated at a moving watermark == one replay."""
    table = mixed().table()
    cfg = DetectConfig()
    batch = Evaluator(cfg, table_source(table), ScanStore(tmp_path / "replay"))
    replay(batch, T0, T0 + dt.timedelta(hours=4))
    want = batch.scans.read()

    ts = table.column("ts")
    import pyarrow.compute as pc

    seen: dict[str, int] = {"upto": 0}

    def arrived(lo_us: int, hi_us: int) -> pa.Table:
        # Only events before the watermark have "arrived": the live path never sees the future.
        assert hi_us <= seen["upto"]
        return table.filter(
            pc.and_(pc.less(pc.cast(ts, pa.int64()), hi_us), pc.greater_equal(pc.cast(ts, pa.int64()), lo_us))
        )

    live = Evaluator(cfg, arrived, ScanStore(tmp_path / "live"))
    opened: list[dict[str, Any]] = []
    live.on_new = opened.extend
    start = to_us(T0)
    wm = start + 7_000_000
    first = True
    while wm <= start + 4 * 3600 * 1_000_000:
        seen["upto"] = wm
        live.evaluate(wm, since_us=start) if first else live.evaluate(wm)
        first = False
        wm += 173_000_000  # not a divisor of any grid step: watermarks fall mid-window
    seen["upto"] = start + 4 * 3600 * 1_000_000
    live.evaluate(seen["upto"])
    got = live.scans.read()
    assert want.num_rows == 8
    assert want.equals(got)
    # Every scan was announced once, the fast one while it was still open or just closed.
    assert sorted({s["scan_id"] for s in opened}) == sorted(want.column("scan_id").to_pylist())
    assert len(opened) == len({s["scan_id"] for s in opened})


def test_alert_command_runs_once_per_new_scan(tmp_path: Path) -> None:
    from pipeline.detect.runner import alert_hooks

    out = tmp_path / "alerts.jsonl"
    cmd = (sys.executable, "-c", f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')")
    cfg = DetectConfig(alert_command=cmd)
    e = Evaluator(cfg, table_source(mixed().table()), ScanStore(tmp_path / "s"), on_new=alert_hooks(cfg))
    replay(e, T0, T0 + dt.timedelta(hours=4))
    replay(e, T0, T0 + dt.timedelta(hours=4))  # idempotent: nothing new the second time
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(a["scan_id"] for a in alerts) == sorted(e.scans.read().column("scan_id").to_pylist())
    assert {a["kind"] for a in alerts} == {
        "vertical",
        "horizontal",
        "slow",
        "hammer",
        "coordinated",
        "cross_site",
    }


FLOOD = textwrap.dedent("""
    import datetime as dt, json, resource, sys
    import numpy as np, pyarrow as pa
    from pipeline.config import DetectConfig
    from pipeline.detect.runner import Evaluator, replay, table_source
    from pipeline.detect.scanstore import ScanStore
    n, scanners, ports = 1_000_000, 20_000, 16
    t0 = int(dt.datetime(2025, 3, 1, tzinfo=dt.UTC).timestamp() * 1e6)
    rng = np.random.default_rng(1)
    idx = np.arange(n)
    src = pa.compute.binary_join_element_wise("100.", pa.array(idx // 65536 % 256).cast(pa.string()), ".",
        pa.array(idx // 256 % 256).cast(pa.string()), ".", pa.array(idx % 256).cast(pa.string()), "")
    ts = t0 + rng.integers(0, 3600 * 1_000_000, n)
    sidx = np.repeat(np.arange(scanners), ports)
    ssrc = pa.compute.binary_join_element_wise("172.16.", pa.array(sidx // 256).cast(pa.string()), ".",
        pa.array(sidx % 256).cast(pa.string()), "")
    sts = t0 + 600_000_000 + sidx * 1000 + np.tile(np.arange(ports), scanners) * 100_000
    def tab(src, ts, port):
        m = len(ts)
        return pa.table({"ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")), "site": pa.array(["a"] * m),
            "src_ip": src, "dst_ip": pa.array(["10.0.0.1"] * m), "dst_port": pa.array(port, pa.int32()),
            "prefix": pa.nulls(m, pa.string()), "count": pa.array(np.ones(m, dtype=np.int32))})
    table = pa.concat_tables([tab(src, ts, rng.integers(1, 65536, n)),
                              tab(ssrc, sts, np.tile(np.arange(ports) + 1, scanners))])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = DetectConfig(max_candidate_keys=1000, duckdb_memory_mb=256)
    e = Evaluator(cfg, table_source(table), ScanStore(sys.argv[1]))
    replay(e, dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 1, 2, tzinfo=dt.UTC))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"stats": e.stats.as_dict(), "rss_before_kb": before, "rss_after_kb": after,
                      "scans": e.scans.read().num_rows}))
""")


def test_flood_of_a_million_spoofed_sources_stays_bounded_and_says_so(tmp_path: Path) -> None:
    """1M one-packet sources plus 20k real scanners: capped candidates, flagged, bounded memory."""
    proc = subprocess.run(
        [sys.executable, "-c", FLOOD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rv = json.loads(proc.stdout.strip().splitlines()[-1])
    stats = rv["stats"]
    assert stats["approx_sources"] > 900_000  # the HyperLogLog saw the flood
    assert "vertical" in stats["flooded"]
    assert stats["dropped_keys"]["vertical"] == 19_000
    assert rv["scans"] == 1000  # the cap: no more scans than candidate keys kept
    # Detection's own growth over the input table: DuckDB is capped at 256 MB and spills.
    assert rv["rss_after_kb"] - rv["rss_before_kb"] < 1_000_000, rv
