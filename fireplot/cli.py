"""fireplot: plot every packet your firewalls block.

Exit codes: 0 success; 1 runtime failure (Kafka unreachable, a write failed);
2 bad usage or configuration; 3 input had rejected lines (``parse --check``);
4 a site is silent (``health``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from fireplot.stopping import StopFlag
from pipeline.config import Config, ConfigError, describe, load, with_overrides
from pipeline.parsers import FORMATS

if TYPE_CHECKING:  # the shipper's modules load only for the commands that use them
    from producers.metrics import ShipperMetrics
    from producers.publisher import Publisher
    from producers.registry import Registry

log = logging.getLogger("fireplot")

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_REJECTS = 0, 1, 2, 3


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _datetime(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


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

    up = sub.add_parser(
        "up",
        help="run everything locally with demo data and print the URL",
        description="Start the local Kafka broker, the worker, the web server and a "
        "demo shipper feeding a realistic day of blocked packets (plus a "
        "live trickle). Ctrl-C stops everything cleanly.",
    )
    up.add_argument("--no-demo", action="store_true", help="start the services without demo data")
    up.add_argument("--port", type=int, help="web port (default [web] port, 5006)")
    up.add_argument("--seed", type=int, default=1, help="demo random seed")

    k = sub.add_parser(
        "kafka",
        help="manage the local Apache Kafka broker (no Docker)",
        description="Install (via Maven), start, stop or inspect the single-node KRaft "
        "broker bound to 127.0.0.1. Ignored when [kafka] bootstrap names "
        "another cluster. `mirror` runs MirrorMaker 2 in the foreground, copying each "
        "--site cluster's topics into the --centre cluster as <site>.<topic>.",
    )
    k.add_argument("action", choices=["install", "up", "down", "status", "mirror"])
    k.add_argument(
        "--site",
        action="append",
        default=[],
        metavar="NAME=BOOTSTRAP",
        help="mirror: a site cluster to replicate into the centre (repeat per site); its events "
        "arrive there as NAME.<events topic>",
    )
    k.add_argument("--centre", metavar="BOOTSTRAP", help="mirror: the central cluster")

    parse = sub.add_parser(
        "parse",
        help="parse log files and print events as JSON lines",
        description="Parse firewall log lines and print one JSON event per line "
        "on stdout; rejected lines and reasons go to stderr.",
    )
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

    # What every command that publishes log lines shares.
    shipping = argparse.ArgumentParser(add_help=False)
    shipping.add_argument("--site", help="site name (default [shipper] site)")
    shipping.add_argument("--host", help="sensor name for lines that carry none")
    shipping.add_argument("--format", default="auto", choices=FORMATS, help="log format (default auto)")
    shipping.add_argument("--registry", help="read-position registry (default [shipper] registry_path)")
    shipping.add_argument("--metrics-port", type=int, help="Prometheus port on 127.0.0.1 (0 = off)")

    ship = sub.add_parser(
        "ship",
        parents=[shipping],
        help="parse log files and publish the events to Kafka",
        description="Parse, filter (inside networks, late TCP, port 0: counted) and "
        "publish events to the events topic. Rejected lines are kept in "
        "[shipper] dead_letter_dir with their reasons.",
    )
    ship.add_argument("files", nargs="+", type=Path, help="files, globs (quoted) or - for stdin")
    ship.add_argument(
        "--follow",
        action="store_true",
        help="keep shipping what is appended, across rotation (rename, copytruncate, truncate); "
        "globs are re-read, so new and rotated files are picked up",
    )

    backfill = sub.add_parser(
        "backfill",
        parents=[shipping],
        help="load old logs (any format, rotated names, .gz) with a progress bar",
        description="Ship files that no longer grow (e.g. a year of rotated logs, gzip or not) "
        "with a progress bar. Uses the read-position registry: files already shipped are "
        "skipped, so running it again adds nothing; Ctrl-C and run again resumes.",
    )
    backfill.add_argument("files", nargs="+", type=Path, help="files or globs (quoted)")

    recv = sub.add_parser(
        "receive",
        help="receive syslog (UDP/TCP) from appliances and publish the events to Kafka",
        description="A syslog receiver (RFC 3164 and 5424; TCP octet-counted or newline "
        "framing) for firewalls that can only send syslog. Received lines take "
        "the same parse/filter/publish path as `ship`.",
    )
    recv.add_argument("--udp", type=int, help="UDP port to listen on")
    recv.add_argument("--tcp", type=int, help="TCP port to listen on")
    recv.add_argument("--bind", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    recv.add_argument("--site", help="site name (default [shipper] site)")
    recv.add_argument("--format", default="auto", choices=FORMATS, help="log format (default auto)")
    recv.add_argument("--metrics-port", type=int, help="Prometheus port on 127.0.0.1 (0 = off)")

    worker = sub.add_parser(
        "worker",
        help="run the archive worker (Kafka -> Parquet)",
        description="Consume the events topic and write hive-partitioned Parquet "
        "(site/date/hour, event time UTC) into the store, exactly once.",
    )
    worker.add_argument("--store", help="store directory (default [worker] store_dir)")
    worker.add_argument("--web-port", type=int, help="metrics/health port (default [worker] web_port)")
    worker.add_argument(
        "--dataset",
        help="archive the replay topic of this dataset (fireplot.replay.NAME) into "
        "<store>/datasets/NAME instead of the live events topic into the live archive",
    )

    replay = sub.add_parser(
        "replay",
        help="replay archived events in event-time order to a replay topic",
        description="Read archived events from Parquet in event-time order and publish them to "
        "fireplot.replay.NAME (kept until deleted), with their original event times, paced at N "
        "times real time. A worker started with `fireplot worker --dataset NAME` archives them into "
        "a separate dataset the web UI can show (?dataset=NAME). Ctrl-C and run again resumes "
        "after the last event Kafka acknowledged.",
    )
    replay.add_argument("--from", dest="start", type=_datetime, required=True, help="ISO 8601 start")
    replay.add_argument("--to", dest="end", type=_datetime, required=True, help="ISO 8601 end (exclusive)")
    replay.add_argument("--site", action="append", help="only this site (repeatable)")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=60.0, help="times real time (default 60)")
    pace.add_argument("--max", action="store_true", help="as fast as Kafka takes it")
    replay.add_argument("--into", required=True, help="dataset name to replay into")
    replay.add_argument("--store", help="store to read (default [worker] store_dir)")

    rebuild = sub.add_parser(
        "rebuild",
        help="rebuild a dataset from the events topic, from the offsets for a time",
        description="Re-read the events topic from the first record published at or after --since "
        "up to its current end, into a fresh dataset (<store>/datasets/NAME) with the worker's "
        "exactly-once layout: e.g. after a parser fix. Uses no consumer group, so live processing "
        "is not disturbed. Running it again continues after what the dataset already holds.",
    )
    rebuild.add_argument("--since", type=_datetime, required=True, help="ISO 8601 publish time")
    rebuild.add_argument("--into", required=True, help="dataset name to build")
    rebuild.add_argument("--store", help="store directory (default [worker] store_dir)")

    serve = sub.add_parser(
        "serve",
        help="run the web UI (Bokeh server)",
        description="Serve the fireplot of a day from the store on http://127.0.0.1:5006 (configurable).",
    )
    serve.add_argument("--date", type=_date, help="day to open (UTC, default today)")
    serve.add_argument("--port", type=int)
    serve.add_argument("--address")
    serve.add_argument(
        "--store",
        help="store directory or object-store URI, e.g. s3://bucket/fireplot (default [worker] store_dir)",
    )

    render = sub.add_parser(
        "render",
        help="draw one UTC day as a PNG (for cron and e-mail)",
        description="Draw one UTC day of the store as a PNG with the web page's axis and colours, "
        "without a browser. Exit 2 on a bad --date, an unknown --site or --dataset.",
    )
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
    render.add_argument(
        "--store",
        help="store directory or object-store URI, e.g. s3://bucket/fireplot (default [worker] store_dir)",
    )

    cred = sub.add_parser(
        "web-credential",
        help="make a [web] users or tokens entry (only its hash goes into the config)",
        description="Print a JSON object whose `entry` goes into [web] users or [web] tokens. --user "
        "asks for the password (or reads one line from stdin when it is not a terminal); --token "
        "makes a random token and prints it once, as `token`: hand it over, it is not stored.",
    )
    who = cred.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="NAME", help="a user who signs in with a password")
    who.add_argument("--token", metavar="NAME", help="a named access token")

    demo = sub.add_parser("demo", help="write a realistic demo day of netfilter log lines")
    demo.add_argument("--out", type=Path, required=True)
    demo.add_argument("--end", type=_datetime, help="end of the demo window (default now, UTC)")
    demo.add_argument("--hours", type=float, default=24.0)
    demo.add_argument("--per-hour", type=float, default=1500.0, help="background packets per hour")
    demo.add_argument("--seed", type=int, default=1)

    tail = sub.add_parser("tail", help="print events from the events topic as JSON lines")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, help="stop after this many events")
    tail.add_argument(
        "--idle-timeout-s",
        type=float,
        default=None,
        help="stop when no event arrives for this long (default: run until Ctrl-C)",
    )

    det = sub.add_parser(
        "detect",
        help="detect scans in the store (replay a range, or --follow live)",
        description="Evaluate the scan detectors ([detect] thresholds) in event time over the "
        "store and write the scan dataset (<store>/scans). Replay and --follow write the same "
        "records; --follow re-evaluates up to the watermark (newest event - lateness_s).",
    )
    det.add_argument("--since", type=_datetime, help="start (ISO 8601; default: 24 h before --until)")
    det.add_argument("--until", type=_datetime, help="end (ISO 8601; default: now)")
    det.add_argument("--follow", action="store_true", help="keep detecting as events arrive")
    det.add_argument("--store", help="store directory (default [worker] store_dir)")

    scans = sub.add_parser("scans", help="list detected scans as JSON lines")
    scans.add_argument("--since", type=_datetime, required=True, help="scans active at or after this time")
    scans.add_argument("--until", type=_datetime, help="and before this time")
    scans.add_argument("--site", help="only scans seen at this site")
    scans.add_argument(
        "--kind", help="only this kind (vertical, horizontal, slow, hammer, coordinated, cross_site)"
    )
    scans.add_argument("--store", help="store directory (default [worker] store_dir)")

    comp = sub.add_parser(
        "compact",
        help="merge closed hours' small files into one per partition-hour; apply retention",
        description="Merge each closed hour's flush files into one Parquet file (atomic swap, "
        "readers unaffected), recover interrupted compactions, delete event dates older than "
        "[worker] retention_days_events. Prints a JSON report.",
    )
    comp.add_argument(
        "--older-than-s",
        type=float,
        help="compact hours that ended this long ago (default [worker] compact_older_than_s)",
    )
    comp.add_argument("--store", help="store directory (default [worker] store_dir)")
    roll = sub.add_parser(
        "rollup",
        help="compute per-minute port and per-hour source rollups of closed hours",
        description="(Re)compute the rollups of every closed hour whose events changed "
        "(idempotent). Prints how many hours were written.",
    )
    roll.add_argument("--date", type=_date, help="only hours of this event date (YYYY-MM-DD)")
    roll.add_argument("--store", help="store directory (default [worker] store_dir)")

    st = sub.add_parser("store", help="manage the store: copy closed hours to object storage")
    st_sub = st.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    sync = st_sub.add_parser(
        "sync",
        help="upload closed, compacted hours to an object store (S3, GCS, Azure, HDFS URI)",
        description="Copy every closed hour (compacted to one file) of the local store to a "
        "pyarrow filesystem URI with the same hive layout, e.g. "
        "s3://bucket/fireplot?region=eu-west-1 (credentials from AWS_* variables or ~/.aws). "
        "Idempotent and resumable: hours already there are skipped, one cut short is redone. "
        "Prints a JSON report; exit 1 on an upload error.",
    )
    sync.add_argument("--to", dest="uri", help="destination URI (default [worker] upload_uri)")
    sync.add_argument(
        "--older-than-s",
        type=float,
        help="upload hours that ended this long ago (default [worker] compact_older_than_s)",
    )
    sync.add_argument("--store", help="local store directory (default [worker] store_dir)")
    sync.add_argument("--no-progress", action="store_true", help="no progress line on stderr")

    health = sub.add_parser(
        "health",
        help="per-site health: last event, rate, rejects, consumer lag, silent sites",
        description="Per-site health from the store, the dead letters and the worker's consumer group "
        "([health] keys set when a site counts as silent). Exit 4 when any site is silent, so cron "
        "and monitoring can act on it; 0 otherwise.",
    )
    health.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    health.add_argument(
        "--no-kafka", action="store_true", help="store only: no consumer lag, no shipper rejects"
    )
    health.add_argument("--store", help="store directory (default [worker] store_dir)")

    val = sub.add_parser("validate", help="check a config file and print the effective configuration")
    val.add_argument("--print-defaults", action="store_true", help="print every key with its default and doc")
    return p


def _cmd_validate(cfg: Config, args: argparse.Namespace) -> int:
    if args.print_defaults:
        sys.stdout.write(describe())
        return EXIT_OK
    import dataclasses

    from pipeline.kafka_security import REDACTED, redacted

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
            },
            indent=2,
        )
    )
    print(f"config OK ({cfg.source})", file=sys.stderr)
    return EXIT_OK


def _cmd_kafka(cfg: Config, args: argparse.Namespace) -> int:
    from pipeline.broker import LocalKafka

    broker = LocalKafka(cfg.kafka)
    if cfg.kafka.bootstrap and args.action in ("up", "down"):
        print(
            f"[kafka] bootstrap is set ({cfg.kafka.bootstrap}); the local broker is not used", file=sys.stderr
        )
        return EXIT_USAGE
    if args.action == "mirror":
        return _kafka_mirror(cfg, args)
    if args.action == "install":
        print(f"Kafka jars in {broker.install(quiet=False)}")
        from pipeline.broker import mirror

        print(f"MirrorMaker 2 jars in {mirror.install(broker.lib.parent, quiet=False)}")
    elif args.action == "up":
        print(broker.up().describe())
    elif args.action == "down":
        print("stopped" if broker.down() else "was not running")
    else:
        status = broker.status()
        print(status.describe())
        return EXIT_OK if status.answering else EXIT_FAIL
    return EXIT_OK


def _kafka_mirror(cfg: Config, args: argparse.Namespace) -> int:
    """MirrorMaker 2 in the foreground: site clusters -> centre, until SIGTERM or Ctrl-C."""
    import time

    from pipeline.broker import LocalKafka, mirror

    if not args.site or not args.centre:
        print(
            "fireplot kafka mirror needs --site NAME=BOOTSTRAP (one or more) and --centre BOOTSTRAP",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        sites = [mirror.Site.parse(text) for text in args.site]
        # Dead letters too, so a site's rejects are seen at the centre.
        names = [n for n in (cfg.kafka.events_topic, cfg.kafka.raw_topic, cfg.kafka.dead_letter_topic) if n]
        runner = mirror.MirrorMaker(
            sites,
            args.centre,
            names,
            Path(cfg.kafka.var_dir) / "mirror" / "-".join(s.alias for s in sites),
            LocalKafka(cfg.kafka).lib.parent,
            heap_mb=cfg.kafka.mirror_heap_mb,
        )
    except ValueError as exc:
        print(f"fireplot kafka mirror: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = StopFlag(signal.SIGINT, signal.SIGTERM)
    runner.start()
    try:
        runner.wait_started()
        print(
            f"MirrorMaker 2 replicating {', '.join(names)} of {', '.join(s.alias for s in sites)} into "
            f"{args.centre} as <site>.<topic>; logs in {runner.logs}",
            file=sys.stderr,
        )
        while not stop() and runner.pid() is not None:
            if failed := runner.failure():
                print(f"fireplot kafka mirror: a MirrorMaker task died, stopping: {failed}", file=sys.stderr)
                break
            time.sleep(0.5)
    finally:
        runner.stop()
    if stop():
        return EXIT_OK
    print(f"fireplot kafka mirror: MirrorMaker 2 exited; see {runner.logs / 'server.log'}", file=sys.stderr)
    return EXIT_FAIL


def _cmd_parse(cfg: Config, args: argparse.Namespace) -> int:
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


def _cmd_ship(cfg: Config, args: argparse.Namespace) -> int:
    from producers.publisher import Stopped
    from producers.shipper import Shipper

    cfg = with_overrides(cfg, "shipper", site=args.site, registry_path=args.registry)
    if args.metrics_port is not None:
        cfg = with_overrides(cfg, "shipper", metrics_port=args.metrics_port)
    stopping = StopFlag(signal.SIGTERM)
    publisher, registry, metrics = _shipping_parts(cfg, stopping)
    progress = None
    if args.command == "backfill":
        from producers.backfill import BackfillProgress
        from producers.shipper import expand_paths

        args.follow = False
        progress = BackfillProgress(expand_paths(args.files))
    shipper = Shipper(
        cfg, publisher, fmt=args.format, host=args.host, registry=registry, metrics=metrics, progress=progress
    )
    try:
        stats = shipper.ship_paths(args.files, follow=args.follow, stop=stopping)
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
        _quick_exit(EXIT_OK)
    return EXIT_OK


def _cmd_receive(cfg: Config, args: argparse.Namespace) -> int:
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


def _cmd_worker(cfg: Config, args: argparse.Namespace) -> int:
    from pipeline.worker import run

    cfg = with_overrides(cfg, "worker", store_dir=args.store, web_port=args.web_port)
    from pipeline.store import is_uri

    if is_uri(cfg.worker.store_dir):
        print(
            f"fireplot worker: the store must be a local directory, not {cfg.worker.store_dir} "
            "(exactly-once flushes need flock and rename); copy closed hours to object storage "
            "with `fireplot store sync`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.dataset:
        from pipeline import datasets
        from pipeline.broker import ensure_topics

        try:
            topic = datasets.replay_topic(args.dataset)
        except ValueError as exc:
            print(f"fireplot: {exc}", file=sys.stderr)
            return EXIT_USAGE
        ensure_topics(
            cfg.kafka.effective_bootstrap,
            {topic: cfg.kafka.events_partitions},
            datasets.REPLAY_TOPIC_CONFIGS,
            cfg.kafka,
        )
        cfg = with_overrides(cfg, "kafka", events_topic=topic)
        cfg = with_overrides(
            cfg,
            "worker",
            store_dir=str(datasets.root(cfg.worker.store_dir, args.dataset)),
            app_id=f"{cfg.worker.app_id}.replay.{args.dataset}",
            # Into the live archive, replayed events come through another topic than the
            # originals, so the per-partition marks cannot vouch for them: check each one.
            check_all_ids=args.dataset == datasets.MAIN,
            raw_enabled=False,  # a replay archives its own topic, not the live raw lines
        )
    run(cfg, loglevel=args.log_level)
    return EXIT_OK


def _cmd_rebuild(cfg: Config, args: argparse.Namespace) -> int:
    from pipeline import datasets
    from pipeline.kafka_security import client_kwargs
    from pipeline.rebuild import RebuildProgress, rebuild
    from pipeline.store import Store

    try:
        root = datasets.root(args.store or cfg.worker.store_dir, args.into)
    except ValueError as exc:
        print(f"fireplot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stopping = StopFlag(signal.SIGTERM, signal.SIGINT)
    progress = RebuildProgress()
    stats = rebuild(
        cfg.kafka.effective_bootstrap,
        cfg.kafka.events_topic,
        args.since,
        Store(root),
        root / "_dead_letters",
        stop=stopping,
        on_progress=progress,
        security=client_kwargs(cfg.kafka),
    )
    progress(stats, final=True)
    print(json.dumps({"dataset": args.into, "store": str(root), **vars(stats)}), file=sys.stderr)
    return EXIT_OK


def _cmd_replay(cfg: Config, args: argparse.Namespace) -> int:

    from pipeline import datasets
    from pipeline.broker import ensure_topics
    from pipeline.kafka_security import client_kwargs
    from pipeline.store import Store
    from producers.publisher import Publisher
    from producers.replay import Progress, ReplayState, replay

    if args.end <= args.start:
        print("fireplot: --to must be after --from", file=sys.stderr)
        return EXIT_USAGE
    try:
        topic = datasets.replay_topic(args.into)
    except ValueError as exc:
        print(f"fireplot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store_dir = args.store or cfg.worker.store_dir
    bootstrap = cfg.kafka.effective_bootstrap
    ensure_topics(bootstrap, {topic: cfg.kafka.events_partitions}, datasets.REPLAY_TOPIC_CONFIGS, cfg.kafka)
    run_key = {
        "from": args.start.isoformat(),
        "to": args.end.isoformat(),
        "sites": sorted(args.site or []),
        "store": str(Path(store_dir).resolve()),
    }
    state = ReplayState(Path(cfg.kafka.var_dir) / "replay" / f"{args.into}.json", run_key)
    publisher = Publisher(
        bootstrap,
        topic,
        linger_ms=cfg.shipper.linger_ms,
        timeout_s=cfg.shipper.send_timeout_s,
        **client_kwargs(cfg.kafka),
    )
    stopping = StopFlag(signal.SIGTERM, signal.SIGINT)
    progress = Progress((args.end - args.start).total_seconds())
    try:
        sent = replay(
            Store(store_dir),
            publisher,
            args.start,
            args.end,
            state,
            sites=args.site,
            speed=None if args.max else args.speed,
            stop=stopping,
            progress=progress,
        )
    finally:
        publisher.close()
    done = state.done_until is not None and state.done_until >= args.end
    until = state.done_until.isoformat() if state.done_until else None
    summary = {"topic": topic, "events_sent": sent, "complete": done, "done_until": until}
    print(json.dumps(summary), file=sys.stderr)
    return EXIT_OK if done or stopping() else EXIT_FAIL


def _cmd_serve(cfg: Config, args: argparse.Namespace) -> int:
    from consumers.web.server import serve

    cfg = with_overrides(cfg, "web", port=args.port, address=args.address)
    cfg = with_overrides(cfg, "worker", store_dir=args.store)
    serve(cfg, args.date)
    return EXIT_OK


def _cmd_render(cfg: Config, args: argparse.Namespace) -> int:
    import time

    from consumers.render import Layout, check_sites, parse_date, render_day
    from pipeline import datasets
    from pipeline.store import Store, is_uri

    location = args.store or cfg.worker.store_dir
    root = Path(location)
    try:
        date = parse_date(args.date, dt.datetime.now(dt.UTC).date())
        layout = Layout(width_px=args.width_px, height_px=args.height_px)
        if is_uri(location):
            # An uploaded copy (`fireplot store sync`) holds the live archive's events only.
            if args.dataset:
                raise ValueError("--dataset needs a local store directory, not a URI")
            store = Store(location)
        else:
            if not root.is_dir():
                raise ValueError(f"store directory {root} does not exist ([worker] store_dir or --store)")
            if args.dataset:
                if args.dataset not in datasets.names(root):
                    known = ", ".join(datasets.names(root))
                    raise ValueError(f"--dataset {args.dataset!r}: no such dataset (datasets: {known})")
                root = datasets.root(root, args.dataset)
            store = Store(root)
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


def _cmd_web_credential(cfg: Config, args: argparse.Namespace) -> int:
    from consumers.web import auth

    name = args.user or args.token
    if ":" in name or not name.strip():
        print(f"fireplot web-credential: a name must be non-empty without ':': {name!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.token:
        token = auth.new_token()
        print(json.dumps({"name": name, "entry": f"{name}:{auth.hash_token(token)}", "token": token}))
        return EXIT_OK
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for {name}: ")
        if password != getpass.getpass("again: "):
            print("fireplot web-credential: the passwords differ", file=sys.stderr)
            return EXIT_USAGE
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        print("fireplot web-credential: a password needs at least 8 characters", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"name": name, "entry": f"{name}:{auth.hash_password(password)}"}))
    return EXIT_OK


def _cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from producers.demo import Demo, write_lines

    end = args.end or dt.datetime.now(dt.UTC)
    packets = Demo(args.seed).history(end, hours=args.hours, per_hour=args.per_hour)
    n = write_lines(packets, args.out)
    print(f"wrote {n} lines to {args.out}", file=sys.stderr)
    return EXIT_OK


def _cmd_tail(cfg: Config, args: argparse.Namespace) -> int:
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


def _cmd_detect(cfg: Config, args: argparse.Namespace) -> int:
    from pipeline.detect.runner import evaluator_for, follow, replay

    ev, store = evaluator_for(cfg, args.store)
    if args.follow:
        stopping = StopFlag(signal.SIGTERM)
        import contextlib

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


def _cmd_scans(cfg: Config, args: argparse.Namespace) -> int:
    from pathlib import Path as _Path

    from pipeline.detect.engine import KINDS
    from pipeline.detect.runner import scan_json
    from pipeline.detect.scanstore import ScanStore

    if args.kind is not None and args.kind not in KINDS:
        print(f"fireplot: unknown kind {args.kind!r}; known: {', '.join(KINDS)}", file=sys.stderr)
        return EXIT_USAGE
    root = cfg.detect.scans_dir or str(_Path(args.store or cfg.worker.store_dir) / "scans")
    table = ScanStore(root).read(args.since, args.until, site=args.site, kind=args.kind)
    for row in table.to_pylist():
        sys.stdout.write(scan_json(row) + "\n")
    return EXIT_OK


def _cmd_compact(cfg: Config, args: argparse.Namespace) -> int:
    from pipeline.compact import compact
    from pipeline.store import Store

    cfg = with_overrides(cfg, "worker", store_dir=args.store)
    older = args.older_than_s if args.older_than_s is not None else cfg.worker.compact_older_than_s
    report = compact(Store(cfg.worker.store_dir), older, cfg.worker.retention_days_events)
    print(json.dumps(report.as_dict()))
    return EXIT_OK


def _cmd_rollup(cfg: Config, args: argparse.Namespace) -> int:
    from pipeline.rollup import update
    from pipeline.store import Store

    cfg = with_overrides(cfg, "worker", store_dir=args.store)
    hours = update(Store(cfg.worker.store_dir), cfg.worker.compact_older_than_s, date=args.date)
    print(json.dumps({"hours_written": hours}))
    return EXIT_OK


def _cmd_store(cfg: Config, args: argparse.Namespace) -> int:
    from pipeline.progress import ProgressLine
    from pipeline.store import Store
    from pipeline.upload import Uploader, UploadReport

    cfg = with_overrides(cfg, "worker", store_dir=args.store, upload_uri=args.uri)
    if not cfg.worker.upload_uri:
        print("fireplot store sync: no destination (--to URI or [worker] upload_uri)", file=sys.stderr)
        return EXIT_USAGE
    older = args.older_than_s if args.older_than_s is not None else cfg.worker.compact_older_than_s
    try:
        uploader = Uploader(Store(cfg.worker.store_dir), cfg.worker.upload_uri)
    except ValueError as exc:
        print(f"fireplot store sync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    line = None if args.no_progress else ProgressLine()

    def show(share: float, report: UploadReport) -> None:
        if line is not None:
            line.show(
                share,
                f"{report.hours_uploaded} hours uploaded, {report.hours_present} already there, "
                f"{report.rollups_uploaded} rollups, {report.bytes_uploaded / 1e6:,.1f} MB",
                final=share >= 1.0,
            )

    report = uploader.sync(older, retention_days=cfg.worker.upload_retention_days, progress=show)
    print(json.dumps(report.as_dict()))
    return EXIT_OK


EXIT_SILENT = 4  # `fireplot health`: at least one site is silent


def _cmd_health(cfg: Config, args: argparse.Namespace) -> int:
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


def _cmd_up(cfg: Config, args: argparse.Namespace) -> int:
    from fireplot.up import run_all

    cfg = with_overrides(cfg, "web", port=args.port)
    return run_all(cfg, demo=not args.no_demo, seed=args.seed, config_path=args.config)


COMMANDS = {
    "up": _cmd_up,
    "kafka": _cmd_kafka,
    "parse": _cmd_parse,
    "ship": _cmd_ship,
    "backfill": _cmd_ship,
    "receive": _cmd_receive,
    "worker": _cmd_worker,
    "replay": _cmd_replay,
    "rebuild": _cmd_rebuild,
    "serve": _cmd_serve,
    "render": _cmd_render,
    "web-credential": _cmd_web_credential,
    "demo": _cmd_demo,
    "tail": _cmd_tail,
    "validate": _cmd_validate,
    "compact": _cmd_compact,
    "rollup": _cmd_rollup,
    "store": _cmd_store,
    "detect": _cmd_detect,
    "scans": _cmd_scans,
    "health": _cmd_health,
}


def run() -> NoReturn:
    """The ``fireplot`` command: `main`, allowed to end the process quickly (see `_quick_exit`)."""
    sys.exit(main(quick_exit=True))


def _quick_exit(code: int) -> NoReturn:
    """End the process now that everything is acknowledged, saved and closed.

    Tearing down every module and object of a process that loaded pyarrow and
    kafka-python takes ~0.1 s, a tenth of shipping a million lines. Skipping
    it loses nothing: the shipper survives kill -9 at any moment
    (tests/test_shipper_kill.py), and this runs only after Kafka acknowledged
    everything and the registry was saved; logs and standard streams are
    flushed first.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
            return COMMANDS[args.command](cfg, args)
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


if __name__ == "__main__":
    sys.exit(main())
