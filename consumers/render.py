"""The daily PNG: one UTC day of the store as an image, without a browser.

``fireplot render`` writes what the original tool mailed every morning: black
ground, time across, destination port up on a log scale with the labelled
ports, one dot per event in its series' colour, port-less packets in a lane
below port 1. Colours, ticks and the y range come from :mod:`consumers.style`,
so a dot sits where the web page would draw it.

Dots are placed with numpy on an RGB array (a scatter plot library spends
seconds per million points on objects we do not need); only the frame, the
tick labels and the title go through Pillow's ImageDraw. An optional HTML
companion maps each occupied dot cell to a hover title, as the original's
image map did; every string in it is escaped.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, ImageDraw, ImageFont

from consumers import style
from pipeline import durable
from pipeline.event import TS_TYPE
from pipeline.store import Store

READ_COLUMNS: Final = ["ts", "dst_port", "proto", "ip_version"]
MAP_COLUMNS: Final = ["ts", "site", "host", "src_ip", "dst_port", "proto", "ip_version", "prefix"]
DAY_US: Final = 86_400 * 1_000_000
HOUR_TICKS: Final = range(0, 25, 3)
# Image maps with more areas than this make browsers crawl; past it the
# busiest cells keep their areas and the summary says how many were left out.
MAX_MAP_AREAS: Final = 20_000
# Days that can be drawn: firewall logs start after the epoch, and the day
# after date.max does not exist (the web page holds to the same range).
FIRST_DAY: Final = dt.date(1970, 1, 1)
LAST_DAY: Final = dt.date.max - dt.timedelta(days=1)


def _footprint(rows: dict[int, range]) -> tuple[tuple[int, int], ...]:
    return tuple((dy, dx) for dy, xs in rows.items() for dx in xs)


_HALF: Final = style.DOT_SIZE // 2
# The pixels a dot covers around its centre, (row, column) offsets, per marker of
# style.markers: the page's square, and for the family markers ([web] palette = "colourblind")
# a triangle pointing up and a diamond, two pixels wider than the square as on the page, so
# that the shapes are told apart at this size.
FOOTPRINTS: Final[dict[str, tuple[tuple[int, int], ...]]] = {
    "square": _footprint(
        {dy: range(-_HALF, style.DOT_SIZE - _HALF) for dy in range(-_HALF, style.DOT_SIZE - _HALF)}
    ),
    "triangle": _footprint({-2: range(0, 1), -1: range(-1, 2), 0: range(-1, 2), 1: range(-2, 3)}),
    "diamond": _footprint(
        {-2: range(0, 1), -1: range(-1, 2), 0: range(-2, 3), 1: range(-1, 2), 2: range(0, 1)}
    ),
}


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@dataclass(frozen=True)
class Layout:
    """Where the plot sits in the image, and how an event maps to a pixel.

    The plot area is ``[left, left + width) x [top, top + height)``. Time maps
    linearly onto columns, ``y`` (port, or ``style.NO_PORT_Y``) onto rows by
    log10 over ``style.Y_RANGE``, larger ports higher up.
    """

    # Full HD: a dense day needs the width (one column is ~50 s of the day) and the
    # height (the log axis spends rows evenly on decades of ports).
    width_px: int = 1920
    height_px: int = 1080
    palette: str = "original"  # [web] palette, see consumers.style.colours
    left: int = 64
    right: int = 110
    top: int = 44
    bottom: int = 44

    def __post_init__(self) -> None:
        if self.plot_width < 100 or self.plot_height < 100:
            raise ValueError(
                f"image {self.width_px}x{self.height_px} px is too small: the plot needs at least "
                f"{self.left + self.right + 100}x{self.top + self.bottom + 100} px"
            )

    @property
    def plot_width(self) -> int:
        return self.width_px - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height_px - self.top - self.bottom

    def x_px(self, us_into_day: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Column of each time, given as microseconds since the day's 00:00 UTC."""
        col = (us_into_day * self.plot_width) // DAY_US
        return self.left + np.clip(col, 0, self.plot_width - 1)

    def y_px(self, y: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Row of each y value on the log port axis."""
        lo, hi = (math.log10(v) for v in style.Y_RANGE)
        frac = (np.log10(y) - lo) / (hi - lo)
        row = np.rint(frac * (self.plot_height - 1)).astype(np.int64)
        return self.top + self.plot_height - 1 - np.clip(row, 0, self.plot_height - 1)


@dataclass(frozen=True)
class Rendered:
    """What a render drew: for the command's summary line."""

    events: int
    path: Path
    html_path: Path | None = None
    map_areas: int = 0
    map_cells_left_out: int = 0


def day_start(date: dt.date) -> dt.datetime:
    return dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)


