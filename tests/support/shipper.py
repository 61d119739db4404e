"""The shipper's crash and rotation scenarios, shared by the plain and the parse-pool tests."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from tests.support.lines import write_probe_lines
from tests.support.system import System, distinct_ids, ids_in_store, registry_offsets, wait_events

# A kill lands this many seconds (at most, at random) after the run saved its
# first progress, so it hits mid-stream however fast or loaded the machine is.
KILL_WINDOW_S = float(os.environ.get("FIREPLOT_TEST_KILL_WINDOW_S", "0.3"))
ROTATION_N = 4000  # lines per write in the rotation scenario


def kill_shipper_repeatedly(system: System, tmp_path: Path, kills: int, lines: int, seed: int) -> None:
    """kill -9 ``fireplot ship`` ``kills`` times over a file of ``lines`` probes, then let it finish.

    After each kill every line before the registry's saved position must be on
    Kafka; at the end the store holds exactly the input.
    """
    log = tmp_path / "fw.log"
    offsets = write_probe_lines(log, lines)
    registry = tmp_path / "registry.json"
    system.configure("shipper", registry_path=str(registry), spool_dir=str(tmp_path / "spool"))
    rng = random.Random(seed)
    kills_landed = 0
    size = log.stat().st_size
    for i in range(kills):
        before = max(registry_offsets(registry).values(), default=-1)
        if before >= size:
            break
        proc = system.start(f"ship-{i}", "ship", str(log), "--site", "test")
        # Kill while it ships, whatever the machine's speed: once it has saved
        # progress past the last run's position, at a random moment soon after.
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if max(registry_offsets(registry).values(), default=-1) > before:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0, KILL_WINDOW_S))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills_landed += 1
        proc.wait(timeout=30)
        positions = registry_offsets(registry)
        if not positions:
            continue
        (sid, pos), *others = positions.items()
        assert not others, positions
        on_kafka = system.topic_events()
        have = pc.filter(on_kafka.column("source_offset"), pc.equal(on_kafka.column("source_id"), sid))
        acked = offsets[offsets < pos]
        missing = np.setdiff1d(acked, np.asarray(have), assume_unique=False)
        assert missing.size == 0, (
            f"kill {i}: registry at {pos} but {missing.size} lines before it not on Kafka"
        )
    assert kills_landed >= kills // 2, f"only {kills_landed} of {kills} kills hit a running shipper"
    system.ship([log])
    assert registry_offsets(registry) == {next(iter(registry_offsets(registry))): log.stat().st_size}

    system.start_worker()
    deadline = time.monotonic() + 240
    while True:
        table = ids_in_store(system)
        if distinct_ids(table).num_rows >= len(offsets):
            break
        assert time.monotonic() < deadline, f"store has {distinct_ids(table).num_rows}"
        time.sleep(1)
    time.sleep(2)  # anything beyond the input would show now
    table = ids_in_store(system)
    ids = distinct_ids(table)
    assert ids.num_rows == len(offsets)
    assert np.array_equal(np.sort(np.asarray(ids.column("source_offset"))), offsets)
    resent = table.num_rows - ids.num_rows
    print(f"{kills_landed} kills; {resent} events re-sent after kills (dropped by store-side dedupe)")


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
