"""Running fireplot on this machine: ``up`` (everything, with demo data) and ``kafka``.

``kafka`` manages the local broker and runs MirrorMaker 2 in the foreground
(site clusters into the centre); the supervision itself is
``pipeline.broker.mirror.supervise``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from fireplot.cli.exits import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from fireplot.cli.options import Commands, command
from fireplot.stopping import StopFlag
from pipeline.config import Config, with_overrides


def register(sub: Commands) -> None:
    up = command(sub, "up", _up, "run everything locally with demo data and print the URL")
    up.add_argument("--no-demo", action="store_true", help="start the services without demo data")
    up.add_argument("--port", type=int, help="web port (default [web] port, 5006)")
    up.add_argument("--seed", type=int, default=1, help="demo random seed")

    k = command(sub, "kafka", _kafka, "manage the local Apache Kafka broker (no Docker)")
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


def _up(cfg: Config, args: argparse.Namespace) -> int:
    """Start the local Kafka broker, the worker, the web server and a demo shipper feeding
    a realistic day of blocked packets (plus a live trickle). Ctrl-C stops everything cleanly."""
    from fireplot.up import run_all

    cfg = with_overrides(cfg, "web", port=args.port)
    return run_all(cfg, demo=not args.no_demo, seed=args.seed, config_path=args.config)


def _kafka(cfg: Config, args: argparse.Namespace) -> int:
    """Install (via Maven), start, stop or inspect the single-node KRaft broker bound to
    127.0.0.1. Ignored when [kafka] bootstrap names another cluster. `mirror` runs
    MirrorMaker 2 in the foreground, copying each --site cluster's topics into the
    --centre cluster as <site>.<topic>."""
    from pipeline.broker import LocalKafka

    broker = LocalKafka(cfg.kafka)
    if cfg.kafka.bootstrap and args.action in ("up", "down"):
        print(
            f"[kafka] bootstrap is set ({cfg.kafka.bootstrap}); the local broker is not used", file=sys.stderr
        )
        return EXIT_USAGE
    if args.action == "mirror":
        return _mirror(cfg, args)
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


def _mirror(cfg: Config, args: argparse.Namespace) -> int:
    """MirrorMaker 2 in the foreground: site clusters -> centre, until SIGTERM or Ctrl-C."""
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

    def started() -> None:
        print(
            f"MirrorMaker 2 replicating {', '.join(names)} of {', '.join(s.alias for s in sites)} into "
            f"{args.centre} as <site>.<topic>; logs in {runner.logs}",
            file=sys.stderr,
        )

    stop = StopFlag(signal.SIGINT, signal.SIGTERM)
    if failed := mirror.supervise(runner, stop, on_started=started):
        print(f"fireplot kafka mirror: a MirrorMaker task died, stopping: {failed}", file=sys.stderr)
    if stop():
        return EXIT_OK
    print(f"fireplot kafka mirror: MirrorMaker 2 exited; see {runner.logs / 'server.log'}", file=sys.stderr)
    return EXIT_FAIL
