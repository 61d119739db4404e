"""The page's status strip: which sites send, which went silent, is the worker writing.

"Health" in fireplot is site liveness, computed by the worker (:mod:`pipeline.health`); this
strip only shows it. The worker computes per-site health every ``[health] interval_s`` and writes
it to ``<store>/_health/sites.json`` (``pipeline.health``); the page only
reads that snapshot, so a hundred open pages cost a hundred small file reads,
not a hundred store scans, and the page needs no Kafka access. Ages and the
silent flag are re-evaluated against the page's clock on every refresh, so a
site that goes quiet is flagged even while the snapshot is not renewed; a
snapshot that is not renewed is itself reported (the worker is down).

Site names come from the store, i.e. from whoever shipped the events: they are
shown in a DataTable cell (text, never markup).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any, Final

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource
from bokeh.models.css import InlineStyleSheet
from bokeh.models.widgets.buttons import Toggle
from bokeh.models.widgets.markups import Div
from bokeh.models.widgets.tables import DataTable, StringFormatter, TableColumn

from consumers import style
from pipeline import datasets
from pipeline.config import WebConfig
from pipeline.health import duration_text, read_snapshot
from pipeline.store import Store

log = logging.getLogger(__name__)

SOURCE_NAME: Final = "site-health"
SILENT_COLOUR: Final = "#ff0000"
OK_COLOUR: Final = "#00a000"
COLUMNS: Final = ("site", "last_event", "age", "usual_gap", "events_per_min", "rejects", "status", "colour")
# A snapshot older than this many refresh intervals means the worker stopped writing it.
STALE_INTERVALS: Final = 3


def _parse(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def table_data(snapshot: dict[str, Any] | None, now: dt.datetime) -> tuple[dict[str, list[Any]], str]:
    """The table's columns and the line above it, from a snapshot, evaluated at ``now``."""
    data: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    if snapshot is None:
        return data, "site health: no report yet (the worker writes one every few seconds)"
    for s in snapshot.get("sites", []):
        last = _parse(s.get("last_event"))
        age = None if last is None else max(0.0, (now - last).total_seconds())
        silent_after = float(s.get("silent_after_s") or 0.0)
        silent = age is None or age > silent_after
        data["site"].append(str(s.get("site", "")))
        data["last_event"].append("-" if last is None else last.strftime("%Y-%m-%d %H:%M:%S"))
        data["age"].append(duration_text(age))
        data["usual_gap"].append(duration_text(float(s.get("usual_gap_s") or 0.0)))
        data["events_per_min"].append(f"{float(s.get('events_per_min') or 0.0):.1f}")
        data["rejects"].append(f"{int(s.get('rejects_shipper') or 0)} / {int(s.get('rejects_worker') or 0)}")
        data["status"].append("SILENT" if silent else "ok")
        data["colour"].append(SILENT_COLOUR if silent else OK_COLOUR)
    silent_n = data["status"].count("SILENT")
    computed = _parse(snapshot.get("computed_at"))
    parts = [f"site health: {len(data['site'])} sites, {silent_n} silent"]
    lag = snapshot.get("consumer_lag") or {}
    if isinstance(lag, dict) and lag:
        parts.append("consumer lag " + ", ".join(f"{t} {n}" for t, n in sorted(lag.items())))
    if computed is not None:
        old = (now - computed).total_seconds()
        interval = float(snapshot.get("interval_s") or 5.0)
        if old > STALE_INTERVALS * interval + 10:
            parts.append(f"report is {duration_text(old)} old: is the worker running?")
    return data, "; ".join(parts)


def line_colour(snapshot: dict[str, Any] | None, data: dict[str, list[Any]], line: str) -> str:
    """The status line's colour: red when a site is silent or the worker stopped reporting,
    green when every site sends, grey while there is no report to judge."""
    if snapshot is None:
        return style.FOREGROUND
    if "SILENT" in data["status"] or "is the worker running" in line:
        return SILENT_COLOUR
    return OK_COLOUR


def live_root(store: Store) -> Path:
    """The live archive's root, also for a page showing a dataset (``<live>/datasets/NAME``):
    health is about the sites feeding the archive, whichever dataset is on screen."""
    root = store.root
    if root.parent.name == datasets.DATASETS_DIR:
        return root.parent.parent
    return root


class StatusStrip:
    """A status line and a table of sites, refreshed from the worker's snapshot.

    A store limited to some sites (the session user's, ``allowed_sites``) limits
    the table to them too."""

    def __init__(self, store: Store, web: WebConfig) -> None:
        self.root = live_root(store)
        self.allowed: frozenset[str] | None = getattr(store, "allowed_sites", None)
        self.web = web
        self.source = ColumnDataSource(data={c: [] for c in COLUMNS}, name=SOURCE_NAME)
        self.status = Div(name="site-health-status", render_as_text=True, disable_math=True)
        text = StringFormatter()
        self.table = DataTable(
            source=self.source,
            name="site-health-table",
            columns=[
                TableColumn(field="site", title="site", formatter=text),
                TableColumn(field="last_event", title="last event (UTC)", formatter=text),
                TableColumn(field="age", title="age", formatter=text),
                TableColumn(field="usual_gap", title="usual gap", formatter=text),
                TableColumn(field="events_per_min", title="events/min", formatter=text),
                TableColumn(field="rejects", title="rejects shipper / worker", formatter=text),
                TableColumn(
                    field="status",
                    title="status",
                    formatter=StringFormatter(text_color="colour", font_style="bold"),
                ),
            ],
            index_position=None,
            height=140,
            sizing_mode="stretch_width",
            stylesheets=[InlineStyleSheet(css=style.TABLE_CSS)],
            visible=False,
        )
        # One coloured line; the per-site table only on demand, so the plot keeps the screen.
        self.details = Toggle(label="site details", name="site-health-details", width=110)
        self.details.js_link("active", self.table, "visible")
        self.layout = column(
            row(self.details, self.status), self.table, sizing_mode="stretch_width", name="status-strip"
        )
        self._filled = False
        self.table.on_change("visible", lambda _a, _o, shown: self.refresh() if shown else None)

    def refresh(self) -> None:
        snapshot = read_snapshot(self.root)
        if snapshot is not None and self.allowed is not None:
            allowed = self.allowed
            snapshot["sites"] = [s for s in snapshot.get("sites", []) if s.get("site") in allowed]
            snapshot["consumer_lag"] = {}  # topics would name other users' sites
        data, line = table_data(snapshot, dt.datetime.now(dt.UTC))
        # Only what changed, and the table only while it is shown: in the browser every change
        # here lays the page out again and repaints the plot, seconds at 150k dots in software
        # WebGL (its ages change at every refresh). Filled once as the page is built.
        if (self.table.visible or not self._filled) and data != self.source.data:
            self.source.data = data
        self._filled = True
        if line != self.status.text:
            self.status.text = line
        styles: dict[str, str | None] = {"color": line_colour(snapshot, data, line), "padding-top": "4px"}
        if styles != self.status.styles:
            self.status.styles = styles


def attach(doc: Document, store: Store, web: WebConfig) -> StatusStrip:
    """Add the status strip to a page and keep it fresh while the page is open."""
    strip = StatusStrip(store, web)
    strip.refresh()
    doc.add_root(strip.layout)
    doc.add_periodic_callback(strip.refresh, max(web.refresh_interval_ms, 1000))
    return strip
