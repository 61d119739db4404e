"""``fireplot render``: a day of a real store drawn to PNG, checked pixel by pixel.

The store is written with ``Store.write_flush`` like the worker writes it; the
PNG is read back with Pillow. Expected pixel positions are computed here from
the layout's plot rectangle and the style's y range, independently of the
renderer's own mapping functions.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from PIL import Image

from consumers import style
from consumers.render import Layout, render_day, series_index
from pipeline import datasets
from pipeline.event import conform
from pipeline.store import OffsetRange, Store
from tests.support.events import row

DAY = dt.date(2026, 3, 14)
TOPIC = "fireplot.events"
HOSTILE = '<img src=x onerror="alert(1)">'
BLACK = (0, 0, 0)


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def event(
    hour: float, proto: str, ip_version: int, dst_port: int | None, n: int, **kw: Any
) -> dict[str, Any]:
    ts = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC) + dt.timedelta(hours=hour)
    fields = {
        "src_ip": "198.51.100.7" if ip_version == 4 else "2001:db8::7",
        "dst_ip": "192.0.2.1" if ip_version == 4 else "2001:db8::1",
        "src_port": None if dst_port is None else 40000,
        "tcp_flags": None,
        "prefix": "drop",
        "source_id": "a:log",
    } | kw
    return row(ts, n, proto=proto, ip_version=ip_version, dst_port=dst_port, **fields)


def write(store: Store, rows: list[dict[str, Any]], partition: int = 0) -> None:
    store.write_flush(OffsetRange(TOPIC, partition, 0, len(rows) - 1), conform(pa.Table.from_pylist(rows)))


def expected_x(layout: Layout, hour: float) -> int:
    return layout.left + math.floor(hour / 24 * layout.plot_width)


def expected_y(layout: Layout, y: float) -> int:
    lo, hi = math.log10(style.Y_RANGE[0]), math.log10(style.Y_RANGE[1])
    up = round((math.log10(y) - lo) / (hi - lo) * (layout.plot_height - 1))
    return layout.top + layout.plot_height - 1 - up


def dot(img: Image.Image, x: int, y: int) -> set[tuple[int, int, int]]:
    """Colours of the DOT_SIZE square centred on (x, y)."""
    half = style.DOT_SIZE // 2
    span = range(-half, style.DOT_SIZE - half)
    return {img.getpixel((x + dx, y + dy)) for dx in span for dy in span}  # type: ignore[misc]


def series_pixels(img: Image.Image, layout: Layout) -> dict[tuple[int, int, int], int]:
    """Pixels of each series colour inside the plot area."""
    box = (layout.left, layout.top, layout.left + layout.plot_width, layout.top + layout.plot_height)
    colours = img.crop(box).getcolors(maxcolors=1 << 20) or []
    wanted = {rgb(c) for c in style.COLOURS.values()}
    return {c: n for n, c in colours if c in wanted}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    write(
        s,
        [
            event(12, "TCP", 4, 443, 1),
            event(6, "UDP", 6, 53, 2),
            event(18, "ICMP", 4, None, 3),
            event(9, "TCP", 4, 22, 4, site="b", prefix=HOSTILE, host=HOSTILE),
        ],
    )
    # The neighbouring days must not leak into the picture.
    write(s, [event(-1, "UDP", 4, 5000, 5), event(24, "UDP", 4, 5000, 6)], partition=1)
    return s


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fireplot", "--plain-logs", "render", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestRenderCommand:
    """The command as cron runs it: a real process reading a real store."""

    def test_tcp4_event_at_noon_on_443_is_green_where_the_axis_puts_it(
        self, store: Store, tmp_path: Path
    ) -> None:
        """Each dot has its series' colour at the pixel the time and log-port axes predict."""
        out = tmp_path / "day.png"
        rv = run_cli("--date", DAY.isoformat(), "--store", str(store.root), "--out", str(out),
                     "--width-px", "1000", "--height-px", "600")  # fmt: skip
        assert rv.returncode == 0, rv.stderr
        assert json.loads(rv.stderr.strip().splitlines()[-1])["events"] == 4
        layout = Layout(width_px=1000, height_px=600)

        with Image.open(out) as png:
            assert png.size == (1000, 600)
            img = png.convert("RGB")
        assert {rgb("#00ff00")} == dot(img, expected_x(layout, 12), expected_y(layout, 443))
        assert {rgb("#ffffff")} == dot(img, expected_x(layout, 6), expected_y(layout, 53))
        assert {rgb(style.COLOURS[style.Series.ICMP])} == dot(
            img, expected_x(layout, 18), expected_y(layout, style.NO_PORT_Y)
        )
        # Off the grid lines and away from every dot, the ground is black.
        assert img.getpixel((expected_x(layout, 1.5), expected_y(layout, 300))) == BLACK
        assert img.getpixel((2, layout.height_px // 2)) == BLACK
        # The day's four dots and nothing of the days before and after (UDP/IPv4 is theirs).
        square = style.DOT_SIZE**2
        expected = {rgb("#00ff00"): 2 * square, rgb("#ffffff"): square, rgb(style.COLOURS["ICMP"]): square}
        assert expected == series_pixels(img, layout)

    def test_site_option_draws_only_that_site(self, store: Store, tmp_path: Path) -> None:
        """--site a leaves out site b's TCP/IPv4 dot at 09:00 on port 22."""
        out = tmp_path / "a.png"
        rv = run_cli("--date", DAY.isoformat(), "--store", str(store.root), "--out", str(out), "--site", "a")
        assert rv.returncode == 0, rv.stderr
        layout = Layout()
        with Image.open(out) as png:
            img = png.convert("RGB")
        assert rgb("#00ff00") not in dot(img, expected_x(layout, 9), expected_y(layout, 22))
        assert {rgb("#00ff00")} == dot(img, expected_x(layout, 12), expected_y(layout, 443))

    @pytest.mark.parametrize(
        ("date", "message"),
        [
            ("2026-02-30", "not a day"),
            ("14.03.2026", "not a day"),
            ("1969-12-31", "out of range"),
            ("9999-12-31", "out of range"),
        ],
    )
    def test_bad_date_exits_2_with_the_reason(
        self, store: Store, tmp_path: Path, date: str, message: str
    ) -> None:
        """An invalid or out-of-range --date is a usage error naming the date; no file is written."""
        out = tmp_path / "bad.png"
        rv = run_cli("--date", date, "--store", str(store.root), "--out", str(out))
        assert rv.returncode == 2
        assert message in rv.stderr and date in rv.stderr
        assert not out.exists()

    def test_unknown_site_or_dataset_exits_2(self, store: Store, tmp_path: Path) -> None:
        """A misspelt --site or --dataset fails instead of drawing an empty day."""
        out = tmp_path / "x.png"
        rv = run_cli("--date", DAY.isoformat(), "--store", str(store.root), "--out", str(out), "--site", "c")
        assert rv.returncode == 2 and "'c': no such site" in rv.stderr and "sites: a, b" in rv.stderr
        rv = run_cli("--date", DAY.isoformat(), "--store", str(store.root), "--out", str(out),
                     "--dataset", "nosuch")  # fmt: skip
        assert rv.returncode == 2 and "no such dataset" in rv.stderr
        assert not out.exists()


class TestRenderDay:
    """render_day on a real store, in process."""

    def test_day_without_events_still_draws_the_axes(self, store: Store, tmp_path: Path) -> None:
        """An empty day is a black plot with its port grid, tick labels and title, and no dots."""
        out = tmp_path / "empty.png"
        rv = render_day(store, DAY + dt.timedelta(days=30), out)
        assert rv.events == 0
        layout = Layout()
        with Image.open(out) as png:
            img = png.convert("RGB")
        assert series_pixels(img, layout) == {}
        grid = rgb(style.GRID)
        quiet_col = expected_x(layout, 1.5)
        for port in style.PORT_TICKS:
            assert grid == img.getpixel((quiet_col, expected_y(layout, port))), port
        # Tick labels left of the plot and the title above it: bright (anti-aliased) text.
        labels = img.crop((0, layout.top, layout.left - 6, layout.top + layout.plot_height))
        title = img.crop((0, 0, layout.width_px, layout.top - 14))
        for part in (labels, title):
            bright = sum(n for n, c in part.getcolors(maxcolors=1 << 16) or [] if min(c) > 0x90)
            assert bright > 50

    def test_dataset_store_renders_its_own_events(self, store: Store, tmp_path: Path) -> None:
        """A replayed dataset is drawn from its own store: its event and nothing of the archive."""
        replay = Store(datasets.root(store.root, "replay-x"))
        write(replay, [event(3, "TCP", 6, 8080, 1)])
        out = tmp_path / "replay.png"
        rv = render_day(replay, DAY, out, dataset="replay-x")
        assert rv.events == 1
        layout = Layout()
        with Image.open(out) as png:
            img = png.convert("RGB")
        assert {rgb(style.COLOURS[style.Series.TCP6])} == dot(
            img, expected_x(layout, 3), expected_y(layout, 8080)
        )
        assert set(series_pixels(img, layout)) == {rgb(style.COLOURS[style.Series.TCP6])}

    def test_image_map_titles_keep_hostile_text_inert(self, store: Store, tmp_path: Path) -> None:
        """The HTML companion has one area per dot with an escaped title; the markup never appears raw."""
        out, page = tmp_path / "day.png", tmp_path / "day.html"
        rv = render_day(store, DAY, out, html_out=page)
        text = page.read_text(encoding="utf-8")

        assert 4 == rv.map_areas == text.count("<area ")
        assert HOSTILE not in text
        assert html.escape(HOSTILE) in text
        assert 'src="day.png"' in text
        layout = Layout()
        cx, cy = expected_x(layout, 12), expected_y(layout, 443)
        assert f'coords="{cx - 1},{cy - 1},{cx + 1},{cy + 1}"' in text


def test_series_lookup_agrees_with_style_encode_on_every_spelling() -> None:
    """The renderer's per-pair lookup gives each row the series the web page gives it."""
    protos = ["TCP", "tcp", "6", "UDP", "17", "ICMP", "1", "ICMPv6", "ipv6-icmp", "58", "47", "ESP", "SCTP"]
    table = pa.table(
        {
            "proto": [p for p in protos for _ in (4, 6)],
            "ip_version": pa.array([v for _ in protos for v in (4, 6)], pa.int8()),
            "dst_port": pa.array([None] * (2 * len(protos)), pa.int32()),
        }
    )
    expected = [style.SERIES.index(s) for s in style.encode(table).column("series").to_pylist()]
    assert series_index(table).tolist() == expected
    assert len(set(expected)) == len(style.SERIES)


class TestDrawOrderAndDailyPage:
    """One draw order for the page and the PNG (style.draw_order), scan outlines, day links."""

    @pytest.mark.parametrize(("tcp4", "tcp6", "on_top"), [(5, 1, "#ff0000"), (1, 5, "#00ff00")])
    def test_the_rarer_series_is_on_top_whatever_the_legend_order(
        self, tmp_path: Path, tcp4: int, tcp6: int, on_top: str
    ) -> None:
        """Dots of TCP/IPv4 and TCP/IPv6 on one spot: the series with fewer events that day shows."""
        store = Store(tmp_path / "store")
        rows = [event(10, "TCP", 4, 22, i) for i in range(tcp4)]
        rows += [event(10, "TCP", 6, 22, 100 + i) for i in range(tcp6)]
        write(store, rows)
        out = tmp_path / "day.png"
        render_day(store, DAY, out)
        layout = Layout()
        assert dot(Image.open(out), expected_x(layout, 10), expected_y(layout, 22)) == {rgb(on_top)}

    def test_draw_order_is_most_common_first_ties_in_legend_order(self) -> None:
        order = style.draw_order({style.Series.TCP6: 10, style.Series.TCP4: 3, style.Series.UDP4: 3})
        assert order[:3] == [style.Series.TCP6, style.Series.TCP4, style.Series.UDP4]
        assert order[-1] == style.Series.OTHER and sorted(order) == sorted(style.SERIES)

    def test_default_size_is_full_hd(self) -> None:
        assert (Layout().width_px, Layout().height_px) == (1920, 1080)

    def test_scans_are_outlined_and_titled_in_the_page(self, store: Store, tmp_path: Path) -> None:
        """A scan of the day gets its kind's outline in the PNG and an escaped hover title in the page."""
        from pipeline.detect.engine import SCAN_SCHEMA
        from pipeline.detect.scanstore import ScanStore

        start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
        scan = {f.name: None for f in SCAN_SCHEMA}
        scan.update(
            scan_id="s1", kind="vertical", site="a", sources=[HOSTILE], sites=["a"],
            first_ts=start + dt.timedelta(hours=8), last_ts=start + dt.timedelta(hours=10),
            detected_at=start + dt.timedelta(hours=10), port_min=100, port_max=1000,
            distinct_ports=900, distinct_targets=1, packets=900, score=1.0, lower_bound=False,
            status="closed", epoch_start=start, days_spanned=1, distributed=False,
        )  # fmt: skip
        epoch_us = int(start.timestamp()) * 1_000_000
        ScanStore(store.root / "scans").replace(
            "vertical", epoch_us, pa.Table.from_pylist([scan], SCAN_SCHEMA)
        )
        out, page = tmp_path / f"fireplot-{DAY}.png", tmp_path / f"fireplot-{DAY}.html"
        render_day(store, DAY, out, html_out=page, today=DAY + dt.timedelta(days=3))
        layout, img = Layout(), Image.open(out)
        colour = rgb(style.SCAN_STYLES["vertical"][0])
        # the box's left edge runs down at 08:00 between the rows of ports 1000 and 100
        x = expected_x(layout, 8) - style.DOT_SIZE
        column = {img.getpixel((x, yy)) for yy in range(expected_y(layout, 1000), expected_y(layout, 100))}
        assert column == {colour}
        text = page.read_text(encoding="utf-8")
        assert HOSTILE not in text and html.escape(f"vertical scan from {HOSTILE}") in text
        prev_day, next_day = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
        assert f'<a href="fireplot-{prev_day}.html">previous day</a>' in text
        assert f'<a href="fireplot-{next_day}.html">next day</a>' in text

    def test_today_links_back_but_not_forward_and_undated_names_get_no_links(self) -> None:
        from consumers.render import neighbour_links

        assert neighbour_links(f"p-{DAY}.html", DAY, DAY) == {
            "previous day": f"p-{DAY - dt.timedelta(days=1)}.html"
        }
        assert neighbour_links("latest.html", DAY, DAY + dt.timedelta(days=9)) == {}


# The dots' shapes as the PNG must draw them, centre at "o" (or the "#" under it), independent of
# the renderer's own table: the page's square, and with [web] palette = "colourblind" a triangle
# (IPv6) and a diamond ("other") beside the IPv4 square.
SHAPES = {
    "square": """
        .......
        .......
        ..###..
        ..#o#..
        ..###..
        .......
        .......""",
    "triangle": """
        .......
        ...#...
        ..###..
        ..#o#..
        .#####.
        .......
        .......""",
    "diamond": """
        .......
        ...#...
        ..###..
        .##o##.
        ..###..
        ...#...
        .......""",
}


def shape_of(img: Image.Image, x: int, y: int, colour: tuple[int, int, int]) -> set[tuple[int, int]]:
    """(row, column) offsets around (x, y), within three pixels, that have ``colour``."""
    span = range(-3, 4)
    return {(dy, dx) for dy in span for dx in span if img.getpixel((x + dx, y + dy)) == colour}


def expected_shape(name: str) -> set[tuple[int, int]]:
    rows = SHAPES[name].split()
    return {(dy - 3, dx - 3) for dy, line in enumerate(rows) for dx, c in enumerate(line) if c in "#o"}


@pytest.mark.parametrize("palette", style.PALETTES)
def test_each_ip_family_gets_the_palettes_marker_shape(tmp_path: Path, palette: str) -> None:
    """As on the page ([web] palette): IPv4 squares always; with "colourblind" IPv6 triangles and
    "other" diamonds, each dot exactly its shape's pixels in its series' colour."""
    store = Store(tmp_path / "store")
    write(store, [event(6, "TCP", 4, 443, 1), event(12, "TCP", 6, 443, 2), event(18, "SCTP", 4, 80, 3)])
    layout = Layout(width_px=1000, height_px=600, palette=palette)
    out = tmp_path / "day.png"
    render_day(store, DAY, out, layout=layout)
    with Image.open(out) as png:
        img = png.convert("RGB")
    colours = style.colours(palette)
    markers = style.markers(palette)
    dots = [(6, 443, style.Series.TCP4), (12, 443, style.Series.TCP6), (18, 80, style.Series.OTHER)]
    for hour, port, series in dots:
        x, y = expected_x(layout, hour), expected_y(layout, port)
        got = shape_of(img, x, y, rgb(colours[series]))
        assert got == expected_shape(markers[series]), (palette, series)
    if palette == "colourblind":
        assert {markers[s] for _, _, s in dots} == {"square", "triangle", "diamond"}
    else:
        assert {markers[s] for _, _, s in dots} == {"square"}
