"""The shipper's rotation scenarios, shared by the plain and the parse-pool tests.

Styles: ``rename`` (the writer appends a last burst to the renamed file),
``rename_then_gzip`` (compressed after the shipper read it all),
``gzip_before_read`` (renamed, grown and compressed while the shipper is
frozen, so the burst is unread when the original is deleted),
``gzip_while_down`` (the same while the shipper is stopped; the restarted
shipper finds only the ``.gz``), ``copytruncate`` and ``truncate_rewrite``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np

from tests.support.lines import write_probe_lines
from tests.support.system import System, wait_events

ROTATION_N = 4000  # lines per write in the rotation scenario


def follow_across_rotation(system: System, tmp_path: Path, style: str) -> None:
    """Lines written before, during and after a rotation of ``style`` reach Kafka once per line."""
    logs = tmp_path / "logs-in"
    logs.mkdir()
    live = logs / "fw.log"
    system.configure(
        "shipper",
        registry_path=str(tmp_path / "registry.json"),
        spool_dir=str(tmp_path / "spool"),
        follow_poll_interval_ms=100,
    )
    write_probe_lines(live, ROTATION_N, start=0)
    proc = system.start("follow", "ship", str(logs / "fw.log*"), "--site", "test", "--follow")
    wait_events(system, ROTATION_N)
    if style in ("rename", "rename_then_gzip"):
        # The writer appends a last burst to the renamed file before it reopens its log.
        old = logs / "fw.log.1"
        os.rename(live, old)
        write_probe_lines(old, ROTATION_N, start=ROTATION_N, append=True)
        write_probe_lines(live, ROTATION_N, start=2 * ROTATION_N)
        wait_events(system, 3 * ROTATION_N)
        if style == "rename_then_gzip":
            time.sleep(1.0)  # the rotated file is read to its end and closed
            with open(old, "rb") as src, gzip.open(logs / "fw.log.1.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            old.unlink()
            time.sleep(2.0)  # a re-read of the .gz would show as duplicates now
    elif style in ("gzip_before_read", "gzip_while_down"):
        # logrotate with compress (no delaycompress): rename, the writer's last burst, gzip,
        # delete, all before the shipper reads the burst. Frozen, it still holds the renamed
        # file open; stopped, it holds nothing and must resume inside the .gz.
        if style == "gzip_before_read":
            os.killpg(proc.pid, signal.SIGSTOP)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, system.log_of("follow")
        old = logs / "fw.log.1"
        os.rename(live, old)
        write_probe_lines(old, ROTATION_N, start=ROTATION_N, append=True)
        with open(old, "rb") as src, gzip.open(logs / "fw.log.1.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        old.unlink()
        write_probe_lines(live, ROTATION_N, start=2 * ROTATION_N)
        unread = system.topic_events().num_rows
        assert unread == ROTATION_N, f"{unread} events on Kafka: the burst was read before the gzip"
        if style == "gzip_before_read":
            os.killpg(proc.pid, signal.SIGCONT)
        else:
            proc = system.start("follow", "ship", str(logs / "fw.log*"), "--site", "test", "--follow")
        wait_events(system, 3 * ROTATION_N)
        time.sleep(2.0)  # a second read of the burst (from the fd and the .gz) would show now
    elif style == "copytruncate":
        # Lines written just before the copy may be read from the live file or the copy.
        write_probe_lines(live, ROTATION_N, start=ROTATION_N, append=True)
        shutil.copyfile(live, logs / "fw.log.1")
        with open(live, "r+b") as fh:
            fh.truncate(0)
        write_probe_lines(live, ROTATION_N, start=2 * ROTATION_N, append=True)
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
        write_probe_lines(live, 3 * ROTATION_N, start=0, append=True)
    expected_lines = 3 * ROTATION_N if style != "truncate_rewrite" else 4 * ROTATION_N
    wait_events(system, expected_lines)
    time.sleep(1.5)
    proc.terminate()
    proc.wait(timeout=30)
    events = system.topic_events()
    ids = events.group_by(["source_id", "source_offset"]).aggregate([])
    assert ids.num_rows == events.num_rows, "an event id was sent twice without a kill"
    ts = np.asarray(events.column("ts").cast("int64"))
    unique_ts = np.unique(ts)
    distinct_lines = 3 * ROTATION_N
    assert unique_ts.size == distinct_lines, (
        f"{unique_ts.size} distinct lines on Kafka, wrote {distinct_lines}"
    )
    if style == "copytruncate":
        # A line read from both the live file and the copy has the same id; nothing else repeats.
        assert events.num_rows == distinct_lines
    else:
        assert events.num_rows == expected_lines
