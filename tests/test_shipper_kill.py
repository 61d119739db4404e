"""kill -9 the shipper at random moments: the store ends with exactly the input.

Every line of the input is a valid, unfiltered event, so the expected event
ids are exactly the byte offsets of the lines. After each kill the registry is
checked against the topic: every line before the saved position must already
be on Kafka (a registry that ran ahead of acknowledgements fails here, kill by
kill). Until the store drops re-sent events itself, the final check counts
distinct ``(source_id, source_offset)``; the re-sends are reported.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from producers.demo import Packet, format_line
from tests.conftest import System

KILLS = int(os.environ.get("FIREPLOT_TEST_KILLS", "20"))
LINES = int(os.environ.get("FIREPLOT_TEST_KILL_LINES", "1000000"))
# A kill lands this many seconds (at most, at random) after the run saved its
# first progress, so it hits mid-stream however fast or loaded the machine is.
KILL_WINDOW_S = float(os.environ.get("FIREPLOT_TEST_KILL_WINDOW_S", "0.3"))


def write_probe_lines(path: Path, n: int, start: int = 0, append: bool = False) -> np.ndarray:
    """``n`` distinct SYN probes (none filtered, none rejected); returns their byte offsets."""
    t0 = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    text = "".join(
        format_line(
            Packet(
                t0 + dt.timedelta(milliseconds=i),
                f"198.18.{i // 65536 % 256}.{i // 256 % 256}",
                "203.0.113.10",
                "TCP",
                1024 + i % 60000,
                1 + i % 65000,
            ),
            i / 1000,
        )
        + "\n"
        for i in range(start, start + n)
    ).encode()
    base = path.stat().st_size if append and path.exists() else 0
    with open(path, "ab" if append else "wb") as fh:
        fh.write(text)
    raw = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(raw == 0x0A)
    return np.concatenate(([0], ends[:-1] + 1)).astype(np.int64) + base


def distinct_ids(table: pa.Table) -> pa.Table:
    return table.group_by(["source_id", "source_offset"]).aggregate([])


def registry_offsets(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    assert data["version"] == 1
    return {e["source_id"]: e["offset"] for e in data["sources"]}


def ids_in_store(system: System) -> pa.Table:
    empty = pa.table({"source_id": pa.array([], pa.string()), "source_offset": pa.array([], pa.int64())})
    return system.store.scan(lambda d: d.to_table(columns=["source_id", "source_offset"]), empty)


def test_kill9_at_random_points_loses_nothing(system: System, tmp_path: Path) -> None:
    """Killed ~20 times mid-run, the shipper resumes from its registry and the store gets every line."""
    log = tmp_path / "fw.log"
    offsets = write_probe_lines(log, LINES)
    registry = tmp_path / "registry.json"
    system.configure("shipper", registry_path=str(registry), spool_dir=str(tmp_path / "spool"))
    rng = random.Random(int(os.environ.get("FIREPLOT_TEST_SEED", "7")))
    kills_landed = 0
    size = log.stat().st_size
    for i in range(KILLS):
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
    assert kills_landed >= KILLS // 2, f"only {kills_landed} of {KILLS} kills hit a running shipper"
    system.ship([log])
    assert registry_offsets(registry) == {next(iter(registry_offsets(registry))): log.stat().st_size}

    system.start_worker()
    deadline = time.monotonic() + 240
    while True:
        table = ids_in_store(system)
        if distinct_ids(table).num_rows >= len(offsets):
            break
        assert time.monotonic() < deadline, (
            f"store has {distinct_ids(table).num_rows}"
        )
        time.sleep(1)
    time.sleep(2)  # anything beyond the input would show now
    table = ids_in_store(system)
    ids = distinct_ids(table)
    assert ids.num_rows == len(offsets)
    assert np.array_equal(np.sort(np.asarray(ids.column("source_offset"))), offsets)
    resent = table.num_rows - ids.num_rows
    print(f"{kills_landed} kills; {resent} events re-sent after kills (dropped by store-side dedupe)")
