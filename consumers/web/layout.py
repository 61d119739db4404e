"""What the page looks like: the day plot, its tables, the source panel and how they are arranged.

Only models and their looks are built here (colours and sizes come from :mod:`consumers.style`);
what they show and when it changes is the page's (:mod:`consumers.web.page`). Every text that
may come from the store or the address is shown as text, never markup: Divs render as text,
table cells go through StringFormatter, the hover tool escapes ``@field`` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import (
    CategoricalColorMapper,
    CategoricalMarkerMapper,
    CDSView,
    ColumnDataSource,
    CustomJS,
    CustomJSTickFormatter,
    CustomJSTransform,
    FixedTicker,
    GroupFilter,
    Range1d,
    SaveTool,
)
from bokeh.models.annotations.labels import Label
from bokeh.models.annotations.legends import Legend, LegendItem
from bokeh.models.css import InlineStyleSheet
from bokeh.models.layouts import Column
from bokeh.models.renderers import DataRenderer, GlyphRenderer
from bokeh.models.widgets.buttons import Button, Toggle
from bokeh.models.widgets.markups import Div
from bokeh.models.widgets.tables import (
    DataTable,
    DateFormatter,
    NumberFormatter,
    StringFormatter,
    TableColumn,
)
from bokeh.plotting import figure
from bokeh.themes import Theme

from consumers import style
from consumers.web import drill, resources
from consumers.web.resources import script
from pipeline.detect import heartbeat

SOURCE_NAME: Final = "events"
# Names of the legend's series entries: this prefix and the series.
SERIES_ITEM: Final = "legend:series:"
# The renderer of every dot.
DOTS_NAME: Final = "dots"
# The plot never shrinks below this, however small the window: a toolbar and axes need room.
MIN_PLOT_HEIGHT: Final = 300
# Width of the panel beside the plot that holds the scans or a source's details: a share of the
# window between two bounds, so the plot keeps most of the width at every size (CSS, the browser
# knows the window; the server does not).
DRAWER_SHARE: Final = 0.36
DRAWER_MIN_PX: Final = 360
DRAWER_MAX_PX: Final = 640
DRAWER_WIDTH_CSS: Final = f"clamp({DRAWER_MIN_PX}px, {DRAWER_SHARE * 100:g}vw, {DRAWER_MAX_PX}px)"
# The port an empty plot's note is written at: the middle of the log axis.
NOTE_PORT: Final = 200.0
# How often an open page looks at the detector's heartbeat.
NOTE_REFRESH_MS: Final = 5000


def message(name: str, visible: bool = True) -> Div:
    """A line of text above the plot; what it says may come from the store or the URL."""
    return Div(name=name, render_as_text=True, disable_math=True, visible=visible)


def tick_time(zone: str) -> CustomJSTickFormatter:
    """The time axis's labels in ``zone`` (set its ``args`` to change zone)."""
    return CustomJSTickFormatter(args={"zone": zone}, code=script("zoned_parts", "tick_time"))


