"""What people look at: ``serve`` (the web UI), ``render`` (a day as a PNG) and ``web-credential``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from fireplot.cli.exits import EXIT_OK, EXIT_USAGE
from fireplot.cli.options import Commands, add_store, command, iso_date
from pipeline.config import Config, with_overrides

# serve and render read an uploaded copy as well as the local store.
_STORE_OR_URI = "store directory or object-store URI, e.g. s3://bucket/fireplot"


def register(sub: Commands) -> None:
    serve = command(sub, "serve", _serve, "run the web UI (Bokeh server)")
    serve.add_argument("--date", type=iso_date, help="day to open (UTC, default today)")
    serve.add_argument("--port", type=int)
    serve.add_argument("--address")
    add_store(serve, _STORE_OR_URI)

    render = command(sub, "render", _render, "draw one UTC day as a PNG (for cron and e-mail)")
    render.add_argument("--date", required=True, help="YYYY-MM-DD, today or yesterday (UTC)")
    render.add_argument("--site", action="append", help="site to draw; repeat for several (default all)")
    render.add_argument("--dataset", help="a replayed or rebuilt dataset instead of the live archive")
    render.add_argument("--out", type=Path, required=True, help="PNG file to write (atomically)")
    render.add_argument(
        "--html",
        type=Path,
        help="also write an HTML page: the PNG with hover titles on dots and scans, and previous/next "
        "day links when the file name holds the date (e.g. fireplot-2026-12-07.html)",
    )
    render.add_argument("--width-px", type=int, default=1920)
    render.add_argument("--height-px", type=int, default=1080)
    add_store(render, _STORE_OR_URI)

    cred = command(
        sub,
        "web-credential",
        _web_credential,
        "make a [web] users or tokens entry (only its hash goes into the config)",
    )
    who = cred.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="NAME", help="a user who signs in with a password")
    who.add_argument("--token", metavar="NAME", help="a named access token")


def _serve(cfg: Config, args: argparse.Namespace) -> int:
    """Serve the fireplot of a day from the store on http://127.0.0.1:5006 (configurable)."""
    from consumers.web.server import serve

    cfg = with_overrides(cfg, "web", port=args.port, address=args.address)
    cfg = with_overrides(cfg, "worker", store_dir=args.store)
    serve(cfg, args.date)
    return EXIT_OK


def _render(cfg: Config, args: argparse.Namespace) -> int:
    """Draw one UTC day of the store as a PNG with the web page's axis and colours, without
    a browser. Exit 2 on a bad --date, an unknown --site or --dataset."""
    import time

    from consumers.render import Layout, check_sites, parse_date, render_day
    from pipeline.datasets import open_store

    try:
        date = parse_date(args.date, dt.datetime.now(dt.UTC).date())
        layout = Layout(width_px=args.width_px, height_px=args.height_px, palette=cfg.web.palette)
        store = open_store(args.store or cfg.worker.store_dir, args.dataset)
        check_sites(store, args.site)
    except ValueError as exc:
        print(f"fireplot render: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    # [detect] scans_dir names the live archive's scan dataset; a replayed dataset keeps its own.
    scans_root = Path(cfg.detect.scans_dir) if cfg.detect.scans_dir and not args.dataset else None
    done = render_day(
        store,
        date,
        args.out,
        sites=args.site,
        dataset=args.dataset,
        layout=layout,
        html_out=args.html,
        scans_root=scans_root,
    )
    summary = {
        "date": date.isoformat(),
        "events": done.events,
        "png": str(done.path),
        "html": str(done.html_path) if done.html_path else None,
        "seconds": round(time.monotonic() - started, 3),
    }
    print(json.dumps(summary), file=sys.stderr)
    return EXIT_OK


def _web_credential(cfg: Config, args: argparse.Namespace) -> int:
    """Print a JSON object whose `entry` goes into [web] users or [web] tokens. --user asks
    for the password (or reads one line from stdin when it is not a terminal); --token
    makes a random token and prints it once, as `token`: hand it over, it is not stored."""
    from consumers.web import auth

    try:
        name = auth.check_entry_name(args.user or args.token)
        if args.token:
            entry, token = auth.token_entry(name)
            print(json.dumps({"name": name, "entry": entry, "token": token}))
            return EXIT_OK
        password = _read_password(name)
        if password is None:
            print("fireplot web-credential: the passwords differ", file=sys.stderr)
            return EXIT_USAGE
        print(json.dumps({"name": name, "entry": auth.password_entry(name, password)}))
    except ValueError as exc:
        print(f"fireplot web-credential: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _read_password(name: str) -> str | None:
    """Asked twice at a terminal (None when the two differ), else one line of stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    password = getpass.getpass(f"password for {name}: ")
    return password if password == getpass.getpass("again: ") else None
