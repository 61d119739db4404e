"""Run the day page on a Bokeh server, started from Python rather than ``bokeh serve``.

``serve`` is what ``fireplot web`` calls; ``make_server`` builds the same
server without running it, for tests and for embedding.

Security (details in :mod:`consumers.web.auth`): the server binds 127.0.0.1
unless told otherwise, and refuses any other address without users or tokens
and an explicit websocket origin allow-list. With authentication on, Bokeh's
session tokens are signed, so the per-user site scope the server writes into
them cannot be forged, and login cookies stay out of those tokens.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
from functools import partial
from pathlib import Path
from typing import Any

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.server.server import Server
from tornado.httputil import HTTPServerRequest
from tornado.ioloop import IOLoop

from consumers.web import auth
from consumers.web.main import build_document
from pipeline.config import Config
from pipeline.enrich import shared_enricher
from pipeline.store import Store, is_uri

log = logging.getLogger(__name__)


def websocket_origins(cfg: Config) -> list[str]:
    """Origins whose pages may open the session websocket.

    On loopback: the bound address, localhost and the extras. Exposed: only
    the configured extras, since the bind address (often 0.0.0.0) is not
    what a browser's Origin header says.
    """
    web = cfg.web
    if not auth.is_loopback(web.address):
        return list(dict.fromkeys(web.allow_websocket_origins))
    # Bokeh's allowlist cannot spell an IPv6 literal ("[::1]:5006" has too many
    # colons), so such a bind address is reached through localhost or the extras.
    bound = [] if ":" in web.address else [f"{web.address}:{web.port}"]
    origins = [*bound, f"localhost:{web.port}", *web.allow_websocket_origins]
    return list(dict.fromkeys(origins))


class _ScopedApplication(Application):
    """The Bokeh application, adding the requesting user's site scope to each session token."""

    def __init__(self, handler: FunctionHandler, authenticator: auth.Authenticator | None) -> None:
        super().__init__(handler)
        self._authenticator = authenticator

    def process_request(self, request: HTTPServerRequest) -> dict[str, Any]:
        data: dict[str, Any] = super().process_request(request)
        if self._authenticator is not None:
            data.update(self._authenticator.session_scope(request))
        return data


def make_application(
    cfg: Config, date: dt.date | None = None, authenticator: auth.Authenticator | None = None
) -> Application:
    """The Bokeh application: one day page per browser session, reading cfg's store."""
    store = Store(cfg.worker.store_dir)  # a directory or an object-store URI
    # The detector's dataset; unset, build_document looks beside the store it shows.
    scans_dir = Path(cfg.detect.scans_dir) if cfg.detect.scans_dir else None
    # [enrich] files are opened here, at start: a missing or corrupt database stops the server
    # with a ConfigError naming it; one enricher (and address cache) for every session.
    enricher = shared_enricher(cfg.enrich)
    handler = FunctionHandler(
        partial(
            build_document,
            store=store,
            web=cfg.web,
            default_date=date,
            scans_dir=scans_dir,
            enricher=enricher,
        )
    )
    return _ScopedApplication(handler, authenticator)


def make_server(cfg: Config, date: dt.date | None = None, *, io_loop: IOLoop | None = None) -> Server:
    """A Bokeh server bound to cfg.web.address:cfg.web.port serving the page at ``/``.

    The server is bound but not started: call ``start()`` and run its IOLoop.
    ``date`` is the day shown when the URL names none; None means today (UTC).
    Raises ConfigError when the address is exposed without authentication.
    """
    credentials = auth.Credentials.from_config(cfg.web)
    auth.check_exposure(cfg.web, credentials)
    store_dir = Path(cfg.worker.store_dir)
    if not is_uri(cfg.worker.store_dir) and not store_dir.is_dir():
        log.warning("store directory %s does not exist (yet): pages will be empty", store_dir)
    security: dict[str, Any] = {}
    authenticator = None
    if credentials.enabled:
        secret = auth.secret_of(cfg.web)
        authenticator = auth.Authenticator(credentials, secret, cfg.web.login_max_age_s)
        security = {
            "auth_provider": auth.FireplotAuth(authenticator),
            "cookie_secret": secret,
            "xsrf_cookies": True,
            # Signed session tokens: the site scope in them cannot be edited by the browser.
            "sign_sessions": True,
            "secret_key": secret.encode("utf-8"),
            # Session tokens sit in the page; the login cookie and bearer token must not.
            "exclude_cookies": [auth.COOKIE, "_xsrf"],
            "exclude_headers": ["Authorization", "Cookie"],
        }
        log.info(
            "web sign-in required: %d user(s), %d token(s), %d with a site allow-list",
            len(credentials.passwords),
            len(credentials.tokens),
            len(credentials.sites),
        )
    return Server(
        {"/": make_application(cfg, date, authenticator)},
        address=cfg.web.address,
        port=cfg.web.port,
        allow_websocket_origin=websocket_origins(cfg),
        io_loop=io_loop,
        **security,
    )


def serve(cfg: Config, date: dt.date | None, open_browser: bool = False) -> None:
    """Serve the day page until interrupted (Ctrl-C or SIGTERM); blocks."""
    server = make_server(cfg, date)
    # Bokeh runs a full gc.collect() on the event loop for every session it discards: with the
    # libraries (Bokeh, pyarrow, numpy) in the young generations that was ~0.4 s of a loaded
    # server's loop per closed page, stalling every other page. Frozen, they are never walked.
    gc.collect()
    gc.freeze()
    server.start()
    url = f"http://{cfg.web.address}:{server.port}/"
    log.info("fireplot web serving %s from store %s", url, cfg.worker.store_dir)
    if open_browser:
        server.io_loop.add_callback(server.show, "/")
    server.run_until_shutdown()