def day_figure(
    source: ColumnDataSource,
    scans: ColumnDataSource,
    save_tool: SaveTool,
    ticks: CustomJSTickFormatter,
    x_range: tuple[float, float],
    palette: str = "original",
) -> tuple[Any, list[DataRenderer]]:
    """The plot: a dot per event (or bin) of ``source`` in its series' colour, and the scans' outlines.

    Returns the figure and the dots' renderers (one), which hovering and tapping use.
    The figure fills what the page leaves it (``stretch_both``): the plot is what the page is for.
    """
    plot = figure(
        name="day-plot",
        x_axis_type="datetime",
        y_axis_type="log",
        x_range=Range1d(start=x_range[0], end=x_range[1]),
        y_range=Range1d(start=style.Y_RANGE[0], end=style.Y_RANGE[1], bounds=style.Y_RANGE),
        # Stack notes section 5: WebGL draws log-axis scatters in Bokeh 3.9. A browser whose WebGL
        # is software-rendered draws on canvas instead, faster there (js/plot_backend.js).
        output_backend="webgl",
        tools=["xpan", "xwheel_zoom", "box_zoom", "reset", save_tool],
        active_scroll="xwheel_zoom",
        sizing_mode="stretch_both",
        min_height=MIN_PLOT_HEIGHT,
    )
    plot.xaxis.axis_label = "time (UTC)"
    plot.xaxis.formatter = ticks
    plot.yaxis.axis_label = "destination port"
    ticker = FixedTicker(ticks=list(style.Y_TICKS), minor_ticks=[])
    plot.yaxis.ticker = ticker
    labels: dict[Any, Any] = dict(style.Y_TICK_LABELS)
    plot.yaxis.major_label_overrides = labels
    # Ticks added between the fixed ones when zoomed in are labelled with their port number.
    plot.yaxis.formatter = CustomJSTickFormatter(
        args={"none": style.NO_PORT_Y, "label": style.NO_PORT_LABEL}, code=script("port_label")
    )
    follow_zoom = CustomJS(
        args={"ticker": ticker, "fixed": list(style.Y_TICKS), "range": plot.y_range},
        code=script("port_ticks"),
    )
    plot.y_range.js_on_change("start", follow_zoom)
    plot.y_range.js_on_change("end", follow_zoom)
    plot.toolbar.logo = None
    # One renderer draws every dot, in row order: the rows come in draw order (transfer.py), the
    # colour (and in the colour-blind palette the shape) follows each row's series. One renderer,
    # not one per series: BokehJS maps, filters and blits every renderer's glyphs on its own,
    # which was most of a busy day's paint.
    colours = style.colours(palette)
    shapes = style.markers(palette)
    factors = list(style.SERIES)
    fill: Any = {
        "field": "series",
        "transform": CategoricalColorMapper(factors=factors, palette=[colours[s] for s in factors]),
    }
    marker: Any = style.DOT_MARKER
    size: Any = style.DOT_SIZE
    if any(shape != style.DOT_MARKER for shape in shapes.values()):
        marker = {
            "field": "series",
            "transform": CategoricalMarkerMapper(factors=factors, markers=[shapes[s] for s in factors]),  # type: ignore[misc]  # names checked by style,
        }
        # A shape other than a square needs a little more room to be told apart.
        sizes = {s: style.DOT_SIZE if shapes[s] == style.DOT_MARKER else style.DOT_SIZE + 2 for s in factors}
        size = {
            "field": "series",
            "transform": CustomJSTransform(
                args={"sizes": sizes, "size": style.DOT_SIZE},
                func="return sizes[x] ?? size",
                v_func="return xs.map((x) => sizes[x] ?? size)",
            ),
        }
    dots: GlyphRenderer[Any] = plot.scatter(
        "ts",
        "y",
        source=source,
        marker=marker,
        size=size,
        fill_color=fill,
        fill_alpha="alpha",
        # A tapped dot opens its source's panel; the others stay as they were.
        nonselection_fill_alpha="alpha",
        nonselection_fill_color=fill,
        line_color=None,
        name=DOTS_NAME,
    )
    renderers: list[DataRenderer] = [dots]
    # An entry per series, shown for the series the view holds (show_series). Its swatch is drawn
    # from a renderer of its own, one row per series at no position (nothing on the plot), in the
    # dots' look: BokehJS rebuilds a legend's entries whenever their renderers' data changes, and
    # a rebuilt entry changes the legend's size until the next paint, which then lays the plot out
    # and paints every dot a second time. The swatches' data never changes.
    swatches: GlyphRenderer[Any] = plot.scatter(
        "ts",
        "y",
        source=ColumnDataSource(
            data={
                "ts": [float("nan")] * len(factors),
                "y": [float("nan")] * len(factors),
                "series": factors,
                "alpha": [1.0] * len(factors),
            },
            name="legend-swatches",
        ),
        marker=marker,
        size=size,
        fill_color=fill,
        fill_alpha="alpha",
        line_color=None,
        name="swatches",
    )
    items: list[LegendItem] = [
        LegendItem(label=name, renderers=[swatches], index=i, name=SERIES_ITEM + name, visible=False)
        for i, name in enumerate(factors)
    ]
    for kind, (colour, dash) in style.SCAN_STYLES.items():
        outline = plot.quad(
            left="left",
            right="right",
            bottom="bottom",
            top="top",
            source=scans,
            view=CDSView(filter=GroupFilter(column_name="kind", group=kind)),
            fill_alpha=0.0,
            line_color=colour,
            line_dash=dash,
            line_width=1.5,
            name=f"scans:{kind}",
            visible=False,
        )
        outlines: list[Any] = [outline]
        items.append(
            LegendItem(label=f"scan: {kind}", renderers=outlines, visible=False, name=f"legend:scan:{kind}")
        )
    # Clicking an entry would hide every dot (one renderer): the protocol filter picks series.
    legend = Legend(items=items, click_policy="none", location="top_left", visible=False)
    plot.add_layout(legend, "right")
    # Shown in the middle of an empty plot, saying why it is empty.
    plot.add_layout(
        Label(
            name="plot-note",
            x=x_range[0],
            y=NOTE_PORT,
            text="",
            text_align="center",
            visible=False,
            text_color=style.FOREGROUND,
            text_font_size="16px",
        )
    )
    return plot, renderers


