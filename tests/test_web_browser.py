"""The day page in a real browser: headless Chromium against a real Bokeh server.

One server process (``consumers.web.server.serve``, configured through
FIREPLOT_* variables as an operator would) reads a store written with
``Store.write_flush``; each test opens the page afresh and asserts on what the
browser holds: the plot's ColumnDataSource, the rendered DOM, the pixels.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from consumers import style
from consumers.web import layout
from consumers.web.feeds.day import DayFeed
from consumers.web.feeds.days import utc_today
from pipeline import datasets
from pipeline.detect.engine import SCAN_SCHEMA, US
from pipeline.detect.scanstore import ScanStore
from pipeline.event import conform
from pipeline.store import OffsetRange, Store
from tests.support import browser
from tests.support.browser import JS_DEEP, Chromium, click, open_page, summary, wait_for, wait_for_source
from tests.support.events import row

SCREENSHOT = Path("/tmp/fireplot-web.png")
HOSTILE = '<img src=x onerror="window.__pwned=1">'
TOPIC = "fireplot.events"
LIVE_PORT = 31337
LIVE_SCANNER = "203.0.113.88"
REFRESH_MS = 300


# ---- the store ---------------------------------------------------------------


@dataclass
class Events:
    """What the test wrote, to compare the page against."""

    today: pa.Table
    yesterday: pa.Table


def event(
    ts: dt.datetime, proto: str, ip_version: int, dst_port: int | None, n: int, **kw: Any
) -> dict[str, Any]:
    fields = {"site": "alpha", "prefix": "fw-drop", "source_id": "alpha:log", "source_offset": n * 100} | kw
    return row(ts, n, proto=proto, ip_version=ip_version, dst_port=dst_port, **fields)


def today_events(day: dt.date) -> pa.Table:
    """A busy-looking day: the four main series spread over the day, plus the rare ones."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    rng = random.Random(20261128)
    main = [("TCP", 4), ("UDP", 4), ("TCP", 6), ("UDP", 6)]
    rows = []
    for n in range(400):
        proto, v = main[n % 4]
        port = rng.choice(style.PORT_TICKS[1:-1]) if n % 3 else rng.randint(1, 65535)
        ts = start + dt.timedelta(seconds=rng.randint(0, 86_399))
        rows.append(event(ts, proto, v, port, n))
    rows += [
        event(start + dt.timedelta(hours=2), "ICMP", 4, None, 1000),
        event(start + dt.timedelta(hours=3), "ICMPv6", 6, None, 1001),
        event(start + dt.timedelta(hours=4), "47", 4, None, 1002),
        # Alone in its corner of the plot, so hovering there shows only it.
        event(
            start + dt.timedelta(hours=12),
            "TCP",
            4,
            65535,
            1003,
            site="beta",
            host=HOSTILE,
            prefix=HOSTILE,
            source_id="beta:log",
        ),
    ]
    return conform(pa.Table.from_pylist(rows))


def yesterday_events(day: dt.date) -> pa.Table:
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    rows = [
        event(start + dt.timedelta(hours=5), "TCP", 4, 587, 2000),
        event(start + dt.timedelta(hours=6), "UDP", 6, 1433, 2001),
        event(start + dt.timedelta(hours=23, minutes=59), "TCP", 6, 7, 2002),
    ]
    return conform(pa.Table.from_pylist(rows))


def live_event(day: dt.date) -> pa.Table:
    now = dt.datetime.now(dt.UTC)
    end_of_day = dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=dt.UTC)
    return conform(pa.Table.from_pylist([event(min(now, end_of_day), "UDP", 4, LIVE_PORT, 3000)]))


def live_scan(day: dt.date) -> tuple[int, pa.Table]:
    """A vertical scan the detector found in the last minutes of today: its day epoch and row."""
    now = dt.datetime.now(dt.UTC)
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    last = min(now, start + dt.timedelta(hours=23, minutes=59))
    first = last - dt.timedelta(minutes=2)
    row = {
        "scan_id": f"vertical-live-{now.timestamp():.0f}", "kind": "vertical", "site": "alpha",
        "sources": [LIVE_SCANNER], "first_ts": first, "last_ts": last, "detected_at": now,
        "port_min": 1000, "port_max": 1200, "distinct_ports": 150, "distinct_targets": 1, "packets": 150,
        "sites": ["alpha"], "score": 1.0, "lower_bound": False, "status": "open", "epoch_start": start,
        "days_spanned": 1, "distributed": False,
    }  # fmt: skip
    return int(start.timestamp() * US), pa.Table.from_pylist([row], schema=SCAN_SCHEMA)


