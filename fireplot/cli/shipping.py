"""Parsing and publishing log lines: ``parse``, ``ship``, ``backfill`` and ``receive``.

``ship``, ``backfill`` and ``receive`` share one way to publish (`_shipping_parts`):
the publisher with its spool, the read-position registry and, when served, the metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fireplot.cli.exits import EXIT_OK, EXIT_REJECTS, EXIT_USAGE, quick_exit
from fireplot.cli.options import Commands, command
from fireplot.stopping import StopFlag
from pipeline.config import Config, with_overrides
from pipeline.parsers import FORMATS

if TYPE_CHECKING:  # the shipper's modules load only for the commands that use them
    from producers.metrics import ShipperMetrics
    from producers.publisher import Publisher
    from producers.registry import Registry

log = logging.getLogger("fireplot")


def register(sub: Commands) -> None:
    parse = command(sub, "parse", _parse, "parse log files and print events as JSON lines")
    parse.add_argument("files", nargs="+", type=Path)
    parse.add_argument(
        "--format", default="auto", choices=FORMATS, help="log format (default auto: detected per line)"
    )
    parse.add_argument("--site", help="site name to stamp (default [shipper] site)")
    parse.add_argument(
        "--check",
        action="store_true",
        help="print only counts (events, rejects by reason); exit 3 if any line was rejected",
    )

    ship = command(sub, "ship", _ship, "parse log files and publish the events to Kafka")
    _add_publishing(ship, reads_files=True)
    ship.add_argument("files", nargs="+", type=Path, help="files, globs (quoted) or - for stdin")
    ship.add_argument(
        "--follow",
        action="store_true",
        help="keep shipping what is appended, across rotation (rename, copytruncate, truncate); "
        "globs are re-read, so new and rotated files are picked up",
    )

    backfill = command(
        sub, "backfill", _backfill, "load old logs (any format, rotated names, .gz) with a progress bar"
    )
    _add_publishing(backfill, reads_files=True)
    backfill.add_argument("files", nargs="+", type=Path, help="files or globs (quoted)")

    recv = command(
        sub, "receive", _receive, "receive syslog (UDP/TCP) from appliances and publish the events to Kafka"
    )
    recv.add_argument("--udp", type=int, help="UDP port to listen on")
    recv.add_argument("--tcp", type=int, help="TCP port to listen on")
    recv.add_argument("--bind", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    _add_publishing(recv, reads_files=False)


def _add_publishing(parser: argparse.ArgumentParser, *, reads_files: bool) -> None:
    """What every command that publishes log lines takes; reading files adds --host and --registry."""
    parser.add_argument("--site", help="site name (default [shipper] site)")
    if reads_files:
        parser.add_argument("--host", help="sensor name for lines that carry none")
    parser.add_argument("--format", default="auto", choices=FORMATS, help="log format (default auto)")
    if reads_files:
        parser.add_argument("--registry", help="read-position registry (default [shipper] registry_path)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port on 127.0.0.1 (0 = off)")


def _parse(cfg: Config, args: argparse.Namespace) -> int:
    """Parse firewall log lines and print one JSON event per line on stdout; rejected lines
    and reasons go to stderr."""
    from zoneinfo import ZoneInfo

    from pipeline import parsers
    from pipeline.event import rows
    from pipeline.parsers import ParseContext, netfilter
    from producers.lines import fingerprint, read_batches

    parse = parsers.get(args.format)
    site = args.site or cfg.shipper.site
    events = 0
    rejects: dict[str, int] = {}
    for path in args.files:
        with open(path, "rb") as fh:
            source_id = f"{site}:{fingerprint(fh) or path}"
            ctx = ParseContext(
                site=site, source_id=source_id, host=cfg.shipper.host, tz=ZoneInfo(cfg.shipper.timezone)
            )
            for batch in read_batches(fh, max_lines=cfg.shipper.batch_lines):
                result = parse(batch.lines, batch.offsets, ctx)
                events += result.events.num_rows
                for r in result.rejects:
                    key = r.reason.split("'", 1)[0].strip()
                    rejects[key] = rejects.get(key, 0) + 1
                    if not args.check:
                        print(
                            json.dumps({"rejected": r.reason, "source": str(path), "offset": r.offset}),
                            file=sys.stderr,
                        )
                if not args.check:
                    for row in rows(result.events):
                        sys.stdout.write(json.dumps(row) + "\n")
    if args.check:
        print(
            json.dumps(
                {
                    "format": args.format,
                    "netfilter_engine": netfilter.engine(),
                    "events": events,
                    "rejected": sum(rejects.values()),
                    "rejected_by_reason": rejects,
                },
                indent=2,
            )
        )
    return EXIT_REJECTS if args.check and rejects else EXIT_OK


def _shipping_parts(
    cfg: Config, stop: Callable[[], bool]
) -> tuple[Publisher, Registry, ShipperMetrics | None]:
    """Publisher (with spool), registry and metrics (when served) shared by `ship` and `receive`."""
    from kafka.errors import KafkaError

    from pipeline import wire
    from pipeline.broker import ensure_topics
    from pipeline.kafka_security import client_kwargs, explain, watch_failures
    from producers.publisher import Publisher
    from producers.registry import Registry
    from producers.spool import Spool

    bootstrap = cfg.kafka.effective_bootstrap
    topics = {cfg.kafka.events_topic: cfg.kafka.events_partitions}
    if cfg.kafka.dead_letter_topic:
        topics[cfg.kafka.dead_letter_topic] = 1
    # A refused login or certificate fails here, before a line is read, within send_timeout_s.
    # An unreachable Kafka does not: the shipper reads into its spool and creates
    # the topics once Kafka answers (a site must keep logging with its link down).
    prepare: Callable[[], None] | None = None
    try:
        with watch_failures() as watch:
            ensure_topics(
                bootstrap, topics, wire.TOPIC_CONFIGS, cfg.kafka, min(30.0, cfg.shipper.send_timeout_s)
            )
    except KafkaError as exc:
        if explain(exc, cfg.kafka, watch) is not None:
            raise
        log.warning(
            "no Kafka broker answers at %s: reading into the spool %s until one does",
            bootstrap,
            cfg.shipper.spool_dir,
        )

        def prepare() -> None:
            ensure_topics(bootstrap, topics, wire.TOPIC_CONFIGS, cfg.kafka, timeout_s=5.0)

    # Counted only when someone can read them: prometheus_client is a
    # noticeable share of a short run's start-up.
    metrics = None
    if cfg.shipper.metrics_port:
        from producers.metrics import ShipperMetrics

        metrics = ShipperMetrics()
        metrics.serve(cfg.shipper.metrics_port)
    spool = Spool(Path(cfg.shipper.spool_dir), cfg.shipper.spool_max_bytes)
    publisher = Publisher(
        bootstrap,
        cfg.kafka.events_topic,
        linger_ms=cfg.shipper.linger_ms,
        timeout_s=cfg.shipper.send_timeout_s,
        spool=spool,
        in_flight_max_bytes=cfg.shipper.in_flight_max_bytes,
        dead_letter_topic=cfg.kafka.dead_letter_topic,
        stop=stop,
        on_latency=metrics.send_latency.observe if metrics else None,
        on_backpressure=metrics.reading_paused.set if metrics else None,
        prepare=prepare,
        **client_kwargs(cfg.kafka),
    )
    registry = Registry(Path(cfg.shipper.registry_path), cfg.shipper.registry_flush_interval_ms / 1000)
    return publisher, registry, metrics


def _ship(cfg: Config, args: argparse.Namespace) -> int:
    """Parse, filter (inside networks, late TCP, port 0: counted) and publish events to the
    events topic. Rejected lines are kept in [shipper] dead_letter_dir with their reasons."""
    return _ship_files(cfg, args, follow=args.follow, backfill=False)


def _backfill(cfg: Config, args: argparse.Namespace) -> int:
    """Ship files that no longer grow (e.g. a year of rotated logs, gzip or not) with a
    progress bar. Uses the read-position registry: files already shipped are skipped, so
    running it again adds nothing; Ctrl-C and run again resumes."""
    return _ship_files(cfg, args, follow=False, backfill=True)


def _ship_files(cfg: Config, args: argparse.Namespace, *, follow: bool, backfill: bool) -> int:
    """Ship ``args.files``, following them as they grow or (a backfill) with a progress bar."""
    from producers.publisher import Stopped
    from producers.shipper import Shipper

    cfg = with_overrides(cfg, "shipper", site=args.site, registry_path=args.registry)
    if args.metrics_port is not None:
        cfg = with_overrides(cfg, "shipper", metrics_port=args.metrics_port)
    stopping = StopFlag(signal.SIGTERM)
    publisher, registry, metrics = _shipping_parts(cfg, stopping)
    progress = None
    if backfill:
        from producers.backfill import BackfillProgress
        from producers.shipper import expand_paths

        progress = BackfillProgress(expand_paths(args.files))
    shipper = Shipper(
        cfg, publisher, fmt=args.format, host=args.host, registry=registry, metrics=metrics, progress=progress
    )
    try:
        stats = shipper.ship_paths(args.files, follow=follow, stop=stopping)
    except (KeyboardInterrupt, Stopped):
        stopping.set = True
        stats = shipper.stats
    finally:
        try:
            # On a stop, what Kafka does not take within the grace stays spooled or unacknowledged:
            # the registry is behind it, so the next run sends it again.
            publisher.close(grace_s=10 if stopping() else None)
        finally:
            registry.save()
    summary = {
        **stats.as_dict(),
        "spooled_records": publisher.stats.spooled,
        "resent_records": publisher.stats.resent,
    }
    if progress:
        progress.show(final=True)
    log.info("shipped", extra={"summary": summary})
    print(json.dumps(summary), file=sys.stderr)
    if args.quick_exit and not stopping():
        quick_exit(EXIT_OK)
    return EXIT_OK


def _receive(cfg: Config, args: argparse.Namespace) -> int:
    """A syslog receiver (RFC 3164 and 5424; TCP octet-counted or newline framing) for
    firewalls that can only send syslog. Received lines take the same parse/filter/publish
    path as `ship`."""
    from producers.publisher import Stopped
    from producers.shipper import Shipper
    from producers.syslog_receiver import Receiver

    if args.udp is None and args.tcp is None:
        print("fireplot receive: give --udp PORT and/or --tcp PORT", file=sys.stderr)
        return EXIT_USAGE
    cfg = with_overrides(cfg, "shipper", site=args.site)
    if args.metrics_port is not None:
        cfg = with_overrides(cfg, "shipper", metrics_port=args.metrics_port)
    stopping = StopFlag(signal.SIGTERM)
    publisher, _registry, metrics = _shipping_parts(cfg, stopping)
    shipper = Shipper(cfg, publisher, fmt=args.format, metrics=metrics)
    receiver = Receiver(cfg, shipper, bind=args.bind, udp_port=args.udp, tcp_port=args.tcp)
    try:
        receiver.run(stop=stopping)
    except (KeyboardInterrupt, Stopped):
        stopping.set = True
    finally:
        try:
            publisher.close(grace_s=10)
        finally:
            receiver.close()
    print(json.dumps(shipper.stats.as_dict()), file=sys.stderr)
    return EXIT_OK