def show_scan_kinds(plot: Any, kinds: set[str]) -> None:
    """Legend entries and outlines for the scan kinds the view holds, none for the others (a
    hidden renderer costs the browser nothing at a paint)."""
    for item in plot.legend[0].items:
        name = str(item.name or "")
        if name.startswith("legend:scan:"):
            shown = name.removeprefix("legend:scan:") in kinds
            if item.visible != shown:
                item.visible = shown
            for renderer in item.renderers:
                if renderer.visible != shown:
                    renderer.visible = shown
    _legend_if_any(plot)


def show_series(plot: Any, counts: Mapping[str, int]) -> None:
    """The legend entries of the series the view holds (``counts``: rows by series), in draw
    order. Set before the dots are sent, so that a change of entries is laid out before the paint
    that draws them."""
    legend = plot.legend[0]
    series = {str(item.name).removeprefix(SERIES_ITEM): item for item in legend.items
              if str(item.name or "").startswith(SERIES_ITEM)}  # fmt: skip
    shown = [series[name] for name in style.draw_order(dict(counts)) if counts.get(name, 0)]
    for item in series.values():
        if item.visible != (item in shown):
            item.visible = item in shown
    rest = [item for item in legend.items if item not in shown]
    if legend.items != shown + rest:
        legend.items = shown + rest
    _legend_if_any(plot)


def _legend_if_any(plot: Any) -> None:
    # An empty view's legend would be an empty box in the plot's corner.
    legend = plot.legend[0]
    shown = any(item.visible for item in legend.items)
    if legend.visible != shown:
        legend.visible = shown


def plot_note(plot: Any, text: str, x_ms: float) -> None:
    """Say ``text`` at time ``x_ms`` (the middle of the view) of the plot, why it is empty;
    an empty text hides the note."""
    note = next(a for a in plot.center if getattr(a, "name", None) == "plot-note")
    note.update(text=text, visible=bool(text), x=x_ms)


def scans_table(scans: ColumnDataSource, plot: Any) -> DataTable:
    """The view's scans beside the plot; a row zooms the plot to its scan."""
    table = _table(
        source=scans,
        name="scans-table",
        columns=[
            _text_column("kind", "scan", 80),
            _text_column("sources", "sources", 130),
            _text_column("ports", "ports", 80),
            _time_column("left", "first"),
            _time_column("right", "last"),
            _number_column("days", "days"),
            _text_column("order", "order", 80),
            _text_column("shared", "shared by", 100),
            _number_column("packets", "packets"),
            _text_column("sites", "sites", 80),
        ],
        sizing_mode="stretch_both",
    )
    scans.selected.js_on_change(
        "indices",
        CustomJS(
            args={"scans": scans, "plot": plot, "lo": style.Y_RANGE[0], "hi": style.Y_RANGE[1]},
            code=script("zoom_to_scan"),
        ),
    )
    return table