# ---- the server ----------------------------------------------------------------


@dataclass
class Site:
    url: str
    store: Store
    day: dt.date
    events: Events
    log: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("web")
    store = Store(root / "store")
    day = utc_today()
    events = Events(today_events(day), yesterday_events(day))
    store.write_flush(OffsetRange(TOPIC, 0, 0, 99), events.yesterday)
    store.write_flush(OffsetRange(TOPIC, 0, 100, 999), events.today)
    # A replayed dataset beside the live archive: three of today's events.
    Store(datasets.root(store.root, "replay-a")).write_flush(
        OffsetRange(TOPIC, 0, 0, 2), events.today.slice(0, 3)
    )

    log = root / "server.log"
    with browser.web_server(store.root, log, {"FIREPLOT_WEB__REFRESH_INTERVAL_MS": str(REFRESH_MS)}) as url:
        yield Site(url, store, day, events, log)


@pytest.fixture(scope="module")
def driver(site: Site, chromium: Chromium) -> Iterator[Any]:
    with chromium() as d:
        yield d


# ---- reading the page ------------------------------------------------------------


def ports(table: pa.Table) -> list[str]:
    return sorted("none" if p is None else str(p) for p in table.column("dst_port").to_pylist())


def ms(table: pa.Table) -> list[float]:
    return sorted(t.timestamp() * 1000 for t in table.column("ts").to_pylist())


def expected_series(proto: str, ip_version: int) -> str:
    return {
        ("TCP", 4): style.Series.TCP4,
        ("UDP", 4): style.Series.UDP4,
        ("TCP", 6): style.Series.TCP6,
        ("UDP", 6): style.Series.UDP6,
        ("ICMP", 4): style.Series.ICMP,
        ("ICMPv6", 6): style.Series.ICMP6,
    }.get((proto, ip_version), style.Series.OTHER)


def mark_page(driver: Any) -> None:
    """Leave a flag in the page's JS state: gone after a reload, there after in-place updates."""
    driver.execute_script("window.__fireplot_marker = 'still here'")


def page_not_reloaded(driver: Any) -> bool:
    return bool(driver.execute_script("return window.__fireplot_marker === 'still here'"))


# ---- the tests -----------------------------------------------------------------


def drawn_with(driver: Any) -> dict[str, Any]:
    """How this browser draws the dots: the plot's backend, whether the dots' glyph is WebGL's,
    and the WebGL renderer the browser reports."""
    found: dict[str, Any] = driver.execute_script(
        "const d = Bokeh.documents[0]; const p = d.get_model_by_name('day-plot');"
        "const gl = document.createElement('canvas').getContext('webgl');"
        "const info = gl.getExtension('WEBGL_debug_renderer_info');"
        "return {backend: p.output_backend,"
        "        webgl: Bokeh.index.find_one(d.get_model_by_name(arguments[0])).glyph.glglyph != null,"
        "        renderer: String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL))}",
        layout.DOTS_NAME,
    )
    return found


# A GPU's WebGL renderer as Chromium reports it (the test browser's own is SwiftShader).
GPU_RENDERER = "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 (0x00002503) Direct3D11 vs_5_0 ps_5_0, D3D11)"
FAKE_GPU = f"""
const getParameter = WebGLRenderingContext.prototype.getParameter;
WebGLRenderingContext.prototype.getParameter = function (name) {{
  return name === 0x9246 ? {GPU_RENDERER!r} : getParameter.call(this, name);  // UNMASKED_RENDERER_WEBGL
}};
"""


