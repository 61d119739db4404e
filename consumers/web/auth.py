"""Who may see the plot, and which sites' dots they see.

Off by default: the server binds 127.0.0.1 and whoever can reach that is
trusted. Bound to any other address the server refuses to start unless
``[web]`` names users or tokens and the websocket origins the browser will
come from (:func:`check_exposure`). Then:

* A person signs in on ``/login`` with a user name and password, checked
  against a PBKDF2-SHA256 hash from the config (never the password itself),
  or with an access token, checked against its SHA-256. Success sets a
  cookie signed with ``[web] cookie_secret``: HttpOnly, SameSite=Strict,
  valid for ``login_max_age_s``. A wrong guess is answered after a second;
  there is no lock-out (it would let anyone lock the operators out).
* Scripts send ``Authorization: Bearer <token>`` instead.
* Every page, session and websocket request goes through Bokeh's
  ``AuthProvider`` hook (:class:`FireplotAuth`), so nothing of the plot is
  served to an anonymous request.
* ``user_sites`` maps a name to the sites it may see. The server writes the
  signed-in name's sites into the Bokeh session token, which is signed when
  authentication is on, and the page's store is wrapped in
  :class:`SiteScopedStore` (:func:`scoped`): every query is filtered to those
  sites in the scan itself, whatever the page asks for.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pyarrow.dataset as ds
from bokeh.document import Document
from bokeh.server.auth_provider import AuthProvider, User
from bokeh.server.contexts import BokehSessionContext
from tornado.httputil import HTTPServerRequest
from tornado.ioloop import IOLoop
from tornado.web import HTTPError, RequestHandler, decode_signed_value
from tornado.websocket import WebSocketHandler

from pipeline.config import ConfigError, WebConfig
from pipeline.store import Store

log = logging.getLogger(__name__)

COOKIE: Final = "fireplot_user"
LOGIN_URL: Final = "/login"
LOGOUT_URL: Final = "/logout"
PBKDF2: Final = "pbkdf2_sha256"
SHA256: Final = "sha256"
# OWASP's 2023 figure for PBKDF2-HMAC-SHA256: a stolen config stays expensive to crack.
PBKDF2_ITERATIONS: Final = 600_000
# Keys the server adds to every Bokeh session token (see ``session_scope``).
SCOPE_USER: Final = "fireplot_user"
SCOPE_SITES: Final = "fireplot_sites"
MIN_SECRET_CHARS: Final = 32
MIN_PASSWORD_CHARS: Final = 8  # for new ``users`` entries (``fireplot web-credential``)
FAILED_SIGN_IN_DELAY_S: Final = 1.0


# ---- credentials in the config -------------------------------------------------


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A ``users`` entry's hash part: ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{PBKDF2}${iterations}${salt.hex()}${digest.hex()}"


def hash_token(token: str) -> str:
    """A ``tokens`` entry's hash part: ``sha256$<hex>`` (tokens are random, so no salt or stretching)."""
    return f"{SHA256}${hashlib.sha256(token.encode('utf-8')).hexdigest()}"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_entry_name(name: str) -> str:
    """A ``users`` or ``tokens`` entry's name: not blank, and without the ':' that ends it."""
    if ":" in name or not name.strip():
        raise ValueError(f"a name must be non-empty without ':': {name!r}")
    return name


def password_entry(name: str, password: str) -> str:
    """A new ``users`` entry, ``<name>:<hash>``; raises ValueError for a password too short to keep."""
    check_entry_name(name)
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return f"{name}:{hash_password(password)}"


def token_entry(name: str) -> tuple[str, str]:
    """A new ``tokens`` entry and its token: hand the token over once, only its hash is kept."""
    token = new_token()
    return f"{check_entry_name(name)}:{hash_token(token)}", token


