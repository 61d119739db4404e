"""A dot picked on the plot: its source's events, ports and scans opened in the source panel.

The page's raw dots reach the browser packed (:mod:`.transfer`), so the server-side data source
holds only streamed rows; the addresses of the dots on screen, in the browser's row order, are
kept here to find a tapped row's source. A dot that stands for many events (a screen bin) has
none: the operator is told to zoom in. The panel's read runs off the event loop and is dropped
if the operator moved on to another view meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from bokeh.document import Document
from bokeh.models.widgets.inputs import TextInput

from consumers.web import drawer, drill, whois
from pipeline.enrich import Enricher
from pipeline.store import Store

log = logging.getLogger(__name__)

# (generation, start, end, site) of the view on screen.
View = tuple[int, dt.datetime, dt.datetime, str | None]


class SourcePick:
    """The source panel of one page. ``view`` says what is on screen; ``opened`` runs once a
    source is shown (the page writes it into the address); ``tell`` shows a line."""

    def __init__(
        self,
        doc: Document,
        store: Store,
        scan_root: Path,
        enricher: Enricher,
        panel: drawer.SourcePanel,
        networks: TextInput,
        view: Callable[[], View],
        opened: Callable[[], None],
        tell: Callable[[str], None],
    ) -> None:
        self.doc, self.store, self.scan_root, self.enricher = doc, store, scan_root, enricher
        self.panel, self._view, self._opened, self._tell = panel, view, opened, tell
        self.source_ip: str | None = None
        self.shown_ips: list[npt.NDArray[Any]] = []
        panel.filter_button.on_click(lambda: self.source_ip and setattr(networks, "value", self.source_ip))
        panel.clear_button.on_click(lambda: setattr(networks, "value", ""))

    @property
    def shown(self) -> str | None:
        """The source the panel shows, if it is open."""
        return self.source_ip if self.panel.layout.visible else None

    def close(self) -> None:
        self.source_ip = None
        self.panel.layout.visible = False

    def on_tap(self, _attr: str, _old: Any, new: list[int]) -> None:
        if not new:
            return
        index = new[0]
        src = np.concatenate(self.shown_ips) if self.shown_ips else None
        if src is None or index >= len(src):
            self._tell("this dot counts many events: zoom in to pick a single source")
            return
        self.open(str(src[index]))

    def open(self, src_ip: str) -> None:
        """Show ``src_ip`` in the panel, for the view now on screen."""
        self.doc.add_next_tick_callback(partial(self._open, self._view(), src_ip))  # type: ignore[arg-type]  # Bokeh awaits coroutines

    async def _open(self, view: View, src_ip: str) -> None:
        generation, start, end, site = view
        read = partial(drill.source_detail, self.store, self.scan_root, src_ip, start, end, site)
        try:
            detail = await asyncio.get_running_loop().run_in_executor(None, read)
        except Exception:
            log.exception("reading source %s from the store failed", src_ip)
            self._tell("could not read the source's events (details in the server log)")
            return
        if generation != self._view()[0]:
            return
        self.source_ip = src_ip
        self.panel.show(detail)
        self.panel.title.text += " \u00b7 " + whois.describe(self.enricher, src_ip)
        self._opened()