def test_page_holds_exactly_the_days_events(driver: Any, site: Site) -> None:
    """The plot's source holds every stored event of the day and nothing else; this browser's
    WebGL is software (SwiftShader), so the dots are drawn on canvas 2D, faster there."""
    browser.console(driver)  # start from an empty console log
    data = open_page(driver, f"{site.url}?date={site.day.isoformat()}")
    today = site.events.today

    assert today.num_rows == len(data["ts"])
    assert ports(today) == sorted(data["port"])
    assert ms(today) == pytest.approx(sorted(data["ts"]))
    assert f"fireplot \u2014 {site.day.isoformat()}" == driver.title
    sources = len(set(today.column("src_ip").to_pylist()))
    assert summary(driver).startswith(f"{today.num_rows:,} events, {sources:,} sources")
    drawn = drawn_with(driver)
    assert "SwiftShader" in drawn["renderer"]
    assert (drawn["backend"], drawn["webgl"]) == ("canvas", False)
    assert browser.severe(browser.console(driver)) == []


def test_a_browser_with_a_gpu_draws_the_dots_with_webgl(site: Site, chromium: Chromium) -> None:
    """Where the browser's WebGL runs on a GPU (its reported renderer, faked before the page's
    scripts), the plot keeps WebGL: every dot of the day, drawn by WebGL's glyph."""
    with chromium() as gpu:
        gpu.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FAKE_GPU})
        data = open_page(gpu, f"{site.url}?date={site.day.isoformat()}")
        assert len(data["ts"]) == site.events.today.num_rows
        assert drawn_with(gpu) == {"backend": "webgl", "webgl": True, "renderer": GPU_RENDERER}
        assert browser.severe(browser.console(gpu)) == []


def test_series_have_their_colours(driver: Any, site: Site) -> None:
    """Each row is in its protocol x family series, each series drawn in its colour, on black."""
    data = open_page(driver, f"{site.url}?date={site.day.isoformat()}")

    rows = zip(data["proto"], data["ip_version"], data["series"], strict=True)
    assert all(s == expected_series(p, int(v)) for p, v, s in rows)
    # One renderer draws every dot, its colour mapped from the row's series.
    glyph = driver.execute_script(
        "const g = Bokeh.documents[0].get_model_by_name(arguments[0]).glyph;"
        "const m = g.fill_color.transform;"
        "return {field: g.fill_color.field, factors: Array.from(m.factors), palette: Array.from(m.palette),"
        "        line: g.line_color.value, marker: g.marker.value, size: g.size.value}",
        layout.DOTS_NAME,
    )
    assert glyph == {
        "field": "series",
        "factors": list(style.SERIES),
        "palette": [style.COLOURS[s] for s in style.SERIES],
        "line": None,
        "marker": style.DOT_MARKER,
        "size": style.DOT_SIZE,
    }
    background = driver.execute_script(
        "return Bokeh.documents[0].get_model_by_name('day-plot').background_fill_color"
    )
    assert background == style.BACKGROUND
    axis = driver.execute_script(
        "const p = Bokeh.documents[0].get_model_by_name('day-plot'); const a = p.left[0];"
        "const labels = a.major_label_overrides;"
        "return {scale: p.y_scale.type, start: p.y_range.start, end: p.y_range.end,"
        "        ticks: a.ticker.ticks,"
        "        labels: labels instanceof Map ? Object.fromEntries(labels) : labels}"
    )
    assert axis["scale"] == "LogScale"
    assert axis["start"] < style.NO_PORT_Y < 1 and axis["end"] > 65535
    assert axis["ticks"] == [style.NO_PORT_Y, *style.PORT_TICKS]
    assert {float(k): v for k, v in axis["labels"].items()} == style.Y_TICK_LABELS
    # The legend: an entry for each series the day holds (its swatch drawn from its rows), in draw
    # order; the scan kinds only when the view holds them (none here).
    legend = driver.execute_script(
        "const p = Bokeh.documents[0].get_model_by_name('day-plot'); const l = p.right[0];"
        "return {policy: l.click_policy, labels: Bokeh.index.find_one(l).entries"
        "        .filter((e) => e.item.visible).map((e) => String(e.label))}"
    )
    counts = Counter(data["series"])
    assert legend == {"policy": "none", "labels": [s for s in style.draw_order(counts) if counts[s]]}
    time.sleep(0.3)  # let WebGL finish the frame before the screenshot
    driver.save_screenshot(str(SCREENSHOT))
    from PIL import Image

    with Image.open(SCREENSHOT) as img:
        counts = {c: n for n, c in img.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    for name in (*style.SERIES[:4], style.Series.ICMP):
        rgb = tuple(int(style.COLOURS[name][i : i + 2], 16) for i in (1, 3, 5))
        assert counts.get(rgb, 0) > 0, f"no {name} ({style.COLOURS[name]}) pixel in the screenshot"


def test_hostile_text_is_shown_as_text(driver: Any, site: Site) -> None:
    """Attacker-controlled prefix and host arrive as data and render inert in the tooltip."""
    data = open_page(driver, f"{site.url}?date={site.day.isoformat()}")
    assert HOSTILE in data["prefix"]
    assert HOSTILE in data["host"]

    # Hover the hostile dot with the real mouse: the tooltip must show the markup as text.
    x, y = driver.execute_script(
        "const d = Bokeh.documents[0];"
        "const pv = Bokeh.index.find_one(d.get_model_by_name('day-plot'));"
        "const src = d.get_model_by_name('events');"
        "const i = Array.from(src.data.prefix).indexOf(arguments[0]);"
        "const sx = pv.frame.x_scale.compute(src.data.ts[i]);"
        "const sy = pv.frame.y_scale.compute(src.data.y[i]);"
        "const r = pv.canvas_view.el.getBoundingClientRect();"
        "return [r.left + sx, r.top + sy]",
        HOSTILE,
    )
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver)
    actions.w3c_actions.pointer_action.move_to_location(int(x) - 30, int(y) + 30)
    actions.w3c_actions.pointer_action.move_to_location(round(x), round(y))
    actions.perform()
    tooltip = wait_for(
        "the hover tooltip",
        lambda: driver.execute_script(
            "const el = document.querySelector('.fireplot-tooltip');"
            "return el && el.style.display !== 'none' && el.textContent ? el.textContent : null"
        ),
        timeout=5,
    )
    assert HOSTILE in tooltip
    assert "beta" in tooltip and "65535" in tooltip  # the hostile dot's own tooltip

    images = driver.execute_script(
        JS_DEEP + "let n = 0; for (const el of walk(document)) if (el.tagName === 'IMG') n++; return n"
    )
    assert images == 0
    assert driver.execute_script("return window.__pwned === undefined")


