"""The page as a person meets it, in headless Chromium: the plot owns the screen at every window
size, the scans and a source open in view, the dots are drawn rarest on top, every text is
readable on the dark ground, and an empty panel says why it is empty.

Screenshots of the three window sizes are saved under the test's tmp dir and their paths
printed (``pytest -s``) for a human to look at.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from consumers import style
from consumers.web import layout
from consumers.web.feeds.days import utc_today
from pipeline.detect import heartbeat
from pipeline.event import conform
from pipeline.store import OffsetRange, Store
from tests.support import browser
from tests.support.browser import JS_DEEP, click, open_page, wait_for
from tests.support.events import row

TOPIC = "fireplot.events"
SIZES = ((1280, 800), (1600, 1200), (1920, 1080))
# The spot both series share on the draw-order days: one time, one port.
SPOT_PORT = 3000
SPOT_HOUR = 12


def spot_day(day: dt.date, tcp4: int, tcp6: int, offset: int) -> pa.Table:
    """``tcp4`` TCP/IPv4 and ``tcp6`` TCP/IPv6 events, all on one spot of the plot."""
    at = dt.datetime.combine(day, dt.time(SPOT_HOUR), tzinfo=dt.UTC)
    rows = [row(at, offset + n, proto="TCP", ip_version=4, dst_port=SPOT_PORT) for n in range(tcp4)]
    rows += [row(at, offset + 500 + n, proto="TCP", ip_version=6, dst_port=SPOT_PORT) for n in range(tcp6)]
    return conform(pa.Table.from_pylist(rows))


def busy_day(day: dt.date) -> pa.Table:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    rows = [
        row(
            start + dt.timedelta(minutes=7 * n),
            n,
            proto=("TCP", "UDP")[n % 2],
            dst_port=style.PORT_TICKS[n % 18],
        )
        for n in range(200)
    ]
    return conform(pa.Table.from_pylist(rows))


@dataclass
class Site:
    url: str
    root: Path
    today: dt.date
    ipv4_rare: dt.date  # 3 TCP/IPv4 under 40 TCP/IPv6 on one spot
    ipv6_rare: dt.date  # 40 TCP/IPv4 under 3 TCP/IPv6 on one spot
    empty: dt.date


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("layout")
    store = Store(root / "store")
    today = utc_today()
    days = [today - dt.timedelta(days=n) for n in (3, 4, 5)]
    store.write_flush(OffsetRange(TOPIC, 0, 0, 99), spot_day(days[0], 3, 40, 0))
    store.write_flush(OffsetRange(TOPIC, 0, 100, 199), spot_day(days[1], 40, 3, 1000))
    store.write_flush(OffsetRange(TOPIC, 0, 200, 299), busy_day(today))
    with browser.web_server(store.root, root / "server.log") as url:
        yield Site(url, root / "store", today, days[0], days[1], days[2])


@pytest.fixture(scope="module")
def driver(site: Site, chromium: browser.Chromium) -> Iterator[Any]:
    with chromium() as d:
        yield d


def model(driver: Any, name: str, expr: str) -> Any:
    return driver.execute_script(
        f"const m = Bokeh.documents[0].get_model_by_name(arguments[0]); return {expr}", name
    )


def rect(driver: Any, name: str) -> dict[str, float]:
    """Where the view of model ``name`` is on screen, and the window's size."""
    out: dict[str, float] = driver.execute_script(
        "const m = Bokeh.documents[0].get_model_by_name(arguments[0]);"
        "const r = Bokeh.index.find_one(m).el.getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height,"
        "        width: r.width, inner_h: window.innerHeight, inner_w: window.innerWidth}",
        name,
    )
    return out


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_plot_fills_most_of_the_window(
    site: Site, width: int, height: int, tmp_path: Path, chromium: browser.Chromium
) -> None:
    """At each window size the plot takes >= 70 % of the height, whole (x axis in view)."""
    with chromium(width, height) as driver:
        # The window's inner size is what the page gets; chrome's own bars are not the page's.
        driver.set_window_size(width, height)
        open_page(driver, f"{site.url}?date={site.today.isoformat()}")
        time.sleep(0.5)  # the layout settles after the data arrives
        plot = rect(driver, "day-plot")
        share = plot["height"] / plot["inner_h"]
        shot = tmp_path / f"fireplot-{width}x{height}.png"
        driver.save_screenshot(str(shot))
        print(f"\nscreenshot {width}x{height}: {shot} (plot {plot['height']:.0f} px = {share:.0%})")
        assert share >= 0.70, plot
        assert plot["bottom"] <= plot["inner_h"] + 0.5, "the plot (its x axis) runs below the window"
        assert plot["right"] <= plot["inner_w"] + 0.5
        # Grows with the window, not a fixed height.
        assert plot["height"] >= 0.70 * height - 100
        # The drawer open: the plot stays the hero, the drawer takes about a third of the width.
        click(driver, "scans-button")
        wait_for("the drawer", lambda: model(driver, "drawer", "m.visible"))
        time.sleep(0.5)
        plot, drawer = rect(driver, "day-plot"), rect(driver, "drawer")
        shot = tmp_path / f"fireplot-{width}x{height}-drawer.png"
        driver.save_screenshot(str(shot))
        wide = plot["width"] / plot["inner_w"]
        print(f"screenshot {width}x{height}, drawer open: {shot} (plot {wide:.0%} of the width)")
        assert wide >= 0.60, (plot, drawer)
        assert drawer["width"] <= 0.40 * drawer["inner_w"] or drawer["width"] <= layout.DRAWER_MIN_PX + 0.5
        assert drawer["width"] >= min(layout.DRAWER_MIN_PX, 0.3 * drawer["inner_w"]) - 0.5
        assert drawer["left"] >= plot["right"] - 0.5 and drawer["right"] <= drawer["inner_w"] + 0.5
        assert plot["height"] / plot["inner_h"] >= 0.70


