"""What the page looks like: the day plot, its legend and notes, and how the page is arranged.

Only models and their looks are built here (colours and sizes come from :mod:`consumers.style`);
what they show and when it changes is the page's (:mod:`consumers.web.page`); the panel
beside the plot is :mod:`consumers.web.drawer`'s. Every text that
may come from the store or the address is shown as text, never markup: Divs render as text,
table cells go through StringFormatter, the hover tool escapes ``@field`` values.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from bokeh.models.layouts import Column
from bokeh.models.renderers import DataRenderer, GlyphRenderer
from bokeh.models.widgets.markups import Div
from bokeh.plotting import figure
from bokeh.themes import Theme

from consumers import style
from consumers.web import resources
from consumers.web.resources import script

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


def arrange(doc: Document, *parts: Any, plot: Any, drawer: Column) -> Column:
    """The page: ``parts`` in rows above the plot, which fills the rest of the window; the drawer
    (:class:`consumers.web.drawer.Drawer`'s layout) beside it on the right.

    Also the page's theme and template: a black page around the black plot, or the dots'
    contrast is lost in a white frame.
    """
    layout = column(
        *parts,
        row(plot, drawer, sizing_mode="stretch_both", name="plot-row"),
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