def test_hostile_url_arguments_are_shown_as_text(driver: Any, site: Site) -> None:
    """A crafted ?site= or ?date= link is reported as ignored, as text, and the page still works."""
    from urllib.parse import quote

    data = open_page(driver, f"{site.url}?site={quote(HOSTILE)}&date=not-a-date")
    notice = driver.execute_script(
        "const m = Bokeh.documents[0].get_model_by_name('notice'); return [m.visible, m.text]"
    )
    assert notice[0] is True
    assert HOSTILE in notice[1] and "not-a-date" in notice[1]
    assert site.events.today.num_rows == len(data["ts"])  # all sites, today
    assert driver.execute_script("return window.__pwned === undefined")


def test_site_argument_filters(driver: Any, site: Site) -> None:
    """?site=beta shows only that site's events."""
    data = open_page(driver, f"{site.url}?site=beta&date={site.day.isoformat()}")
    assert data["site"] == ["beta"]
    assert driver.execute_script("return window.location.search").count("site=beta") == 1


def test_dataset_argument_switches_to_a_replayed_dataset(driver: Any, site: Site) -> None:
    """?dataset=replay-a shows that dataset's events only; an unknown one falls back with a notice."""
    data = open_page(driver, f"{site.url}?dataset=replay-a&date={site.day.isoformat()}")
    assert sorted(data["ts"]) == ms(site.events.today.slice(0, 3))
    assert driver.execute_script(
        'const m = Bokeh.documents[0].get_model_by_name("dataset"); return [m.visible, m.value, m.options]'
    ) == [True, "replay-a", ["main", "replay-a"]]
    data = open_page(driver, f"{site.url}?dataset=nosuch&date={site.day.isoformat()}")
    assert len(data["ts"]) == site.events.today.num_rows


