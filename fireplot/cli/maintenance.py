"""Keeping the store: ``compact`` (and retention), ``rollup``, and ``store sync`` to object storage."""

from __future__ import annotations

import argparse
import json
import sys

from fireplot.cli.exits import EXIT_OK, EXIT_USAGE
from fireplot.cli.options import Commands, add_store, command, iso_date
from pipeline.config import Config, with_overrides


def register(sub: Commands) -> None:
    comp = command(
        sub,
        "compact",
        _compact,
        "merge closed hours' small files into one per partition-hour; apply retention",
    )
    _add_older_than(comp, "compact")
    add_store(comp)

    roll = command(
        sub, "rollup", _rollup, "compute per-minute port and per-hour source rollups of closed hours"
    )
    roll.add_argument("--date", type=iso_date, help="only hours of this event date (YYYY-MM-DD)")
    add_store(roll)

    st = sub.add_parser("store", help="manage the store: copy closed hours to object storage")
    st_sub = st.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    sync = command(
        st_sub,
        "sync",
        _store_sync,
        "upload closed, compacted hours to an object store (S3, GCS, Azure, HDFS URI)",
    )
    sync.add_argument("--to", dest="uri", help="destination URI (default [worker] upload_uri)")
    _add_older_than(sync, "upload")
    add_store(sync, "local store directory")
    sync.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def _add_older_than(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--older-than-s``: which closed hours a command takes, [worker] compact_older_than_s by default."""
    parser.add_argument(
        "--older-than-s",
        type=float,
        help=f"{verb} hours that ended this long ago (default [worker] compact_older_than_s)",
    )


def _compact(cfg: Config, args: argparse.Namespace) -> int:
    """Merge each closed hour's flush files into one Parquet file (atomic swap, readers
    unaffected), recover interrupted compactions, delete event dates older than [worker]
    retention_days_events. Prints a JSON report."""
    from pipeline.compact import compact
    from pipeline.store import Store

    cfg = with_overrides(cfg, "worker", store_dir=args.store)
    older = args.older_than_s if args.older_than_s is not None else cfg.worker.compact_older_than_s
    report = compact(Store(cfg.worker.store_dir), older, cfg.worker.retention_days_events)
    print(json.dumps(report.as_dict()))
    return EXIT_OK


def _rollup(cfg: Config, args: argparse.Namespace) -> int:
    """(Re)compute the rollups of every closed hour whose events changed (idempotent).
    Prints how many hours were written."""
    from pipeline.rollup import update
    from pipeline.store import Store

    cfg = with_overrides(cfg, "worker", store_dir=args.store)
    hours = update(Store(cfg.worker.store_dir), cfg.worker.compact_older_than_s, date=args.date)
    print(json.dumps({"hours_written": hours}))
    return EXIT_OK


def _store_sync(cfg: Config, args: argparse.Namespace) -> int:
    """Copy every closed hour (compacted to one file) of the local store to a pyarrow
    filesystem URI with the same hive layout, e.g. s3://bucket/fireplot?region=eu-west-1
    (credentials from AWS_* variables or ~/.aws). Idempotent and resumable: hours
    already there are skipped, one cut short is redone. Prints a JSON report; exit 1
    on an upload error."""
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
