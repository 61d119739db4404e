"""Filling archives: ``worker`` (the live archive, or a dataset), ``replay`` and ``rebuild``.

A dataset is a store of its own beside the live archive (``pipeline.datasets``):
``replay`` publishes archived events to its replay topic, a ``worker --dataset``
archives that topic, and ``rebuild`` fills one straight from the events topic.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from fireplot.cli.exits import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from fireplot.cli.options import Commands, add_store, command, iso_datetime
from fireplot.stopping import StopFlag
from pipeline.config import Config, with_overrides


def register(sub: Commands) -> None:
    worker = command(sub, "worker", _worker, "run the archive worker (Kafka -> Parquet)")
    add_store(worker)
    worker.add_argument(
        "--web-port",
        type=int,
        help="metrics and readiness port: /metrics, /ready (default [worker] web_port)",
    )
    worker.add_argument(
        "--dataset",
        help="archive the replay topic of this dataset (fireplot.replay.NAME) into "
        "<store>/datasets/NAME instead of the live events topic into the live archive",
    )

    replay = command(sub, "replay", _replay, "replay archived events in event-time order to a replay topic")
    replay.add_argument("--from", dest="start", type=iso_datetime, required=True, help="ISO 8601 start")
    replay.add_argument("--to", dest="end", type=iso_datetime, required=True, help="ISO 8601 end (exclusive)")
    replay.add_argument("--site", action="append", help="only this site (repeatable)")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=60.0, help="times real time (default 60)")
    pace.add_argument("--max", action="store_true", help="as fast as Kafka takes it")
    replay.add_argument("--into", required=True, help="dataset name to replay into")
    add_store(replay, "store to read")

    rebuild = command(
        sub, "rebuild", _rebuild, "rebuild a dataset from the events topic, from the offsets for a time"
    )
    rebuild.add_argument("--since", type=iso_datetime, required=True, help="ISO 8601 publish time")
    rebuild.add_argument("--into", required=True, help="dataset name to build")
    add_store(rebuild)


def _worker(cfg: Config, args: argparse.Namespace) -> int:
    """Consume the events topic and write hive-partitioned Parquet (site/date/hour, event
    time UTC) into the store, exactly once."""
    from pipeline.archive.app import run
    from pipeline.store import is_uri

    cfg = with_overrides(cfg, "worker", store_dir=args.store, web_port=args.web_port)
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
            archiving = datasets.worker_config(cfg, args.dataset)
        except ValueError as exc:
            print(f"fireplot: {exc}", file=sys.stderr)
            return EXIT_USAGE
        ensure_topics(
            cfg.kafka.effective_bootstrap,
            {archiving.kafka.events_topic: cfg.kafka.events_partitions},
            datasets.REPLAY_TOPIC_CONFIGS,
            cfg.kafka,
        )
        cfg = archiving
    run(cfg, loglevel=args.log_level)
    return EXIT_OK


def _rebuild(cfg: Config, args: argparse.Namespace) -> int:
    """Re-read the events topic from the first record published at or after --since up to
    its current end, into a fresh dataset (<store>/datasets/NAME) with the worker's
    exactly-once layout: e.g. after a parser fix. Uses no consumer group, so live
    processing is not disturbed. Running it again continues after what the dataset
    already holds."""
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


def _replay(cfg: Config, args: argparse.Namespace) -> int:
    """Read archived events from Parquet in event-time order and publish them to
    fireplot.replay.NAME (kept until deleted), with their original event times, paced at
    N times real time. A worker started with `fireplot worker --dataset NAME` archives
    them into a separate dataset the web UI can show (?dataset=NAME). Ctrl-C and run
    again resumes after the last event Kafka acknowledged."""
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
