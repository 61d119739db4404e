"""The day page: widgets, the figure and their callbacks.

Data comes from :mod:`consumers.web.view`; looks come from
:mod:`consumers.style`. Reading the store runs in a worker thread so that one
page loading a busy day does not stall every other page on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    CustomJS,
    CustomJSHover,
    CustomJSTickFormatter,
    FixedTicker,
    GroupFilter,
    HoverTool,
    Range1d,
    SaveTool,
    TapTool,
)
from bokeh.models.annotations.legends import Legend, LegendItem
from bokeh.models.css import InlineStyleSheet
from bokeh.models.renderers import GlyphRenderer
from bokeh.models.widgets.buttons import Button
from bokeh.models.widgets.inputs import MultiChoice, Select, TextInput
from bokeh.models.widgets.markups import Div
from bokeh.models.widgets.pickers import DatePicker
from bokeh.models.widgets.tables import (
    DataTable,
    DateFormatter,
    NumberFormatter,
    StringFormatter,
    TableColumn,
)
from bokeh.plotting import figure
from bokeh.server.contexts import BokehSessionContext
from bokeh.themes import Theme
from jinja2 import Template

from consumers import style
from consumers.web import auth, drill, export
from consumers.web.rangeview import RangeFeed
from consumers.web.view import (
    DayFeed,
    FilterError,
    Filters,
    Frame,
    day_bounds,
    empty_data,
    parse_day,
    parse_zone,
    shift_day,
    site_scope,
    today_in,
)
from pipeline import datasets
from pipeline.config import WebConfig
from pipeline.store import Store

log = logging.getLogger(__name__)

SOURCE_NAME: Final = "events"
WIRE_NAME: Final = "events-wire"
# A text column goes dictionary-coded when its distinct values are at most this
# share of its rows; a column of mostly unique strings (addresses of a spread-out
# day) would only grow by a dictionary.
CODE_MAX_DISTINCT_SHARE: Final = 0.5
ALL_SITES: Final = ""
ANY_ACTION: Final = ""
TEMPLATE: Final = Path(__file__).with_name("templates") / "index.html"
# Spans the page offers, in days; 1 is the day view (live for today), longer ones come from rollups.
SPANS: Final = (1, 7, 30, 90)
MAX_SPAN_DAYS: Final = 366
ACTIONS: Final = ("drop", "reject", "accept")
# Rows one CSV export may carry; past it the operator is asked to zoom in.
EXPORT_LIMIT: Final = 1_000_000
CSV_KEEP_MS: Final = 10_000
# A pan or zoom of a range view is read once it has settled this long.
ZOOM_SETTLE_MS: Final = 400

RAW_TOOLTIPS: Final = [
    ("time", "@ts{custom}"),
    ("source", "@src_ip"),
    ("destination", "@dst_ip"),
    ("port", "@port @service"),
    ("protocol", "@proto/IPv@ip_version"),
    ("action", "@action"),
    ("packets", "@count"),
    ("site", "@site"),
    ("sensor", "@host"),
    ("prefix", "@prefix"),
]
AGGREGATED_TOOLTIPS: Final = [
    ("from", "@ts{custom}"),
    ("port", "@port @service"),
    ("protocol", "@proto/IPv@ip_version"),
    ("events", "@events"),
    ("sources", "@sources"),
]
# Zones offered besides UTC and whatever ?tz= names (any IANA zone works there).
ZONES: Final = (
    "UTC",
    "Europe/London",
    "Europe/Zurich",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
)

# Times are kept in UTC milliseconds everywhere; only their labels are in the
# page's zone, formatted by the browser (Intl knows every IANA zone and its DST).
_ZONED_PARTS: Final = """
const parts = (ms) => Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
  timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
  minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hourCycle: "h23",
}).formatToParts(new Date(ms)).map((p) => [p.type, p.value]))
"""
_HOVER_TIME: Final = (
    _ZONED_PARTS
    + """
