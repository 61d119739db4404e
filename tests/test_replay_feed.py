"""Replay's records: every event once, in the total order per sensor, whatever the store's shape.

The layout (one take of an hour, grouped per step and sensor) is checked
against a plain sort of the same events; the whole replay against a real
broker, interrupted and resumed, read back record by record.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline import datasets, wire
from pipeline.broker import ensure_topics
from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION
from pipeline.store import OffsetRange, Store
from producers import replay_feed
from producers.publisher import Publisher
from producers.replay import ReplayState, replay
from producers.replay_feed import ORDER, lay_out

H0 = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
IDS = ["source_id", "source_offset"]


def _events(n: int, seed: int, sensors: int, ts_step_us: int, start: dt.datetime = H0) -> pa.Table:
    """``n`` events over one hour in no particular order; coarse ``ts_step_us`` makes ties.

    Identities are unique across seeds (the store would drop a repeated one as a duplicate)."""
    rng = np.random.default_rng(seed)
    t0 = int(start.timestamp() * 1e6)
    ts = t0 + rng.integers(0, 3_600_000_000 // ts_step_us, n) * ts_step_us
    sensor = rng.integers(0, sensors, n)
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "site": pa.array([f"s{k % 2}" for k in sensor]),
            "host": pa.array([f"fw{k}" for k in sensor]),
            "src_ip": pa.array([f"198.51.100.{i % 250}" for i in range(n)]),
            "dst_ip": pa.array(["203.0.113.7"] * n),
            "src_port": pa.array(rng.integers(1024, 65536, n), pa.int32()),
            "dst_port": pa.array(rng.integers(1, 65536, n), pa.int32()),
            "proto": pa.array(["TCP"] * n),
            "ip_version": pa.array(np.full(n, 4), pa.int8()),
            "action": pa.array(["drop"] * n),
            "in_if": pa.array(["eth0"] * n),
            "out_if": pa.nulls(n, pa.string()),
            "tcp_flags": pa.array(["SYN"] * n),
            "prefix": pa.nulls(n, pa.string()),
            "count": pa.array(np.ones(n, dtype=np.int32), pa.int32()),
            "source_id": pa.array([f"src:{k}" for k in rng.integers(0, 3, n)]),
            "source_offset": pa.array(seed * 10**9 + rng.permutation(n) * 10, pa.int64()),
            "schema_version": pa.array(np.full(n, SCHEMA_VERSION), pa.int8()),
        },
        schema=EVENT_SCHEMA,
    )


def _by_ts_only_ties_reversed(table: pa.Table) -> pa.Table:
    """In ts order, but events sharing a ts in the reverse of their identity order."""
    return table.sort_by([("ts", "ascending"), ("source_id", "descending"), ("source_offset", "descending")])


SHAPES = {
    "one sensor, in order": (lambda: _events(3000, 1, 1, 1).sort_by(ORDER), 0, None),
    "one sensor, shuffled": (lambda: _events(3000, 2, 1, 1), 0, None),
    "four sensors, shuffled, ties": (lambda: _events(3000, 3, 4, 1_000_000), 0, None),
    "in ts order, ties reversed": (
        lambda: _by_ts_only_ties_reversed(_events(3000, 4, 3, 1_000_000)),
        0,
        None,
    ),
    "many ties (more than checked)": (lambda: _events(6000, 5, 2, 600_000_000).sort_by("ts"), 0, None),
    "resumed inside the hour": (lambda: _events(3000, 6, 3, 1_000), 1234, None),
    "resumed, in order": (lambda: _events(3000, 7, 1, 1).sort_by(ORDER), 999, None),
    "paced steps, several sensors": (lambda: _events(3000, 8, 3, 1_000), 0, 30_000_000),
    "paced steps, one sensor, resumed": (lambda: _events(3000, 9, 1, 1), 17, 7_000_000),
    "one event": (lambda: _events(1, 10, 1, 1), 0, None),
    "no events": (lambda: _events(0, 11, 1, 1), 0, None),
    "everything already sent": (lambda: _events(50, 12, 2, 1), 50, None),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_layout_has_every_event_once_in_total_order_per_step_and_sensor(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, skip, step_us = SHAPES[shape]
    monkeypatch.setattr(replay_feed, "MAX_BATCH_EVENTS", 700)  # several unpaced steps an hour
    table = make()
    expected = table.sort_by(ORDER).slice(skip)
    layout = lay_out(table, skip, step_us)
    assert (layout.table.num_rows if layout.order is None else len(layout.order)) + skip == table.num_rows
    ts = pc.cast(expected.column("ts"), pa.int64()).to_numpy()
    first = 0
    for ts_us, rows, sensors in layout.steps:
        assert rows > 0 and ts_us == ts[first]
        if step_us is None:
            assert rows <= 700
        else:
            # One pacing step of event time each, counted from the hour's first event.
            bucket = (ts - ts[0]) // step_us
            assert bucket[first] == bucket[first + rows - 1]
            assert first + rows == len(ts) or bucket[first + rows] > bucket[first]
        step = expected.slice(first, rows)
        keys = [key for key, _, _ in sensors]
        assert len(set(keys)) == len(keys)
        assert [a for _, a, _ in sensors] == [first, *(b for _, _, b in sensors[:-1])]
        assert sensors[-1][2] == first + rows
        for key, a, b in sensors:
            site, host = key.decode().split("/")
            want = step.filter(pc.and_(pc.equal(step["site"], site), pc.equal(step["host"], host)))
            assert layout.rows(a, b).equals(want), (shape, key)
        assert sum(b - a for _, a, b in sensors) == rows
        first += rows
    assert first == expected.num_rows


def _store_of_partitions(root: Path, hours: list[pa.Table]) -> tuple[Store, pa.Table]:
    """The events written as a worker does: each sensor from its own partition, flush by flush,
    so an hour read back is not in time order."""
    store = Store(root)
    everything = pa.concat_tables(hours)
    keys = pc.binary_join_element_wise(everything["site"], everything["host"], "/")
    for part, key in enumerate(pc.unique(keys).to_pylist()):
        mine = everything.filter(pc.equal(keys, key))
        for i in range(0, mine.num_rows, 400):
            n = min(400, mine.num_rows - i)
            store.write_flush(OffsetRange("t", part, i, i + n - 1), mine.slice(i, n))
    return store, everything


def _read_topic(bootstrap: str, topic: str, want: int, timeout_s: float = 60) -> list[tuple[bytes, pa.Table]]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        out: list[tuple[bytes, pa.Table]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend((bytes(r.key), wire.decode(r.value)) for r in batch)
            if sum(t.num_rows for _, t in out) >= want and consumer.end_offsets(tps) == {
                tp: consumer.position(tp) for tp in tps
            }:
                return out
        raise AssertionError(f"read {sum(t.num_rows for _, t in out)} events of {want} in {timeout_s} s")
    finally:
        consumer.close()


def test_replay_of_an_unordered_store_sends_each_event_once_in_order_and_resumes_exactly(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_feed, "MAX_BATCH_EVENTS", 300)
    hours = [
        _events(2500, 20, 3, 1_000, H0),
        _events(0, 21, 1, 1, H0 + dt.timedelta(hours=1)),  # an empty hour between two full ones
        _events(1800, 22, 3, 1_000_000, H0 + dt.timedelta(hours=2)),
    ]
    store, everything = _store_of_partitions(tmp_path / "store", hours)
    start, end = H0 + dt.timedelta(minutes=7), H0 + dt.timedelta(hours=2, minutes=50)
    in_range = everything.filter(
        pc.and_(
            pc.greater_equal(everything["ts"], pa.scalar(start)), pc.less(everything["ts"], pa.scalar(end))
        )
    )
    topic = datasets.replay_topic(f"feed{time.monotonic_ns()}")
    ensure_topics(kafka_bootstrap, {topic: 3}, datasets.REPLAY_TOPIC_CONFIGS)
    state_path = tmp_path / "state.json"

    checks = itertools.count()
    publisher = Publisher(kafka_bootstrap, topic)
    try:
        first = replay(
            store, publisher, start, end, ReplayState(state_path, {"t": 1}), stop=lambda: next(checks) >= 5
        )
    finally:
        publisher.close()
    assert 0 < first < in_range.num_rows
    publisher = Publisher(kafka_bootstrap, topic)
    try:
        state = ReplayState(state_path, {"t": 1})
        rest = replay(store, publisher, start, end, state)
    finally:
        publisher.close()
    assert first + rest == in_range.num_rows
    assert state.done_until == end

    records = _read_topic(kafka_bootstrap, topic, in_range.num_rows)
    received = pa.concat_tables([t for _, t in records])
    # No loss and no duplicate: the same events, each once.
    assert received.num_rows == in_range.num_rows
    assert received.sort_by(ORDER).equals(in_range.sort_by(ORDER))
    # Each record holds one sensor's events, under that sensor's key; per key, the total order.
    per_key: dict[bytes, list[pa.Table]] = {}
    for key, t in records:
        assert set(pc.binary_join_element_wise(t["site"], t["host"], "/").to_pylist()) == {key.decode()}
        per_key.setdefault(key, []).append(t)
    for key, parts in per_key.items():
        got = pa.concat_tables(parts)
        assert got.equals(got.sort_by(ORDER)), key
