"""[web]: the Bokeh server: address, who may sign in, how much it draws."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config.keys import ConfigError, doc


@dataclass(frozen=True)
class WebConfig:
    address: str = doc("address the Bokeh server binds", "127.0.0.1")
    port: int = doc("port of the Bokeh server", 5006)
    allow_websocket_origins: tuple[str, ...] = doc(
        "extra allowed websocket origins (host:port as the browser sees the server); "
        "required when address is not loopback",
        (),
    )
    users: tuple[str, ...] = doc(
        "who may sign in: NAME:pbkdf2_sha256$ITERATIONS$SALT$HASH (`fireplot web-credential --user NAME`); "
        "users or tokens are required when address is not loopback",
        (),
    )
    tokens: tuple[str, ...] = doc(
        "access tokens: NAME:sha256$HEX (`fireplot web-credential --token NAME`), sent as "
        "`Authorization: Bearer TOKEN` or on the sign-in page",
        (),
    )
    user_sites: tuple[str, ...] = doc(
        "NAME:SITE pairs, one per site: a user or token named here sees only those sites; others see all",
        (),
    )
    cookie_secret: str = field(
        default="",
        repr=False,
        metadata={
            "doc": "secret (>= 32 chars) signing login cookies and session tokens; empty: random per start, "
            "so sign-ins end with a restart. Prefer FIREPLOT_WEB__COOKIE_SECRET over the file. Never printed"
        },
    )
    login_max_age_s: float = doc("how long a sign-in lasts", 43_200.0)
    allow_unauthenticated: bool = doc(
        "serve without sign-in on a non-loopback address: only where something else limits who can "
        "connect (a container port published on 127.0.0.1, an authenticating reverse proxy)",
        False,
    )
    max_points: int = doc("raw dots drawn per view before the server aggregates", 150_000)
    refresh_interval_ms: int = doc("how often the page looks for new events of today", 2000)
    palette: str = doc(
        'dot colours: "original" (the original fireplot\'s) or "colourblind" (Okabe-Ito colours and '
        "a marker shape per IP family on the page); also used by `fireplot render`",
        "original",
    )

    def __post_init__(self) -> None:
        if self.palette not in ("original", "colourblind"):
            raise ConfigError(f'[web] palette: "original" or "colourblind", got {self.palette!r}')
