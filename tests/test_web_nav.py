"""Navigating in a real browser: every view is a link, Back/Forward, the back/forward cache, a lost
connection, keys and labels, filter feedback, export names, the one-line tooltip.

One web server process reads a store written with ``Store.write_flush``; scans come from the real
detector. Headless Chromium drives the page; assertions read the address bar, the page's models
and what the browser downloaded.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pytest

from consumers.web.feeds.filters import FilterError, Filters, file_safe
from tests.support import browser
from tests.support.browser import JS_DEEP, click, open_page, source, wait_for
from tests.support.events import row
from tests.support.site import Site, allow_downloads, detect_day, new_store, serving, start_of, write_rows

DAY = dt.date(2026, 10, 15)
HOSTILE = '<img src=x onerror="window.__pwned=1">'
SCANNER = "203.0.113.66"
PILE = 8  # events on one spot: more than the tooltip's five lines
PILE_AT = dt.datetime(2026, 10, 15, 12, 0, 0, tzinfo=dt.UTC)
PORTS = (22, 23, 80, 443, 3389, 8080)


def day_events(day: dt.date, offset: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = [
        row(start_of(day) + dt.timedelta(seconds=rng.randint(0, 86_399)), offset + i,
            src_ip=f"198.51.100.{rng.randint(1, 120)}", dst_ip="192.0.2.1", dst_port=rng.choice(PORTS),
            site="alpha", source_id="alpha:log")
        for i in range(40)
    ]  # fmt: skip
    if day == DAY:
        t = start_of(day, 10)
        rows += [
            row(t + dt.timedelta(seconds=2 * i), offset + 100 + i, src_ip=SCANNER, dst_ip="192.0.2.10",
                dst_port=1000 + 5 * i, site="alpha", source_id="alpha:log", prefix=HOSTILE, host=HOSTILE)
            for i in range(20)
        ]  # fmt: skip
        rows += [
            row(PILE_AT, offset + 200 + i, src_ip=f"198.51.100.{200 + i}", dst_ip="192.0.2.1", dst_port=22,
                site="alpha", source_id="alpha:log", prefix=HOSTILE)
            for i in range(PILE)
        ]  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = new_store(tmp_path_factory, "nav")
    rng = random.Random(7)
    for k, day in enumerate((DAY - dt.timedelta(days=1), DAY)):
        write_rows(store, k, day_events(day, 1000 * k, rng))
    assert any(s["kind"] == "vertical" for s in detect_day(store, DAY).read().to_pylist())
    with serving(store) as s:
        yield s


@pytest.fixture(scope="module")
def driver(site: Site, chromium: browser.Chromium) -> Iterator[Any]:
    with chromium() as d:
        site.downloads.mkdir()
        allow_downloads(d, site.downloads)
        yield d


# ---- reading and driving the page --------------------------------------------------------


def args(driver: Any) -> dict[str, str]:
    """The address bar's arguments."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(driver.current_url).query).items()}


def js(driver: Any, code: str, *a: Any) -> Any:
    return driver.execute_script(
        "const d = Bokeh.documents[0]; const m = (n) => d.get_model_by_name(n);" + code, *a
    )


def x_range(driver: Any) -> tuple[float, float]:
    start, end = js(driver, "const r = m('day-plot').x_range; return [r.start, r.end]")
    return float(start), float(end)


def day_ms(day: dt.date) -> tuple[float, float]:
    return start_of(day).timestamp() * 1000, start_of(day + dt.timedelta(days=1)).timestamp() * 1000


def shown_day(driver: Any, day: dt.date) -> bool:
    """The page shows ``day``: its address, its axis and its dots."""
    data = source(driver) or {}
    lo, hi = day_ms(day)
    return (
        args(driver).get("date") == day.isoformat()
        and " event" in js(driver, "return m('summary').text")
        and bool(data.get("ts"))
        and all(lo <= t < hi for t in data["ts"])
    )


def zoom(driver: Any, start: float, end: float) -> None:
    js(driver, "m('day-plot').x_range.setv({start: arguments[0], end: arguments[1]})", start, end)


def set_value(driver: Any, name: str, value: Any) -> None:
    js(driver, "m(arguments[0]).value = arguments[1]", name, value)


def press(driver: Any, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def dot_at(driver: Any, src_ip: str) -> tuple[int, int]:
    """The page coordinates of src_ip's first dot."""
    x, y = js(
        driver,
        "const pv = Bokeh.index.find_one(m('day-plot')); const s = m('events').data;"
        "const i = Array.from(s.src_ip).indexOf(arguments[0]);"
        "const r = pv.canvas_view.el.getBoundingClientRect();"
        "return [r.left + pv.frame.x_scale.compute(s.ts[i]), r.top + pv.frame.y_scale.compute(s.y[i])]",
        src_ip,
    )
    return round(x), round(y)


def move_to(driver: Any, x: int, y: int, click_there: bool = False) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver)
    actions.w3c_actions.pointer_action.move_to_location(x, y)
    if click_there:
        actions.w3c_actions.pointer_action.click()
    actions.perform()


