"""fireplot: plot every packet your firewalls block.

One module per command group, each holding its commands' arguments beside the
functions that run them (its ``register`` adds them with ``options.command``);
this module puts them together and gives every command the configuration and
the error handling they share. The exit codes are in ``exits.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from fireplot.cli import archive, checks, demo, maintenance, scans, shipping, stack, tail, top, web
from fireplot.cli.exits import EXIT_FAIL, EXIT_USAGE
from pipeline.config import ConfigError, load

__all__ = ["build_parser", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fireplot",
        description=(
            "Every packet a firewall blocks becomes a dot: x = time, y = destination port "
            "(log scale), colour = protocol and IP family. Shippers publish parsed firewall "
            "logs to Kafka, a worker archives them to Parquet, a Bokeh server plots them."
        ),
        epilog=(
            "Configuration: one TOML file (-c, $FIREPLOT_CONFIG, ./fireplot.toml), overridden by "
            "FIREPLOT_<SECTION>__<KEY> environment variables, overridden by flags. "
            "`fireplot validate --print-defaults` lists every key. Exit codes: 0 ok, 1 failure, "
            "2 usage/config error, 3 rejected input lines (parse --check), 4 a site is silent (health)."
        ),
    )
    p.add_argument("-c", "--config", type=Path, help="config file (TOML)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--plain-logs", action="store_true", help="human-readable logs instead of JSON lines")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In the order `fireplot --help` lists the commands.
    for group in (stack, shipping, archive, web, demo, tail, scans, top, maintenance, checks):
        group.register(sub)
    return p


def run() -> NoReturn:
    """The ``fireplot`` command: `main`, allowed to end the process quickly (see `exits.quick_exit`)."""
    sys.exit(main(quick_exit=True))


def main(argv: Sequence[str] | None = None, quick_exit: bool = False) -> int:
    """Run one command; ``quick_exit`` lets `ship` end the process itself when done (`run` only)."""
    from fireplot import logs

    args = build_parser().parse_args(argv)
    args.quick_exit = quick_exit
    logs.setup(args.log_level, json_logs=not args.plain_logs)
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"fireplot: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from pipeline.kafka_security import explain, watch_failures

    try:
        with watch_failures() as kafka_failures:
            return int(args.handler(cfg, args))
    except ConfigError as exc:
        print(f"fireplot: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        from kafka.errors import KafkaError

        from pipeline.broker import BrokerError

        # A refused login or certificate looks like a timeout to kafka-python; say what it was.
        refused = explain(exc, cfg.kafka, kafka_failures)
        if refused is not None:
            print(f"fireplot: {refused}", file=sys.stderr)
            return EXIT_FAIL
        if isinstance(exc, KafkaError) and "bootstrap" in str(exc).lower():
            print(
                f"fireplot: no Kafka broker answers at {cfg.kafka.effective_bootstrap}; start one "
                "with `fireplot kafka up` or set [kafka] bootstrap",
                file=sys.stderr,
            )
            return EXIT_FAIL
        if isinstance(exc, BrokerError | KafkaError | OSError):
            print(f"fireplot: {exc}", file=sys.stderr)
            return EXIT_FAIL
        raise
