"""Kafka stops mid-stream: the shipper spools to disk, drains in order when Kafka returns, loses nothing.

The session broker is shared, so this test runs its own second broker on
free ports and stops it for ``FIREPLOT_TEST_OUTAGE_S`` seconds while the
shipper keeps reading a growing file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.broker import LocalKafka
from pipeline.config import KafkaConfig
from tests.conftest import JAR_CACHE, System, free_port
from tests.test_shipper_kill import write_probe_lines
from tests.test_shipper_rotation import wait_events

OUTAGE_S = float(os.environ.get("FIREPLOT_TEST_OUTAGE_S", "25"))


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    home = tmp_path / "kafka2"
    cfg = KafkaConfig(local_port=free_port(), local_controller_port=free_port(), var_dir=str(home))
    broker = LocalKafka(cfg, home=home, lib_root=JAR_CACHE)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


def test_kafka_outage_spools_and_drains_in_order(own_broker: LocalKafka, tmp_path: Path) -> None:
    """Lines appended while Kafka is down are spooled, then all arrive, in file order."""
    system = System(tmp_path / "sys", own_broker.cfg.local_bootstrap)
    spool = tmp_path / "spool"
    system.configure(
        "shipper",
        registry_path=str(tmp_path / "registry.json"),
        spool_dir=str(spool),
        follow_poll_interval_ms=100,
    )
    log = tmp_path / "fw.log"
    try:
        offsets = write_probe_lines(log, 20_000)
        system.start("follow", "ship", str(log), "--site", "test", "--follow")
        wait_events(system, 20_000)
        own_broker.down()
        t_down = time.monotonic()
        n = 20_000
        spooled_seen = False
        while time.monotonic() - t_down < OUTAGE_S:
            offsets = np.concatenate((offsets, write_probe_lines(log, 10_000, start=n, append=True)))
            n += 10_000
            time.sleep(1.0)
            spooled_seen = spooled_seen or any(spool.glob("*.spool"))
        assert spooled_seen, f"nothing was spooled while Kafka was down\n{system.log_of('follow')}"
        own_broker.up()
        wait_events(system, n, timeout_s=120)
        time.sleep(2)
        events = system.topic_events()
        assert events.num_rows == n, f"{events.num_rows} events for {n} lines"
        # One sensor: one key, one partition; its records are in read order.
        got = np.asarray(events.column("source_offset"))
        assert np.array_equal(got, offsets), "events arrived out of order or with gaps"
        deadline = time.monotonic() + 10
        while any(spool.glob("*.spool")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(spool.glob("*.spool")), "the spool was not emptied after draining"
    finally:
        system.stop()