def test_scans_and_source_open_in_view(driver: Any, site: Site) -> None:
    """The scans button opens the drawer beside the plot; a clicked dot opens its source there."""
    driver.set_window_size(1280, 800)
    open_page(driver, f"{site.url}?date={site.today.isoformat()}")
    assert model(driver, "drawer", "m.visible") is False
    wide = rect(driver, "day-plot")["width"]
    click(driver, "scans-button")
    wait_for("the drawer", lambda: model(driver, "drawer", "m.visible"))
    time.sleep(0.3)
    drawer = rect(driver, "drawer")
    assert drawer["right"] <= drawer["inner_w"] + 0.5 and drawer["bottom"] <= drawer["inner_h"] + 0.5
    assert drawer["width"] > 0 and drawer["top"] >= 0
    assert rect(driver, "day-plot")["width"] < wide
    click(driver, "close-drawer")
    wait_for("the drawer to close", lambda: model(driver, "drawer", "m.visible") is False)
    # A tapped dot: the server opens the source panel, in the drawer.
    driver.execute_script("Bokeh.documents[0].get_model_by_name('events').selected.indices = [0]")
    wait_for("the source panel", lambda: model(driver, "source-panel", "m.visible"))
    wait_for("the drawer", lambda: model(driver, "drawer", "m.visible"))
    assert model(driver, "scans-part", "m.visible") is False
    time.sleep(0.3)
    panel = rect(driver, "source-panel")
    assert panel["top"] < panel["inner_h"] and panel["right"] <= panel["inner_w"] + 0.5
    # The source's scans list is empty here (no detector ran): it says so.
    note = model(driver, "source-scans-note", "m.visible ? m.text : ''")
    assert note == "no detected scans of this source in this view"