class SourcePanel:
    """The panel a clicked dot opens: one source's activity within the view, hidden until then."""

    def __init__(self, plot: Any, ticks: CustomJSTickFormatter) -> None:
        empty = drill.empty_detail()
        self.title = Div(name="source-summary", render_as_text=True, disable_math=True)
        self.filter_button = Button(label="show only this source", name="filter-source", width=180)
        self.clear_button = Button(label="clear source filter", name="clear-source", width=160)
        self.timeline = ColumnDataSource(data=empty.timeline, name="source-timeline")
        self.ports = ColumnDataSource(data=empty.ports, name="source-ports")
        self.events = ColumnDataSource(data=empty.recent, name="source-events")
        self.scans = ColumnDataSource(data=empty.scans, name="source-scans")
        # An empty scans list says so, rather than a bare header.
        self.scans_note = Div(
            name="source-scans-note",
            text="no detected scans of this source in this view",
            render_as_text=True,
            disable_math=True,
        )
        timeline = figure(
            name="source-timeline-plot",
            x_axis_type="datetime",
            x_range=plot.x_range,
            height=90,
            sizing_mode="stretch_width",
            tools="",
            toolbar_location=None,
        )
        timeline.vbar(x="t", top="events", width="width", source=self.timeline, fill_color=style.FOREGROUND)
        timeline.yaxis.axis_label = "events"
        timeline.xaxis.formatter = ticks
        ports = _table(
            source=self.ports,
            name="source-ports-table",
            columns=[
                _text_column("port", "port", 60),
                _text_column("proto", "protocol", 70),
                _number_column("events", "events"),
                _number_column("packets", "packets"),
                _time_column("first", "first"),
                _time_column("last", "last"),
            ],
            sizing_mode="stretch_width",
            height=120,
        )
        scans = _table(
            source=self.scans,
            name="source-scans-table",
            columns=[
                _text_column("kind", "scan", 90),
                _text_column("ports", "ports", 90),
                _time_column("left", "first"),
                _time_column("right", "last"),
                _number_column("days", "days"),
                _text_column("order", "order", 80),
                _number_column("packets", "packets"),
                _text_column("sites", "sites", 90),
            ],
            sizing_mode="stretch_width",
            height=90,
        )
        events = _table(
            source=self.events,
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
            sizing_mode="stretch_both",
            min_height=100,
        )
        # Stacked to fit the drawer beside the plot (the whole panel within a 1280x800 window); the
        # recent events take what is left.
        self.layout = column(
            self.title,
            row(self.filter_button, self.clear_button),
            timeline,
            ports,
            self.scans_note,
            scans,
            events,
            name="source-panel",
            visible=False,
            sizing_mode="stretch_both",
        )

    def show(self, detail: drill.SourceDetail) -> None:
        self.title.text = detail.summary()
        self.timeline.data = detail.timeline
        self.ports.data = detail.ports
        self.events.data = detail.recent
        self.scans.data = detail.scans
        self.scans_note.visible = not any(len(v) for v in detail.scans.values())
        self.layout.visible = True


