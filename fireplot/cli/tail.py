"""``tail``: print the events topic as JSON lines (what a site publishes, as the worker reads it)."""

from __future__ import annotations

import argparse
import json
import sys

from fireplot.cli.exits import EXIT_OK
from fireplot.cli.options import Commands, command
from pipeline.config import Config


def register(sub: Commands) -> None:
    tail = command(sub, "tail", _tail, "print events from the events topic as JSON lines")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, help="stop after this many events")
    tail.add_argument(
        "--idle-timeout-s",
        type=float,
        default=None,
        help="stop when no event arrives for this long (default: run until Ctrl-C)",
    )


def _tail(cfg: Config, args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer

    from pipeline import wire
    from pipeline.event import rows
    from pipeline.kafka_security import client_kwargs

    consumer = KafkaConsumer(
        cfg.kafka.events_topic,
        **client_kwargs(cfg.kafka),
        bootstrap_servers=cfg.kafka.effective_bootstrap,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(args.idle_timeout_s * 1000) if args.idle_timeout_s else float("inf"),
    )
    printed = 0
    try:
        for msg in consumer:
            try:
                table = wire.decode(msg.value)
            except wire.WireError as exc:
                print(
                    json.dumps({"partition": msg.partition, "offset": msg.offset, "error": str(exc)}),
                    file=sys.stderr,
                )
                continue
            for row in rows(table):
                sys.stdout.write(json.dumps(row) + "\n")
                printed += 1
                if args.max and printed >= args.max:
                    return EXIT_OK
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return EXIT_OK
