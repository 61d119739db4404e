"""Backfill: rotated and compressed old logs load once; a second run adds nothing."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

from producers.demo import Demo, Packet, write_lines
from tests.support.system import System


def _late(p: Packet) -> bool:
    return "RST" in p.flags or ("ACK" in p.flags and "FIN" in p.flags)


def test_backfill_of_rotated_and_gzipped_logs_is_idempotent(system: System, tmp_path: Path) -> None:
    logs = tmp_path / "old-logs"  # tmp_path/logs holds the system's process logs
    logs.mkdir()
    expected = 0
    for i, days_ago in enumerate((3, 2, 1)):
        end = dt.datetime(2026, 11, 20, tzinfo=dt.UTC) - dt.timedelta(days=days_ago)
        packets = Demo(seed=100 + i).history(end, hours=6, per_hour=1000)
        expected += sum(1 for p in packets if not _late(p))
        plain = logs / f"fw.log.{i}"
        write_lines(packets, plain)
        if i == 0:  # the oldest rotation is compressed, as logrotate leaves it
            with open(plain, "rb") as src, gzip.open(logs / "fw.log.0.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            plain.unlink()

    first = system.run("backfill", str(logs / "fw.log.*"), "--site", "bf")
    summary = json.loads(first.stderr.strip().splitlines()[-1])
    assert summary["files"] == 3
    assert summary["events_sent"] == expected
    assert summary["rejected"] == 0
    assert "100.0%" in first.stderr and "3/3 files" in first.stderr
    system.start_worker()
    table = system.wait_for_rows(expected)
    assert (
        table.select(["source_id", "source_offset"])
        .group_by(["source_id", "source_offset"])
        .aggregate([])
        .num_rows
        == expected
    )

    second = system.run("backfill", str(logs / "fw.log.*"), "--site", "bf")
    again = json.loads(second.stderr.strip().splitlines()[-1])
    assert again["events_sent"] == 0 and again["lines"] == 0
    system.wait_for_rows(expected, timeout_s=10)
