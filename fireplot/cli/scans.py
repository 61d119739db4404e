"""Scan detection: ``detect`` (replay a range or follow live) and ``scans`` (list what was found)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import signal
import sys
from pathlib import Path

from fireplot.cli.exits import EXIT_OK, EXIT_USAGE
from fireplot.cli.options import Commands, add_store, command, iso_datetime
from fireplot.stopping import StopFlag
from pipeline.config import Config


def register(sub: Commands) -> None:
    det = command(sub, "detect", _detect, "detect scans in the store (replay a range, or --follow live)")
    det.add_argument("--since", type=iso_datetime, help="start (ISO 8601; default: 24 h before --until)")
    det.add_argument("--until", type=iso_datetime, help="end (ISO 8601; default: now)")
    det.add_argument("--follow", action="store_true", help="keep detecting as events arrive")
    add_store(det)

    scans = command(sub, "scans", _scans, "list detected scans as JSON lines")
    scans.add_argument("--since", type=iso_datetime, required=True, help="scans active at or after this time")
    scans.add_argument("--until", type=iso_datetime, help="and before this time")
    scans.add_argument("--site", help="only scans seen at this site")
    scans.add_argument(
        "--kind",
        help="only this kind (vertical, horizontal, slow, distributed, hammer, coordinated, cross_site)",
    )
    add_store(scans)


def _detect(cfg: Config, args: argparse.Namespace) -> int:
    """Evaluate the scan detectors ([detect] thresholds) in event time over the store and
    write the scan dataset (<store>/scans). Replay and --follow write the same records;
    --follow re-evaluates up to the watermark (newest event - lateness_s)."""
    from pipeline.detect.runner import evaluator_for, follow, replay

    ev, store = evaluator_for(cfg, args.store)
    if args.follow:
        stopping = StopFlag(signal.SIGTERM)
        with contextlib.suppress(KeyboardInterrupt):
            follow(ev, store, args.since, stop=stopping)
    else:
        until = args.until or dt.datetime.now(dt.UTC)
        since = args.since or until - dt.timedelta(days=1)
        if since >= until:
            print("fireplot: --since must be before --until", file=sys.stderr)
            return EXIT_USAGE
        replay(ev, since, until)
    print(json.dumps(ev.stats.as_dict()), file=sys.stderr)
    return EXIT_OK


def _scans(cfg: Config, args: argparse.Namespace) -> int:
    """One JSON object a line per scan active in [--since, --until) (a scan of several days
    shows from any of them), every field of the record: kind, sources, sites, first_ts,
    last_ts, ports, counts, status, and the properties order (ascending, descending, random;
    from tau), days_spanned and distributed (several sources share the scan)."""
    from pipeline.detect.records import KINDS
    from pipeline.detect.runner import scan_json
    from pipeline.detect.scanstore import ScanStore

    if args.kind is not None and args.kind not in KINDS:
        print(f"fireplot: unknown kind {args.kind!r}; known: {', '.join(KINDS)}", file=sys.stderr)
        return EXIT_USAGE
    root = cfg.detect.scans_dir or str(Path(args.store or cfg.worker.store_dir) / "scans")
    table = ScanStore(root).read(args.since, args.until, site=args.site, kind=args.kind, by="active")
    for row in table.to_pylist():
        sys.stdout.write(scan_json(row) + "\n")
    return EXIT_OK
