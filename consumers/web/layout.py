"""What the page looks like: the day plot, its tables, the source panel and how they are arranged.

Only models and their looks are built here (colours and sizes come from :mod:`consumers.style`);
what they show and when it changes is the page's (:mod:`consumers.web.page`). Every text that
may come from the store or the address is shown as text, never markup: Divs render as text,
table cells go through StringFormatter, the hover tool escapes ``@field`` values.
"""

from __future__ import annotations

from typing import Any, Final

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
    Range1d,
    SaveTool,
)
from bokeh.models.annotations.legends import Legend, LegendItem
from bokeh.models.css import InlineStyleSheet
from bokeh.models.layouts import Column
from bokeh.models.renderers import DataRenderer, GlyphRenderer
from bokeh.models.widgets.buttons import Button
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

SOURCE_NAME: Final = "events"

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


def message(name: str, visible: bool = True) -> Div:
    """A line of text above the plot; what it says may come from the store or the URL."""
    return Div(name=name, render_as_text=True, disable_math=True, visible=visible)


def hover_time(zone: str) -> CustomJSHover:
    """The hover's time, to the millisecond, in ``zone`` (set its ``args`` to change zone)."""
    return CustomJSHover(args={"zone": zone}, code=script("zoned_parts", "hover_time"))


def tick_time(zone: str) -> CustomJSTickFormatter:
    """The time axis's labels in ``zone`` (set its ``args`` to change zone)."""
    return CustomJSTickFormatter(args={"zone": zone}, code=script("zoned_parts", "tick_time"))


def day_figure(
    source: ColumnDataSource,
    scans: ColumnDataSource,
    save_tool: SaveTool,
    ticks: CustomJSTickFormatter,
    x_range: tuple[float, float],
) -> tuple[Any, list[DataRenderer]]:
    """The plot: a dot per event (or bin) of ``source`` in its series' colour, and the scans' outlines.

    Returns the figure and the dots' renderers (one per series), which hovering and tapping use.
    """
    plot = figure(
        name="day-plot",
        x_axis_type="datetime",
        y_axis_type="log",
        x_range=Range1d(start=x_range[0], end=x_range[1]),
        y_range=Range1d(start=style.Y_RANGE[0], end=style.Y_RANGE[1], bounds=style.Y_RANGE),
        # Stack notes section 5: WebGL draws log-axis scatters in Bokeh 3.9.
        output_backend="webgl",
        tools=["xpan", "xwheel_zoom", "box_zoom", "reset", save_tool],
        active_scroll="xwheel_zoom",
        height=640,
        sizing_mode="stretch_width",
    )
    plot.xaxis.axis_label = "time (UTC)"
    plot.xaxis.formatter = ticks
    plot.yaxis.axis_label = "destination port"
    plot.yaxis.ticker = FixedTicker(ticks=list(style.Y_TICKS), minor_ticks=[])
    labels: dict[Any, Any] = dict(style.Y_TICK_LABELS)
    plot.yaxis.major_label_overrides = labels
    plot.toolbar.logo = None
    renderers: list[DataRenderer] = []
    items: list[LegendItem] = []
    for series, colour in style.COLOURS.items():
        renderer: GlyphRenderer[Any] = plot.scatter(
            "ts",
            "y",
            source=source,
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
        )
        outlines: list[Any] = [outline]
        items.append(LegendItem(label=f"scan: {kind}", renderers=outlines))
    legend = Legend(items=items, click_policy="hide", location="top_left")
    plot.add_layout(legend, "right")
    return plot, renderers


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
            _number_column("packets", "packets"),
            _text_column("sites", "sites", 80),
        ],
        width=560,
        height=640,
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
        timeline = figure(
            name="source-timeline-plot",
            x_axis_type="datetime",
            x_range=plot.x_range,
            height=140,
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
            width=560,
            height=220,
        )
        scans = _table(
            source=self.scans,
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
            sizing_mode="stretch_width",
            height=240,
        )
        self.layout = column(
            row(self.title, self.filter_button, self.clear_button),
            timeline,
            row(ports, scans),
            events,
            name="source-panel",
            visible=False,
            sizing_mode="stretch_width",
        )

    def show(self, detail: drill.SourceDetail) -> None:
        self.title.text = detail.summary()
        self.timeline.data = detail.timeline
        self.ports.data = detail.ports
        self.events.data = detail.recent
        self.scans.data = detail.scans
        self.layout.visible = True


def arrange(doc: Document, *parts: Any, plot: Any, beside: Any, below: Any) -> Column:
    """The page: ``parts`` in rows above the plot, ``beside`` it on the right, ``below`` it.

    Also the page's theme and template: a black page around the black plot, or the dots'
    contrast is lost in a white frame.
    """
    layout = column(
        *parts,
        row(plot, beside, sizing_mode="stretch_width"),
        below,
        sizing_mode="stretch_width",
    )
    doc.add_root(layout)
    doc.theme = Theme(json=style.theme_json())
    doc.template = resources.template()
    doc.template_variables.update(background=style.BACKGROUND, foreground=style.FOREGROUND)
    return layout


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