class Drawer:
    """The panel beside the plot: the view's scans, or the source a clicked dot belongs to.

    Closed until asked for (its button, or a click on a dot), so that the plot has the whole
    width; open, it takes about a third of the window's width beside the plot (DRAWER_SHARE,
    within DRAWER_MIN_PX..DRAWER_MAX_PX), in view whatever the window's size: what does not fit
    its height scrolls inside it (never below the fold). Scans or source: one at a time, the
    source panel when a dot was clicked last. An empty scans list says why it is empty.

    Until it first opens it holds only its close button: its parts (four tables and a figure,
    half of the page's models) are in the document from the start, named as always, but the
    browser builds their views only when they join the drawer (``js/open_scans.js``, or
    :meth:`fill` when the source panel opens), not on every page load.
    """

    def __init__(
        self, doc: Document, scans: ColumnDataSource, plot: Any, panel: SourcePanel, scan_root: Path
    ) -> None:
        self.scans = scans
        self.scan_root = scan_root
        self.plot = plot
        self.panel = panel
        self.button = Toggle(label="scans", name="scans-button", width=110, active=False)
        self.close_button = Button(label="close \u2715", name="close-drawer", width=90)
        self.note = Div(name="scans-note", render_as_text=True, disable_math=True)
        self.table = scans_table(scans, plot)
        self.scans_part = column(self.note, self.table, name="scans-part", sizing_mode="stretch_both")
        self.parts = [self.close_button, self.scans_part, panel.layout]
        self.layout = column(
            self.close_button,
            name="drawer",
            sizing_mode="stretch_height",
            # Inline styles win over the width Bokeh's layout computes for the element.
            styles={"width": DRAWER_WIDTH_CSS, "flex": "0 0 auto", "overflow-y": "auto"},
            visible=False,
        )
        parts = {
            "drawer": self.layout,
            "scans": self.scans_part,
            "source": panel.layout,
            "button": self.button,
            "parts": self.parts,
        }
        self.button.js_on_change("active", CustomJS(args=parts, code=script("open_scans")))
        self.close_button.js_on_click(CustomJS(args=parts, code=script("close_drawer")))
        panel.layout.on_change("visible", self._source_shown)
        scans.on_change("data", lambda _a, _o, _n: self.refresh())
        self.refresh()
        # The detector may start or stop while the page is open.
        doc.add_periodic_callback(self.refresh, NOTE_REFRESH_MS)

    def fill(self) -> None:
        """Put the drawer's parts in it (the browser builds their views now), once."""
        if len(self.layout.children) < len(self.parts):
            self.layout.children = list(self.parts)

    def _source_shown(self, _attr: str, _old: Any, new: Any) -> None:
        if new:
            self.fill()
            self.scans_part.visible = False
            self.button.active = False
            self.layout.visible = True

    def refresh(self) -> None:
        """The button's count, the legend's scan kinds and the note saying why no scans are listed."""
        kinds = [str(k) for k in self.scans.data.get("kind", [])]
        self.button.label = f"scans ({len(kinds)})"
        show_scan_kinds(self.plot, set(kinds))
        self.note.text = "" if kinds else self.why_empty()
        self.note.visible = not kinds

    def why_empty(self) -> str:
        if not heartbeat.running(self.scan_root):
            return (
                "no scans listed: the detector is not running (fireplot up runs it; "
                "alone: fireplot detect --follow)"
            )
        return "no scans yet in this view (the detector is running)"


def arrange(doc: Document, *parts: Any, plot: Any, drawer: Drawer) -> Column:
    """The page: ``parts`` in rows above the plot, which fills the rest of the window; the drawer
    beside it on the right.

    Also the page's theme and template: a black page around the black plot, or the dots'
    contrast is lost in a white frame.
    """
    layout = column(
        *parts,
        row(plot, drawer.layout, sizing_mode="stretch_both", name="plot-row"),
        sizing_mode="stretch_both",
        name="page",
        # The template gives this root what the window has left (templates/index.html).
        css_classes=["fireplot-page"],
    )
    doc.add_root(layout)
    doc.theme = Theme(json=style.theme_json())
    doc.template = resources.template()
    doc.template_variables.update(
        background=style.BACKGROUND, foreground=style.FOREGROUND, plot_backend=script("plot_backend")
    )
    return layout


def _table(**kw: Any) -> DataTable:
    """A read-only table in the plot's colours. Its columns keep their widths and the table scrolls
    sideways in a narrow drawer, rather than squeezing every cell to a few letters."""
    return DataTable(
        autosize_mode="none",
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
