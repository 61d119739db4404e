"""The page's "PNG of this view" export, checked pixel by pixel in a real browser.

A handful of events at chosen times, ports and protocol x family go into a real
store; headless Chromium opens that day, clicks the export button, and the PNG
Chromium downloads is read back with Pillow. Where each dot must land is worked
out here, from the plot frame's geometry the browser reports and the log-port
axis of :mod:`consumers.style` (not from Bokeh's own scales), so a dot drawn at
the wrong port, time or colour fails the test.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest

from consumers import style
from tests.support import browser
from tests.support.browser import Chromium, click, open_page, wait_for
from tests.support.events import row
from tests.support.site import Site, allow_downloads, new_store, serving, start_of, write_rows

DAY: Final = dt.date(2026, 10, 20)
# (hour, minute, protocol, IP version, destination port): ports off the labelled
# ticks and times off the hour grid, so no grid line runs through a dot's ring.
DOTS: Final = (
    (2, 10, "TCP", 4, 31),
    (13, 10, "TCP", 4, 3000),
    (5, 10, "UDP", 4, 300),
    (17, 10, "UDP", 4, 12000),
    (8, 10, "TCP", 6, 2000),
    (20, 10, "TCP", 6, 45),
    (11, 10, "UDP", 6, 40000),
    (22, 40, "UDP", 6, 700),
    (15, 10, "ICMP", 4, None),
)
SERIES: Final = {
    ("TCP", 4): style.Series.TCP4,
    ("UDP", 4): style.Series.UDP4,
    ("TCP", 6): style.Series.TCP6,
    ("UDP", 6): style.Series.UDP6,
    ("ICMP", 4): style.Series.ICMP,
}
# A dot is DOT_SIZE px wide: its centre pixel is whole, its edge may be blended.
NEAR_PX: Final = 3
RING_PX: Final = 8
# A dot's best pixel holds at least this much of its colour; the ground's grid
# (#262626) and the axis lines (#808080), dim shades of white, stay below the stray threshold.
DOT_SHADE: Final = 0.85
STRAY_SHADE: Final = 0.6
SHADE_TOLERANCE: Final = 6.0

RGB = tuple[int, int, int]


def rgb(colour: str) -> RGB:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


BLACK: Final = rgb(style.BACKGROUND)
GRID: Final = rgb(style.GRID)


@dataclass(frozen=True)
class Dot:
    ts: dt.datetime
    port: int | None
    series: str


def dots() -> list[Dot]:
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    return [
        Dot(start + dt.timedelta(hours=h, minutes=m), port, SERIES[(proto, v)])
        for h, m, proto, v, port in DOTS
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = new_store(tmp_path_factory, "png")
    rows = [
        row(start_of(DAY) + dt.timedelta(hours=h, minutes=m), n, proto=proto, ip_version=v, dst_port=port)
        for n, (h, m, proto, v, port) in enumerate(DOTS)
    ]
    write_rows(store, 0, rows)
    with serving(store) as s:
        s.downloads.mkdir()
        yield s


@pytest.fixture(scope="module")
def driver(site: Site, chromium: Chromium) -> Iterator[Any]:
    with chromium() as d:
        allow_downloads(d, site.downloads)
        yield d


@dataclass
class Frame:
    """The plot frame inside the exported canvas, in pixels, and the ranges it shows."""

    left: float
    top: float
    width: float
    height: float
    canvas: tuple[int, int]
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def pixel(self, ts: dt.datetime, port: int | None) -> tuple[float, float]:
        """Where a dot's centre lands: linear in time, the style's log axis in port."""
        x0, x1 = self.x_range
        x = self.left + (ts.timestamp() * 1000 - x0) / (x1 - x0) * self.width
        y0, y1 = (math.log(v) for v in self.y_range)
        y_value = float(port) if port else style.NO_PORT_Y
        y = self.top + (y1 - math.log(y_value)) / (y1 - y0) * self.height
        return x, y

    def inside(self, x: int, y: int) -> bool:
        return self.left <= x < self.left + self.width and self.top <= y < self.top + self.height


def shade(pixels: Any, colour: str) -> Any:
    """Per pixel: how much of ``colour`` it holds over the black ground (0 .. 1), 0 if another hue.

    WebGL smooths a dot's edges, so a 3 px square at a fractional position may
    hold its colour blended with black (the colour scaled down) rather than whole.
    """
    target = np.array(rgb(colour), dtype=float)
    values = pixels.astype(float)
    alpha = np.clip(values @ target / (target @ target), 0.0, 1.0)
    residual = np.abs(values - alpha[..., None] * target).max(axis=-1)
    return np.where(residual <= SHADE_TOLERANCE, alpha, 0.0)


def at(array: Any, x: float, y: float) -> RGB:
    """The colour of the pixel containing canvas point (x, y)."""
    r, g, b = (int(c) for c in array[math.floor(y), math.floor(x)])
    return r, g, b


def frame_of(driver: Any) -> Frame:
    geometry = driver.execute_script(
        "const p = Bokeh.documents[0].get_model_by_name('day-plot');"
        "const pv = Bokeh.index.find_one(p); const f = pv.frame.bbox;"
        "return {left: f.left, top: f.top, width: f.width, height: f.height,"
        "        canvas: [pv.canvas_view.bbox.width, pv.canvas_view.bbox.height],"
        "        x: [p.x_range.start, p.x_range.end], y: [p.y_range.start, p.y_range.end]}"
    )
    return Frame(
        geometry["left"], geometry["top"], geometry["width"], geometry["height"],
        (int(geometry["canvas"][0]), int(geometry["canvas"][1])),
        (geometry["x"][0], geometry["x"][1]), (geometry["y"][0], geometry["y"][1]),
    )  # fmt: skip


def export_png(driver: Any, downloads: Path) -> Path:
    before = set(downloads.iterdir())
    click(driver, "export-png")

    def done() -> Path | None:
        new = [p for p in downloads.iterdir() if p not in before and p.suffix == ".png"]
        return new[0] if new and new[0].stat().st_size > 0 else None

    return wait_for("the PNG download", done, timeout=15)


def test_png_export_of_a_known_day_has_each_dot_in_its_colour_at_its_port_and_time(
    driver: Any, site: Site
) -> None:
    """Every stored event is a dot of its series' colour where the log-port grid puts it; black around it."""
    from PIL import Image

    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    frame = frame_of(driver)
    day_start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC).timestamp() * 1000
    # The export shows the whole day on the style's port axis: the mapping below relies on it.
    assert frame.x_range == pytest.approx((day_start, day_start + 86_400_000))
    assert frame.y_range == pytest.approx(style.Y_RANGE)

    path = export_png(driver, site.downloads)
    assert path.name == f"fireplot-all-{DAY.isoformat()}-1d.png"
    with Image.open(path) as img:
        assert img.size == frame.canvas  # one PNG pixel per CSS pixel: the frame geometry applies
        array = np.asarray(img.convert("RGB"))

    expected = [(d, frame.pixel(d.ts, d.port)) for d in dots()]
    for dot, (x, y) in expected:
        # The dot's own pixel, or one next to it when its centre falls on a pixel edge.
        cx, cy = math.floor(x), math.floor(y)
        near = shade(array[cy - 1 : cy + 2, cx - 1 : cx + 2], style.COLOURS[dot.series])
        assert near.max() >= DOT_SHADE, (
            f"{dot.series} dot at {dot.ts:%H:%M} port {dot.port}: no {style.COLOURS[dot.series]} "
            f"pixel at ({x:.1f}, {y:.1f}), found {array[cy - 1 : cy + 2, cx - 1 : cx + 2].tolist()}"
        )
        for dx, dy in ((RING_PX, 0), (-RING_PX, 0), (0, RING_PX), (0, -RING_PX)):
            around = at(array, x + dx, y + dy)
            assert around in (BLACK, GRID), f"{dot.series} dot at port {dot.port}: {around} beside it"

    # No dot anywhere else: every frame pixel in a series' colour belongs to one of its expected dots.
    top, left = math.ceil(frame.top), math.ceil(frame.left)
    inner = array[top : math.floor(frame.top + frame.height), left : math.floor(frame.left + frame.width)]
    for name in SERIES.values():
        ys, xs = np.nonzero(shade(inner, style.COLOURS[name]) >= STRAY_SHADE)
        centres = [(x, y) for d, (x, y) in expected if d.series == name]
        stray = [
            (int(px), int(py))
            for px, py in zip(xs + left, ys + top, strict=True)
            if not any(abs(px - x) <= NEAR_PX and abs(py - y) <= NEAR_PX for x, y in centres)
        ]
        assert stray == [], f"{name} pixels where no {name} event is: {stray[:5]}"
    black = np.all(inner == BLACK, axis=2)
    assert black.mean() > 0.9, f"only {black.mean():.0%} of the frame is black ground"
    assert browser.severe(browser.console(driver)) == []
