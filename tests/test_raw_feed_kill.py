"""The raw-lines reader (``pipeline.archive.raw_feed``) under kill -9 and a second worker: every raw
line shipped is in the store exactly once, with the port and source it was sent with.

``FIREPLOT_TEST_RAW_KILLS`` sets how many kills the test must land (default 8).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaProducer

from pipeline import wire
from pipeline.broker import ensure_topics
from pipeline.store import layout
from tests.support.system import System, free_port, ids, kill


def line(i: int) -> str:
    # Source address and destination port name the line: the store's rows are checked against them.
    return (
        f"2026-11-27T{10 + i // 36000:02d}:{i // 600 % 60:02d}:{i // 10 % 60:02d}+00:00 fw1 kernel: DROP "
        f"IN=eth0 OUT= MAC= SRC=198.18.{i // 250 % 250}.{i % 250 + 1} DST=203.0.113.5 LEN=60 TOS=0x00 "
        f"PREC=0x00 TTL=50 ID=1 DF PROTO=TCP SPT=40000 DPT={1 + i % 65000} WINDOW=1024 RES=0x00 SYN URGP=0"
    )


def produce(bootstrap: str, topic: str, first: int, n: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    for i in range(first, first + n):
        producer.send(topic, key=f"site-{i % 3}/fw1".encode(), value=line(i).encode())
    producer.flush(timeout=60)
    producer.close()


def expected(n: int) -> Counter[tuple[str, str, int]]:
    return Counter(
        (f"site-{i % 3}", f"198.18.{i // 250 % 250}.{i % 250 + 1}", 1 + i % 65000) for i in range(n)
    )


def assert_exact_raw(system: System, n: int, timeout_s: float = 240) -> None:
    table = system.wait_for_rows(n, timeout_s=timeout_s)
    assert len(set(ids(table))) == n, "an event stored twice"
    got = Counter(
        zip(
            table["site"].to_pylist(),
            [str(a) for a in table["src_ip"].to_pylist()],
            table["dst_port"].to_pylist(),
            strict=True,
        )
    )
    assert got == expected(n)


@pytest.mark.slow
def test_kill9_of_the_raw_reader_mid_stream_leaves_every_line_once(raw_system: System) -> None:
    system = raw_system
    raw_topic = f"{system.topic}-raw"
    ensure_topics(system.bootstrap, {raw_topic: 3}, wire.TOPIC_CONFIGS)
    # Small flushes, so kills land between flushes, mid-flush and between a flush and its commit.
    system.configure("worker", raw_flush_max_records=700, flush_interval_s=0.2)
    kills_wanted = int(os.environ.get("FIREPLOT_TEST_RAW_KILLS", "8"))
    rng = random.Random(int(os.environ.get("FIREPLOT_TEST_SEED", "15")))
    n, step = 24_000, 24_000 // (kills_wanted + 1)
    produce(system.bootstrap, raw_topic, 0, step)
    sent = step
    proc = system.start_worker("worker")
    kills = 0
    deadline = time.monotonic() + 400
    while kills < kills_wanted and time.monotonic() < deadline:
        if rng.random() < 0.5:
            target = system.rows() + rng.randint(1, 1500)
            until = time.monotonic() + 20
            while system.rows() < target and time.monotonic() < until:
                time.sleep(0.02)
        else:
            time.sleep(rng.uniform(0.5, 6.0))
        assert proc.poll() is None, system.worker_log()
        kill(proc)
        kills += 1
        produce(system.bootstrap, raw_topic, sent, min(step, n - sent))
        sent += min(step, n - sent)
        proc = system.start_worker("worker")
    assert kills == kills_wanted, f"only {kills} of {kills_wanted} kills"
    if sent < n:
        produce(system.bootstrap, raw_topic, sent, n - sent)
    assert_exact_raw(system, n)


def test_two_workers_share_the_raw_topic_through_rebalances(raw_system: System) -> None:
    """A second worker joins the raw group mid-stream, then the first is killed: every line once."""
    system = raw_system
    raw_topic = f"{system.topic}-raw"
    ensure_topics(system.bootstrap, {raw_topic: 4}, wire.TOPIC_CONFIGS)
    system.configure("worker", raw_flush_max_records=1000, flush_interval_s=0.2)
    n = 12_000
    produce(system.bootstrap, raw_topic, 0, n // 3)
    a = system.start_worker("a")
    deadline = time.monotonic() + 120
    while system.rows() < n // 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    b = system.start_worker("b", FIREPLOT_WORKER__WEB_PORT=str(free_port()))  # a holds the configured one
    produce(system.bootstrap, raw_topic, n // 3, n // 3)
    time.sleep(3)
    kill(a)  # b takes over a's partitions, possibly while a's last flush was cut short
    produce(system.bootstrap, raw_topic, 2 * n // 3, n - 2 * n // 3)
    system.worker = b
    assert_exact_raw(system, n)


def _staging(store_dir: Path) -> bool:
    """A flush's Parquet files are being written (not yet renamed): the next batch decodes beside it."""
    return any(store_dir.rglob(".*.tmp"))


def _manifests(store_dir: Path) -> dict[str, bytes]:
    found = {}
    for path in (store_dir / layout.SINK_DIR).glob("*.json"):
        try:
            found[path.name] = path.read_bytes()
        except FileNotFoundError:
            continue
    return found


@pytest.mark.slow
def test_kill9_at_each_point_of_overlapped_decode_and_flush_leaves_every_line_once(
    raw_system: System,
) -> None:
    """kill -9 while a flush's files are being staged (the next batch decoding on its own thread),
    right after a manifest changed (a flush durable, its commit maybe not sent, the next decoded),
    and at random: after each restart every line shipped is in the store once."""
    system = raw_system
    raw_topic = f"{system.topic}-raw"
    ensure_topics(system.bootstrap, {raw_topic: 3}, wire.TOPIC_CONFIGS)
    system.configure("worker", raw_flush_max_records=500, flush_interval_s=0.1)
    points = ["staging", "durable", "random"] * 2
    n, step = 21_000, 3_000
    produce(system.bootstrap, raw_topic, 0, step)
    sent = step
    rng = random.Random(int(os.environ.get("FIREPLOT_TEST_SEED", "15")))
    landed: Counter[str] = Counter()
    for point in points:
        proc = system.start_worker("worker")
        before = _manifests(system.store_dir)
        until = time.monotonic() + 60
        hit = False
        while time.monotonic() < until and proc.poll() is None:
            if point == "staging":
                hit = _staging(system.store_dir)
            elif point == "durable":
                hit = _manifests(system.store_dir) != before
            else:
                time.sleep(rng.uniform(0.5, 4.0))
                hit = True
            if hit:
                break
            time.sleep(0.002)
        assert proc.poll() is None, system.worker_log()
        kill(proc)
        landed[point] += hit
        produce(system.bootstrap, raw_topic, sent, step)
        sent += step
    assert sent == n
    assert landed["staging"] >= 1 and landed["durable"] >= 1, f"kills landed: {dict(landed)}"
    system.start_worker("worker")
    assert_exact_raw(system, n)