def tooltip_lines(driver: Any) -> list[str] | None:
    lines: list[str] | None = driver.execute_script(
        "const el = document.querySelector('.fireplot-tooltip');"
        "if (!el || el.style.display === 'none') return null;"
        "return Array.from(el.querySelectorAll('.fireplot-tooltip-line'), (l) => l.textContent)"
    )
    return lines


# ---- the tests ----------------------------------------------------------------------------


def test_back_and_forward_step_through_two_days_and_a_zoom(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    wait_for("the first day", lambda: shown_day(driver, DAY))
    entries = driver.execute_script("return history.length")
    click(driver, "prev-day")
    before = DAY - dt.timedelta(days=1)
    wait_for("the day before", lambda: shown_day(driver, before))
    lo, _ = day_ms(before)
    zoom(driver, lo + 3_600_000, lo + 7_200_000)
    wait_for("the zoom in the address", lambda: args(driver).get("x0") == str(round(lo + 3_600_000)))
    assert driver.execute_script("return history.length") == entries + 2  # one entry per view, not per change

    driver.back()  # the day before, unzoomed
    wait_for("the unzoomed day", lambda: "x0" not in args(driver) and x_range(driver) == day_ms(before))
    driver.back()  # the first day
    wait_for("the first day again", lambda: shown_day(driver, DAY) and x_range(driver) == day_ms(DAY))
    assert js(driver, "return m('date-picker').value") == DAY.isoformat()
    driver.forward()
    wait_for("the day before again", lambda: shown_day(driver, before))
    driver.forward()  # the zoom again
    wait_for("the zoom again", lambda: x_range(driver) == (lo + 3_600_000, lo + 7_200_000))
    assert args(driver)["date"] == before.isoformat()
    # Going back and forth added no entries of its own.
    assert driver.execute_script("return history.length") == entries + 2


def test_a_copied_link_reproduces_filters_zoom_and_the_source_panel(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    set_value(driver, "ports", "1000-1050,22")
    wait_for("the port filter in the address", lambda: args(driver).get("ports") == "1000-1050,22")
    lo, _ = day_ms(DAY)
    zoom(driver, lo + 9 * 3_600_000, lo + 13 * 3_600_000)
    js(driver, "m('day-plot').y_range.setv({start: 10, end: 2000})")
    wait_for("the zoom in the address", lambda: {"x0", "y0"} <= set(args(driver)))
    move_to(driver, *dot_at(driver, SCANNER), click_there=True)
    wait_for("the source in the address", lambda: args(driver).get("src") == SCANNER)
    link = driver.current_url

    driver.get("about:blank")
    driver.get(link)
    wait_for(
        "the linked page", lambda: driver.execute_script("return !!(window.Bokeh && Bokeh.documents[0])")
    )
    wait_for("the linked view", lambda: args(driver).get("src") == SCANNER and x_range(driver)[0] > lo)
    assert js(driver, "return m('ports').value") == "1000-1050,22"
    assert x_range(driver) == (lo + 9 * 3_600_000, lo + 13 * 3_600_000)
    assert js(driver, "const r = m('day-plot').y_range; return [r.start, r.end]") == [10, 2000]
    data = wait_for("the filtered dots", lambda: source(driver))
    assert set(data["port"]) <= {"22", *(str(p) for p in range(1000, 1051))}
    assert "22" in data["port"] and any(p.startswith("10") for p in data["port"])
    wait_for(
        "the source panel",
        lambda: js(
            driver,
            "return m('source-panel').visible && m('source-summary').text.includes(arguments[0])",
            SCANNER,
        ),
    )
    assert "ports 1000-1050,22" in js(driver, "return m('day-plot').title.text")


def test_filter_errors_are_shown_on_the_box_and_cleared_and_port_lists_apply(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    total = len(source(driver)["ts"])  # type: ignore[index]

    def state() -> tuple[bool, str, list[str], str | None]:
        visible, text, classes, aria = js(
            driver,
            "const e = m('filter-error'); const p = m('ports'); const box = Bokeh.index.find_one(p).input_el;"
            "return [e.visible, e.text, p.css_classes, box.getAttribute('aria-invalid')]",
        )
        return visible, text, classes, aria

    set_value(driver, "ports", "ssh")
    wait_for("the error", lambda: state()[0])
    _, text, classes, aria = state()
    assert "ssh" in text and "invalid" in classes and aria == "true"
    assert len(source(driver)["ts"]) == total  # type: ignore[index]  # nothing applied, nothing dropped

    set_value(driver, "ports", "22,80,443")
    wait_for("the error cleared", lambda: not state()[0])
    assert state()[2] == [] and state()[3] == "false"
    want = sum(
        1
        for p in site.store.read(start_of(DAY), start_of(DAY + dt.timedelta(1)))
        .column("dst_port")
        .to_pylist()
        if p in (22, 80, 443)
    )
    data = wait_for("the listed ports", lambda: (d := source(driver)) and len(d["ts"]) == want and d)
    assert set(data["port"]) <= {"22", "80", "443"}
    assert args(driver)["ports"] == "22,80,443"

    set_value(driver, "networks", "10.0.0.0/33")
    wait_for(
        "the network error",
        lambda: js(
            driver, "return m('filter-error').visible && m('networks').css_classes.includes('invalid')"
        ),
    )
    assert js(driver, "return m('ports').css_classes") == []  # the valid box is not blamed
    set_value(driver, "networks", "")
    wait_for("the network error cleared", lambda: not state()[0])
    set_value(driver, "ports", "")


def test_exports_name_their_filters_in_file_name_and_title(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}&ports=1-1024")
    name = f"fireplot-all-{DAY.isoformat()}-1d-ports-1-1024"
    saved_as = js(driver, "return m('day-plot').toolbar.tools.find((t) => t.filename !== undefined).filename")
    assert saved_as == name
    title = js(driver, "return m('day-plot').title.text")
    assert "ports 1-1024" in title
    click(driver, "export-png")
    png = wait_for(
        "the PNG", lambda: (site.downloads / f"{name}.png").exists() and site.downloads / f"{name}.png"
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    click(driver, "export-csv")
    csvs = wait_for(
        "the CSV", lambda: [p for p in site.downloads.glob("*.csv") if not p.name.endswith(".crdownload")]
    )
    assert csvs[0].name.startswith("fireplot-all-") and csvs[0].name.endswith("-ports-1-1024.csv")


def test_file_name_parts_are_safe_whatever_was_typed() -> None:
    hostile = ("../../etc/passwd", "a/b\\c", 'x"; rm -rf /', "\x00\n\t", "ÿ<script>", "CON", "." * 5)
    for text in hostile:
        safe = file_safe(text)
        assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789.-" for c in safe), safe
        assert not safe.startswith((".", "-")) and not safe.endswith((".", "-"))
        assert "/" not in safe and "\\" not in safe
    assert file_safe("../../etc/passwd") == "etc-passwd"
    assert (
        Filters.parse(ports="1-1024,3389", networks="10.0.0.0/8").slug()
        == "ports-1-1024-3389-from-10.0.0.0-8"
    )
    assert Filters.parse(ports="1-1024").describe() == "ports 1-1024"


def test_port_lists_and_ranges_parse_and_apply() -> None:
    f = Filters.parse(ports="22, 80,443")
    assert f.ports == ((22, 22), (80, 80), (443, 443))
    g = Filters.parse(ports="1-1024,3389")
    assert g.ports == ((1, 1024), (3389, 3389))
    assert Filters.parse(ports="-10").ports == ((0, 10),) and Filters.parse(ports="60000-").ports == (
        (60000, 65535),
    )
    table = pa.table({"dst_port": pa.array([None, 0, 22, 80, 1024, 1025, 3389, 3390], pa.int32())})
    assert g.apply(table).column("dst_port").to_pylist() == [22, 80, 1024, 3389]
    assert f.apply(table).column("dst_port").to_pylist() == [22, 80]
    assert Filters.parse(ports="0-1").apply(table).column("dst_port").to_pylist() == [None, 0]
    for bad, words in (("22,ssh", "ssh"), ("1-2-3", "1-2-3"), ("9-1", "empty"), ("70000", "outside")):
        with pytest.raises(FilterError, match=words):
            Filters.parse(ports=bad)


def test_keys_step_days_reset_zoom_and_focus_the_filter_but_not_while_typing(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    before = DAY - dt.timedelta(days=1)
    driver.find_element("tag name", "body").click()
    press(driver, "\ue012")  # Left
    wait_for("the day before", lambda: shown_day(driver, before))
    press(driver, "\ue014")  # Right
    wait_for("the day again", lambda: shown_day(driver, DAY))
    lo, hi = day_ms(DAY)
    zoom(driver, lo + 3_600_000, lo + 7_200_000)
    wait_for("the zoom", lambda: x_range(driver)[0] == lo + 3_600_000)
    press(driver, "/")
    focused = js(
        driver,
        "const v = Bokeh.index.find_one(m('networks')); return v.input_el === v.shadow_el.activeElement",
    )
    assert focused
    press(driver, "r\ue012")  # typed into the box: neither a reset nor a day change
    assert js(driver, "return Bokeh.index.find_one(m('networks')).input_el.value") == "r"
    assert x_range(driver)[0] == lo + 3_600_000 and args(driver)["date"] == DAY.isoformat()
    js(
        driver,
        "const box = Bokeh.index.find_one(m('networks')).input_el; box.value = ''; box.blur()",
    )
    driver.find_element("tag name", "body").click()
    press(driver, "r")
    wait_for("the whole day again", lambda: x_range(driver) == (lo, hi))

    unnamed = driver.execute_script(
        JS_DEEP + "const out = [];"
        "for (const el of walk(document)) {"
        "  const focusable = 'input:not([type=hidden]), select, button, textarea,'"
        "    + ' [tabindex]:not([tabindex=\"-1\"])';"
        "  if (!el.matches(focusable)) continue;"
        "  const box = el.getBoundingClientRect();"
        "  if (box.width === 0 || box.height === 0) continue;"
        "  const named = el.getAttribute('aria-label') || el.getAttribute('title') || el.textContent.trim()"
        "    || (el.labels && el.labels.length) || el.getAttribute('aria-labelledby');"
        "  if (!named) out.push(el.outerHTML.slice(0, 120));"
        "}"
        "return out"
    )
    assert unnamed == [], "\n".join(unnamed)


def test_tooltip_is_one_line_per_dot_with_more_here_scan_pinning_and_inert_text(
    driver: Any, site: Site
) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    lo, _ = day_ms(DAY)
    zoom(driver, PILE_AT.timestamp() * 1000 - 600_000, PILE_AT.timestamp() * 1000 + 600_000)
    x, y = dot_at(driver, "198.51.100.200")
    move_to(driver, x - 40, y + 40)
    move_to(driver, x, y)
    lines = wait_for("the tooltip", lambda: tooltip_lines(driver), timeout=5)
    assert len(lines) == 6 and lines[-1] == f"+{PILE - 5} more here", lines
    assert all(
        " \u2192 TCP/22 (ssh) " in line and line.startswith("12:00:00 198.51.100.2") for line in lines[:5]
    )
    assert all(HOSTILE in line for line in lines[:5])

    zoom(driver, lo + 10 * 3_600_000 - 60_000, lo + 10 * 3_600_000 + 60_000)
    x, y = dot_at(driver, SCANNER)
    move_to(driver, x - 40, y + 40)
    move_to(driver, x, y, click_there=True)
    lines = wait_for("the scanner's tooltip", lambda: tooltip_lines(driver), timeout=5)
    assert len(lines) == 1 and SCANNER in lines[0] and "[scan vertical " in lines[0], lines
    move_to(driver, x - 200, y + 100)
    assert tooltip_lines(driver) == lines  # pinned
    press(driver, "\ue00c")  # Escape
    wait_for("the tooltip gone", lambda: tooltip_lines(driver) is None)

    images = driver.execute_script(
        JS_DEEP + "let n = 0; for (const el of walk(document)) if (el.tagName === 'IMG') n++; return n"
    )
    assert images == 0 and driver.execute_script("return window.__pwned === undefined")


def test_a_page_restored_from_the_back_forward_cache_reloads(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    driver.execute_script("sessionStorage.removeItem('fireplot-restored'); window.__marker = 1")
    driver.get(site.url + "static/js/bokeh.min.js")
    driver.back()
    wait_for("the page again", lambda: driver.execute_script("return !!(window.Bokeh && Bokeh.documents[0])"))
    assert driver.execute_script("return window.__marker") is None  # a fresh page, not the frozen one
    restored = driver.execute_script("return sessionStorage.getItem('fireplot-restored')")
    if restored is None:
        reason = driver.execute_cdp_cmd("Page.getNavigationHistory", {})
        pytest.skip(f"Chromium did not keep the page in its back/forward cache here: {reason}")
    wait_for("the live page", lambda: shown_day(driver, DAY))
    click(driver, "prev-day")
    wait_for("a click answered", lambda: shown_day(driver, DAY - dt.timedelta(days=1)))


def test_a_lost_server_connection_shows_a_banner(site: Site, chromium: browser.Chromium) -> None:
    with chromium() as d:
        with browser.web_server(site.store.root, site.root / "server-2.log") as url:
            open_page(d, f"{url}?date={DAY.isoformat()}")
            assert d.execute_script("return document.getElementById('fireplot-disconnected')") is None
        banner = wait_for(
            "the banner",
            lambda: d.execute_script(
                "const b = document.getElementById('fireplot-disconnected');"
                "const shown = b && getComputedStyle(b).display !== 'none'"
                "  && b.getAttribute('role') === 'alert';"
                "return shown && b.textContent"
            ),
        )
        assert "lost" in banner