def spot_colour(driver: Any, path: Path) -> tuple[int, int, int]:
    """The colour at the shared spot, found through the plot's own scales."""
    ts = driver.execute_script(
        "const d = Bokeh.documents[0].get_model_by_name('events').data; return d.ts[0]"
    )
    at = driver.execute_script(
        "const m = Bokeh.documents[0].get_model_by_name('day-plot'); const v = Bokeh.index.find_one(m);"
        "const r = v.el.getBoundingClientRect(); const f = v.frame;"
        "return [r.left + f.x_scale.compute(arguments[0]), r.top + f.y_scale.compute(arguments[1])]",
        ts,
        SPOT_PORT,
    )
    time.sleep(0.5)  # WebGL finishes its frame
    driver.save_screenshot(str(path))
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB").getpixel((round(at[0]), round(at[1])))
    assert isinstance(rgb, tuple)
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def test_the_rarer_series_is_drawn_on_top(driver: Any, site: Site, tmp_path: Path) -> None:
    """Two series on one spot: the rarer one's colour shows, whichever family it is (as in render)."""
    driver.set_window_size(1280, 800)
    open_page(driver, f"{site.url}?date={site.ipv4_rare.isoformat()}")
    assert spot_colour(driver, tmp_path / "v4-rare.png") == hex_rgb(style.COLOURS[style.Series.TCP4])
    open_page(driver, f"{site.url}?date={site.ipv6_rare.isoformat()}")
    assert spot_colour(driver, tmp_path / "v6-rare.png") == hex_rgb(style.COLOURS[style.Series.TCP6])
    # The rows (drawn in order by the one renderer) are in the rule's order, and the legend lists
    # only the series the view holds.
    series = browser.source(driver)["series"]  # type: ignore[index]
    expected = style.draw_order({style.Series.TCP4: 40, style.Series.TCP6: 3})[:2]
    assert series == sorted(series, key=expected.index) and set(series) == set(expected)
    shown = model(
        driver,
        "day-plot",
        "Bokeh.index.find_one(m.right[0]).entries.filter((e) => e.item.visible).map((e) => String(e.label))",
    )
    assert shown == expected
    assert model(driver, "day-plot", "m.right[0].visible") is True


def test_port_labels_follow_a_zoom(driver: Any, site: Site) -> None:
    """Zoomed to ports 21-25, every whole port there is a labelled tick, not only 22."""
    open_page(driver, f"{site.url}?date={site.today.isoformat()}")
    fixed = model(driver, "day-plot", "Array.from(m.left[0].ticker.ticks)")
    assert fixed == [style.NO_PORT_Y, *style.PORT_TICKS]
    driver.execute_script(
        "const m = Bokeh.documents[0].get_model_by_name('day-plot');m.y_range.setv({start: 20.5, end: 25.5})"
    )
    ticks = wait_for(
        "ticks between the fixed ones",
        lambda: [
            t for t in model(driver, "day-plot", "Array.from(m.left[0].ticker.ticks)") if 20.5 <= t <= 25.5
        ],
    )
    assert ticks == [21, 22, 23, 24, 25]
    time.sleep(0.3)
    labels = driver.execute_script(
        "const m = Bokeh.documents[0].get_model_by_name('day-plot');"
        "return m.left[0].formatter.doFormat([21, 23, 25, 0.6], {loc: 0})"
    )
    assert labels == ["21", "23", "25", style.NO_PORT_LABEL]
    driver.execute_script(
        "const m = Bokeh.documents[0].get_model_by_name('day-plot');m.y_range.setv({start: 0.45, end: 90000})"
    )
    wait_for(
        "the fixed ticks again",
        lambda: model(driver, "day-plot", "m.left[0].ticker.ticks.length") == len(fixed),
    )