def test_previous_day_button_loads_in_place(driver: Any, site: Site) -> None:
    """Clicking 'previous day' swaps in yesterday's events without reloading the page."""
    open_page(driver, f"{site.url}?date={site.day.isoformat()}")
    mark_page(driver)
    yesterday = site.day - dt.timedelta(days=1)

    click(driver, "prev-day")
    data = wait_for_source(
        driver, "yesterday's events", lambda d: sorted(d["port"]) == ports(site.events.yesterday)
    )

    assert ms(site.events.yesterday) == pytest.approx(sorted(data["ts"]))
    assert page_not_reloaded(driver)
    wait_for("the title", lambda: yesterday.isoformat() in driver.title)
    assert f"date={yesterday.isoformat()}" in driver.execute_script("return window.location.search")
    assert browser.severe(browser.console(driver)) == []


def test_new_event_appears_live(driver: Any, site: Site) -> None:
    """An event stored while today is shown appears within a few refreshes, without reload."""
    if utc_today() != site.day:
        pytest.skip("UTC midnight passed during the test run: the store's day is no longer today")
    before = open_page(driver, f"{site.url}?date={site.day.isoformat()}")
    assert str(LIVE_PORT) not in before["port"]
    mark_page(driver)

    site.store.write_flush(OffsetRange(TOPIC, 1, 0, 0), live_event(site.day))
    data = wait_for_source(
        driver, "the live event", lambda d: str(LIVE_PORT) in d["port"], timeout=10 * REFRESH_MS / 1000 + 5
    )

    assert site.events.today.num_rows + 1 == len(data["ts"])  # streamed, not duplicated
    assert page_not_reloaded(driver)
    wait_for(
        "the summary to count it",
        lambda: summary(driver).startswith(f"{site.events.today.num_rows + 1:,} events"),
        timeout=5,
    )
    assert browser.severe(browser.console(driver)) == []


def test_scan_detected_while_live_joins_the_overlay_and_table_without_reload(driver: Any, site: Site) -> None:
    """A scan the detector writes after the page loaded is outlined and listed within a few refreshes."""
    if utc_today() != site.day:
        pytest.skip("UTC midnight passed during the test run: the store's day is no longer today")
    open_page(driver, f"{site.url}?date={site.day.isoformat()}")
    scans_js = (
        "const d = Bokeh.documents[0]; const s = d.get_model_by_name('scans');"
        "const r = d.get_model_by_name('scans:vertical');"
        "const ids = Array.from(s.data.scan_id);"
        "return {ids, drawn: Array.from(r.view.indices).map((i) => ids[i])}"
    )
    assert driver.execute_script(scans_js)["ids"] == []
    mark_page(driver)

    # The detector's own writer, as its live loop would call it at the end of a tick.
    epoch_us, scan = live_scan(site.day)
    assert ScanStore(site.store.root / "scans").replace("vertical", epoch_us, scan) != []
    scan_id = scan.column("scan_id")[0].as_py()

    shown = wait_for(
        "the scan in the overlay's source",
        lambda: (lambda d: d if scan_id in d["ids"] else None)(driver.execute_script(scans_js)),
        timeout=10 * REFRESH_MS / 1000 + 5,
    )
    assert shown["ids"] == [scan_id]
    assert shown["drawn"] == [scan_id]  # the vertical outline's view selects it
    # The scans list lives in a drawer beside the plot, closed until asked for.
    click(driver, "scans-button")
    table = wait_for(
        "the scan's row in the table",
        lambda: driver.execute_script(
            "const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('scans-table'));"
            "const cells = v ? Array.from(v.shadow_el.querySelectorAll('.slick-cell')) : [];"
            "const text = cells.map((c) => c.textContent).join('|');"
            "return text.includes(arguments[0]) && text",
            LIVE_SCANNER,
        ),
        timeout=5,
    )
    assert "vertical" in table and "1000-1200" in table
    click(driver, "close-drawer")
    assert page_not_reloaded(driver)
    assert browser.severe(browser.console(driver)) == []


# ---- DayFeed without a browser -------------------------------------------------


