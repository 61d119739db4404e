"""Run the day page on a Bokeh server, started from Python rather than ``bokeh serve``.

``serve`` is what ``fireplot web`` calls; ``make_server`` builds the same
server without running it, for tests and for embedding.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial
from pathlib import Path

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.server.server import Server
from tornado.ioloop import IOLoop

from consumers.web.main import build_document
from pipeline.config import Config
from pipeline.store import Store

log = logging.getLogger(__name__)


def websocket_origins(cfg: Config) -> list[str]:
    """Origins whose pages may open the session websocket: the bound address, localhost, extras."""
    web = cfg.web
    # Bokeh's allowlist cannot spell an IPv6 literal ("[::1]:5006" has too many
    # colons), so such a bind address is reached through localhost or the extras.
    bound = [] if ":" in web.address else [f"{web.address}:{web.port}"]
    origins = [*bound, f"localhost:{web.port}", *web.allow_websocket_origins]
    return list(dict.fromkeys(origins))


def make_application(cfg: Config, date: dt.date | None = None) -> Application:
    """The Bokeh application: one day page per browser session, reading cfg's store."""
    store = Store(Path(cfg.worker.store_dir))
    handler = FunctionHandler(partial(build_document, store=store, web=cfg.web, default_date=date))
    return Application(handler)


def make_server(cfg: Config, date: dt.date | None = None, *, io_loop: IOLoop | None = None) -> Server:
    """A Bokeh server bound to cfg.web.address:cfg.web.port serving the page at ``/``.

    The server is bound but not started: call ``start()`` and run its IOLoop.
    ``date`` is the day shown when the URL names none; None means today (UTC).
    """
    store_dir = Path(cfg.worker.store_dir)
    if not store_dir.is_dir():
        log.warning("store directory %s does not exist (yet): pages will be empty", store_dir)
    return Server(
        {"/": make_application(cfg, date)},
        address=cfg.web.address,
        port=cfg.web.port,
        allow_websocket_origin=websocket_origins(cfg),
        io_loop=io_loop,
    )


def serve(cfg: Config, date: dt.date | None, open_browser: bool = False) -> None:
    """Serve the day page until interrupted (Ctrl-C or SIGTERM); blocks."""
    server = make_server(cfg, date)
    server.start()
    url = f"http://{cfg.web.address}:{server.port}/"
    log.info("fireplot web serving %s from store %s", url, cfg.worker.store_dir)
    if open_browser:
        server.io_loop.add_callback(server.show, "/")
    server.run_until_shutdown()