def read_day(store: Store, date: dt.date, sites: list[str] | None, columns: list[str]) -> pa.Table:
    start = day_start(date)
    return store.read(start, start + dt.timedelta(days=1), sites=sites, columns=columns)


def pixels(
    table: pa.Table, date: dt.date, layout: Layout
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """Column, row and series index (into ``style.SERIES``) of every event's dot centre."""
    start = pa.scalar(day_start(date), TS_TYPE)
    us = pc.cast(pc.subtract(table.column("ts"), start), pa.int64())
    x = layout.x_px(np.asarray(us.to_numpy(), dtype=np.int64))
    # style's rule for y: the port, or the "none" lane when there is no port (null or 0).
    port = np.asarray(pc.fill_null(table.column("dst_port"), 0).to_numpy(), dtype=np.float64)
    y = layout.y_px(np.where(port > 0, port, style.NO_PORT_Y))
    return x, y, series_index(table)


def series_index(table: pa.Table) -> npt.NDArray[np.int8]:
    """Each event's series as an index into ``style.SERIES``, as ``style.encode`` assigns it.

    A day has millions of events but a handful of (protocol, family) pairs:
    the pairs are encoded once and their series looked up by code, instead
    of running the string comparisons over every row.
    """
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int8)
    proto = pc.dictionary_encode(table.column("proto")).combine_chunks()
    v6 = np.asarray(pc.equal(table.column("ip_version"), 6).to_numpy(zero_copy_only=False), dtype=bool)
    code = np.asarray(proto.indices.to_numpy(), dtype=np.int64) * 2 + v6
    pairs = len(proto.dictionary) * 2
    combos = pa.table(
        {
            "proto": pa.array(np.repeat(proto.dictionary.to_numpy(zero_copy_only=False), 2)),
            "ip_version": pa.array(np.tile(np.array([4, 6], dtype=np.int8), pairs // 2)),
            "dst_port": pa.nulls(pairs, pa.int32()),
        }
    )
    lookup = pc.index_in(style.encode(combos).column("series"), value_set=pa.array(style.SERIES))
    series: npt.NDArray[np.int8] = np.asarray(lookup.to_numpy(), dtype=np.int8)[code]
    return series


def draw_dots(
    img: npt.NDArray[np.uint8],
    x: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    series: npt.NDArray[np.int8],
    layout: Layout,
) -> None:
    """Paint the dots in place, each in its series' marker (FOOTPRINTS), clipped to the plot area.

    Where dots overlap, the series drawn last by ``style.draw_order`` is on top
    (the rarest of the day), as on the web page, whatever the order of the rows:
    each pixel keeps the dot of the highest drawing rank covering it.
    """
    if len(series) == 0:
        return
    counts = np.bincount(series, minlength=len(style.SERIES))
    order = style.draw_order({name: int(counts[i]) for i, name in enumerate(style.SERIES)})
    # rank 0 = drawn last = on top; a pixel keeps the minimum rank over its dots.
    top_first = order[::-1]
    rank_of = np.array([top_first.index(name) for name in style.SERIES], dtype=np.int8)
    pad = style.DOT_SIZE
    h, w = layout.plot_height + 2 * pad, layout.plot_width + 2 * pad
    empty = np.int8(len(style.SERIES))
    flat = (y - layout.top + pad) * w + (x - layout.left + pad)
    covered = np.full((h, w), empty, dtype=np.int8)
    shapes = style.markers(layout.palette)
    for shape in dict.fromkeys(shapes.values()):
        of_shape = np.array([shapes[name] == shape for name in style.SERIES])[series]
        if not of_shape.any():
            continue
        centre = np.full(h * w, empty, dtype=np.int8)
        np.minimum.at(centre, flat[of_shape], rank_of[series[of_shape]])
        grid = centre.reshape(h, w)
        # Grow each centre into its marker: the minimum over the marker's offsets.
        for dy, dx in FOOTPRINTS[shape]:
            np.minimum(covered, np.roll(grid, (dy, dx), axis=(0, 1)), out=covered)
    inner = covered[pad : pad + layout.plot_height, pad : pad + layout.plot_width]
    palette = style.colours(layout.palette)
    lut = np.array([_rgb(palette[name]) for name in top_first], dtype=np.uint8)
    hit = inner < empty
    plot = img[layout.top : layout.top + layout.plot_height, layout.left : layout.left + layout.plot_width]
    plot[hit] = lut[inner[hit]]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_frame(image: Image.Image, layout: Layout, title: str) -> None:
    """Grid, axes, tick labels, axis labels, legend and title."""
    draw = ImageDraw.Draw(image)
    font, small = _font(12), _font(11)
    grid, muted, fg = _rgb(style.GRID), _rgb(style.MUTED), _rgb(style.FOREGROUND)
    left, top = layout.left, layout.top
    right, bottom = left + layout.plot_width - 1, top + layout.plot_height - 1
    y_ticks = layout.y_px(np.array(style.Y_TICKS, dtype=np.float64))
    for value, row in zip(style.Y_TICKS, y_ticks.tolist(), strict=True):
        draw.line([(left, row), (right, row)], fill=grid)
        draw.line([(left - 4, row), (left - 1, row)], fill=muted)
        draw.text((left - 6, row), style.Y_TICK_LABELS[value], fill=fg, font=small, anchor="rm")
    for hour in HOUR_TICKS:
        col = layout.x_px(np.array([hour * 3_600_000_000], dtype=np.int64))[0] if hour < 24 else right
        draw.line([(col, top), (col, bottom)], fill=grid)
        draw.line([(col, bottom + 1), (col, bottom + 4)], fill=muted)
        draw.text((col, bottom + 6), f"{hour:02d}:00", fill=fg, font=small, anchor="mt")
    draw.line([(left - 1, top), (left - 1, bottom + 1), (right, bottom + 1)], fill=muted)
    label_x = left + layout.plot_width // 2
    draw.text((label_x, layout.height_px - 4), "time (UTC)", fill=fg, font=small, anchor="md")
    draw.text((4, top - 12), "destination port", fill=fg, font=small, anchor="ls")
    draw.text((left, 6), title, fill=fg, font=font, anchor="lt")
    legend_x = right + 14
    shapes = style.markers(layout.palette)
    for i, (name, colour) in enumerate(style.colours(layout.palette).items()):
        row = top + 8 + i * 18
        # The swatch in the series' marker, as the dots are drawn.
        cx = legend_x + 3
        if shapes[name] == "triangle":
            draw.polygon([(cx, row - 4), (cx - 4, row + 3), (cx + 4, row + 3)], fill=_rgb(colour))
        elif shapes[name] == "diamond":
            draw.polygon([(cx, row - 4), (cx + 4, row), (cx, row + 4), (cx - 4, row)], fill=_rgb(colour))
        else:
            draw.rectangle([(legend_x, row - 3), (legend_x + 6, row + 3)], fill=_rgb(colour))
        draw.text((legend_x + 12, row), name, fill=fg, font=small, anchor="lm")


def render_table(
    table: pa.Table, date: dt.date, layout: Layout, title: str, scans: pa.Table | None = None
) -> tuple[Image.Image, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The day's image, with the day's scans outlined; also each event's dot centre, for the image map."""
    img = np.zeros((layout.height_px, layout.width_px, 3), dtype=np.uint8)
    img[:, :] = _rgb(style.BACKGROUND)
    image = Image.fromarray(img, "RGB")
    # Frame first: grid lines lie under the dots, never over them.
    draw_frame(image, layout, title)
    canvas = np.array(image)
    x, y, series = pixels(table, date, layout)
    draw_dots(canvas, x, y, series, layout)
    image = Image.fromarray(canvas, "RGB")
    if scans is not None and scans.num_rows:
        draw_scans(image, scans_boxes(scans, date, layout))
    return image, x, y


@dataclass(frozen=True)
class ScanBox:
    """A detected scan's outline on the image: its time span x port range, clipped to the day."""

    box: tuple[int, int, int, int]  # left, top, right, bottom (inclusive pixels)
    kind: str
    title: str


def scans_boxes(scans: pa.Table, date: dt.date, layout: Layout) -> list[ScanBox]:
    """Outlines of the scans (``SCAN_SCHEMA`` rows) that overlap the day, as the page draws them."""
    start = day_start(date)
    boxes = []
    for row in scans.to_pylist():
        if row["last_ts"] < start or row["first_ts"] >= start + dt.timedelta(days=1):
            continue
        first_us = max(0, (row["first_ts"] - start) // dt.timedelta(microseconds=1))
        last_us = min(DAY_US - 1, (row["last_ts"] - start) // dt.timedelta(microseconds=1))
        cols = layout.x_px(np.array([first_us, last_us], dtype=np.int64)).tolist()
        low = row["port_min"] or style.NO_PORT_Y
        high = row["port_max"] or style.NO_PORT_Y
        # As on the page: a one-port scan widens to a thin band around its port.
        rows = layout.y_px(np.array([high * 1.1, low * 0.9], dtype=np.float64)).tolist()
        pad = style.DOT_SIZE
        box = (cols[0] - pad, rows[0] - pad, cols[1] + pad, rows[1] + pad)
        ports = f"port {low}" if low == high else f"ports {low}-{high}"
        title = (
            f"{row['kind']} scan from {', '.join(row['sources'][:3])}"
            f"{' and others' if len(row['sources']) > 3 else ''}: {row['distinct_ports']} ports "
            f"({ports}), {row['distinct_targets']} targets, {row['packets']} packets, "
            f"{row['first_ts']:%H:%M:%S}-{row['last_ts']:%H:%M:%S} UTC"
        )
        boxes.append(ScanBox(box, row["kind"], title))
    return boxes


def draw_scans(image: Image.Image, boxes: list[ScanBox]) -> None:
    """Outline each scan in its kind's colour (``style.SCAN_STYLES``), over the dots."""
    draw = ImageDraw.Draw(image)
    for b in boxes:
        colour, dash = style.SCAN_STYLES.get(b.kind, style.SCAN_DEFAULT_STYLE)
        # Pillow draws no dashes: a dashed kind gets a thin outline, a solid one a
        # double line, so the two cyan kinds (vertical, slow) stay apart.
        draw.rectangle(b.box, outline=_rgb(colour), width=2 if dash == "solid" else 1)


def title_for(date: dt.date, sites: list[str] | None, dataset: str | None, events: int) -> str:
    where = ", ".join(sites) if sites else "all sites"
    extra = f" - dataset {dataset}" if dataset else ""
    # Plain hyphens: Pillow's built-in font has no em dash.
    return f"fireplot - {date.isoformat()} (UTC) - {where}{extra} - {events:,} events"


def render_day(
    store: Store,
    date: dt.date,
    out: Path,
    *,
    sites: list[str] | None = None,
    dataset: str | None = None,
    layout: Layout | None = None,
    html_out: Path | None = None,
    scans_root: Path | None = None,
    today: dt.date | None = None,
) -> Rendered:
    """Render one UTC day of ``store`` to the PNG ``out`` (and optionally an image-map page).

    ``scans_root`` is the scan dataset whose scans are outlined (default
    ``<store>/scans``; absent: no outlines). ``today`` bounds the next-day link
    of the page (default: today, UTC): there is no page for a day to come.
    """
    layout = layout or Layout()
    table = read_day(store, date, sites, MAP_COLUMNS if html_out else READ_COLUMNS)
    title = title_for(date, sites, dataset, table.num_rows)
    scans = day_scans(scans_root or store.root / "scans", date, sites)
    image, x, y = render_table(table, date, layout, title, scans)
    # A cron job's mail attachment or a web server's static file must never be half an image.
    with durable.replacing(out) as fh:
        image.save(fh, format="PNG")
    if html_out is None:
        return Rendered(table.num_rows, out)
    links = neighbour_links(html_out.name, date, today or dt.datetime.now(dt.UTC).date())
    boxes = scans_boxes(scans, date, layout)
    page, areas, left_out = image_map(table, x, y, out.name, layout, title, boxes, links)
    durable.write_text(html_out, page)
    return Rendered(table.num_rows, out, html_out, areas, left_out)


def day_scans(root: Path, date: dt.date, sites: list[str] | None) -> pa.Table:
    """The scans that overlap the day, of the drawn sites: what the page outlines for that day."""
    from pipeline.detect.scanstore import ScanStore

    start = day_start(date)
    # A scan that ended on the day or later and began before its end overlaps it.
    scans = ScanStore(root).read(since=start, by="last_ts")
    scans = scans.filter(pc.less(scans.column("first_ts"), pa.scalar(start + dt.timedelta(days=1), TS_TYPE)))
    if sites:
        scans = scans.filter(pc.is_in(scans.column("site"), value_set=pa.array(sites, pa.string())))
    return scans


def neighbour_links(name: str, date: dt.date, today: dt.date) -> dict[str, str]:
    """Previous/next day links of a page, as the original's: its own file name with the other date.

    Pages are written one a day by cron under names holding their date
    (``fireplot-2026-12-07.html``); a name without the date has no neighbours
    it could name, so it gets no links. The next day is linked only once it
    has begun (its page may be written later; a link to a day to come is not).
    """
    iso = date.isoformat()
    if iso not in name:
        return {}
    links = {}
    if date > FIRST_DAY:
        links["previous day"] = name.replace(iso, (date - dt.timedelta(days=1)).isoformat())
    if date < min(today, LAST_DAY):
        links["next day"] = name.replace(iso, (date + dt.timedelta(days=1)).isoformat())
    return links


def image_map(
    table: pa.Table,
    x: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    png_name: str,
    layout: Layout,
    title: str,
    scans: list[ScanBox] | None = None,
    links: dict[str, str] | None = None,
) -> tuple[str, int, int]:
    """An HTML page showing the PNG with one hover area per occupied dot cell and per scan.

    A cell is one dot's square; its title lists how many events it holds and
    one of them: time, source, port, protocol, site, sensor and prefix.
    Every one of those is attacker-influenced text and goes through
    html.escape. Dot areas come first, so a dot inside a scan's box keeps its
    own title. ``links`` (label -> href) are the previous/next day links.
    Returns the page, the number of areas and of cells left out.
    """
    cell = style.DOT_SIZE
    key = (y // cell) * (layout.width_px // cell + 1) + x // cell
    cells, first, counts = np.unique(key, return_index=True, return_counts=True)
    left_out = max(0, len(cells) - MAX_MAP_AREAS)
    if left_out:
        keep = np.argsort(-counts, kind="stable")[:MAX_MAP_AREAS]
        first, counts = first[keep], counts[keep]
    rows = table.take(pa.array(first)).to_pylist()
    areas = []
    half = cell // 2
    for row, n, cx, cy in zip(rows, counts.tolist(), x[first].tolist(), y[first].tolist(), strict=True):
        ts = row["ts"].strftime("%H:%M:%S")
        port = row["dst_port"] if row["dst_port"] else style.NO_PORT_LABEL
        text = (
            f"{n} event{'s' if n != 1 else ''}, e.g. {ts} UTC from {row['src_ip']} to port {port} "
            f"{row['proto']}/IPv{row['ip_version']}, site {row['site']}, sensor {row['host']}, "
            f"prefix {row['prefix'] or ''}"
        )
        coords = f"{cx - half},{cy - half},{cx - half + cell - 1},{cy - half + cell - 1}"
        areas.append(f'<area shape="rect" coords="{coords}" title="{html.escape(text)}" alt="">')
    for b in scans or []:
        coords = ",".join(map(str, b.box))
        areas.append(f'<area shape="rect" coords="{coords}" title="{html.escape(b.title)}" alt="">')
    note = f"<p>{left_out:,} quieter dot cells have no hover title.</p>" if left_out else ""
    nav = " | ".join(f'<a href="{html.escape(href)}">{label}</a>' for label, href in (links or {}).items())
    nav_html = f'<p style="font-family:sans-serif">{nav}</p>' if nav else ""
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        f'<body style="background:{style.BACKGROUND};color:{style.FOREGROUND}">{nav_html}'
        f'<img src="{html.escape(png_name)}" usemap="#dots" width="{layout.width_px}" '
        f'height="{layout.height_px}" alt="{html.escape(title)}">'
        f'<map name="dots">\n' + "\n".join(areas) + f"\n</map>{note}</body></html>\n"
    )
    return page, len(areas), left_out


def parse_date(text: str, today: dt.date) -> dt.date:
    """``--date``: YYYY-MM-DD, ``today`` or ``yesterday`` (UTC); ValueError says what is wrong."""
    named = {"today": today, "yesterday": today - dt.timedelta(days=1)}
    if text.lower() in named:
        return named[text.lower()]
    try:
        date = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--date {text!r}: not a day (YYYY-MM-DD, today or yesterday)") from None
    if not FIRST_DAY <= date <= LAST_DAY:
        raise ValueError(
            f"--date {text!r}: out of range, must be between {FIRST_DAY.isoformat()} and "
            f"{LAST_DAY.isoformat()}"
        )
    return date


def check_sites(store: Store, sites: list[str] | None) -> None:
    """A misspelt --site in a cron job must fail, not mail an empty plot every morning."""
    if not sites:
        return
    known = store.sites()
    unknown = [s for s in sites if s not in known]
    if unknown:
        listed = ", ".join(known) if known else "none"
        raise ValueError(
            f"--site {', '.join(map(repr, unknown))}: no such site in {store.root} (sites: {listed})"
        )
