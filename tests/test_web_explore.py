"""Exploring in a real browser: source panel, scans overlay, range view from rollups, filters, CSV.

One web server process reads a store written with ``Store.write_flush``; the
scans are found by running the real detector over it and the rollups are built
by the real rollup code. Headless Chromium clicks dots, table rows and buttons;
the assertions compare what the browser holds with what the store holds.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from consumers.web import export
from consumers.web.feeds.filters import FilterError, Filters
from consumers.web.feeds.range import RangeFeed
from pipeline import rollup
from pipeline.config import DetectConfig
from pipeline.detect.runner import Evaluator, replay
from pipeline.detect.scanstore import ScanStore
from pipeline.event import conform
from pipeline.store import Store
from tests.support import browser
from tests.support.browser import (
    JS_DEEP,
    Chromium,
    click,
    model_data,
    open_page,
    panel_for,
    set_value,
    source,
    table_text,
    tap_dot,
    wait_for,
    wait_for_source,
)
from tests.support.events import row
from tests.support.site import (
    Site,
    allow_downloads,
    detect_day,
    new_store,
    serving,
    start_of,
    write_rows,
)

DAY = dt.date(2026, 10, 15)
SPAN_DAYS = 7
MAX_POINTS = 150
HOSTILE_IMG = '<img src=x onerror="window.__pwned=1">'
HOSTILE_SCRIPT = "<script>window.__pwned=2</script>"
SCANNER = "203.0.113.66"
SWEEPER = "203.0.113.77"
FORMULAS = ('=HYPERLINK("http://x.example/","y")', "+1+2", "-3+4", "@SUM(A1)")
NOISE_PORTS = (22, 23, 80, 443, 3389)
LATE_HOUR = 5
BUSY_DAY = DAY + dt.timedelta(days=1)  # more events than MAX_POINTS: drawn aggregated


class Builder:
    """Events with unique identities, as a shipper would stamp them."""

    def __init__(self) -> None:
        self.offset = 0

    def event(self, ts: dt.datetime, src: str, dst: str, port: int, **kw: Any) -> dict[str, Any]:
        self.offset += 100
        fields = {"site": "alpha", "prefix": "fw-drop", "source_id": "alpha:log"} | kw
        return row(ts, self.offset, src_ip=src, dst_ip=dst, dst_port=port, **fields)

    def noise(self, day: dt.date, n: int, rng: random.Random) -> list[dict[str, Any]]:
        return [
            self.event(
                start_of(day) + dt.timedelta(seconds=rng.randint(0, 86_399)),
                f"198.51.100.{rng.randint(1, 120)}",
                "192.0.2.1",
                rng.choice(NOISE_PORTS),
                proto=rng.choice(("TCP", "UDP")),
            )
            for _ in range(n)
        ]


def day_rows(b: Builder, rng: random.Random) -> list[dict[str, Any]]:
    """The explored day: noise, a vertical scan with hostile text, a sweep, formula prefixes."""
    rows = b.noise(DAY, 60, rng)
    t = start_of(DAY, 10)
    rows += [
        b.event(t + dt.timedelta(seconds=2 * i), SCANNER, "192.0.2.10", 1000 + 5 * i,
                host=HOSTILE_IMG, prefix=HOSTILE_SCRIPT)
        for i in range(20)
    ]  # fmt: skip
    t = start_of(DAY, 14)
    rows += [b.event(t + dt.timedelta(seconds=8 * i), SWEEPER, f"192.0.2.{i + 1}", 23) for i in range(30)]
    t = start_of(DAY, 16)
    rows += [
        b.event(t + dt.timedelta(minutes=i), "198.51.100.200", "192.0.2.1", 8080, prefix=f,
                action="reject" if i % 2 else "drop")
        for i, f in enumerate(FORMULAS)
    ]  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = new_store(tmp_path_factory, "explore")
    b, rng = Builder(), random.Random(5)
    partition = 0
    for k in range(1, SPAN_DAYS):
        write_rows(store, partition, b.noise(DAY - dt.timedelta(days=k), 20 + 10 * k, rng))
        partition += 1
    write_rows(store, partition, b.noise(BUSY_DAY, 3 * MAX_POINTS, rng))
    partition += 1
    write_rows(store, partition, day_rows(b, rng))
    partition += 1

    scans = detect_day(store, DAY)
    found = {(s["kind"], tuple(s["sources"])) for s in scans.read().to_pylist()}
    assert {("vertical", (SCANNER,)), ("horizontal", (SWEEPER,))} <= found, found

    assert rollup.update(store) > 0
    # Late events after the rollup ran: that hour's rollup is stale now and must not be trusted.
    late_day = DAY - dt.timedelta(days=2)
    late = [b.event(start_of(late_day, LATE_HOUR) + dt.timedelta(minutes=m), "198.51.100.9", "192.0.2.1", 443)
            for m in (1, 2, 3)]  # fmt: skip
    write_rows(store, partition, late)

    with serving(store, {"FIREPLOT_WEB__MAX_POINTS": str(MAX_POINTS)}) as s:
        yield s


@pytest.fixture(scope="module")
def driver(site: Site, chromium: Chromium) -> Iterator[Any]:
    with chromium() as d:
        site.downloads.mkdir()
        allow_downloads(d, site.downloads)
        yield d


def day_table(store: Store, day: dt.date = DAY) -> pa.Table:
    return store.read(start_of(day), start_of(day + dt.timedelta(days=1)))


def set_x_range(driver: Any, start: dt.datetime, end: dt.datetime) -> None:
    """Zoom the plot's time axis as a pan or zoom tool would."""
    driver.execute_script(
        "const p = Bokeh.documents[0].get_model_by_name('day-plot');"
        "p.x_range.setv({start: arguments[0], end: arguments[1]})",
        start.timestamp() * 1000,
        end.timestamp() * 1000,
    )


