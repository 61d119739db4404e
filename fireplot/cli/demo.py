"""``demo``: write a realistic day of netfilter log lines (what ``up`` ships by default)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from fireplot.cli.exits import EXIT_OK
from fireplot.cli.options import Commands, command, iso_datetime
from pipeline.config import Config


def register(sub: Commands) -> None:
    demo = command(sub, "demo", _demo, "write a realistic demo day of netfilter log lines")
    demo.add_argument("--out", type=Path, required=True)
    demo.add_argument("--end", type=iso_datetime, help="end of the demo window (default now, UTC)")
    demo.add_argument("--hours", type=float, default=24.0)
    demo.add_argument("--per-hour", type=float, default=1500.0, help="background packets per hour")
    demo.add_argument("--seed", type=int, default=1)


def _demo(cfg: Config, args: argparse.Namespace) -> int:
    from producers.demo import Demo, write_lines

    end = args.end or dt.datetime.now(dt.UTC)
    packets = Demo(args.seed).history(end, hours=args.hours, per_hour=args.per_hour)
    n = write_lines(packets, args.out)
    print(f"wrote {n} lines to {args.out}", file=sys.stderr)
    return EXIT_OK
