"""Scans of several days in the web page, its scans table and `fireplot scans`.

A slow scan in random port order runs for three UTC days (one probe every 50 minutes)
and a distributed walk crosses a midnight. The real detector (replay over a real
Parquet store) files each under the day it started; the page of every day it covers
must outline and list it with its properties (days, order, shared by), in headless
Chromium against the real web server, and `fireplot scans` must print it for each day.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from consumers import style
from consumers.web import drill
from pipeline.config import DetectConfig
from pipeline.detect.runner import Evaluator, replay, store_source
from pipeline.detect.scanstore import ScanStore
from pipeline.event import conform
from pipeline.store import OffsetRange, Store
from tests.support import browser
from tests.support.browser import Chromium, click, model_data, open_page, table_text, wait_for
from tests.support.events import row

DAY1 = dt.date(2026, 10, 20)
DAYS = [DAY1 + dt.timedelta(days=k) for k in range(4)]  # the scan covers the first three
SLOW_SRC = "203.0.113.91"
WALKERS = [f"203.0.113.{100 + i}" for i in range(8)]


def start_of(day: dt.date, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def events() -> list[dict[str, Any]]:
    rng = random.Random(11)
    out: list[dict[str, Any]] = []

    def add(ts: dt.datetime, src: str, dst: str, port: int) -> None:
        out.append(row(ts, len(out), src_ip=src, dst_ip=dst, dst_port=port, site="alpha", prefix="DROP "))

    # nmap --scan-delay 50m, random order: 70 ports from 10:00 on day 1 to about 19:30 on day 3.
    t = start_of(DAY1, 10)
    for port in rng.sample(range(1, 65536), 70):
        add(t, SLOW_SRC, "192.0.2.50", port)
        t += dt.timedelta(minutes=50)
    # Eight sources share one walk over 40 ports of a target, one every 10 minutes, across midnight.
    t = start_of(DAYS[1], 20)
    for i, port in enumerate(rng.sample(range(2000, 2040), 40)):
        add(t, WALKERS[i % len(WALKERS)], "192.0.2.60", port)
        t += dt.timedelta(minutes=10)
    for day in DAYS:  # background: one packet each, popular ports
        for _ in range(30):
            ts = start_of(day) + dt.timedelta(seconds=rng.randrange(86_400))
            add(ts, f"198.51.100.{rng.randrange(1, 200)}", "192.0.2.1", rng.choice((22, 23, 80, 443)))
    return out


@dataclass
class Site:
    root: Path
    store: Store
    scans: ScanStore
    slow: dict[str, Any]
    dist: dict[str, Any]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("scanspan")
    store = Store(root / "store")
    rows = events()
    store.write_flush(
        OffsetRange("fireplot.events", 0, 0, len(rows) - 1), conform(pa.Table.from_pylist(rows))
    )
    scans = ScanStore(store.root / "scans")
    replay(Evaluator(DetectConfig(), store_source(store), scans), start_of(DAYS[0]), start_of(DAYS[-1], 23))
    found = scans.read().to_pylist()
    slow = [s for s in found if s["kind"] == "slow"]
    dist = [s for s in found if s["kind"] == "distributed"]
    assert [s["sources"] for s in slow] == [[SLOW_SRC]], found
    assert len(dist) == 1 and set(dist[0]["sources"]) == set(WALKERS), found
    return Site(root, store, scans, slow[0], dist[0])


def test_the_detector_files_them_once_under_their_first_day(site: Site) -> None:
    s, d = site.slow, site.dist
    assert (s["days_spanned"], s["order"], s["distributed"], s["distinct_ports"]) == (3, "random", False, 70)
    assert (d["days_spanned"], d["distributed"], d["distinct_ports"]) == (2, True, 40)
    files = sorted(
        p.relative_to(site.scans.root).as_posix() for p in site.scans.root.glob("date=*/*.parquet")
    )
    assert f"date={DAY1.isoformat()}/slow+{int(start_of(DAY1).timestamp()) * 1_000_000:020d}.parquet" in files
    assert not any(f.startswith(f"date={DAYS[2].isoformat()}/slow") for f in files), "one record, one file"


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_each_day_the_scans_cover_reads_them_and_no_other_day_does(site: Site, k: int) -> None:
    """The page's read of a day (drill.read_scans, the overlay and table source) finds a
    scan of several days on every day it covers, however long ago it started."""
    day = DAYS[k]
    got = drill.read_scans(site.scans.root, start_of(day), start_of(day + dt.timedelta(days=1)), None)
    ids = set(got.column("scan_id").to_pylist())
    assert (site.slow["scan_id"] in ids) == (k <= 2)
    assert (site.dist["scan_id"] in ids) == (k in (1, 2))
    data = drill.scan_data(got)
    for scan, shared in ((site.slow, "one source"), (site.dist, "several sources")):
        if scan["scan_id"] in ids:
            i = list(data["scan_id"]).index(scan["scan_id"])
            assert (data["kind"][i], data["days"][i], data["shared"][i]) == (
                scan["kind"], scan["days_spanned"], shared)  # fmt: skip
            assert data["order"][i] == (scan["order"] or "")


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_fireplot_scans_prints_them_with_their_properties_for_each_day(site: Site, k: int) -> None:
    cfg = site.root / "fireplot.toml"
    cfg.write_text(f'[worker]\nstore_dir = "{site.store.root}"\n')
    day = DAYS[k]
    proc = subprocess.run(
        [sys.executable, "-m", "fireplot", "-c", str(cfg), "scans", "--since", start_of(day).isoformat(),
         "--until", start_of(day + dt.timedelta(days=1)).isoformat()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = {s["scan_id"]: s for s in map(json.loads, proc.stdout.splitlines())}
    assert (site.slow["scan_id"] in listed) == (k <= 2)
    assert (site.dist["scan_id"] in listed) == (k in (1, 2))
    if k <= 2:
        s = listed[site.slow["scan_id"]]
        assert (s["kind"], s["order"], s["days_spanned"], s["distributed"]) == ("slow", "random", 3, False)
        assert isinstance(s["tau"], float) and abs(s["tau"]) < DetectConfig().slow_min_abs_tau
    if k in (1, 2):
        d = listed[site.dist["scan_id"]]
        assert (d["kind"], d["days_spanned"], d["distributed"]) == ("distributed", 2, True)
        assert sorted(d["sources"]) == sorted(WALKERS)


@pytest.fixture(scope="module")
def page(site: Site, chromium: Chromium) -> Iterator[tuple[str, Any]]:
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    with browser.web_server(site.store.root, site.root / "server.log") as url, chromium() as driver:
        yield url, driver


def test_the_page_of_every_covered_day_outlines_and_lists_them(site: Site, page: tuple[str, Any]) -> None:
    url, driver = page
    for k, day in enumerate(DAYS):
        open_page(driver, f"{url}?date={day.isoformat()}")
        want = {site.slow["scan_id"]} if k <= 2 else set()
        want |= {site.dist["scan_id"]} if k in (1, 2) else set()
        scans = wait_for(
            f"the scans of {day}",
            lambda want=want: (lambda d: d if set(d["scan_id"]) == want else None)(
                model_data(driver, "scans")
            ),
        )
        if not want:
            continue
        i = scans["scan_id"].index(site.slow["scan_id"])
        assert (scans["kind"][i], scans["order"][i], scans["days"][i], scans["shared"][i]) == (
            "slow", "random", 3, "one source")  # fmt: skip
        # The rectangle spans the scan's whole time, beyond the day shown.
        assert scans["left"][i] == site.slow["first_ts"].timestamp() * 1000
        assert scans["right"][i] == site.slow["last_ts"].timestamp() * 1000
        kinds = ["slow", "distributed"] if k in (1, 2) else ["slow"]
        for kind in kinds:
            drawn = driver.execute_script(
                "const r = Bokeh.documents[0].get_model_by_name(arguments[0]);"
                "return r ? [r.glyph.type, r.glyph.line_color.value, r.glyph.line_dash, r.view.filter.group]"
                " : null",
                f"scans:{kind}",
            )
            colour, _ = style.SCAN_STYLES[kind]
            assert drawn is not None and drawn[0] == "Quad" and drawn[1] == colour and drawn[3] == kind
        legend = driver.execute_script(
            "const p = Bokeh.documents[0].get_model_by_name('day-plot');"
            "return p.right[0].items.filter((i) => i.visible).map((i) => i.label.value)"
        )
        assert {f"scan: {kind}" for kind in kinds} <= set(legend)
        click(driver, "scans-button")
        text = wait_for(
            "the scans table",
            lambda: (lambda t: t if "random" in t else None)(table_text(driver, "scans-table")),
        )
        assert "slow" in text and SLOW_SRC in text and "one source" in text
        if k in (1, 2):
            assert "distributed" in text and "several sources" in text
        click(driver, "scans-button")  # closed again for the next day