# ---- the source panel ------------------------------------------------------------


def test_clicking_a_scanners_dot_opens_its_panel_with_ports_scans_and_inert_text(
    driver: Any, site: Site
) -> None:
    """A click on a dot shows that source's ports, sites, scans and events; hostile text stays text."""
    browser.console(driver)
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")

    tap_dot(driver, SCANNER, "1095")
    panel_for(driver, SCANNER)

    ports = model_data(driver, "source-ports")
    assert sorted(ports["port"]) == sorted(str(1000 + 5 * i) for i in range(20))
    assert sum(ports["events"]) == 20
    scans = model_data(driver, "source-scans")
    stored = [s for s in site.scans.read().to_pylist() if SCANNER in s["sources"]]
    assert sorted(scans["scan_id"]) == sorted(s["scan_id"] for s in stored)
    assert "vertical" in scans["kind"]
    timeline = model_data(driver, "source-timeline")
    assert sum(timeline["events"]) == 20
    summary = driver.execute_script("return Bokeh.documents[0].get_model_by_name('source-summary').text")
    assert summary.startswith(f"source {SCANNER}: 20 events") and "alpha" in summary

    events = wait_for("the events table", lambda: table_text(driver, "source-events-table") or None)
    assert HOSTILE_SCRIPT in events and HOSTILE_IMG in events  # shown literally, as text
    assert "vertical" in table_text(driver, "source-scans-table")
    images = driver.execute_script(
        JS_DEEP + "let n = 0; for (const el of walk(document)) if (el.tagName === 'IMG') n++; return n"
    )
    scripts = driver.execute_script(
        JS_DEEP + "let n = 0; for (const el of walk(document))"
        " if (el.tagName === 'SCRIPT' && el.textContent.includes('__pwned')) n++; return n"
    )
    assert (images, scripts) == (0, 0)
    assert driver.execute_script("return window.__pwned === undefined")
    assert browser.severe(browser.console(driver)) == []


