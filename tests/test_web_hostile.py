"""Hostile text in every field the page shows stays text: nothing it carries runs, all of it shows.

Attackers control parts of what reaches the page: log lines name the sensor
(host), the rule (prefix) and the action; scan records list sources and
sites; the health snapshot names sites and topics. Each payload below is
planted in every such field, in the store, the scan store and the health
snapshot the page reads, and the page is driven in Chromium: the raw and the
aggregated tooltip, the source panel, the scans table, the site list, the
site-health table and the CSV export. Every payload that could run sets
``window.__pwned``; it must stay unset, no element or handler may appear that
only parsing the text as markup could make, and each field must show the
payload literally. Site names can only be what the worker accepts
(pipeline.worker.SITE_RE), so the sites are the valid ones that hurt code
which keys objects by site: ``constructor``, ``hasOwnProperty``, 64 characters.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.detect.engine import SCAN_SCHEMA
from pipeline.detect.scanstore import ScanStore
from pipeline.health import SNAPSHOT_PATH
from pipeline.store import OffsetRange, Store
from tests.support import browser
from tests.support.browser import (
    Chromium,
    click,
    hover,
    injected,
    model_data,
    open_page,
    panel_for,
    point_of,
    shown_text,
    table_text,
    tap_dot,
    wait_for,
    wait_for_source,
)
from tests.support.events import row, table

TOPIC = "fireplot.events"
DAY = dt.date(2026, 9, 9)
BUSY_DAY = DAY + dt.timedelta(days=1)  # over MAX_POINTS: drawn aggregated
MAX_POINTS = 100
SCANNER = "203.0.113.99"
PAYLOADS = {
    "script": "<script>window.__pwned='script'</script>",
    "img": "<img src=x onerror=\"window.__pwned='img'\">",
    "attribute": '"><svg onload="window.__pwned=\'svg\'">',
    "template": "{{7*7}} ${7*7} <%= 7*7 %>",
    "url": "javascript:window.__pwned='url'",
    "rtl": "\u202eexe.gpj",
    "long": "L" * 3000 + "<b>end</b>",
}
SITES = ("constructor", "hasOwnProperty", "s" * 64)


def start_of(day: dt.date, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def hostile_rows() -> list[dict[str, Any]]:
    """The scanner's events on DAY, one port per payload, the payload as host, prefix and action."""
    return [
        row(start_of(DAY, 3) + dt.timedelta(minutes=40 * i), 1000 + i, src_ip=SCANNER, dst_port=1000 + i,
            site=SITES[i % len(SITES)], host=text, prefix=text, action=text, source_id="alpha:log")
        for i, text in enumerate(PAYLOADS.values())
    ]  # fmt: skip


def busy_rows() -> list[dict[str, Any]]:
    """More events than MAX_POINTS on BUSY_DAY, each payload also a protocol (shown in the bins' tooltip)."""
    start = start_of(BUSY_DAY, 1)
    plain = [
        row(start + dt.timedelta(seconds=30 * i), 5000 + i, dst_port=22 + i % 5, site="constructor")
        for i in range(2 * MAX_POINTS)
    ]
    hostile = [
        row(start_of(BUSY_DAY, 12 + i), 9000 + i, proto=text, dst_port=None, site="constructor")
        for i, text in enumerate(PAYLOADS.values())
    ]
    return plain + hostile


def hostile_scan() -> pa.Table:
    """A scan record naming the scanner and every payload as sources and as sites."""
    t0 = start_of(DAY, 9)
    rec = {
        "scan_id": "hostile-1", "kind": "vertical", "site": SITES[0],
        "sources": [SCANNER, *PAYLOADS.values()], "first_ts": t0, "last_ts": t0 + dt.timedelta(minutes=30),
        "detected_at": t0 + dt.timedelta(minutes=31), "port_min": 1000, "port_max": 1000 + len(PAYLOADS) - 1,
        "distinct_ports": len(PAYLOADS), "distinct_targets": 1, "packets": len(PAYLOADS),
        "sites": [*SITES, *PAYLOADS.values()], "score": 1.0, "lower_bound": False, "status": "closed",
        "epoch_start": start_of(DAY), "days_spanned": 1, "distributed": False,
    }  # fmt: skip
    return pa.Table.from_pylist([rec], SCAN_SCHEMA)


def health_snapshot() -> dict[str, Any]:
    """The worker's per-site health report, each payload a site and a topic with lag."""
    now = dt.datetime.now(dt.UTC)
    return {
        "computed_at": now.isoformat(),
        "interval_s": 3600,
        "consumer_lag": {text: 1 for text in PAYLOADS.values()},
        "sites": [
            {"site": text, "last_event": now.isoformat(), "silent_after_s": 3600, "usual_gap_s": 1,
             "events_per_min": 1, "rejects_shipper": 0, "rejects_worker": 0}
            for text in [*PAYLOADS.values(), *SITES]
        ],
    }  # fmt: skip


