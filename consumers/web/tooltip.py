"""The plot's tooltip: one line per dot under the cursor, a few at most, pinned by a click.

Bokeh's own tooltip lists every dot under the cursor with one row per field, taller than the
screen on a busy spot. This one (``js/tooltip_*.js``) writes one line per dot, nearest first:
time, source -> protocol/port (service), action, site/host, prefix and the scan the dot belongs
to, then "+N more here". A click pins it until Escape or another click. Text only, never markup.
"""

from __future__ import annotations

from typing import Any, Final

from bokeh.events import MouseLeave, Tap
from bokeh.models import ColumnDataSource, CustomJS, HoverTool
from bokeh.models.renderers import DataRenderer

from consumers import style
from consumers.web.resources import script

# Lines for dots; past them one more line says how many dots were left out.
MAX_LINES: Final = 5
# How near the cursor a dot's centre must be, in screen pixels (the dots are DOT_SIZE wide).
RADIUS_PX: Final = style.DOT_SIZE + 3


def attach(
    plot: Any, renderers: list[DataRenderer], events: ColumnDataSource, scans: ColumnDataSource, zone: str
) -> HoverTool:
    """Add the hover tool and the pin/unpin callbacks to ``plot``; returns the tool (its callback's
    ``args["zone"]`` follows the page's zone)."""
    hover = HoverTool(
        renderers=renderers,
        tooltips=None,
        callback=CustomJS(
            args={
                "events": events,
                "scans": scans,
                "plot": plot,
                "renderers": renderers,
                "zone": zone,
                "limit": MAX_LINES,
                "radius": RADIUS_PX,
            },
            code=script("tooltip_box", "tooltip_hover"),
        ),
    )
    plot.add_tools(hover)
    plot.js_on_event(Tap, CustomJS(code=script("tooltip_box", "tooltip_tap")))
    plot.js_on_event(MouseLeave, CustomJS(code=script("tooltip_box", "tooltip_leave")))
    return hover


def set_zone(hover: HoverTool, zone: str) -> None:
    callback = hover.callback
    if isinstance(callback, CustomJS):
        callback.args = {**callback.args, "zone": zone}