JS_CONTRAST = (
    JS_DEEP
    + """
function rgba(text) {
  const m = text.match(/rgba?\\(([^)]+)\\)/);
  if (!m) return [0, 0, 0, 0];
  const p = m[1].split(/[ ,\\/]+/).filter((x) => x).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
}
function parent(el) {
  if (el.parentElement) return el.parentElement;
  const root = el.getRootNode();
  return root && root.host ? root.host : null;
}
function ground(el) {
  // The first opaque background behind el (the page's own if none), through shadow hosts.
  for (let e = el; e; e = parent(e)) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    if (c[3] > 0.5) return c;
  }
  return rgba(getComputedStyle(document.body).backgroundColor);
}
function lum(c) {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4) };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
}
const out = [];
for (const el of walk(document)) {
  const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
  const field = (el.tagName === "INPUT" && el.value) || el.tagName === "SELECT";
  if (!own && !field) continue;
  const r = el.getBoundingClientRect();
  const s = getComputedStyle(el);
  if (r.width === 0 || r.height === 0 || s.visibility === "hidden" || s.display === "none") continue;
  if (r.bottom < 0 || r.top > innerHeight) continue;
  const fg = rgba(s.color), bg = ground(el);
  const a = lum(fg), b = lum(bg);
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  out.push({tag: el.tagName, text: (el.textContent || el.value || "").trim().slice(0, 40),
            fg: s.color, bg: bg.join(","), ratio: ratio});
}
return out
"""
)


def test_every_visible_text_is_readable(driver: Any, site: Site) -> None:
    """WCAG AA: every visible text (widgets, tables, status) at least 4.5:1 against its ground."""
    open_page(driver, f"{site.url}?date={site.today.isoformat()}")
    click(driver, "scans-button")
    click(driver, "site-health-details")
    wait_for("the site table", lambda: model(driver, "site-health-table", "m.visible"))
    time.sleep(0.5)
    texts = driver.execute_script(JS_CONTRAST)
    assert len(texts) > 15, texts  # buttons, selects, the summary, table headers at least
    poor = [t for t in texts if t["ratio"] < 4.5]
    assert poor == [], poor
    click(driver, "site-health-details")
    click(driver, "close-drawer")


def scans_note(driver: Any) -> str:
    text: str = model(driver, "scans-note", "m.visible ? m.text : ''")
    return text


def test_empty_panels_say_why(driver: Any, site: Site) -> None:
    """An empty day, a future day, and a scans list with and without a running detector."""
    open_page(driver, f"{site.url}?date={site.empty.isoformat()}")
    wait_for(
        "the plot's note",
        lambda: model(driver, "day-plot", "m.center.find((a) => a.name == 'plot-note').visible"),
    )
    note = model(driver, "day-plot", "m.center.find((a) => a.name == 'plot-note').text")
    assert note == "no events on this day"
    assert "detector is not running" in scans_note(driver)
    assert model(driver, "scans-button", "m.label") == "scans (0)"
    # Nothing to list: no legend (an empty box in the corner), as on a day with dots there is one.
    assert model(driver, "day-plot", "m.right[0].visible") is False

    future = site.today + dt.timedelta(days=2)
    open_page(driver, f"{site.url}?date={future.isoformat()}")
    wait_for(
        "the future note",
        lambda: (
            model(driver, "day-plot", "m.center.find((a) => a.name == 'plot-note').text")
            == "this day is in the future"
        ),
    )

    # A detector ticking: the note says it runs (the page looks every few seconds).
    heartbeat.write(site.root / "scans", None, 1.0)
    wait_for("the detector's heartbeat", lambda: "detector is running" in scans_note(driver), timeout=15)
    open_page(driver, f"{site.url}?date={site.today.isoformat()}")
    note = model(driver, "day-plot", "m.center.find((a) => a.name == 'plot-note').visible")
    assert note is False


def test_heartbeat_is_stale_after_ten_intervals(tmp_path: Path) -> None:
    assert heartbeat.running(tmp_path) is False
    heartbeat.write(tmp_path, 123, 5.0)
    assert heartbeat.read(tmp_path) is not None
    now = time.time()
    assert heartbeat.running(tmp_path, now + 49) is True
    assert heartbeat.running(tmp_path, now + 51) is False
    heartbeat.write(tmp_path, 123, 1.0)  # short ticks: at least 30 s still count as running
    assert heartbeat.running(tmp_path, now + 29) is True
    assert heartbeat.running(tmp_path, now + 31) is False
    (tmp_path / heartbeat.FILE).write_text("{not json", encoding="utf-8")
    assert heartbeat.running(tmp_path) is False