def test_filter_to_source_button_shows_only_that_source_and_clear_restores(driver: Any, site: Site) -> None:
    """One click narrows the plot to the panel's source; another brings the whole day back."""
    data = open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    everything = day_table(site.store).num_rows
    assert len(data["ts"]) == everything
    tap_dot(driver, SWEEPER, "23")
    panel_for(driver, SWEEPER)

    click(driver, "filter-source")
    data = wait_for_source(driver, "only the sweeper", lambda d: set(d["src_ip"]) == {SWEEPER})
    assert len(data["ts"]) == 30
    assert driver.execute_script("return Bokeh.documents[0].get_model_by_name('networks').value") == SWEEPER

    click(driver, "clear-source")
    data = wait_for_source(driver, "the whole day", lambda d: len(d["ts"]) == everything)
    assert SWEEPER in data["src_ip"] and SCANNER in data["src_ip"]


# ---- scans overlay ---------------------------------------------------------------------


def test_detected_scans_are_outlined_and_a_table_row_click_zooms_to_the_scan(driver: Any, site: Site) -> None:
    """The day's scans are drawn as rectangles and listed; clicking the vertical scan's row zooms to it."""
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    stored = site.scans.read(start_of(DAY), start_of(DAY + dt.timedelta(days=1))).to_pylist()
    scans = model_data(driver, "scans")
    assert sorted(scans["scan_id"]) == sorted(s["scan_id"] for s in stored)
    drawn = driver.execute_script(
        "const d = Bokeh.documents[0]; const r = d.get_model_by_name('scans:vertical');"
        "return [r.glyph.type, r.glyph.line_color.value, r.view.filter.group]"
    )
    assert drawn == ["Quad", "#00ffff", "vertical"]

    vertical = next(s for s in stored if s["kind"] == "vertical")
    row = scans["scan_id"].index(vertical["scan_id"])
    click(driver, "scans-button")  # the scans list is in a drawer, closed until asked for
    cell = wait_for(
        "the scans table's rows",
        lambda: driver.execute_script(
            "const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('scans-table'));"
            "const r = v ? v.shadow_el.querySelectorAll('.slick-row')[arguments[0]] : null;"
            "return r ? r.querySelector('.slick-cell') : null",
            row,
        ),
    )
    cell.click()

    first, last = (vertical[k].timestamp() * 1000 for k in ("first_ts", "last_ts"))

    def zoomed() -> list[float] | None:
        x0, x1, y0, y1 = driver.execute_script(
            "const p = Bokeh.documents[0].get_model_by_name('day-plot');"
            "return [p.x_range.start, p.x_range.end, p.y_range.start, p.y_range.end]"
        )
        return [x0, x1, y0, y1] if x1 - x0 < 3_600_000 else None

    x0, x1, y0, y1 = wait_for("the zoom to the scan", zoomed)
    assert x0 <= first and last <= x1
    assert y0 <= vertical["port_min"] and vertical["port_max"] <= y1 < 2 * vertical["port_max"]


# ---- range view from rollups --------------------------------------------------------------


def range_truth(store: Store) -> Counter[dt.date]:
    start = start_of(DAY - dt.timedelta(days=SPAN_DAYS - 1))
    table = store.read(start, start_of(DAY + dt.timedelta(days=1)), columns=["ts", "count"])
    days: Counter[dt.date] = Counter()
    for ts, n in zip(table.column("ts").to_pylist(), table.column("count").to_pylist(), strict=True):
        days[ts.date()] += n
    return days


def test_week_view_draws_rollup_bins_with_the_stored_totals(driver: Any, site: Site) -> None:
    """Seven days over the point budget come from rollups; per-day totals equal the store's, late ones too."""
    data = open_page(driver, f"{site.url}?date={DAY.isoformat()}&days={SPAN_DAYS}")
    truth = range_truth(site.store)
    assert sum(truth.values()) > MAX_POINTS  # the premise: too many to draw raw

    assert "src_ip" not in data and len(data["ts"]) <= MAX_POINTS
    drawn: Counter[dt.date] = Counter()
    for ts, n in zip(data["ts"], data["events"], strict=True):
        drawn[dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date()] += n
    assert drawn == truth
    assert 0.25 <= min(data["alpha"]) < max(data["alpha"]) == pytest.approx(1.0)
    text = driver.execute_script("return Bokeh.documents[0].get_model_by_name('summary').text")
    assert text.startswith(f"{sum(truth.values()):,} events in 7 days") and "each dot counts" in text
    assert (
        driver.execute_script(
            "const r = Bokeh.documents[0].get_model_by_name('dots');return r.glyph.fill_alpha.field"
        )
        == "alpha"
    )