class TestDayFeed:
    """The page's data layer: live polls and the scale guard."""

    def test_poll_returns_only_new_events_including_late_ones(self, tmp_path: Path) -> None:
        """A poll returns events stored since the last read, even older than the newest seen."""
        store, day = Store(tmp_path), utc_today()
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        # Both events must fall on today, also in the first minute after midnight.
        earliest, latest = start + dt.timedelta(minutes=2), start + dt.timedelta(hours=23, minutes=59)
        now = min(max(dt.datetime.now(dt.UTC), earliest), latest)
        first = [event(now - dt.timedelta(seconds=10), "TCP", 4, 22, 1)]
        store.write_flush(OffsetRange(TOPIC, 0, 0, 0), conform(pa.Table.from_pylist(first)))
        feed = DayFeed(store, day, None, max_points=1000)
        assert len(feed.load().data["ts"]) == 1
        assert feed.poll() is None

        # Another partition flushes late: its event is older than the newest one shown.
        late = [event(now - dt.timedelta(seconds=60), "UDP", 4, 53, 2, source_id="b")]
        store.write_flush(OffsetRange(TOPIC, 1, 0, 0), conform(pa.Table.from_pylist(late)))
        frame = feed.poll()

        assert frame is not None and not frame.replace
        assert list(frame.data["port"]) == ["53"]
        assert feed.poll() is None
        assert feed.events == 2

    @pytest.mark.parametrize(("events", "said"), [(0, "0 events, 0 sources"), (1, "1 event, 1 source"),
                                                  (2, "2 events, 1 source")])  # fmt: skip
    def test_summary_counts_in_words_that_agree_with_the_number(
        self, tmp_path: Path, events: int, said: str
    ) -> None:
        store, day = Store(tmp_path), dt.date(2026, 1, 4)
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        rows = [
            event(start + dt.timedelta(seconds=n), "TCP", 4, 22, n, src_ip="192.0.2.7") for n in range(events)
        ]
        if rows:
            store.write_flush(OffsetRange(TOPIC, 0, 0, events - 1), conform(pa.Table.from_pylist(rows)))
        feed = DayFeed(store, day, None, max_points=100)
        feed.load()
        assert feed.summary() == said

    def test_big_day_is_aggregated(self, tmp_path: Path) -> None:
        """Over max_points, dots are counts per minute x port x protocol x family."""
        store, day = Store(tmp_path), dt.date(2026, 1, 2)
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        rows = [
            event(start + dt.timedelta(seconds=n % 120), "TCP", 4, 22 if n % 2 else 443, n)
            for n in range(500)
        ]
        store.write_flush(OffsetRange(TOPIC, 0, 0, 499), conform(pa.Table.from_pylist(rows)))
        feed = DayFeed(store, day, None, max_points=100)

        frame = feed.load()

        assert feed.aggregated and frame.replace
        assert len(frame.data["ts"]) == 4  # 2 minutes x 2 ports
        assert sum(frame.data["events"]) == 500
        assert "500 events" in feed.summary() and "minute" in feed.summary()

    def test_aggregated_ports_share_a_bin_per_row_of_the_log_axis(self, tmp_path: Path) -> None:
        """High ports a pixel row apart are one bin naming their span; low ports keep their own bins."""
        store, day = Store(tmp_path), dt.date(2026, 1, 3)
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        ports = [40000 + n % 300 for n in range(300)] + [22] * 50 + [23] * 50
        rows = [
            event(start + dt.timedelta(seconds=n % 50), "TCP", 4, port, n) for n, port in enumerate(ports)
        ]
        store.write_flush(OffsetRange(TOPIC, 0, 0, len(rows) - 1), conform(pa.Table.from_pylist(rows)))
        feed = DayFeed(store, day, None, max_points=100)

        data = feed.load().data

        assert feed.aggregated
        spans = dict(zip(data["port"], data["events"], strict=True))
        assert spans["22"] == 50 and spans["23"] == 50
        wide = {label: n for label, n in spans.items() if "-" in label}
        # 40000-40299 fall in one or two rows of the log axis (about 1100 ports wide there).
        assert 1 <= len(wide) <= 2 and sum(wide.values()) == 300, spans
        for label in wide:
            low, high = map(int, label.split("-"))
            assert 40000 <= low < high <= 40299
        service = dict(zip(data["port"], data["service"], strict=True))
        assert service["22"] == "ssh" and all(service[label] == "" for label in wide)

    def test_view_travels_with_repeated_text_dictionary_coded_and_decodes_to_the_same_columns(
        self, tmp_path: Path
    ) -> None:
        """Text of few values goes as codes plus a dictionary; mostly unique text and numbers as they are."""
        import numpy as np

        from consumers.web.transfer import pack_columns

        store, day = Store(tmp_path), dt.date(2026, 1, 4)
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        rows = [
            event(start + dt.timedelta(seconds=n), ("TCP", "UDP")[n % 2], 4, 1 + n % 3, n, prefix=HOSTILE)
            for n in range(240)
        ]
        store.write_flush(OffsetRange(TOPIC, 0, 0, len(rows) - 1), conform(pa.Table.from_pylist(rows)))
        data = DayFeed(store, day, None, max_points=1000).load().data

        packed = pack_columns(data, generation=7)

        assert packed["generation"] == [7]
        assert packed["proto:dict"] == [["TCP", "UDP"]] and packed["proto"][0].dtype == np.uint8
        assert packed["prefix:dict"] == [[HOSTILE]]
        assert "src_ip:dict" not in packed  # 240 distinct sources in 240 rows: a dictionary would not pay
        assert "ts:dict" not in packed and packed["ts"][0] is data["ts"]
        # What js/unpack_dots.js does in the browser, here in Python: every column comes back whole.
        for name, values in data.items():
            codes = packed[name][0]
            decoded = (
                [packed[f"{name}:dict"][0][i] for i in codes] if f"{name}:dict" in packed else list(codes)
            )
            assert decoded == list(values), name
        # Taken in an order (the draw order): every column decodes to its rows in that order.
        order = np.random.default_rng(1).permutation(len(data["ts"]))
        moved = pack_columns(data, generation=8, order=order)
        assert moved.keys() == packed.keys()
        for name, values in data.items():
            codes = moved[name][0]
            decoded = [moved[f"{name}:dict"][0][i] for i in codes] if f"{name}:dict" in moved else list(codes)
            assert decoded == list(values[order]), name


