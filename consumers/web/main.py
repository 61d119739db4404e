"""The Bokeh application's entry: one session's page, from its address to its first view.

:func:`build_document` is what the server (:mod:`consumers.web.server`) runs for every new
browser session. It resolves what the address asks for (:mod:`.address`) against the store the
session may see (a dataset, a signed-in user's sites), then lays out the status strip and the
page (:mod:`.page`) and starts the first load.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bokeh.document import Document

from consumers.web import auth, status_strip
from consumers.web.address import PageRequest
from consumers.web.page import DayPage
from pipeline import datasets
from pipeline.config import WebConfig
from pipeline.enrich import Enricher
from pipeline.store import Store


def build_document(
    doc: Document,
    *,
    store: Store,
    web: WebConfig,
    default_date: dt.date | None,
    scans_dir: Path | None = None,
    enricher: Enricher | None = None,
) -> None:
    """Bokeh FunctionHandler entry: lay out one session's page from its URL arguments.

    ``scans_dir`` is the scan dataset ([detect] scans_dir); None means
    ``<store>/scans``, the detector's default.
    """
    names = datasets.names(store.root)
    request = PageRequest.read(doc, default_date, names)
    scan_root = scans_dir or store.root / "scans"
    if request.dataset != datasets.MAIN:
        store = Store(datasets.root(store.root, request.dataset))
        scan_root = store.root / "scans"
    # A user with a site allow-list gets a store whose every scan is limited to those sites.
    store = auth.scoped(store, doc)
    sites = store.sites()
    request.check_site(sites)
    # One recompute of the document's models at the end rather than one per root added
    # (each is a walk over every model: seconds per page on a busy machine).
    with doc.models.freeze():
        # Site liveness of the live archive, limited to this user's sites.
        status_strip.attach(doc, store, web)
        page = DayPage(doc, store, web, sites, names, request.dataset, scan_root=scan_root, enricher=enricher)
        page.open(request)
