"""`ship --follow` across every rotation style: nothing lost, a compressed rotated file not re-sent."""

from __future__ import annotations

import gzip
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import System
from tests.test_shipper_kill import write_probe_lines

N = 4000


def wait_events(system: System, n: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    have = 0
    while time.monotonic() < deadline:
        have = system.topic_events().num_rows
        if have >= n:
            return have
        time.sleep(0.5)
    raise AssertionError(f"{have} events on Kafka, expected {n}\n{system.log_of('follow')}")


@pytest.mark.parametrize("style", ["rename", "rename_then_gzip", "copytruncate", "truncate_rewrite"])
def test_follow_across_rotation_loses_nothing(system: System, tmp_path: Path, style: str) -> None:
    """Lines written before, during and after a rotation all reach Kafka exactly once per line."""
    logs = tmp_path / "logs-in"
    logs.mkdir()
    live = logs / "fw.log"
    system.configure(
        "shipper",
        registry_path=str(tmp_path / "registry.json"),
        spool_dir=str(tmp_path / "spool"),
        follow_poll_interval_ms=100,
    )
    write_probe_lines(live, N, start=0)
    proc = system.start("follow", "ship", str(logs / "fw.log*"), "--site", "test", "--follow")
    wait_events(system, N)
    if style in ("rename", "rename_then_gzip"):
        # The writer appends a last burst to the renamed file before it reopens its log.
        old = logs / "fw.log.1"
        os.rename(live, old)
        write_probe_lines(old, N, start=N, append=True)
        write_probe_lines(live, N, start=2 * N)
        wait_events(system, 3 * N)
        if style == "rename_then_gzip":
            time.sleep(1.0)  # the rotated file is read to its end and closed
            with open(old, "rb") as src, gzip.open(logs / "fw.log.1.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            old.unlink()
            time.sleep(2.0)  # a re-read of the .gz would show as duplicates now
    elif style == "copytruncate":
        # Lines written just before the copy may be read from the live file or the copy.
        write_probe_lines(live, N, start=N, append=True)
        shutil.copyfile(live, logs / "fw.log.1")
        with open(live, "r+b") as fh:
            fh.truncate(0)
        write_probe_lines(live, N, start=2 * N, append=True)
    else:
        # Truncate and rewrite in place, with the same first line as before (a new generation).
        with open(live, "r+b") as fh:
            fh.truncate(0)
        # A rewrite of the very same bytes that lands between two polls cannot be told from
        # an append (same inode, first line and prefix): the shipper must see the cut first,
        # as it does whenever the writer is not faster than follow_poll_interval_ms.
        deadline = time.monotonic() + 30
        while "file truncated" not in (system.logs / "follow.log").read_text():
            assert time.monotonic() < deadline, system.log_of("follow")
            time.sleep(0.05)
        write_probe_lines(live, 3 * N, start=0, append=True)
    expected_lines = 3 * N if style != "truncate_rewrite" else 4 * N
    wait_events(system, expected_lines)
    time.sleep(1.5)
    proc.terminate()
    proc.wait(timeout=30)
    events = system.topic_events()
    ids = events.group_by(["source_id", "source_offset"]).aggregate([])
    assert ids.num_rows == events.num_rows, "an event id was sent twice without a kill"
    ts = np.asarray(events.column("ts").cast("int64"))
    unique_ts = np.unique(ts)
    distinct_lines = 3 * N
    assert unique_ts.size == distinct_lines, (
        f"{unique_ts.size} distinct lines on Kafka, wrote {distinct_lines}"
    )
    if style == "copytruncate":
        # A line read from both the live file and the copy has the same id; nothing else repeats.
        assert events.num_rows == distinct_lines
    else:
        assert events.num_rows == expected_lines