@dataclass(frozen=True)
class _PasswordHash:
    iterations: int
    salt: bytes
    digest: bytes

    def matches(self, password: str) -> bool:
        got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), self.salt, self.iterations)
        return hmac.compare_digest(got, self.digest)


def _split_entry(key: str, entry: str) -> tuple[str, str]:
    name, sep, rest = entry.partition(":")
    if not sep or not name.strip() or not rest:
        raise ConfigError(f"[web] {key}: expected NAME:VALUE, got an entry without a name or value")
    return name.strip(), rest.strip()


def _parse_password(entry_name: str, text: str) -> _PasswordHash:
    parts = text.split("$")
    try:
        if len(parts) != 4 or parts[0] != PBKDF2:
            raise ValueError
        iterations, salt, digest = int(parts[1]), bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
        if iterations < 1 or not salt or len(digest) != 32:
            raise ValueError
    except ValueError:
        # Never echo the value: it may be a plain password pasted by mistake.
        raise ConfigError(
            f"[web] users: {entry_name!r} has no valid {PBKDF2}$ITERATIONS$SALT$HASH "
            "(make one with `fireplot web-credential --user NAME`; plain passwords are not accepted)"
        ) from None
    return _PasswordHash(iterations, salt, digest)


def _parse_token(entry_name: str, text: str) -> bytes:
    kind, _, hexdigest = text.partition("$")
    try:
        digest = bytes.fromhex(hexdigest)
    except ValueError:
        digest = b""
    if kind != SHA256 or len(digest) != 32:
        raise ConfigError(
            f"[web] tokens: {entry_name!r} has no valid {SHA256}$HEX "
            "(make one with `fireplot web-credential --token NAME`; plain tokens are not accepted)"
        )
    return digest


@dataclass(frozen=True)
class Credentials:
    """``[web]`` users, tokens and per-name site allow-lists, parsed and checked."""

    passwords: dict[str, _PasswordHash] = field(default_factory=dict)
    tokens: dict[bytes, str] = field(default_factory=dict)  # SHA-256 of the token -> name
    sites: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, web: WebConfig) -> Credentials:
        passwords, tokens, sites = {}, {}, {}
        for entry in web.users:
            name, value = _split_entry("users", entry)
            if name in passwords:
                raise ConfigError(f"[web] users: {name!r} is listed twice")
            passwords[name] = _parse_password(name, value)
        for entry in web.tokens:
            name, value = _split_entry("tokens", entry)
            tokens[_parse_token(name, value)] = name
        names = set(passwords) | set(tokens.values())
        allowed: dict[str, set[str]] = {}
        for entry in web.user_sites:
            name, site = _split_entry("user_sites", entry)
            if name not in names:
                raise ConfigError(f"[web] user_sites: {name!r} is neither in [web] users nor in [web] tokens")
            allowed.setdefault(name, set()).add(site)
        sites = {name: frozenset(s) for name, s in allowed.items()}
        return cls(passwords, tokens, sites)

    @property
    def enabled(self) -> bool:
        return bool(self.passwords or self.tokens)

    @property
    def names(self) -> set[str]:
        return set(self.passwords) | set(self.tokens.values())

    def check_password(self, name: str, password: str) -> bool:
        known = self.passwords.get(name)
        if known is None:
            # Same work for an unknown name, so timing does not tell which names exist.
            _DUMMY.matches(password)
            return False
        return known.matches(password)

    def token_name(self, token: str) -> str | None:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        # Dict lookup by digest: a timing difference reveals bits of a hash, not of the token.
        return self.tokens.get(digest)

    def sites_of(self, name: str) -> frozenset[str] | None:
        """The sites ``name`` may see, or None for all."""
        return self.sites.get(name)


_DUMMY: Final = _PasswordHash(PBKDF2_ITERATIONS, b"fireplot-dummy-salt", b"\0" * 32)


# ---- exposure ------------------------------------------------------------------------