def test_zooming_into_a_week_view_returns_raw_dots(driver: Any, site: Site) -> None:
    """Zoomed to one hour of the week, the page shows that hour's single events again."""
    open_page(driver, f"{site.url}?date={DAY.isoformat()}&days={SPAN_DAYS}")
    start = start_of(DAY, 10)
    end = start + dt.timedelta(hours=1)
    set_x_range(driver, start, end)
    hour = site.store.read(start, end)
    data = wait_for_source(
        driver, "raw dots of the hour", lambda d: "src_ip" in d and len(d["ts"]) == hour.num_rows
    )
    assert sorted(data["src_ip"]) == sorted(hour.column("src_ip").to_pylist())


def test_zooming_into_an_aggregated_day_returns_raw_dots_and_back(driver: Any, site: Site) -> None:
    """A day over the budget is drawn in bins; one hour of it shows single events; all of it bins again."""
    data = open_page(driver, f"{site.url}?date={BUSY_DAY.isoformat()}")
    assert "src_ip" not in data and sum(data["events"]) == day_table(site.store, BUSY_DAY).num_rows
    start = start_of(BUSY_DAY, 7)
    end = start + dt.timedelta(hours=1)
    set_x_range(driver, start, end)
    hour = site.store.read(start, end)
    data = wait_for_source(
        driver, "raw dots of the hour", lambda d: "src_ip" in d and len(d["ts"]) == hour.num_rows
    )
    assert sorted(data["src_ip"]) == sorted(hour.column("src_ip").to_pylist())

    set_x_range(driver, start_of(BUSY_DAY), start_of(BUSY_DAY + dt.timedelta(days=1)))
    data = wait_for_source(driver, "the whole day in bins", lambda d: "events" in d)
    assert sum(data["events"]) == day_table(site.store, BUSY_DAY).num_rows


def test_time_zone_shows_that_zones_day_and_labels_times_in_it(driver: Any, site: Site) -> None:
    """?tz=Asia/Tokyo shows midnight to midnight Tokyo time, with Tokyo times on the axis."""
    import zoneinfo

    data = open_page(driver, f"{site.url}?date={DAY.isoformat()}&tz=Asia/Tokyo")
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=tokyo)
    stored = site.store.read(start, start + dt.timedelta(days=1))
    shown = len(data["ts"]) if "src_ip" in data else sum(data["events"])
    assert shown == stored.num_rows
    x0, x1 = driver.execute_script(
        "const p = Bokeh.documents[0].get_model_by_name('day-plot'); return [p.x_range.start, p.x_range.end]"
    )
    assert (x0, x1) == (start.timestamp() * 1000, (start + dt.timedelta(days=1)).timestamp() * 1000)
    labels = driver.execute_script(
        "const p = Bokeh.documents[0].get_model_by_name('day-plot'); const a = p.below[0];"
        "return [a.axis_label, a.formatter.doFormat(arguments[0], {loc: 0})]",
        [start_of(DAY, 6).timestamp() * 1000, start_of(DAY, 7).timestamp() * 1000],
    )
    assert labels == ["time (Asia/Tokyo)", ["15:00", "16:00"]]

    open_page(driver, f"{site.url}?date={DAY.isoformat()}&tz=Mars/Olympus")
    notice = driver.execute_script("return Bokeh.documents[0].get_model_by_name('notice').text")
    assert "ignored ?tz='Mars/Olympus'" in notice


# ---- filters -------------------------------------------------------------------------------