@dataclass
class Site:
    url: str
    store: Store
    downloads: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("hostile")
    store = Store(root / "store")
    for partition, rows in enumerate((hostile_rows(), busy_rows())):
        store.write_flush(OffsetRange(TOPIC, partition, 0, len(rows) - 1), table(rows))
    scans = hostile_scan()
    ScanStore(store.root / "scans").replace("vertical", int(start_of(DAY).timestamp() * 1e6), scans)
    (store.root / SNAPSHOT_PATH).parent.mkdir(parents=True, exist_ok=True)
    (store.root / SNAPSHOT_PATH).write_text(json.dumps(health_snapshot()))
    env = {"FIREPLOT_WEB__MAX_POINTS": str(MAX_POINTS)}
    with browser.web_server(store.root, root / "server.log", env) as url:
        yield Site(url, store, root / "downloads")


@pytest.fixture(scope="module")
def driver(site: Site, chromium: Chromium) -> Iterator[Any]:
    with chromium() as d:
        site.downloads.mkdir()
        d.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(site.downloads)}
        )
        yield d


def assert_inert(driver: Any, shown: str, where: str, payloads: dict[str, str] = PAYLOADS) -> None:
    """Every payload is in ``shown`` as written; none ran, none became an element or a handler."""
    for name, text in payloads.items():
        assert text in shown, f"{where}: the {name} payload is not shown as written"
    assert driver.execute_script("return window.__pwned === undefined"), (
        f"{where}: a payload ran: {driver.execute_script('return window.__pwned')}"
    )
    assert injected(driver) == [], f"{where}: markup from the data was parsed"


def test_raw_tooltips_show_host_prefix_and_action_as_text(driver: Any, site: Site) -> None:
    data = open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    assert set(PAYLOADS.values()) <= set(data["host"])
    for name, text in PAYLOADS.items():
        tooltip = hover(driver, *point_of(driver, host=text))
        assert_inert(driver, tooltip, f"raw tooltip of the {name} dot", {name: text})
        assert tooltip.count(text) == 3, f"{name}: host, prefix and action are each shown once"


def test_aggregated_tooltips_show_the_protocol_as_text(driver: Any, site: Site) -> None:
    data = open_page(driver, f"{site.url}?date={BUSY_DAY.isoformat()}")
    assert "src_ip" not in data and set(PAYLOADS.values()) <= set(data["proto"])  # drawn in bins
    for name, text in PAYLOADS.items():
        tooltip = hover(driver, *point_of(driver, proto=text))
        assert_inert(driver, tooltip, f"aggregated tooltip of the {name} bin", {name: text})


def test_source_panel_shows_events_and_scans_of_hostile_text_as_text(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    tap_dot(driver, SCANNER, "1000")
    panel_for(driver, SCANNER)
    events = wait_for("the events table", lambda: table_text(driver, "source-events-table") or None)
    assert_inert(driver, events, "the source panel's events table")
    scans = wait_for("the scans table", lambda: table_text(driver, "source-scans-table") or None)
    assert_inert(driver, scans, "the source panel's scans table")
    assert sorted(model_data(driver, "source-ports")["port"]) == sorted(
        str(1000 + i) for i in range(len(PAYLOADS))
    )
    summary = shown_text(driver, "source-summary")
    assert all(s in summary for s in SITES), summary


def test_scans_table_shows_hostile_sources_and_sites_as_text(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    assert model_data(driver, "scans")["kind"] == ["vertical"]
    click(driver, "scans-button")  # the scans list lives in a drawer beside the plot
    shown = wait_for("the scans table", lambda: table_text(driver, "scans-table") or None)
    assert_inert(driver, shown, "the scans table")


def test_site_list_offers_the_odd_site_names_and_selecting_one_works(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}&site=constructor")
    options = driver.execute_script("return Bokeh.documents[0].get_model_by_name('site').options")
    assert {o[0] if isinstance(o, list) else o for o in options} == {"", *SITES}
    data = wait_for_source(driver, "constructor's events", lambda d: set(d["site"]) == {"constructor"})
    assert len(data["ts"]) == sum(1 for r in hostile_rows() if r["site"] == "constructor")
    assert_inert(driver, shown_text(driver, "site"), "the site list", {s: s for s in SITES})


def test_site_health_table_and_status_show_hostile_names_as_text(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    click(driver, "site-health-details")  # the per-site table opens from the status line
    shown = wait_for("the health table", lambda: table_text(driver, "site-health-table") or None)
    assert_inert(driver, shown, "the site-health table")
    assert_inert(driver, shown_text(driver, "site-health-status"), "the site-health status line")


def test_csv_export_carries_hostile_text_unchanged(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    before = set(site.downloads.glob("*.csv"))
    click(driver, "export-csv")
    path = wait_for("the CSV download", lambda: next(iter(set(site.downloads.glob("*.csv")) - before), None))
    time.sleep(0.2)  # Chromium renames the finished download into place; let it settle
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert len(rows) == len(PAYLOADS)
    for column in ("host", "prefix", "action"):
        assert sorted(r[column] for r in rows) == sorted(PAYLOADS.values()), column
    assert sorted({r["site"] for r in rows}) == sorted(SITES)
    assert driver.execute_script("return window.__pwned === undefined")
