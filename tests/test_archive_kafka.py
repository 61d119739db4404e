"""The archive worker on the real Kafka broker: kill -9 at random points, shipper re-sends,
two workers with rebalances, a broker restart, the raw-lines topic, metrics and health.

``FIREPLOT_TEST_KILLS`` sets how many kills the kill test must land (default
20), ``FIREPLOT_TEST_KILL_BUDGET_S`` bounds its time.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest
from kafka import KafkaProducer

from pipeline import wire
from pipeline.broker import LocalKafka, ensure_topics
from tests.support.events import RAW_LINE, T0, events
from tests.support.system import System, assert_exact, free_port, ids, kill
from tests.support.topics import produce


def workload(n: int, sources: int = 4) -> pa.Table:
    """n events over 30 hours, from several sources, each source's ids increasing."""
    per = n // sources
    return pa.concat_tables(
        [events(per, start=T0, span_s=30 * 3600, source=f"a:file{s}", seed=s) for s in range(sources)]
    )


@pytest.mark.slow
def test_kill9_at_random_points_leaves_exactly_the_input(raw_system: System) -> None:
    """kill -9 the worker 20 times at random moments (start-up, group join, recovery, mid-flush) while
    M events flow: exactly M stored, and the test fails unless every one of the 20 kills landed."""
    system = raw_system
    kills_wanted = int(os.environ.get("FIREPLOT_TEST_KILLS", "20"))
    budget_s = float(os.environ.get("FIREPLOT_TEST_KILL_BUDGET_S", "400"))
    rng = random.Random(int(os.environ.get("FIREPLOT_TEST_SEED", "4")))
    system.configure("worker", flush_max_records=3, flush_interval_s=0.2)
    expected = workload(60_000)
    # The input arrives in parts, one more after each kill, as a live topic fills: the worker
    # cannot finish everything before the last kill, so no kill is skipped for lack of work.
    step = -(-expected.num_rows // (kills_wanted + 1))
    slices = [expected.slice(i, step) for i in range(0, expected.num_rows, step)]
    produce(system.bootstrap, system.topic, slices[0], per_record=400)
    kills = 0
    deadline = time.monotonic() + budget_s
    # Start to the first stored batches, of the runs that got that far: the random kills are
    # drawn up to a little past its median (7 s at most, as before), so on a quiet machine no
    # run idles long past start-up, group join, recovery and the first flush.
    first_flush_s: list[float] = []
    proc, started = system.start_worker("worker"), time.monotonic()
    while kills < kills_wanted and time.monotonic() < deadline:
        # Half the kills wait for progress (mid-stream flushes), half strike at a random
        # moment after start (start-up, group join, recovery, first flush).
        if rng.random() < 0.5:
            target = system.rows() + rng.randint(1, 2000)
            until = time.monotonic() + 20
            while system.rows() < target and time.monotonic() < until:
                time.sleep(0.02)
            if system.rows() >= target:  # one or two flushes (of up to 1,200 events) in
                first_flush_s.append(time.monotonic() - started)
        else:
            upper = min(7.0, 1.3 * statistics.median(first_flush_s)) if first_flush_s else 7.0
            time.sleep(max(0.0, started + rng.uniform(0.2, upper) - time.monotonic()))
        assert proc.poll() is None, system.worker_log()
        kill(proc)
        kills += 1
        if kills < len(slices):
            produce(system.bootstrap, system.topic, slices[kills], per_record=400)
        proc, started = system.start_worker("worker"), time.monotonic()
    assert kills == kills_wanted, f"only {kills} of {kills_wanted} kills in {budget_s} s"
    for rest in slices[kills + 1 :]:
        produce(system.bootstrap, system.topic, rest, per_record=400)
    assert_exact(system, expected)
    print(f"kill -9 points survived: {kills}")  # shown with pytest -s


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - http://127.0.0.1 only
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_shipper_resend_leaves_no_duplicate_and_metrics_count_it(raw_system: System) -> None:
    """A re-send of archived batches under new offsets is dropped; /metrics counts it; /ready is 200.

    /health, the path readiness had before it got its name, answers the same."""
    system = raw_system
    port = free_port()
    system.configure("worker", web_port=port)
    expected = workload(8000)
    produce(system.bootstrap, system.topic, expected)
    system.worker = system.start_worker("worker")
    system.wait_for_rows(expected.num_rows)
    # the shipper crashed before saving its position and sends a part again (same keys, new offsets)
    produce(system.bootstrap, system.topic, expected.slice(2000, 3000))
    deadline = time.monotonic() + 60
    text = ""
    dropped = f'fireplot_worker_duplicate_events_dropped_total{{topic="{system.topic}"}} 3000.0'
    while time.monotonic() < deadline:
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        if status == 200 and dropped in text.splitlines():
            break
        time.sleep(0.5)
    assert dropped in text.splitlines(), text
    assert f'fireplot_worker_events_written_total{{topic="{system.topic}"}} 8000.0' in text.splitlines()
    lag = [line for line in text.splitlines() if line.startswith("fireplot_worker_consumer_lag_records{")]
    assert any(f'topic="{system.topic}"' in line and 'partition="' in line for line in lag), text
    assert all(float(line.rsplit(" ", 1)[1]) >= 0 for line in lag)
    assert_exact(system, expected, timeout_s=30)
    status, body = _get(f"http://127.0.0.1:{port}/ready")
    assert status == 200 and json.loads(body)["store_writable"] is True
    status, body = _get(f"http://127.0.0.1:{port}/health")
    assert status == 200 and json.loads(body)["consumer_running"] is True


def test_two_workers_share_partitions_through_rebalances(raw_system: System) -> None:
    """A second worker joins mid-stream, then the first is killed: nothing lost, nothing twice."""
    system = raw_system
    system.configure("worker", flush_max_records=4, flush_interval_s=0.3)
    expected = workload(60_000)
    first, second = expected.slice(0, 30_000), expected.slice(30_000)
    produce(system.bootstrap, system.topic, first, per_record=300)
    a = system.start_worker("worker-a")
    system.worker = a
    deadline = time.monotonic() + 90
    while system.rows() < 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    b = system.start_worker("worker-b", FIREPLOT_WORKER__WEB_PORT=str(free_port()))
    produce(system.bootstrap, system.topic, second, per_record=300)
    while system.rows() < 35_000 and time.monotonic() < deadline:
        assert a.poll() is None and b.poll() is None
        time.sleep(0.05)
    assert system.rows() < expected.num_rows, "finished before the rebalance could matter"
    kill(a)  # b takes over a's partitions, possibly while a's last flush was cut short
    system.worker = b
    assert_exact(system, expected)
    logs = (system.logs / "worker-b.log").read_text(errors="replace")
    assert "archive" in logs or logs  # b ran (its log exists); the exact store is the assertion


def test_compaction_then_kill9_keeps_the_store_exact(raw_system: System) -> None:
    """fireplot compact runs while the worker archives, then the worker is killed and restarted: exact."""
    system = raw_system
    system.configure("worker", flush_max_records=4, flush_interval_s=0.3)
    expected = workload(40_000)
    produce(system.bootstrap, system.topic, expected.slice(0, 20_000), per_record=250)
    system.worker = system.start_worker("worker")
    deadline = time.monotonic() + 90
    while system.rows() < 5000 and time.monotonic() < deadline:
        time.sleep(0.05)
    done = system.run("compact", "--older-than-s", "0")
    report = json.loads(done.stdout)
    assert report["hours_compacted"] >= 1
    produce(system.bootstrap, system.topic, expected.slice(20_000), per_record=250)
    time.sleep(1.0)
    system.kill_worker()
    system.run("compact", "--older-than-s", "0")
    system.worker = system.start_worker("worker")
    table = assert_exact(system, expected)
    assert any(p.name.startswith("compacted-") for p in system.store.events_root.rglob("*.parquet"))
    assert system.run("rollup").returncode == 0
    port_minute = __import__("pipeline.rollup", fromlist=["read"]).read(system.store, "port_minute")
    assert sum(port_minute["events"].to_pylist()) == table.num_rows


def test_raw_lines_topic_plain_json_and_garbage(raw_system: System) -> None:
    """Plain and JSON raw lines are archived with stable ids; garbage lands in dead letters with reasons."""
    system = raw_system
    raw_topic = f"{system.topic}-raw"
    line = RAW_LINE
    ensure_topics(system.bootstrap, {raw_topic: 2}, wire.TOPIC_CONFIGS)
    producer = KafkaProducer(bootstrap_servers=system.bootstrap, acks="all")
    for i in range(20):
        producer.send(raw_topic, key=b"site-r", value=line.format(m=i, i=i, p=22).encode())
    for i in range(10):
        msg = {"message": line.format(m=i, i=100 + i, p=443), "host": "edge-9", "agent": "filebeat"}
        producer.send(raw_topic, value=json.dumps(msg).encode())
    for bad in (b"garbage line", b'{"message": 1}', b"{not json", b"<script>alert(1)</script>"):
        producer.send(raw_topic, key=b"site-r", value=bad)
    producer.flush(timeout=60)
    producer.close()
    system.worker = system.start_worker("worker")
    table = system.wait_for_rows(30)
    assert sorted(set(table["site"].to_pylist())) == ["edge-9", "site-r"]
    assert table.filter(pa.compute.equal(table["site"], "edge-9"))["dst_port"].to_pylist() == [443] * 10
    assert len(set(ids(table))) == 30
    dead_file = system.store_dir / "_dead_letters" / f"{raw_topic}.jsonl"
    deadline = time.monotonic() + 30
    while not dead_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    dead = [json.loads(x) for x in dead_file.read_text().splitlines()]
    assert len(dead) == 4 and all(d["reason"] for d in dead)
    assert "<script>alert(1)</script>" in {d.get("line") for d in dead}


def test_broker_restart_mid_stream(tmp_path: Path, own_broker: LocalKafka) -> None:
    """The broker goes down and comes back while the worker archives: each event stored once."""
    broker, bootstrap = own_broker, own_broker.cfg.local_bootstrap
    system = System(tmp_path / "sys", bootstrap)
    system.configure("kafka", raw_topic=f"{system.topic}-raw")
    system.configure("worker", flush_max_records=4, flush_interval_s=0.3)
    try:
        expected = workload(40_000)
        produce(bootstrap, system.topic, expected.slice(0, 20_000), per_record=250)
        system.worker = system.start_worker("worker")
        deadline = time.monotonic() + 90
        while system.rows() < 4000 and time.monotonic() < deadline:
            time.sleep(0.05)
        broker.down()
        time.sleep(2)
        broker.up()
        produce(bootstrap, system.topic, expected.slice(20_000), per_record=250)
        assert_exact(system, expected, timeout_s=240)
    finally:
        system.stop()


def test_late_and_future_events_through_kafka(raw_system: System) -> None:
    """Events 2 days late and 2 hours ahead reach their own partitions via Kafka; future ones counted."""
    import datetime as dt

    import pyarrow.parquet as pq

    from pipeline.store import partition_dir

    system = raw_system
    port = free_port()
    system.configure("worker", web_port=port, future_tolerance_s=3600.0)
    now = dt.datetime.now(dt.UTC).replace(minute=30, second=0, microsecond=0)
    late = events(50, start=now - dt.timedelta(days=2), span_s=60, source="a:late")
    future = events(30, start=now + dt.timedelta(hours=2), span_s=60, source="a:future")
    current = events(20, start=now, span_s=60, source="a:now")
    produce(system.bootstrap, system.topic, pa.concat_tables([current, late, future]), per_record=25)
    system.worker = system.start_worker("worker")
    system.wait_for_rows(100)
    for t, n in ((now - dt.timedelta(days=2), 50), (now + dt.timedelta(hours=2), 30), (now, 20)):
        d = partition_dir(system.store_dir, "a", t.date(), t.hour)
        assert sum(pq.read_metadata(p).num_rows for p in d.glob("*.parquet")) == n
    _, text = _get(f"http://127.0.0.1:{port}/metrics")
    assert f'fireplot_worker_future_events_total{{topic="{system.topic}"}} 30.0' in text.splitlines(), text


def test_backlog_tail_flushes_without_waiting_for_the_interval(system: System) -> None:
    """A backlog whose last batch is short of flush_max_records is durable as soon as it is read:
    with flush_interval_s at 10 minutes, the 2 records past 2 full batches of 4 are flushed within
    the wait for rows (120 s), exactly once, instead of waiting out the interval."""
    system.configure("worker", flush_max_records=4, flush_interval_s=600.0)
    expected = workload(4000)
    # one key: all 10 records in one partition, the others empty
    assert produce(system.bootstrap, system.topic, expected, per_record=400, hosts=1) == 10
    system.worker = system.start_worker("worker")
    system.wait_for_rows(expected.num_rows)
    assert_exact(system, expected, timeout_s=30)
