"""The page's "CSV of visible events" button: the events in view, read off the event loop and
handed to the browser once, under a name that says what they are.

The rows and their escaping are :mod:`.export`'s; this module is the button's round trip: read in
a worker thread, put the text where ``js/download_csv.js`` picks it up, drop it again once the
browser has it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from functools import partial
from typing import Final

from bokeh.document import Document

from consumers.web import export
from consumers.web.controls import Controls
from consumers.web.feeds.filters import Filters
from pipeline.enrich import Enricher
from pipeline.store import Store

log = logging.getLogger(__name__)

# Rows one CSV export may carry; past it the operator is asked to zoom in.
EXPORT_LIMIT: Final = 1_000_000
# How long the session keeps a CSV for the browser to take.
CSV_KEEP_MS: Final = 10_000


class CsvDownload:
    """The export button of one page. ``view`` says what the page shows when the button is
    pressed: (start, end, lowest port, highest port, site, filters, name of the site part);
    ``tell`` shows a line to the operator."""

    def __init__(
        self,
        doc: Document,
        store: Store,
        controls: Controls,
        view: Callable[[], tuple[dt.datetime, dt.datetime, float, float, str | None, Filters, str]],
        tell: Callable[[str], None],
        enricher: Enricher | None = None,
    ) -> None:
        self.doc, self.store, self.controls, self.enricher = doc, store, controls, enricher
        self._view, self._tell = view, tell
        controls.csv_button.on_click(self._export)

    def _export(self) -> None:
        self.doc.add_next_tick_callback(self._on_export)  # type: ignore[arg-type]  # Bokeh awaits coroutines

    async def _on_export(self) -> None:
        start, end, y0, y1, site, filters, site_part = self._view()
        read = partial(
            export.visible_events, self.store, start, end, y0, y1, site, filters, EXPORT_LIMIT, self.enricher
        )
        button = self.controls.csv_button
        button.disabled = True
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
            button.disabled = False
        stamp = f"{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}"
        name = f"fireplot-{site_part}-{stamp}" + (f"-{filters.slug()}" if filters else "")
        self.controls.csv.data = {"csv": [text], "name": [f"{name}.csv"]}
        # Once the browser has it, the session need not keep megabytes of CSV alive.
        self.doc.add_timeout_callback(self._drop_csv, CSV_KEEP_MS)

    def _drop_csv(self) -> None:
        self.controls.csv.data = {"csv": [""], "name": [""]}
