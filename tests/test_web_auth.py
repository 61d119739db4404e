"""Web security on a real Bokeh server process: sign-in, tokens, origins and per-user sites.

The server runs as an operator would start it (``consumers.web.server.serve``
configured through FIREPLOT_* variables) on 127.0.0.1, with two users, one
restricted to site ``a``, and one access token. Requests are plain HTTP,
raw websocket handshakes, and headless Chromium signing in through the form.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from consumers.web import auth
from consumers.web.feeds.days import utc_today
from pipeline import datasets
from pipeline.config import ConfigError, WebConfig
from pipeline.event import conform
from pipeline.store import OffsetRange, Store
from tests.support import browser
from tests.support.browser import Chromium, wait_for
from tests.support.events import row
from tests.support.system import free_port

TOPIC = "fireplot.events"
# Only ever checked, never bound: the server must refuse it before binding.
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104
ALICE_PASSWORD = "alice-only-sees-a"  # noqa: S105  # a test user's password
BOB_PASSWORD = "bob-sees-everything"  # noqa: S105


def event(ts: dt.datetime, site: str, port: int, n: int) -> dict[str, Any]:
    return row(
        ts,
        n,
        site=site,
        host=f"fw-{site}",
        src_port=40000,
        dst_port=port,
        prefix="drop",
        source_id=f"{site}:log",
    )


def day_events(day: dt.date, site: str, count: int, port: int) -> pa.Table:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    rows = [event(start + dt.timedelta(minutes=7 * n), site, port + n % 3, n) for n in range(count)]
    return conform(pa.Table.from_pylist(rows))


@dataclass
class Server:
    url: str
    port: int
    day: dt.date
    token: str
    a_events: int
    b_events: int
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("webauth")
    store = Store(root / "store")
    day = utc_today()
    a, b = day_events(day, "a", 30, 443), day_events(day, "b", 20, 8080)
    store.write_flush(OffsetRange(TOPIC, 0, 0, 0), a)
    store.write_flush(OffsetRange(TOPIC, 1, 0, 0), b)
    # A replayed dataset holding only site b: switching to it must not show b to alice either.
    Store(datasets.root(store.root, "replay-b")).write_flush(OffsetRange(TOPIC, 0, 0, 0), b)

    token = auth.new_token()
    # Few PBKDF2 iterations keep the test fast; the format is the production one.
    users = [
        f"alice:{auth.hash_password(ALICE_PASSWORD, iterations=1000)}",
        f"bob:{auth.hash_password(BOB_PASSWORD, iterations=1000)}",
    ]
    env = {
        "FIREPLOT_WEB__USERS": ",".join(users),
        "FIREPLOT_WEB__TOKENS": f"ops:{auth.hash_token(token)}",
        "FIREPLOT_WEB__USER_SITES": "alice:a",
        "FIREPLOT_WEB__COOKIE_SECRET": secrets.token_urlsafe(40),
    }
    log = root / "server.log"
    with browser.web_server(store.root, log, env, ready_path="login") as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        yield Server(url, port, day, token, a.num_rows, b.num_rows, log)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """Status, headers and body of a GET, redirects not followed."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # http://127.0.0.1 only
    try:
        with opener.open(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")


def token_payload(page: str) -> dict[str, Any]:
    """The payload of the Bokeh session token embedded in a served page."""
    from bokeh.util.token import get_token_payload

    match = re.search(r'"token":\s*"([^"]+)"', page)
    assert match, "no session token in the page"
    return dict(get_token_payload(match.group(1)))


JS_SOURCE = """
const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
const s = doc && doc.get_model_by_name("summary");
if (!s || !s.text.includes(" event")) return null;
const src = doc.get_model_by_name("events");
return {site: Array.from(src.data.site), port: Array.from(src.data.port), summary: s.text,
        options: doc.get_model_by_name("site").options};
"""


def sign_in(driver: Any, server: Server, path: str, **fields: str) -> None:
    """Open ``path``, which must land on the sign-in form, and submit ``fields``."""
    from selenium.webdriver.common.by import By

    driver.get(server.url + path.lstrip("/"))
    wait_for("the sign-in form", lambda: "/login" in driver.current_url)
    for name, value in fields.items():
        driver.find_element(By.NAME, name).send_keys(value)
    driver.find_element(By.ID, "sign-in").click()


def page_data(driver: Any) -> dict[str, Any]:
    data: dict[str, Any] = wait_for("the plot's data", lambda: driver.execute_script(JS_SOURCE))
    return data


@pytest.fixture
def driver(chromium: Chromium) -> Iterator[Any]:
    with chromium() as d:
        yield d


# ---- plain HTTP and websocket ------------------------------------------------------


def test_request_without_credentials_is_redirected_to_sign_in(server: Server) -> None:
    """No cookie, or a wrong bearer token: a redirect to /login and no Bokeh session in the body."""
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        status, head, body = fetch(f"{server.url}?date={server.day.isoformat()}", headers)
        assert status == 302, headers
        assert head["Location"].startswith("/login?next=")
        assert "Bokeh" not in body and "token" not in body
    status, _, body = fetch(f"{server.url}login")
    assert status == 200 and 'name="password"' in body and "_xsrf" in body


def test_valid_bearer_token_gets_the_page_with_a_signed_scoped_session(server: Server) -> None:
    """A valid token gets the page; its signed session token names the user and keeps secrets out."""
    status, _, body = fetch(server.url, {"Authorization": f"Bearer {server.token}"})
    assert status == 200
    payload = token_payload(body)
    assert payload[auth.SCOPE_USER] == "ops" and payload[auth.SCOPE_SITES] is None
    assert server.token not in body
    assert "Authorization" not in payload["headers"] and auth.COOKIE not in payload["cookies"]


async def handshake(server: Server, origin: str, token: str | None, session: str = "not-a-token") -> int:
    """HTTP status of a raw websocket handshake on the session endpoint (101: accepted).

    ``session`` is the Bokeh session token offered in the subprotocol header;
    when the handshake is accepted, the server's first message must arrive.
    """
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Origin": origin} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = HTTPRequest(f"ws://127.0.0.1:{server.port}/ws", headers=headers, request_timeout=10)
    try:
        conn = await websocket_connect(request, subprotocols=["bokeh", session])
    except HTTPClientError as exc:
        return exc.code
    try:
        first = await asyncio.wait_for(conn.read_message(), timeout=10)
        assert first is not None, "the server closed an accepted session websocket"
    finally:
        conn.close()
    return 101


def session_token(server: Server) -> str:
    """A fresh, valid Bokeh session token, from the page served to the access token."""
    status, _, body = fetch(server.url, {"Authorization": f"Bearer {server.token}"})
    assert status == 200
    match = re.search(r'"token":\s*"([^"]+)"', body)
    assert match
    return match.group(1)


def test_websocket_from_a_foreign_origin_is_refused(server: Server) -> None:
    """With a valid session and sign-in, a foreign Origin gets 403; the allowed one gets the session."""
    valid = session_token(server)
    for origin in ("http://evil.example", f"http://localhost:{server.port}.evil.example"):
        assert asyncio.run(handshake(server, origin, server.token, valid)) == 403, origin
    assert asyncio.run(handshake(server, f"http://127.0.0.1:{server.port}", server.token, valid)) == 101


def test_websocket_without_credentials_is_refused_before_the_handshake(server: Server) -> None:
    """From an allowed origin but signed out (or with a wrong token), the handshake gets 403."""
    origin = f"http://127.0.0.1:{server.port}"
    assert asyncio.run(handshake(server, origin, None)) == 403
    assert asyncio.run(handshake(server, origin, "not-the-token")) == 403


# ---- in the browser ------------------------------------------------------------------


def test_wrong_password_is_refused_and_the_right_one_opens_the_page(driver: Any, server: Server) -> None:
    """The form refuses a wrong password (403, no session) and lets the right one through to the plot."""
    sign_in(driver, server, f"/?date={server.day.isoformat()}", user="bob", password="guess")  # noqa: S106
    # A wrong guess is answered after a deliberate delay: wait for the answer, not the form.
    wait_for("the refusal", lambda: "Wrong user name, password or token." in driver.page_source)
    assert driver.get_cookie(auth.COOKIE) is None
    assert driver.execute_script("return window.Bokeh === undefined")

    sign_in(driver, server, f"/?date={server.day.isoformat()}", user="bob", password=BOB_PASSWORD)
    data = page_data(driver)
    assert sorted(set(data["site"])) == ["a", "b"]
    assert len(data["site"]) == server.a_events + server.b_events
    cookie = driver.get_cookie(auth.COOKIE)
    assert cookie is not None and cookie["httpOnly"] is True


def test_user_restricted_to_site_a_never_receives_site_b(driver: Any, server: Server) -> None:
    """alice sees only site a: all sites, ?site=b and a dataset holding only b all give her no b event."""
    sign_in(driver, server, f"/?date={server.day.isoformat()}", user="alice", password=ALICE_PASSWORD)
    data = page_data(driver)
    assert data["site"] == ["a"] * server.a_events
    assert [o[0] if isinstance(o, list) else o for o in data["options"]] == ["", "a"]
    assert data["summary"].startswith(f"{server.a_events} events")

    driver.get(f"{server.url}?site=b&date={server.day.isoformat()}")
    data = page_data(driver)
    assert "b" not in data["site"] and len(data["site"]) == server.a_events

    driver.get(f"{server.url}?dataset=replay-b&date={server.day.isoformat()}")
    data = page_data(driver)
    assert data["site"] == []
    assert driver.execute_script("return Bokeh.documents[0].get_model_by_name('dataset').value") == "replay-b"


def test_token_signs_in_through_the_form(driver: Any, server: Server) -> None:
    """An access token typed into the form signs in as its name, with no site restriction."""
    sign_in(driver, server, f"/?date={server.day.isoformat()}", token=server.token)
    data = page_data(driver)
    assert sorted(set(data["site"])) == ["a", "b"]


# ---- starting the server -------------------------------------------------------------


def run_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FIREPLOT_")}
    return subprocess.run(
        [sys.executable, "-m", "fireplot", "--plain-logs", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=base | (env or {}),
    )


def test_exposed_address_without_authentication_refuses_to_start(tmp_path: Path) -> None:
    """Bound to every interface, the server exits 2 naming what is missing, before binding anything."""
    port = str(free_port())
    rv = run_serve("--address", EVERY_INTERFACE, "--port", port, "--store", str(tmp_path))
    assert rv.returncode == 2
    assert "not a loopback address" in rv.stderr
    assert "[web] users or [web] tokens" in rv.stderr and "allow_websocket_origins" in rv.stderr

    users = f"ops:{auth.hash_token('x')}"
    rv = run_serve("--address", EVERY_INTERFACE, "--port", port, env={"FIREPLOT_WEB__TOKENS": users})
    assert rv.returncode == 2
    assert "allow_websocket_origins" in rv.stderr and "users or" not in rv.stderr


class TestConfig:
    """Credentials and exposure rules, without a server."""

    def test_plain_password_in_config_is_rejected_without_echoing_it(self) -> None:
        """A users entry that is not a PBKDF2 hash is a config error that does not print the value."""
        web = WebConfig(users=("alice:hunter2hunter2",))
        with pytest.raises(ConfigError) as err:
            auth.Credentials.from_config(web)
        assert "alice" in str(err.value) and "hunter2" not in str(err.value)

    def test_site_list_for_an_unknown_name_is_rejected(self) -> None:
        """user_sites naming nobody is a typo that would silently restrict no one."""
        web = WebConfig(tokens=(f"ops:{auth.hash_token('t')}",), user_sites=("opz:a",))
        with pytest.raises(ConfigError, match="'opz'"):
            auth.Credentials.from_config(web)

    def test_exposed_with_users_and_origins_is_accepted(self) -> None:
        """Every interface is fine once sign-in and the websocket origins are configured."""
        web = WebConfig(
            address=EVERY_INTERFACE,
            users=(f"alice:{auth.hash_password('long enough', iterations=10)}",),
            allow_websocket_origins=("fireplot.lan:5006",),
        )
        credentials = auth.Credentials.from_config(web)
        auth.check_exposure(web, credentials)
        assert credentials.check_password("alice", "long enough")
        assert not credentials.check_password("alice", "long enougH")
        assert not credentials.check_password("mallory", "long enough")

    def test_exposed_without_sign_in_needs_the_explicit_opt_out(self) -> None:
        """allow_unauthenticated (a container behind a loopback-published port) still needs origins."""
        origins = ("localhost:5006",)
        web = WebConfig(address=EVERY_INTERFACE, allow_unauthenticated=True, allow_websocket_origins=origins)
        auth.check_exposure(web, auth.Credentials.from_config(web))
        web = WebConfig(address=EVERY_INTERFACE, allow_unauthenticated=True)
        with pytest.raises(ConfigError, match="allow_websocket_origins"):
            auth.check_exposure(web, auth.Credentials.from_config(web))

    @pytest.mark.parametrize(
        ("target", "expected"),
        [
            ("/?date=2026-01-01", "/?date=2026-01-01"),
            ("//evil.example/", "/"),
            ("/\\evil.example", "/"),
            ("https://evil.example/", "/"),
            ("", "/"),
        ],
    )
    def test_sign_in_only_redirects_to_this_server(self, target: str, expected: str) -> None:
        """The ?next= of the sign-in page cannot send the user to another site."""
        assert auth.safe_next(target) == expected


def test_the_password_policy_counts_characters() -> None:
    """A new password entry needs eight characters, whatever they are; seven are refused."""
    entry = auth.password_entry("zoë", "ü" * 8)

    assert entry.startswith("zoë:pbkdf2_sha256$")
    with pytest.raises(ValueError, match="at least 8 characters"):
        auth.password_entry("zoë", "ü" * 7)


def test_site_scoped_store_never_returns_other_sites(tmp_path: Path) -> None:
    """Every read of the scoped store, whatever sites it asks for, holds only the allowed ones."""
    store = Store(tmp_path / "store")
    day = dt.date(2026, 5, 1)
    store.write_flush(OffsetRange(TOPIC, 0, 0, 0), day_events(day, "a", 5, 22))
    store.write_flush(OffsetRange(TOPIC, 1, 0, 0), day_events(day, "b", 7, 80))
    scoped = auth.SiteScopedStore(store.root, frozenset({"a"}))
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)

    assert scoped.sites() == ["a"] and store.sites() == ["a", "b"]
    assert scoped.read(start, end).column("site").to_pylist() == ["a"] * 5
    assert scoped.read(start, end, sites=["b"]).num_rows == 0
    assert scoped.read(start, end, sites=["a", "b"]).num_rows == 5
    assert scoped.count() == 5 and store.count() == 12
    assert set(scoped.read_all().column("site").to_pylist()) == {"a"}
