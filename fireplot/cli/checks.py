"""What an operator checks: ``health`` (per site; exit 4 when one is silent) and ``validate`` (the config)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from fireplot.cli.exits import EXIT_OK, EXIT_SILENT
from fireplot.cli.options import Commands, add_store, command
from pipeline.config import Config, describe, with_overrides


def register(sub: Commands) -> None:
    health = command(
        sub, "health", _health, "per-site health: last event, rate, rejects, consumer lag, silent sites"
    )
    health.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    health.add_argument(
        "--no-kafka", action="store_true", help="store only: no consumer lag, no shipper rejects"
    )
    add_store(health)

    val = command(sub, "validate", _validate, "check a config file and print the effective configuration")
    val.add_argument("--print-defaults", action="store_true", help="print every key with its default and doc")


def _health(cfg: Config, args: argparse.Namespace) -> int:
    """Per-site health from the store, the dead letters and the worker's consumer group
    ([health] keys set when a site counts as silent). Exit 4 when any site is silent, so
    cron and monitoring can act on it; 0 otherwise."""
    from pipeline.health import HealthMonitor, table_text

    cfg = with_overrides(cfg, "worker", store_dir=args.store)
    monitor = HealthMonitor(cfg, with_kafka=not args.no_kafka, max_poll_s=30.0)
    try:
        report = monitor.refresh()
    finally:
        monitor.close()
    now = dt.datetime.now(dt.UTC)
    if args.json:
        print(json.dumps(report.as_dict(now)))
    else:
        sys.stdout.write(table_text(report, now))
    return EXIT_SILENT if report.silent_sites(now) else EXIT_OK


def _validate(cfg: Config, args: argparse.Namespace) -> int:
    if args.print_defaults:
        sys.stdout.write(describe())
        return EXIT_OK
    import dataclasses

    from pipeline.enrich import Enricher
    from pipeline.kafka_security import REDACTED, redacted

    # The files [enrich] names are opened and probed here, as every reader does at its start.
    enricher = Enricher(cfg.enrich)
    enrich = dataclasses.asdict(cfg.enrich) | {
        "opened": enricher.geo.describe(),
        "scanner_networks": len(enricher.scanners),
    }
    enricher.geo.close()
    web = dataclasses.asdict(cfg.web)
    if web["cookie_secret"]:
        web["cookie_secret"] = REDACTED
    print(
        json.dumps(
            {
                "source": cfg.source,
                **{k: dataclasses.asdict(getattr(cfg, k)) for k in ("shipper", "worker")},
                "web": web,
                "kafka": redacted(cfg.kafka),
                "enrich": enrich,
            },
            indent=2,
        )
    )
    print(f"config OK ({cfg.source})", file=sys.stderr)
    return EXIT_OK