const p = parts(value)
return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}.${p.fractionalSecond} ${zone}`
"""
)
_TICK_TIME: Final = (
    _ZONED_PARTS
    + """
const span = ticks.length > 1 ? ticks[ticks.length - 1] - ticks[0] : 0
const p = parts(tick)
const hm = `${p.hour}:${p.minute}`
if (span >= 2 * 86400000) return hm === "00:00" ? `${p.month}-${p.day}` : `${p.month}-${p.day} ${hm}`
if (span >= 6 * 3600000) return hm === "00:00" ? `${p.month}-${p.day}` : hm
return span >= 600000 ? hm : `${hm}:${p.second}`
"""
)

# The PNG button runs the toolbar's save tool: one export path (Bokeh composes the
# canvas layers, WebGL dots included, exactly as on screen), two ways to start it.
_SAVE_PNG: Final = """
tool.do.emit("save")
"""

# A view's dots travel dictionary-coded (see wire_data) and are expanded here into the
# plot's source as plain columns, exactly as if the server had sent them; sync:
# false, as Bokeh does for a change from the server, so they do not travel back.
# The server's copy of that source keeps only what it streamed since.
_DECODE_DOTS: Final = """
const w = wire.data
if (w.generation == null || w.generation.length === 0) return
const out = {}
for (const [name, value] of Object.entries(w)) {
  if (name === "generation" || name.endsWith(":dict")) continue
  const dict = w[name + ":dict"]
  out[name] = dict == null ? value[0] : Array.from(value[0], (i) => dict[0][i])
}
events.setv({data: out}, {sync: false, check_eq: false})
"""

# Written into the page's address bar so that a shown day can be bookmarked.
_SWITCH_DATASET: Final = """
const url = new URL(window.location.href);
url.searchParams.set("dataset", cb_obj.value);
url.searchParams.delete("site");
window.location.assign(url.toString());
"""

_SYNC_URL: Final = """
const url = new URL(window.location.href)
const value = String(cb_obj.value)
if (value && value !== String(fallback)) url.searchParams.set(key, value)
else url.searchParams.delete(key)
window.history.replaceState(null, "", url)
"""

# A row of the scans table zooms the plot to that scan, with a margin around it.
_ZOOM_TO_SCAN: Final = """
const i = cb_obj.indices[0]
if (i == null) return
const d = scans.data
const pad = Math.max((d.right[i] - d.left[i]) * 0.1, 30000)
plot.x_range.setv({start: d.left[i] - pad, end: d.right[i] + pad})
plot.y_range.setv({start: Math.max(d.bottom[i] * 0.8, lo), end: Math.min(d.top[i] * 1.25, hi)})
"""

# The server fills this source with one CSV; the browser saves it as a file.
_DOWNLOAD_CSV: Final = """
const csv = cb_obj.data.csv[0]
if (!csv) return
const blob = new Blob([csv], {type: "text/csv;charset=utf-8"})
const a = document.createElement("a")
a.href = URL.createObjectURL(blob)
a.download = cb_obj.data.name[0]
document.body.appendChild(a)
a.click()
a.remove()
setTimeout(() => URL.revokeObjectURL(a.href), 60000)
"""

Feed = DayFeed | RangeFeed


def build_document(
    doc: Document,
    *,
    store: Store,
    web: WebConfig,
    default_date: dt.date | None,
    scans_dir: Path | None = None,
) -> None:
    """Bokeh FunctionHandler entry: lay out one session's page from its URL arguments.

    ``scans_dir`` is the scan dataset ([detect] scans_dir); None means
    ``<store>/scans``, the detector's default.
    """
    args = _arguments(doc)
    notices: list[str] = []
    zone_name = "UTC"
    if "tz" in args:
        if parse_zone(args["tz"]) is None:
            notices.append(f"ignored ?tz={args['tz']!r}: not a time zone (like Europe/Zurich)")
        else:
            zone_name = args["tz"]
    date = default_date or today_in(parse_zone(zone_name) or dt.UTC)
    if "date" in args:
        parsed = parse_day(args["date"])
        if parsed is None:
            notices.append(f"ignored ?date={args['date']!r}: not a YYYY-MM-DD date")
        date = parsed or date
    days = 1
    if "days" in args:
        try:
            days = int(args["days"])
        except ValueError:
            days = 0
        if not 1 <= days <= MAX_SPAN_DAYS:
            notices.append(f"ignored ?days={args['days']!r}: not a number of days from 1 to {MAX_SPAN_DAYS}")
            days = 1
    names = datasets.names(store.root)
    dataset = args.get("dataset") or datasets.MAIN
    if dataset not in names:
        notices.append(f"ignored ?dataset={dataset!r}: no such dataset")
        dataset = datasets.MAIN
    scan_root = scans_dir or store.root / "scans"
    if dataset != datasets.MAIN:
        store = Store(datasets.root(store.root, dataset))
        scan_root = store.root / "scans"
    # A user with a site allow-list gets a store whose every scan is limited to those sites.
    store = auth.scoped(store, doc)
    sites = store.sites()
    site = args.get("site") or None
    if site is not None and site not in sites:
        notices.append(f"ignored ?site={site!r}: no such site in the store")
        site = None
    from consumers.web.health import attach  # per-site health strip: live archive, this user's sites

    attach(doc, store, web)
    page = DayPage(doc, store, web, sites, names, dataset, scan_root=scan_root)
    page.start(date, site, " ".join(notices), days=days, zone=zone_name)


def _arguments(doc: Document) -> dict[str, str]:
    context = doc.session_context
    if not isinstance(context, BokehSessionContext) or context.request is None:
        return {}
    request = context.request
    raw: dict[str, list[bytes]] = request.arguments
    return {k: v[-1].decode("utf-8", "replace") for k, v in raw.items() if v}


def _table(**kw: Any) -> DataTable:
    """A read-only table in the plot's colours."""
    return DataTable(
        index_position=None,
        reorderable=False,
        editable=False,
        stylesheets=[InlineStyleSheet(css=style.TABLE_CSS)],
        **kw,
    )


def _text_column(field: str, title: str, width: int = 120) -> TableColumn:
    # StringFormatter puts the value into a text node: markup in a prefix stays text.
    return TableColumn(field=field, title=title, width=width, formatter=StringFormatter())


def _time_column(field: str, title: str) -> TableColumn:
    return TableColumn(
        field=field, title=title, width=150, formatter=DateFormatter(format="%Y-%m-%d %H:%M:%S")
    )


def _number_column(field: str, title: str) -> TableColumn:
    return TableColumn(field=field, title=title, width=70, formatter=NumberFormatter(format="0,0"))


class DayPage:
    """One browser session's page: the plot of a day or a range, and the controls around it."""

    def __init__(
        self,
        doc: Document,
        store: Store,
        web: WebConfig,
        sites: list[str],
        dataset_names: list[str] | None = None,
        dataset: str = datasets.MAIN,
        scan_root: Path | None = None,
    ) -> None:
        self.doc = doc
        self.store = store
        self.web = web
        self.scan_root = scan_root or store.root / "scans"
        self.zone_name = "UTC"
        self.zone: dt.tzinfo = dt.UTC
        self.date = today_in(self.zone)
        self.days = 1
        self.site: str | None = None
        self.filters = Filters()
        self.feed: Feed | None = None
        self.panel_source: str | None = None
        # Bumped whenever the page switches day, span, site or filters; work started
        # for an older generation finds out when it resumes and drops its result.
        self._generation = 0
        self._poll_callback: Any = None
        self._zoom_callback: Any = None
        self._poll_failing = False
        # The scan files the overlay was read from: a live poll reads scans again only when they change.
        self._scan_stamp: drill.ScanStamp = frozenset()

        self.source = ColumnDataSource(data=empty_data(), name=SOURCE_NAME)
        # Whole views arrive through this one-row source (coded); live additions stream into source.
        self.wire = ColumnDataSource(data={}, name=WIRE_NAME)
        decode = CustomJS(args={"wire": self.wire, "events": self.source}, code=_DECODE_DOTS)
        # On every new view, and once at load: a view read before the page was served arrives in it.
        self.wire.js_on_change("data", decode)
        doc.js_on_event("document_ready", decode)
        self._wire_generation = 0
        # Source addresses of the dots in the browser, in its row order: the server-side
        # source holds only streamed rows, so a tapped row's source is looked up here.
        self._shown_ips: list[npt.NDArray[Any]] = []
        self.scans = ColumnDataSource(data=drill.empty_scans(), name="scans")
        self.save_tool = SaveTool(filename="fireplot")
        self.plot, renderers = self._figure()
        self.hover_time = CustomJSHover(args={"zone": self.zone_name}, code=_HOVER_TIME)
        self.hover = HoverTool(
            renderers=renderers,
            tooltips=RAW_TOOLTIPS,
            formatters={"@ts": self.hover_time},
        )
        self.plot.add_tools(self.hover, TapTool(renderers=renderers))
        self.source.selected.on_change("indices", self._on_tap)
        self.plot.x_range.on_change("start", self._on_zoom)
        self.plot.x_range.on_change("end", self._on_zoom)

        self.prev_button = Button(label="\u25c0 previous", name="prev-day")
        self.today_button = Button(label="today", name="today")
        self.next_button = Button(label="next \u25b6", name="next-day")
        self.picker = DatePicker(name="date-picker", width=140)
        span_options: list[str | tuple[Any, str]] = [
            (str(d), "day" if d == 1 else f"{d} days") for d in SPANS
        ]
        self.span_select = Select(options=span_options, value="1", name="span", width=100)
        options: list[str | tuple[Any, str]] = [(ALL_SITES, "all sites"), *((s, s) for s in sites)]
        self.site_select = Select(options=options, value=ALL_SITES, name="site", width=160)
        zone_options: list[str | tuple[Any, str]] = [*ZONES]
        self.zone_select = Select(options=zone_options, value="UTC", name="tz", width=160)
        # Replays and rebuilds live in their own datasets (pipeline.datasets); switching
        # is a new page, since every query of the session then reads another store.
        dataset_options: list[str | tuple[Any, str]] = [*(dataset_names or [datasets.MAIN])]
        self.dataset_select = Select(
            options=dataset_options,
            value=dataset,
            name="dataset",
            width=160,
            visible=bool(dataset_names and len(dataset_names) > 1),
        )
        self.dataset_select.js_on_change("value", CustomJS(code=_SWITCH_DATASET))
        self.csv_button = Button(label="CSV of visible events", name="export-csv", width=170)
        self.csv = ColumnDataSource(data={"csv": [""], "name": [""]}, name="csv")
        self.csv.js_on_change("data", CustomJS(code=_DOWNLOAD_CSV))
        self.png_button = Button(label="PNG of this view", name="export-png", width=150)
        self.png_button.js_on_click(CustomJS(args={"tool": self.save_tool}, code=_SAVE_PNG))

        self.protocols = MultiChoice(
            options=list(style.SERIES), value=[], name="protocols", placeholder="all protocols", width=260
        )
        self.networks = TextInput(
            value="", name="networks", placeholder="source address or CIDR, …", width=240
        )
        self.ports = TextInput(value="", name="ports", placeholder="ports, e.g. 1-1024", width=130)
        action_options: list[str | tuple[Any, str]] = [(ANY_ACTION, "any action"), *((a, a) for a in ACTIONS)]
        self.action = Select(options=action_options, value=ANY_ACTION, name="action", width=110)
        # Text that may come from the store or the URL: as text, never markup.
        self.summary = Div(name="summary", render_as_text=True, disable_math=True)
        self.notice = Div(name="notice", render_as_text=True, disable_math=True, visible=False)

        self.prev_button.on_click(lambda: self.show(shift_day(self.date, -self.days), self.site))
        self.today_button.on_click(lambda: self.show(today_in(self.zone), self.site))
        self.next_button.on_click(lambda: self.show(shift_day(self.date, self.days), self.site))
        self.picker.on_change("value", self._on_pick)
        self.span_select.on_change("value", self._on_span)
        self.site_select.on_change("value", self._on_site)
        self.zone_select.on_change("value", self._on_zone)
        self.zone_select.js_on_change(
            "value", CustomJS(args={"key": "tz", "fallback": "UTC"}, code=_SYNC_URL)
        )
        for widget in (self.protocols, self.networks, self.ports, self.action):
            widget.on_change("value", self._on_filter)
        self.csv_button.on_click(self._export)
        self.picker.js_on_change("value", CustomJS(args={"key": "date", "fallback": ""}, code=_SYNC_URL))
        self.span_select.js_on_change(
            "value", CustomJS(args={"key": "days", "fallback": "1"}, code=_SYNC_URL)
        )
        self.site_select.js_on_change("value", CustomJS(args={"key": "site", "fallback": ""}, code=_SYNC_URL))

        self.panel = self._source_panel()
        scans_table = _table(
            source=self.scans,
            name="scans-table",
            columns=[
                _text_column("kind", "scan", 80),
                _text_column("sources", "sources", 130),
                _text_column("ports", "ports", 80),
                _time_column("left", "first"),
                _time_column("right", "last"),
                _number_column("packets", "packets"),
                _text_column("sites", "sites", 80),
            ],
            width=560,
            height=640,
        )
        self.scans.selected.js_on_change(
            "indices",
            CustomJS(
                args={"scans": self.scans, "plot": self.plot, "lo": style.Y_RANGE[0], "hi": style.Y_RANGE[1]},
                code=_ZOOM_TO_SCAN,
            ),
        )

        controls = row(
            self.prev_button,
            self.today_button,
            self.next_button,
            self.picker,
            self.span_select,
            self.site_select,
            self.zone_select,
            self.dataset_select,
            self.csv_button,
            self.png_button,
        )
        filters = row(self.protocols, self.networks, self.ports, self.action)
        doc.add_root(
            column(
                controls,
                filters,
                self.summary,
                self.notice,
                row(self.plot, scans_table, sizing_mode="stretch_width"),
                self.panel,
                sizing_mode="stretch_width",
            )
        )
        # Nothing on screen refers to the CSV carrier or the coded dots: as roots they reach the browser.
        doc.add_root(self.csv)
        doc.add_root(self.wire)
        doc.theme = Theme(json=style.theme_json())
        doc.template = Template(TEMPLATE.read_text(encoding="utf-8"))
        doc.template_variables.update(background=style.BACKGROUND, foreground=style.FOREGROUND)

    def _figure(self) -> tuple[Any, list[Any]]:
        start, end = day_bounds(self.date, self.zone)
        plot = figure(
            name="day-plot",
            x_axis_type="datetime",
            y_axis_type="log",
            x_range=Range1d(start=_ms(start), end=_ms(end)),
            y_range=Range1d(start=style.Y_RANGE[0], end=style.Y_RANGE[1], bounds=style.Y_RANGE),
            # Stack notes section 5: WebGL draws log-axis scatters in Bokeh 3.9.
            output_backend="webgl",
            tools=["xpan", "xwheel_zoom", "box_zoom", "reset", self.save_tool],
            active_scroll="xwheel_zoom",
            height=640,
            sizing_mode="stretch_width",
        )
        plot.xaxis.axis_label = "time (UTC)"
        self.tick_time = CustomJSTickFormatter(args={"zone": self.zone_name}, code=_TICK_TIME)
        plot.xaxis.formatter = self.tick_time
        plot.yaxis.axis_label = "destination port"
        plot.yaxis.ticker = FixedTicker(ticks=list(style.Y_TICKS), minor_ticks=[])
        labels: dict[Any, Any] = dict(style.Y_TICK_LABELS)
        plot.yaxis.major_label_overrides = labels
        plot.toolbar.logo = None
        renderers: list[GlyphRenderer[Any]] = []
        items: list[LegendItem] = []
        for series, colour in style.COLOURS.items():
            renderer: GlyphRenderer[Any] = plot.scatter(
                "ts",
                "y",
                source=self.source,
                view=CDSView(filter=GroupFilter(column_name="series", group=series)),
                marker=style.DOT_MARKER,
                size=style.DOT_SIZE,
                fill_color=colour,
                fill_alpha="alpha",
                # A tapped dot opens its source's panel; the others stay as they were.
                nonselection_fill_alpha="alpha",
                nonselection_fill_color=colour,
                line_color=None,
                name=f"series:{series}",
            )
            renderers.append(renderer)
            items.append(LegendItem(label=series, renderers=[renderer]))
        for kind, (colour, dash) in style.SCAN_STYLES.items():
            scans = plot.quad(
                left="left",
                right="right",
                bottom="bottom",
                top="top",
                source=self.scans,
                view=CDSView(filter=GroupFilter(column_name="kind", group=kind)),
                fill_alpha=0.0,
                line_color=colour,
                line_dash=dash,
                line_width=1.5,
                name=f"scans:{kind}",
            )
            outlines: list[Any] = [scans]
            items.append(LegendItem(label=f"scan: {kind}", renderers=outlines))
        legend = Legend(items=items, click_policy="hide", location="top_left")
        plot.add_layout(legend, "right")
        return plot, renderers

    def _source_panel(self) -> Any:
        """The panel a clicked dot opens: one source's activity within the view."""
        empty = drill.empty_detail()
        self.panel_title = Div(name="source-summary", render_as_text=True, disable_math=True)
        self.filter_source_button = Button(label="show only this source", name="filter-source", width=180)
        self.clear_source_button = Button(label="clear source filter", name="clear-source", width=160)
        self.filter_source_button.on_click(self._filter_to_source)
        self.clear_source_button.on_click(lambda: setattr(self.networks, "value", ""))
        self.timeline = ColumnDataSource(data=empty.timeline, name="source-timeline")
        self.source_ports = ColumnDataSource(data=empty.ports, name="source-ports")
        self.source_events = ColumnDataSource(data=empty.recent, name="source-events")
        self.source_scans = ColumnDataSource(data=empty.scans, name="source-scans")
        timeline = figure(
            name="source-timeline-plot",
            x_axis_type="datetime",
            x_range=self.plot.x_range,
            height=140,
            sizing_mode="stretch_width",
            tools="",
            toolbar_location=None,
        )
        timeline.vbar(x="t", top="events", width="width", source=self.timeline, fill_color=style.FOREGROUND)
        timeline.yaxis.axis_label = "events"
        timeline.xaxis.formatter = self.tick_time
        ports = _table(
            source=self.source_ports,
            name="source-ports-table",
            columns=[
                _text_column("port", "port", 60),
                _text_column("proto", "protocol", 70),
                _number_column("events", "events"),
                _number_column("packets", "packets"),
                _time_column("first", "first"),
                _time_column("last", "last"),
            ],
            width=560,
            height=220,
        )
        scans = _table(
            source=self.source_scans,
            name="source-scans-table",
            columns=[
                _text_column("kind", "scan", 90),
                _text_column("ports", "ports", 90),
                _time_column("left", "first"),
                _time_column("right", "last"),
                _number_column("packets", "packets"),
                _text_column("sites", "sites", 90),
            ],
            width=620,
            height=220,
        )
        events = _table(
            source=self.source_events,
            name="source-events-table",
            columns=[
                _time_column("ts", "time"),
                _text_column("site", "site", 80),
                _text_column("host", "sensor", 120),
                _text_column("dst_ip", "destination", 130),
                _text_column("port", "port", 60),
                _text_column("proto", "protocol", 70),
                _text_column("action", "action", 60),
                _text_column("prefix", "prefix", 260),
            ],
            sizing_mode="stretch_width",
            height=240,
        )
        return column(
            row(self.panel_title, self.filter_source_button, self.clear_source_button),
            timeline,
            row(ports, scans),
            events,
            name="source-panel",
            visible=False,
            sizing_mode="stretch_width",
        )

    # ---- switching day, span, site or filters -----------------------------------

    def start(self, date: dt.date, site: str | None, notice: str, days: int = 1, zone: str = "UTC") -> None:
        self._set_zone(zone)
        if notice:
            self.notice.text = notice
            self.notice.visible = True
        self.days = days
        if str(days) not in {str(d) for d in SPANS}:
            self.span_select.options = [*self.span_select.options, (str(days), f"{days} days")]
        self.show(date, site)

    def view_bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """The shown span: the ``days`` days ending with ``date``, midnight to midnight in the zone."""
        first = shift_day(self.date, 1 - self.days)
        return day_bounds(first, self.zone)[0], day_bounds(self.date, self.zone)[1]

    def _set_zone(self, name: str) -> None:
        zone = parse_zone(name)
        if zone is None:
            return
        self.zone_name, self.zone = name, zone
        if name not in self.zone_select.options:
            self.zone_select.options = [*self.zone_select.options, name]
        self.zone_select.value = name
        self.hover_time.args = {"zone": name}
        self.tick_time.args = {"zone": name}
        self.plot.xaxis.axis_label = f"time ({name})"

    def _on_zone(self, _attr: str, _old: Any, new: Any) -> None:
        if new != self.zone_name:
            self._set_zone(str(new))
            self.show(self.date, self.site)

    def show(self, date: dt.date, site: str | None) -> None:
        """Switch the page to a day (or span ending that day) and site, in place; data follows."""
        self._generation += 1
        self._stop_polling()
        self.date, self.site, self.feed = date, site, None
        start, end = self.view_bounds()
        first = shift_day(date, 1 - self.days)
        shown = date.isoformat() if self.days == 1 else f"{first.isoformat()} \u2026 {date.isoformat()}"
        title = f"fireplot \u2014 {shown}" + (f" \u2014 {site}" if site else "")
        self.doc.title = title
        self.plot.title.text = title
        # Named like the CSV, so a folder of exports sorts by day; without a name Bokeh would prompt.
        self.save_tool.filename = f"fireplot-{site or 'all'}-{first.isoformat()}-{self.days}d"
        self.picker.value = date
        self.span_select.value = str(self.days)
        self.site_select.value = site or ALL_SITES
        start_ms, end_ms = _ms(start), _ms(end)
        self.plot.x_range.update(start=start_ms, end=end_ms, reset_start=start_ms, reset_end=end_ms)
        self.summary.text = "loading\u2026"
        feed: Feed
        if self.days == 1:
            feed = DayFeed(self.store, date, site, self.web.max_points, self.filters, self.zone)
        else:
            feed = RangeFeed(self.store, start, end, site, self.web.max_points, self.filters)
        self._start_load(feed, start, end)

    def _start_load(self, feed: Feed, start: dt.datetime, end: dt.datetime) -> None:
        load = partial(self._load, self._generation, feed, start, end)
        self.doc.add_next_tick_callback(load)  # type: ignore[arg-type]  # Bokeh awaits coroutines

    def _on_pick(self, _attr: str, _old: Any, new: Any) -> None:
        date = new if isinstance(new, dt.date) else parse_day(str(new))
        if date is not None and date != self.date:
            self.show(date, self.site)

    def _on_span(self, _attr: str, _old: Any, new: Any) -> None:
        days = int(new)
        if days != self.days:
            self.days = days
            self.show(self.date, self.site)

    def _on_site(self, _attr: str, _old: Any, new: Any) -> None:
        site = new or None
        if site != self.site:
            self.show(self.date, site)

    def _on_filter(self, _attr: str, _old: Any, _new: Any) -> None:
        try:
            filters = Filters.parse(
                series=list(self.protocols.value),
                networks=self.networks.value,
                ports=self.ports.value,
                action=self.action.value,
            )
        except FilterError as exc:
            self._tell(f"filter not applied: {exc}")
            return
        self.notice.visible = False
        if filters != self.filters:
            self.filters = filters
            self.show(self.date, self.site)

    def _tell(self, text: str) -> None:
        self.notice.text = text
        self.notice.visible = True

    def _on_zoom(self, _attr: str, _old: Any, _new: Any) -> None:
        # Views holding every event already (a raw day) need nothing on zoom; the
        # others are read again once the zoom settles, not at every wheel step.
        feed = self.feed
        if feed is None or not (isinstance(feed, RangeFeed) or feed.aggregated):
            return
        if self._zoom_callback is not None:
            with contextlib.suppress(ValueError):
                self.doc.remove_timeout_callback(self._zoom_callback)
        self._zoom_callback = self.doc.add_timeout_callback(self._zoomed, ZOOM_SETTLE_MS)

    def _zoomed(self) -> None:
        """Read the zoomed window: raw dots when they fit max_points, else finer bins."""
        self._zoom_callback = None
        feed = self.feed
        if feed is None:
            return
        view_start, view_end = self.view_bounds()
        start, end = self._visible()
        if abs(_ms(start) - _ms(feed.start)) < 1 and abs(_ms(end) - _ms(feed.end)) < 1:
            return
        if self.days == 1 and (start, end) == (view_start, view_end):
            # Zoomed back out to the whole day: the day's own feed, live again if today.
            self.show(self.date, self.site)
            return
        self._generation += 1
        self._stop_polling()
        self.summary.text = "loading\u2026"
        zoomed = RangeFeed(self.store, start, end, self.site, self.web.max_points, self.filters)
        self._start_load(zoomed, start, end)

    # ---- the source panel --------------------------------------------------------

    def _on_tap(self, _attr: str, _old: Any, new: list[int]) -> None:
        if not new:
            return
        index = new[0]
        src = np.concatenate(self._shown_ips) if self._shown_ips else None
        if src is None or index >= len(src):
            self._tell("this dot counts many events: zoom in to pick a single source")
            return
        src_ip = str(src[index])
        start, end = self._visible()
        task = partial(self._open_panel, self._generation, src_ip, start, end)
        self.doc.add_next_tick_callback(task)  # type: ignore[arg-type]  # Bokeh awaits coroutines

    async def _open_panel(self, generation: int, src_ip: str, start: dt.datetime, end: dt.datetime) -> None:
        read = partial(drill.source_detail, self.store, self.scan_root, src_ip, start, end, self.site)
        try:
            detail = await asyncio.get_running_loop().run_in_executor(None, read)
        except Exception:
            log.exception("reading source %s from the store failed", src_ip)
            self._tell("could not read the source's events (details in the server log)")
            return
        if generation != self._generation:
            return
        self.panel_source = src_ip
        self.panel_title.text = detail.summary()
        self.timeline.data = detail.timeline
        self.source_ports.data = detail.ports
        self.source_events.data = detail.recent
        self.source_scans.data = detail.scans
        self.panel.visible = True

    def _filter_to_source(self) -> None:
        if self.panel_source:
            self.networks.value = self.panel_source

    def _visible(self) -> tuple[dt.datetime, dt.datetime]:
        """The time range on screen, within the shown span."""
        view_start, view_end = self.view_bounds()
        x0, x1 = self.plot.x_range.start, self.plot.x_range.end
        start = max(view_start, _datetime(min(x0, x1)))
        end = min(view_end, _datetime(max(x0, x1)))
        return (start, end) if start < end else (view_start, view_end)

    # ---- export ------------------------------------------------------------------

    def _export(self) -> None:
        self.doc.add_next_tick_callback(self._on_export)  # type: ignore[arg-type]  # Bokeh awaits coroutines

    async def _on_export(self) -> None:
        start, end = self._visible()
        y0, y1 = sorted((self.plot.y_range.start, self.plot.y_range.end))
        read = partial(
            export.visible_events, self.store, start, end, y0, y1, self.site, self.filters, EXPORT_LIMIT
        )
        self.csv_button.disabled = True
        try:
            table = await asyncio.get_running_loop().run_in_executor(None, read)
            text = await asyncio.get_running_loop().run_in_executor(None, export.to_csv, table)
        except export.TooManyEvents as exc:
            self._tell(f"no CSV: {exc}")
            return
        except Exception:
            log.exception("exporting CSV failed")
            self._tell("could not export the CSV (details in the server log)")
            return
        finally:
            self.csv_button.disabled = False
        stamp = f"{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}"
        self.csv.data = {"csv": [text], "name": [f"fireplot-{self.site or 'all'}-{stamp}.csv"]}
        # Once the browser has it, the session need not keep megabytes of CSV alive.
        self.doc.add_timeout_callback(self._drop_csv, CSV_KEEP_MS)

    def _drop_csv(self) -> None:
        self.csv.data = {"csv": [""], "name": [""]}

    # ---- loading and live updates ------------------------------------------

    async def _load(self, generation: int, feed: Feed, start: dt.datetime, end: dt.datetime) -> None:
        # The document stays locked while the read runs in a thread: only this
        # session waits for it, and its own clicks queue behind the load.
        def read() -> tuple[Frame, dict[str, Any], drill.ScanStamp]:
            frame = feed.load()
            stamp, scans = self._read_scans(start, end, feed.site)
            return frame, scans, stamp

        try:
            frame, scans, stamp = await asyncio.get_running_loop().run_in_executor(None, read)
        except Exception:
            log.exception("reading %s .. %s from the store failed", start, end)
            if generation == self._generation:
                self.summary.text = "could not read the store (details in the server log)"
            return
        if generation != self._generation:
            return
        self.feed = feed
        self.scans.data = scans
        self._scan_stamp = stamp
        self._apply(frame, feed)
        if isinstance(feed, DayFeed) and feed.date == today_in(self.zone):
            self._schedule_poll()

    def _read_scans(
        self, start: dt.datetime, end: dt.datetime, site: str | None
    ) -> tuple[drill.ScanStamp, dict[str, Any]]:
        # Stamped before reading: a file replaced in between is read again at the next poll.
        stamp = drill.scan_stamp(self.scan_root, start, end)
        scans = drill.read_scans(self.scan_root, start, end, site, site_scope(self.store))
        return stamp, drill.scan_data(scans)

    def _poll_scans(self, feed: DayFeed) -> tuple[drill.ScanStamp, dict[str, Any]] | None:
        """The view's scans if the detector wrote any since the last read, else None."""
        start, end = self.view_bounds()
        if drill.scan_stamp(self.scan_root, start, end) == self._scan_stamp:
            return None
        return self._read_scans(start, end, feed.site)

    def _schedule_poll(self) -> None:
        # A chain of timeouts rather than a periodic callback: the next poll is
        # only scheduled once this one is done, so slow reads never pile up.
        poll = partial(self._poll, self._generation)
        self._poll_callback = self.doc.add_timeout_callback(
            poll,  # type: ignore[arg-type]  # Bokeh awaits coroutines
            self.web.refresh_interval_ms,
        )

    def _stop_polling(self) -> None:
        callback, self._poll_callback = self._poll_callback, None
        if callback is not None:
            # If it fired already, its generation check stops it.
            with contextlib.suppress(ValueError):
                self.doc.remove_timeout_callback(callback)

    async def _poll(self, generation: int) -> None:
        self._poll_callback = None
        feed = self.feed
        if generation != self._generation or not isinstance(feed, DayFeed):
            return
        if feed.date != today_in(self.zone):
            # The page was following today and midnight (in its zone) passed.
            self.show(today_in(self.zone), self.site)
            return

        def read() -> tuple[Frame | None, tuple[drill.ScanStamp, dict[str, Any]] | None]:
            # Scans the detector wrote since the page loaded join the overlay and table like new dots.
            return feed.poll(), self._poll_scans(feed)

        try:
            frame, scans = await asyncio.get_running_loop().run_in_executor(None, read)
        except Exception:
            # Once per failure streak, not every refresh interval.
            if not self._poll_failing:
                log.exception("reading new events from the store failed; retrying")
            self._poll_failing, frame, scans = True, None, None
        else:
            if self._poll_failing:
                log.info("reading new events from the store works again")
            self._poll_failing = False
        if generation != self._generation:
            return
        if frame is not None:
            self._apply(frame, feed)
        if scans is not None:
            self._scan_stamp, self.scans.data = scans
        self._schedule_poll()

    def _apply(self, frame: Frame, feed: Feed) -> None:
        if frame.replace:
            self.hover.tooltips = AGGREGATED_TOOLTIPS if feed.aggregated else RAW_TOOLTIPS
            self.source.selected.indices = []
            # Emptied here (if it held streamed rows), filled in the browser from the wire.
            self.source.data = empty_data()
            self._wire_generation += 1
            self.wire.data = wire_data(frame.data, self._wire_generation)
            self._shown_ips = [frame.data["src_ip"]] if "src_ip" in frame.data else []
        else:
            new: dict[str, Any] = dict(frame.data)
            self.source.stream(new)
            if "src_ip" in new and self._shown_ips:
                self._shown_ips.append(new["src_ip"])
        text = feed.summary()
        if self.filters:
            text += " (filtered)"
        self.summary.text = text


def wire_data(data: Mapping[str, npt.NDArray[Any]], generation: int) -> dict[str, list[Any]]:
    """A view's columns as one row for the wire: text dictionary-coded, numbers as they are.

    Bokeh sends numeric arrays as binary buffers but text as JSON lists: a raw day
    of 150k dots was ~13 MB of JSON, parsed in the browser before the first paint.
    Most text columns hold a handful of values (site, protocol, action, series), so
    each becomes a small dictionary plus one byte or two per row. ``generation``
    makes every view a change, even one equal to the last (a reload of the same day).
    """
    out: dict[str, list[Any]] = {"generation": [generation]}
    for name, values in data.items():
        if values.dtype != object or len(values) == 0:
            out[name] = [values]
            continue
        coded = pc.dictionary_encode(pc.fill_null(pa.array(values, pa.string()), ""))
        dictionary = coded.dictionary.to_pylist()
        if len(dictionary) > CODE_MAX_DISTINCT_SHARE * len(values):
            out[name] = [values]
            continue
        width = (
            np.uint8 if len(dictionary) <= 1 << 8 else np.uint16 if len(dictionary) <= 1 << 16 else np.int32
        )
        out[name] = [coded.indices.to_numpy().astype(width)]
        out[f"{name}:dict"] = [dictionary]
    return out


def _ms(t: dt.datetime) -> float:
    return t.timestamp() * 1000.0


def _datetime(ms: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000.0, dt.UTC)