def test_dots_travel_in_draw_order_and_appends_merge_into_it() -> None:
    """A view's rows leave sorted by the draw order (most common series first, rarest last, each
    series in its own order), and the server's copy of the rows' series and sources follows an
    append exactly as js/unpack_dots.js merges it (a stable sort by the new order), so a tapped
    row's index still names its source."""
    import numpy as np
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource

    from consumers.web.transfer import PACKED_NAME, DotTransfer

    tcp4, tcp6, udp4 = style.Series.TCP4, style.Series.TCP6, style.Series.UDP4
    series = np.array([tcp4, tcp6, tcp4, udp4, tcp4, tcp6], dtype=object)
    src = np.array([f"10.0.0.{i}" for i in range(len(series))], dtype=object)
    doc = Document()
    sent = DotTransfer(doc, ColumnDataSource(data={}))
    sent.send({"ts": np.arange(len(series), dtype=np.float64), "series": series, "src_ip": src})

    packed = sent.packed.data
    assert sent.packed.name == PACKED_NAME and "append" not in packed
    dictionary = packed["series:dict"][0]
    assert [dictionary[i] for i in packed["series"][0]] == [tcp4, tcp4, tcp4, tcp6, tcp6, udp4]
    assert list(packed["ts"][0]) == [0, 2, 4, 1, 5, 3]  # each series keeps its own order
    assert list(sent.src_ip) == [f"10.0.0.{i}" for i in (0, 2, 4, 1, 5, 3)]  # type: ignore[arg-type]

    # Four more UDP/IPv4: now UDP/IPv4 is the most common (5), TCP/IPv4 next (3), TCP/IPv6 on top.
    new = np.array([udp4] * 4, dtype=object)
    counts = {tcp4: 3, tcp6: 2, udp4: 5}
    sent.append({"ts": np.arange(6, 10, dtype=np.float64), "series": new, "src_ip": new.copy()}, counts)
    assert sent.packed.data["append"] == [style.draw_order(counts)]
    assert list(sent.series) == [udp4] * 5 + [tcp4] * 3 + [tcp6] * 2
    assert list(sent.src_ip) == (  # type: ignore[arg-type]
        ["10.0.0.3", *[udp4] * 4] + [f"10.0.0.{i}" for i in (0, 2, 4)] + ["10.0.0.1", "10.0.0.5"]
    )
