"""The panel beside the plot (the drawer): the view's scans table, or the source a clicked dot belongs to.

Only models and their looks are built here, as in :mod:`consumers.web.layout`. Every text that
may come from the store is shown as text, never markup: Divs render as text and table cells go
through StringFormatter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, CustomJS, CustomJSTickFormatter
from bokeh.models.css import InlineStyleSheet
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

from consumers import style
from consumers.web import drill
from consumers.web.layout import DRAWER_WIDTH_CSS, NOTE_REFRESH_MS, show_scan_kinds
from consumers.web.resources import script
from pipeline.detect import heartbeat


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
