"""The page as a whole in the browser: Back/Forward, the back/forward cache, keys, accessible names
and the banner when the server connection drops (``js/page_ready.js``, ``js/connection_lost.js``).

What each entry of the history holds is the address's (:mod:`.address`); this wires the browser
events to it and to the controls.
"""

from __future__ import annotations

from typing import Any

from bokeh.document import Document
from bokeh.events import ConnectionLost, DocumentReady
from bokeh.models import ColumnDataSource, CustomJS

from consumers.web.controls import LABELS, Controls
from consumers.web.resources import script


def attach(doc: Document, controls: Controls, plot: Any, returned: ColumnDataSource) -> None:
    """Run the page's browser script once the document is ready, and the banner on a lost connection."""
    args: dict[str, Any] = {
        "returned": returned,
        "dataset": controls.dataset_select,
        "prev": controls.prev_button,
        "next": controls.next_button,
        "plot": plot,
        "finder": controls.networks,
        "labels": dict(LABELS),
    }
    doc.js_on_event(DocumentReady, CustomJS(args=args, code=script("page_ready")))
    doc.js_on_event(ConnectionLost, CustomJS(code=script("connection_lost")))
