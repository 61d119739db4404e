"""The top talkers of the visible range on the page: sources, ASNs, countries, under the scans list.

The numbers are ``fireplot top``'s (:func:`pipeline.top.top_by`): exact events,
distinct ports, targets and sources per key over the view's time range and
site, from the ``talker_hour`` rollup where an hour is whole and current, from
the events otherwise. Read off the event loop when a view loads while the drawer's scans list is
open, or when it is opened (not on each live addition, and not at all while
it is closed: a view's load never waits on it). Without ``[enrich] databases`` only sources are ranked and the
note says ASN and country are off. Every cell is text from the store or a
database file, shown as text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from bokeh.document import Document
from bokeh.layouts import column
from bokeh.models import ColumnDataSource
from bokeh.models.css import InlineStyleSheet
from bokeh.models.widgets.markups import Div
from bokeh.models.widgets.tables import DataTable, NumberFormatter, StringFormatter, TableColumn

from consumers import style
from consumers.web.drawer import Drawer
from pipeline.enrich import Enricher
from pipeline.store import Store
from pipeline.top import Key, top_by

log = logging.getLogger(__name__)

# Rows per kind.
LIMIT: Final = 5
_KINDS: Final[dict[str, str]] = {"src": "source", "asn": "ASN", "country": "country"}
_TEXT: Final = ("kind", "key", "about")
_NUMBERS: Final = ("events", "ports", "targets", "sources")


def empty() -> dict[str, list[Any]]:
    return {name: [] for name in (*_TEXT, *_NUMBERS)}


def read_top(
    store: Store, enricher: Enricher, start: dt.datetime, end: dt.datetime, site: str | None
) -> tuple[dict[str, list[Any]], str]:
    """The table's rows for [start, end) and one line about them."""
    keys: list[Key] = ["src", "asn", "country"] if enricher.has_geo else ["src"]
    try:
        reports = top_by(store, enricher, start, end, keys, [site] if site else None, LIMIT)
    except ValueError as exc:
        return empty(), f"top talkers: {exc}"
    out = empty()
    for by in keys:
        for row in reports[by].rows.to_pylist():
            key = row["key"]
            if by == "asn":
                text, about = (f"AS{key}", row.get("as_org") or "") if key is not None else ("unknown", "")
            elif by == "country":
                text, about = key or "unknown", ""
            else:
                asn = row.get("src_asn")
                who = [f"AS{asn} {row.get('src_as_org') or ''}".strip() if asn is not None else "",
                       row.get("src_country") or "", row.get("src_scanner") or ""]  # fmt: skip
                text, about = str(key), ", ".join(w for w in who if w)
            out["kind"].append(_KINDS[by])
            out["key"].append(text)
            out["about"].append(about)
            for name in _NUMBERS:
                out[name].append(int(row[name]))
    note = f"top talkers of this view ({LIMIT} a kind, exact)"
    if not enricher.has_geo:
        note += "; ASN and country: off (no [enrich] databases configured)"
    return out, note


class TopTable:
    """The table and its note, placed under the drawer's scans list by the page."""

    def __init__(self) -> None:
        self.note = Div(name="top-note", render_as_text=True, disable_math=True, text="")
        self.source = ColumnDataSource(data=empty(), name="top-talkers")
        columns = [
            TableColumn(field="kind", title="by", width=60, formatter=StringFormatter()),
            TableColumn(field="key", title="who", width=130, formatter=StringFormatter()),
            TableColumn(field="about", title="network", width=170, formatter=StringFormatter()),
            *(
                TableColumn(field=n, title=n, width=60, formatter=NumberFormatter(format="0,0"))
                for n in _NUMBERS
            ),
        ]
        self.table = DataTable(
            source=self.source,
            columns=columns,
            name="top-table",
            # Readable columns, scrolled sideways in a narrow drawer (as layout's tables).
            autosize_mode="none",
            index_position=None,
            reorderable=False,
            editable=False,
            stylesheets=[InlineStyleSheet(css=style.TABLE_CSS)],
            height=230,
            sizing_mode="stretch_width",
        )
        self.layout = column(self.note, self.table, name="top-part", sizing_mode="stretch_width")

    def show(self, data: dict[str, list[Any]], note: str) -> None:
        self.source.data = data
        self.note.text = note


class TopTalkers:
    """The table under the drawer's scans list, kept for the view on screen. Read only while the
    list is open (or when it opens): a view's loads never share the machine with it otherwise.
    ``view`` says what is on screen: (generation, start, end, site); a read started for an
    older generation is dropped."""

    def __init__(
        self,
        doc: Document,
        store: Store,
        enricher: Enricher,
        drawer: Drawer,
        view: Callable[[], tuple[int, dt.datetime, dt.datetime, str | None]],
    ) -> None:
        self.doc, self.store, self.enricher, self.drawer, self._view = doc, store, enricher, drawer, view
        self.table = TopTable()
        drawer.scans_part.children.append(self.table.layout)
        self._stale = True
        drawer.button.on_change("active", self._on_drawer)

    def _on_drawer(self, _attr: str, _old: Any, active: Any) -> None:
        if active:
            self._refresh_if_stale()

    def view_changed(self) -> None:
        """A new view is on screen: read its top talkers now if the list is open, else when it opens."""
        self._stale = True
        if self.drawer.button.active:
            self._refresh_if_stale()

    def _refresh_if_stale(self) -> None:
        if self._stale:
            self.doc.add_next_tick_callback(partial(self._refresh, self._view()))  # type: ignore[arg-type]  # Bokeh awaits coroutines

    async def _refresh(self, view: tuple[int, dt.datetime, dt.datetime, str | None]) -> None:
        generation, start, end, site = view
        read = partial(read_top, self.store, self.enricher, start, end, site)
        try:
            data, note = await asyncio.get_running_loop().run_in_executor(None, read)
        except Exception:
            log.exception("reading the top talkers failed")
            data, note = empty(), "top talkers: could not be read (details in the server log)"
        if generation == self._view()[0]:
            self.table.show(data, note)
            self._stale = False
