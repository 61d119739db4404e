"""A full spool stops a live shipper from reading, says so, and loses nothing when Kafka returns.

The session broker is shared, so this test runs its own broker and stops it
with a small spool while a followed file keeps growing far past what the
spool and the in-flight budget can hold.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pipeline.broker import LocalKafka
from producers.registry import Registry
from tests.support.lines import write_probe_lines
from tests.support.metrics import scrape, wait_metric
from tests.support.system import System, free_port, wait_events

BATCH_LINES = 500  # ~64 KB per Kafka record
SPOOL_MAX_BYTES = 400_000  # a handful of records
IN_FLIGHT_MAX_BYTES = 100_000
BEFORE, DURING = 5_000, 60_000  # lines shipped before the outage, appended during it


def acked_offset(registry: Path) -> int:
    entries = list(Registry(registry).entries.values())
    assert len(entries) == 1, entries
    return entries[0].offset


def spool_bytes_on_disk(spool: Path) -> int:
    return sum(p.stat().st_size for p in spool.glob("*.spool"))


def test_full_spool_pauses_reading_and_everything_arrives_once_after_the_outage(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    """Kafka down, spool full: reading stops, the registry holds, logs and metrics say so; all arrive once."""
    system = System(tmp_path / "sys", own_broker.cfg.local_bootstrap)
    registry, spool, port = tmp_path / "registry.json", tmp_path / "spool", free_port()
    system.configure(
        "shipper",
        registry_path=str(registry),
        spool_dir=str(spool),
        follow_poll_interval_ms=100,
        registry_flush_interval_ms=100,
        batch_lines=BATCH_LINES,
        spool_max_bytes=SPOOL_MAX_BYTES,
        in_flight_max_bytes=IN_FLIGHT_MAX_BYTES,
    )
    log = tmp_path / "fw.log"
    try:
        offsets = write_probe_lines(log, BEFORE)
        system.start("follow", "ship", str(log), "--site", "test", "--follow", "--metrics-port", str(port))
        wait_events(system, BEFORE)
        before_size = log.stat().st_size
        deadline = time.monotonic() + 30
        while acked_offset(registry) < before_size and time.monotonic() < deadline:
            time.sleep(0.2)
        assert acked_offset(registry) == before_size

        own_broker.down()
        offsets = np.concatenate((offsets, write_probe_lines(log, DURING, start=BEFORE, append=True)))
        total = BEFORE + DURING

        samples = wait_metric(
            port, "fireplot_shipper_reading_paused", 1, timeout_s=90, log=lambda: system.log_of("follow")
        )
        read = samples[("fireplot_shipper_lines_read_total", ())]
        time.sleep(3)
        still = scrape(port)
        assert still[("fireplot_shipper_lines_read_total", ())] == read, "kept reading with a full spool"
        assert read < total
        assert still[("fireplot_shipper_reading_paused", ())] == 1
        assert "spool full: reading paused" in system.log_of("follow")
        assert 0 < spool_bytes_on_disk(spool) <= SPOOL_MAX_BYTES
        assert acked_offset(registry) == before_size, "the registry moved while Kafka acknowledged nothing"

        own_broker.up()
        wait_events(system, total, timeout_s=180)
        time.sleep(2)
        events = system.topic_events()
        assert events.num_rows == total, f"{events.num_rows} events for {total} lines"
        # One sensor: one key, one partition; its records are in read order, each line once.
        assert np.array_equal(np.asarray(events.column("source_offset")), offsets)
        wait_metric(port, "fireplot_shipper_reading_paused", 0, timeout_s=30)
        assert "reading resumed" in system.log_of("follow")
        deadline = time.monotonic() + 30
        while (acked_offset(registry) < log.stat().st_size or any(spool.glob("*.spool"))) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert acked_offset(registry) == log.stat().st_size
        assert not any(spool.glob("*.spool")), "the spool was not emptied after draining"
        assert scrape(port)[("fireplot_shipper_lines_read_total", ())] == total
    finally:
        system.stop()