def test_port_action_and_protocol_filters_narrow_the_plot(driver: Any, site: Site) -> None:
    """Each filter leaves exactly the stored events that pass it; a bad network is refused beside them."""
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    day = day_table(site.store)

    set_value(driver, "ports", "1000-1100")
    data = wait_for_source(driver, "ports 1000-1100", lambda d: set(d["src_ip"]) == {SCANNER})
    assert len(data["ts"]) == 20
    set_value(driver, "ports", "")
    set_value(driver, "action", "reject")
    rejects = day.filter(pc.equal(day.column("action"), "reject")).num_rows
    data = wait_for_source(driver, "rejects", lambda d: len(d["ts"]) == rejects)
    assert set(data["action"]) == {"reject"}
    set_value(driver, "action", "")
    set_value(driver, "protocols", ["UDP/IPv4"])
    udp = day.filter(pc.equal(day.column("proto"), "UDP")).num_rows
    data = wait_for_source(driver, "UDP only", lambda d: len(d["ts"]) == udp)
    assert set(data["series"]) == {"UDP/IPv4"}

    set_value(driver, "networks", "<b>not-a-net</b>")
    notice = wait_for(
        "the filter error",
        lambda: driver.execute_script(
            "const m = Bokeh.documents[0].get_model_by_name('filter-error'); return m.visible && m.text"
        ),
    )
    assert "not an address or network: '<b>not-a-net</b>'" in notice
    still = source(driver)
    assert still is not None and len(still["ts"]) == udp  # the previous filters still apply


# ---- CSV export ----------------------------------------------------------------------------


def test_csv_button_downloads_the_visible_events_with_formulas_defused(driver: Any, site: Site) -> None:
    """The CSV holds every event in view, one row each; cells that would run as formulas start with '."""
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    before = set(site.downloads.glob("*.csv"))
    click(driver, "export-csv")
    path = wait_for(
        "the CSV download",
        lambda: next(iter(set(site.downloads.glob("*.csv")) - before), None),
    )
    time.sleep(0.2)  # Chromium renames the finished download into place; let it settle
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))

    day = day_table(site.store)
    assert len(rows) == day.num_rows
    assert list(rows[0]) == export.CSV_COLUMNS
    assert Counter(r["src_ip"] for r in rows) == Counter(day.column("src_ip").to_pylist())
    prefixes = {r["prefix"] for r in rows}
    assert {"'" + f for f in FORMULAS} <= prefixes
    assert not any(p[:1] in "=+-@" for p in prefixes)
    assert HOSTILE_SCRIPT in prefixes  # text, untouched: it is not a formula
    assert rows[0]["ts"] <= rows[-1]["ts"] and rows[0]["ts"].endswith("Z")


# ---- the data layer without a browser ---------------------------------------------------------


class TestFilters:
    """Filters parsed from the page's inputs."""

    def test_port_range_and_networks_parse(self) -> None:
        """'1-1024' is a range, '22' one port, networks are comma-separated."""
        rv = Filters.parse(ports="1-1024", networks="10.0.0.0/8, 2001:db8::1")
        assert (rv.port_min, rv.port_max, rv.networks) == (1, 1024, ("10.0.0.0/8", "2001:db8::1"))
        assert (Filters.parse(ports="22").port_min, Filters.parse(ports="22").port_max) == (22, 22)

    def test_bad_input_is_refused_with_the_reason(self) -> None:
        """Unparseable ports, networks or an empty range raise FilterError naming the input."""
        cases: tuple[tuple[dict[str, Any], str], ...] = (
            ({"ports": "ssh"}, "ssh"),
            ({"networks": "10.0.0.0/33"}, "10.0.0.0/33"),
            ({"ports": "9-1"}, "empty"),
        )
        for kw, words in cases:
            with pytest.raises(FilterError, match=words):
                Filters.parse(**kw)

    def test_networks_match_per_family(self, tmp_path: Path) -> None:
        """A v4 network keeps its v4 members only; malformed addresses never match."""
        table = pa.table({"src_ip": ["10.1.2.3", "11.0.0.1", "::ffff:10.1.2.3", "junk", None]})
        assert Filters.parse(networks="10.0.0.0/8").apply(table).column("src_ip").to_pylist() == ["10.1.2.3"]