def is_loopback(address: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # "" and "0.0.0.0" mean every interface; other names may resolve anywhere


def check_exposure(web: WebConfig, credentials: Credentials) -> None:
    """Refuse a configuration that would serve the plot to the network unprotected."""
    if is_loopback(web.address):
        return
    missing = []
    if not credentials.enabled and not web.allow_unauthenticated:
        missing.append(
            "[web] users or [web] tokens (who may sign in; or allow_unauthenticated = true when a "
            "proxy or a loopback-published container port already limits access)"
        )
    if not web.allow_websocket_origins:
        missing.append("[web] allow_websocket_origins (host:port the browsers use, e.g. fireplot.lan:5006)")
    if missing:
        raise ConfigError(
            f"[web] address {web.address!r} is not a loopback address, so the plot would be served to the "
            f"network: set {' and '.join(missing)}, or bind 127.0.0.1"
        )
    if not credentials.enabled:
        log.warning(
            "serving %s without sign-in ([web] allow_unauthenticated): whoever reaches the port sees "
            "every site",
            web.address,
        )


def secret_of(web: WebConfig) -> str:
    """The cookie and session-token signing secret: configured, or random for this process."""
    if not web.cookie_secret:
        return secrets.token_urlsafe(48)
    if len(web.cookie_secret) < MIN_SECRET_CHARS:
        raise ConfigError(f"[web] cookie_secret: must be at least {MIN_SECRET_CHARS} characters")
    return web.cookie_secret


# ---- requests ------------------------------------------------------------------------


class Authenticator:
    """Who a request is: a valid signed login cookie, or a bearer token."""

    def __init__(self, credentials: Credentials, secret: str, max_age_s: float) -> None:
        self.credentials = credentials
        self.secret = secret
        self.max_age_days = max_age_s / 86_400

    def user_of(self, request: HTTPServerRequest) -> str | None:
        morsel = request.cookies.get(COOKIE)
        if morsel is not None:
            raw = decode_signed_value(self.secret, COOKIE, morsel.value, max_age_days=self.max_age_days)
            name = raw.decode("utf-8", "replace") if raw else None
            # A name removed from the config loses access even with a live cookie.
            if name is not None and name in self.credentials.names:
                return name
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.credentials.token_name(token.strip())
        return None

    def session_scope(self, request: HTTPServerRequest) -> dict[str, Any]:
        """What the server writes into each new Bokeh session token about its user."""
        name = self.user_of(request)
        sites = self.credentials.sites_of(name) if name is not None else None
        return {SCOPE_USER: name, SCOPE_SITES: sorted(sites) if sites is not None else None}


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


_PAGE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fireplot: sign in</title>
<style>body{{background:#000;color:#d0d0d0;font-family:sans-serif;margin:4em}}
input{{display:block;margin:.3em 0 1em}}.error{{color:#ff6060}}</style></head>
<body><h1>fireplot</h1>{message}
<form method="post" action="{action}">{xsrf}
<input type="hidden" name="next" value="{next}">
<label>user <input name="user" autocomplete="username"></label>
<label>password <input name="password" type="password" autocomplete="current-password"></label>
<p>or an access token</p>
<label>token <input name="token" type="password" autocomplete="off"></label>
<button type="submit" id="sign-in">sign in</button></form></body></html>
"""


def login_handler(auth: Authenticator) -> type[RequestHandler]:
    """The /login page: a form, checked against the configured hashes."""

    class LoginHandler(RequestHandler):
        def get(self) -> None:
            self._page(200, "")

        async def post(self) -> None:
            user = self.get_body_argument("user", "")
            password = self.get_body_argument("password", "")
            token = self.get_body_argument("token", "")
            name: str | None = None
            if token:
                name = auth.credentials.token_name(token)
            elif user and password:
                # PBKDF2 takes a good fraction of a second on purpose: off the event
                # loop, so signing in does not freeze every open page's updates.
                check = auth.credentials.check_password
                if await IOLoop.current().run_in_executor(None, check, user, password):
                    name = user
            if name is None:
                who = user or "(token)"
                log.warning("refused a sign-in from %s for user %r", self.request.remote_ip, who)
                # Every wrong guess costs the guesser this long; no lock-out, which
                # would let anyone lock the operators out.
                await asyncio.sleep(FAILED_SIGN_IN_DELAY_S)
                self._page(403, '<p class="error">Wrong user name, password or token.</p>')
                return
            log.info("%r signed in from %s", name, self.request.remote_ip)
            self.set_signed_cookie(
                COOKIE,
                name,
                expires_days=auth.max_age_days,
                httponly=True,
                samesite="Strict",
                secure=self.request.protocol == "https",
            )
            self.redirect(safe_next(self.get_body_argument("next", "/")))

        def _page(self, status: int, message: str) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("X-Frame-Options", "DENY")
            target = safe_next(self.get_argument("next", "/"))
            self.finish(
                _PAGE.format(
                    message=message,
                    action=html.escape(LOGIN_URL),
                    xsrf=self.xsrf_form_html(),
                    next=html.escape(target),
                )
            )

    return LoginHandler


class LogoutHandler(RequestHandler):
    def get(self) -> None:
        self.clear_cookie(COOKIE)
        self.redirect(LOGIN_URL)


class FireplotAuth(AuthProvider):
    """Bokeh's authentication hook: every page, session and websocket request needs a user."""

    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth
        self._login_handler = login_handler(auth)
        super().__init__()

    @property
    def get_user_async(self) -> Callable[[Any], Awaitable[User]]:
        # The async hook runs in the handler's prepare(), before a websocket
        # handshake is accepted, so an anonymous websocket is refused with 403
        # instead of being opened and then torn down. Bokeh types the argument
        # as the request; it passes the RequestHandler.
        return self._user

    async def _user(self, handler: RequestHandler) -> User:
        name = self._auth.user_of(handler.request)
        if name is None and isinstance(handler, WebSocketHandler):
            raise HTTPError(403, "sign in first")
        # None makes tornado's @authenticated redirect a page request to the sign-in page.
        return User(name)

    @property
    def login_url(self) -> str:
        return LOGIN_URL

    @property
    def login_handler(self) -> type[RequestHandler]:
        return self._login_handler

    @property
    def logout_url(self) -> str:
        return LOGOUT_URL

    @property
    def logout_handler(self) -> type[RequestHandler]:
        return LogoutHandler


# ---- what a session may read -----------------------------------------------------


class SiteScopedStore(Store):
    """A store whose every scan only sees some sites.

    The restriction is part of every dataset the scans run on (:meth:`Store.restrict`, the
    one hook every listing of the store goes through), so reads, counts and whatever else
    is built on them are filtered (and pruned by the ``site=`` directories), not just the
    page's site list.
    """

    def __init__(self, root: str | Path, sites: frozenset[str]) -> None:
        super().__init__(root)
        self.allowed_sites = sites

    def restrict(self, dataset: ds.Dataset) -> ds.Dataset:
        return dataset.filter(ds.field("site").isin(sorted(self.allowed_sites)))

    def sites(self) -> list[str]:
        return [s for s in super().sites() if s in self.allowed_sites]


def allowed_sites(doc: Document) -> frozenset[str] | None:
    """The sites this session's user may see; None for all (no restriction, or no server session)."""
    context = doc.session_context
    if not isinstance(context, BokehSessionContext):
        return None
    payload = context.token_payload
    if SCOPE_SITES not in payload:
        return None
    sites = payload[SCOPE_SITES]
    return None if sites is None else frozenset(str(s) for s in sites)


def scoped(store: Store, doc: Document) -> Store:
    """``store`` as this session's user may see it."""
    sites = allowed_sites(doc)
    return store if sites is None else SiteScopedStore(store.location, sites)