def test_render_draws_in_the_configured_palette(tmp_path: Path) -> None:
    """`fireplot render` takes [web] palette: its dots (and legend) in that palette's colours only."""
    from PIL import Image

    from consumers.render import Layout, render_day

    store = Store(tmp_path / "store")
    day = utc_today() - dt.timedelta(days=3)
    store.write_flush(OffsetRange(TOPIC, 0, 0, 99), spot_day(day, 1, 0, 0))
    counts: dict[str, dict[tuple[int, int, int], int]] = {}
    for palette in style.PALETTES:
        out = tmp_path / f"{palette}.png"
        render_day(store, day, out, layout=Layout(palette=palette))
        with Image.open(out) as img:
            counts[palette] = {c: n for n, c in img.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    tcp4 = style.Series.TCP4
    for palette, other in zip(style.PALETTES, reversed(style.PALETTES), strict=True):
        mine, theirs = hex_rgb(style.colours(palette)[tcp4]), hex_rgb(style.colours(other)[tcp4])
        # The legend's swatch and the one dot (DOT_SIZE squared pixels) beside it.
        assert counts[palette].get(mine, 0) >= style.DOT_SIZE**2 + 1, palette
        assert counts[palette].get(theirs, 0) == 0, palette


def test_unknown_palette_is_a_config_error() -> None:
    from pipeline.config import ConfigError, WebConfig

    assert WebConfig().palette == "original"
    assert WebConfig(palette="colourblind").palette == "colourblind"
    with pytest.raises(ConfigError, match="palette"):
        WebConfig(palette="rainbow")
    with pytest.raises(ValueError, match="unknown palette"):
        style.colours("rainbow")
    assert set(style.markers("colourblind").values()) == {"square", "triangle", "diamond"}
    assert set(style.markers("original").values()) == {style.DOT_MARKER}


def test_page_draws_in_the_colourblind_palette(
    site: Site, tmp_path: Path, chromium: browser.Chromium
) -> None:
    """[web] palette = colourblind on the page: the one dots renderer maps each series to its
    Okabe-Ito colour, IPv6 to triangles (two pixels wider), and the rarer series shows on top."""
    env = {"FIREPLOT_WEB__PALETTE": "colourblind"}
    with (
        browser.web_server(site.root, tmp_path / "server.log", env) as url,
        chromium(1280, 800) as driver,
    ):
        driver.set_window_size(1280, 800)
        browser.console(driver)
        open_page(driver, f"{url}?date={site.ipv6_rare.isoformat()}")
        mapped = model(
            driver,
            layout.DOTS_NAME,
            "(() => { const g = m.glyph; const f = Array.from(g.fill_color.transform.factors);"
            " return {palette: Array.from(g.fill_color.transform.palette), factors: f,"
            "  markers: Array.from(g.marker.transform.markers),"
            "  sizes: Array.from(g.size.transform.v_compute(f))} })()",
        )
        assert mapped["factors"] == list(style.SERIES)
        assert mapped["palette"] == [style.COLOURBLIND[s] for s in style.SERIES]
        assert mapped["markers"] == [style.FAMILY_MARKERS[s] for s in style.SERIES]
        assert mapped["sizes"] == [
            style.DOT_SIZE if style.FAMILY_MARKERS[s] == style.DOT_MARKER else style.DOT_SIZE + 2
            for s in style.SERIES
        ]
        # 3 TCP/IPv6 triangles over 40 TCP/IPv4 squares on one spot: the triangle's colour shows.
        colour = spot_colour(driver, tmp_path / "colourblind.png")
        assert colour == hex_rgb(style.COLOURBLIND[style.Series.TCP6])
        assert browser.severe(browser.console(driver)) == []