class TestCsv:
    def test_formula_cells_get_an_apostrophe(self) -> None:
        """=, +, -, @, tab and CR at the start of a text cell are neutralised; other text is untouched."""
        table = pa.table({"prefix": ["=1+1", "+x", "-x", "@x", "\tx", "\rx", "ok", "a=b", None]})
        rv = export.neutralise(table).column("prefix").to_pylist()
        assert rv == ["'=1+1", "'+x", "'-x", "'@x", "'\tx", "'\rx", "ok", "a=b", None]

    def test_csv_has_a_header_iso_times_and_quotes_where_needed(self) -> None:
        """Times are ISO 8601 UTC with a Z; a comma or quote in a field is quoted, not split."""
        ts = dt.datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC)
        table = pa.table({"ts": pa.array([ts], pa.timestamp("us", tz="UTC")), "prefix": ['a,"b"']})
        rv = list(csv.reader(io.StringIO(export.to_csv(table))))
        assert rv == [["ts", "prefix"], ["2026-01-02T03:04:05.600000Z", 'a,"b"']]


class TestRangeFeed:
    def test_stale_or_missing_rollups_are_computed_from_events(self, tmp_path: Path) -> None:
        """An hour with events but no rollup, and one changed since its rollup, both count fully."""
        store, b, rng = Store(tmp_path), Builder(), random.Random(1)
        rows = b.noise(DAY, 200, rng)
        write_rows(store, 0, rows)
        rollup.update(store)
        late = [b.event(start_of(DAY, 3), "198.51.100.1", "192.0.2.1", 22)]
        write_rows(store, 1, late)
        other = [b.event(start_of(DAY + dt.timedelta(days=1), 1), "198.51.100.1", "192.0.2.1", 22)]
        write_rows(store, 2, other)
        feed = RangeFeed(store, start_of(DAY), start_of(DAY + dt.timedelta(days=2)), None, max_points=50)

        frame = feed.load()

        assert feed.aggregated and sum(frame.data["events"]) == 202
        assert feed.computed_hours == 2  # the stale hour and the one never rolled up
        assert feed.read_files > 0


class TestSiteScope:
    """A signed-in user limited to some sites sees only theirs, in rollups and scans too."""

    def test_range_view_and_scans_of_a_scoped_store_leave_other_sites_out(self, tmp_path: Path) -> None:
        """Rollup bins and the scan list of a SiteScopedStore hold only its allowed sites."""
        from consumers.web import drill
        from consumers.web.auth import SiteScopedStore

        store, b, rng = Store(tmp_path / "store"), Builder(), random.Random(3)
        rows = []
        for site_name, n in (("alpha", 40), ("beta", 70)):
            for r in b.noise(DAY, n, rng):
                r["site"] = site_name
                rows.append(r)
        write_rows(store, 0, rows)
        assert rollup.update(store) > 0
        day_start, day_end = start_of(DAY), start_of(DAY + dt.timedelta(days=1))
        scans = ScanStore(tmp_path / "scans")
        probes = [
            b.event(start_of(DAY, 9) + dt.timedelta(seconds=i), src, "192.0.2.5", 2000 + i, site=site_name)
            for site_name, src in (("alpha", "203.0.113.1"), ("beta", "203.0.113.2"))
            for i in range(20)
        ]
        replay(Evaluator(DetectConfig(), store_source_of(probes), scans), day_start, day_end)
        scoped = SiteScopedStore(store.root, frozenset({"alpha"}))

        feed = RangeFeed(scoped, day_start, day_end, None, max_points=10)
        frame = feed.load()
        listed = drill.read_scans(scans.root, day_start, day_end, None, frozenset({"alpha"}))

        assert feed.aggregated and sum(frame.data["events"]) == 40
        assert set(listed.column("site").to_pylist()) == {"alpha"}
        assert set(drill.read_scans(scans.root, day_start, day_end, None).column("site").to_pylist()) == {
            "alpha",
            "beta",
        }


def store_source_of(rows: list[dict[str, Any]]) -> Any:
    from pipeline.detect.runner import table_source

    return table_source(conform(pa.Table.from_pylist(rows)))
