"""The live detector's announcements on real parts: the scans topic and the alert webhook.

``fireplot detect --follow`` runs as a process against a store a real worker fills from
a real broker; new scans go to the scans topic (read back with a real consumer) and are
POSTed to an HTTP server on 127.0.0.1. Semantics under test: each scan is announced
once, when an evaluation first finds it absent from the scan dataset (just before
writing it); a restarted detector re-evaluates the recent epochs but announces only
scans the dataset did not hold; a crash between announcing and writing repeats the
announcement once (at least once, same scan_id), never loses it.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.config import DetectConfig
from pipeline.detect.runner import Evaluator, alert_hooks, replay, scan_json, table_source
from pipeline.detect.scanstore import ScanStore
from producers.demo import Packet, write_lines
from tests.support.events import row, table
from tests.support.system import System


class Webhook:
    """A real HTTP server on 127.0.0.1 that keeps every POST it receives."""

    def __init__(self, status: int = 204) -> None:
        posts: list[tuple[str, bytes]] = []
        self.posts = posts
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with lock:
                    posts.append((self.headers.get("content-type", ""), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/scan"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def scans(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in list(self.posts)]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Every record on the topic so far (key, JSON value), read to its end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[tuple[bytes, dict[str, Any]]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in consumer.poll(timeout_ms=500).values():
                out += [(r.key, json.loads(r.value)) for r in records]
        return out
    finally:
        consumer.close()


def wait_for(what: str, cond: Any, timeout_s: float, why: Any = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what} not within {timeout_s} s\n{why()}")


def vertical(t0: dt.datetime, src: str, dst: str, ports: range) -> list[Packet]:
    return [Packet(t0 + dt.timedelta(seconds=i), src, dst, "TCP", 40000 + i, p) for i, p in enumerate(ports)]


def iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.mark.timeout(300)
def test_live_detector_announces_each_scan_once_on_topic_and_webhook_across_a_restart(
    system: System, webhook: Webhook, tmp_path: Path
) -> None:
    # Well in the past (the worker takes it) and inside one fast epoch (an hour), so that no
    # scan is cut at an epoch boundary.
    hour = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)
    t0 = hour + dt.timedelta(minutes=5)
    topic = f"{system.topic}-scans"
    system.configure(
        "detect",
        publish=True,
        kafka_topic=topic,
        alert_webhook=webhook.url,
        follow_interval_s=0.5,
        lateness_s=1.0,
    )
    first = [
        *vertical(t0, "203.0.113.7", "192.0.2.10", range(1000, 1020)),
        # One port across 30 targets, one every 2 s: a horizontal sweep.
        *(
            Packet(
                t0 + dt.timedelta(seconds=60 + 2 * i),
                "203.0.113.8",
                f"192.0.2.{100 + i}",
                "TCP",
                50000 + i,
                23,
            )
            for i in range(30)
        ),
        # Later traffic moves the event-time watermark past both scans.
        *(
            Packet(t0 + dt.timedelta(seconds=600 + i), "203.0.113.50", "192.0.2.10", "TCP", 41000, 80)
            for i in range(3)
        ),
    ]
    log1 = tmp_path / "fw1.log"
    write_lines(sorted(first), log1)
    assert system.ship([log1]).returncode == 0
    system.start_worker()
    system.wait_for_rows(len(first), timeout_s=120)

    detector = system.start("detect", "detect", "--follow")

    def topic_scans() -> list[dict[str, Any]]:
        return [v for _, v in read_topic(system.bootstrap, topic)]

    wait_for("two scans on the topic", lambda: len(topic_scans()) >= 2, 90, lambda: system.log_of("detect"))
    records = read_topic(system.bootstrap, topic)
    by_kind = {v["kind"]: v for _, v in records}
    assert sorted(by_kind) == ["horizontal", "vertical"]
    assert all(k == v["scan_id"].encode() for k, v in records), "the record key is the scan id"
    v, h = by_kind["vertical"], by_kind["horizontal"]
    assert {
        k: v[k]
        for k in (
            "sources",
            "site",
            "sites",
            "first_ts",
            "last_ts",
            "port_min",
            "port_max",
            "distinct_ports",
            "distinct_targets",
            "packets",
            "score",
            "status",
            "lower_bound",
        )
    } == {
        "sources": ["203.0.113.7"],
        "site": "test",
        "sites": ["test"],
        "first_ts": iso(t0),
        "last_ts": iso(t0 + dt.timedelta(seconds=19)),
        "port_min": 1000,
        "port_max": 1019,
        "distinct_ports": 20,
        "distinct_targets": 1,
        "packets": 20,
        "score": round(20 / 15, 4),
        "status": "closed",
        "lower_bound": False,
    }
    assert {
        k: h[k]
        for k in (
            "sources",
            "sites",
            "first_ts",
            "last_ts",
            "port_min",
            "port_max",
            "distinct_ports",
            "distinct_targets",
            "score",
        )
    } == {
        "sources": ["203.0.113.8"],
        "sites": ["test"],
        "first_ts": iso(t0 + dt.timedelta(seconds=60)),
        "last_ts": iso(t0 + dt.timedelta(seconds=118)),
        "port_min": 23,
        "port_max": 23,
        "distinct_ports": 1,
        "distinct_targets": 30,
        "score": round(30 / 25, 4),
    }
    # The webhook got the same two scans, one POST each, as JSON.
    wait_for("two webhook POSTs", lambda: len(webhook.posts) >= 2, 30)
    assert {p[0] for p in webhook.posts} == {"application/json"}
    assert sorted(webhook.scans(), key=lambda s: s["kind"]) == sorted(
        (v for _, v in records), key=lambda s: s["kind"]
    )
    # And the scans dataset, which `fireplot scans` lists, holds them too.
    listed = [json.loads(line) for line in system.run("scans", "--since", iso(hour)).stdout.splitlines()]
    assert sorted(s["scan_id"] for s in listed) == sorted(v["scan_id"] for _, v in records)

    # Restart: the new process re-evaluates the epoch, finds both scans already in the dataset
    # and announces neither again; a scan that happens after the restart is announced once.
    detector.send_signal(signal.SIGTERM)
    assert detector.wait(timeout=30) == 0
    stats = json.loads(system.log_of("detect").strip().splitlines()[-1])
    assert stats["alerts_failed"] == {} and stats["scans"]["vertical"] >= 1
    assert sum(1 for _ in read_topic(system.bootstrap, topic)) == 2, "nothing changed: nothing republished"
    system.start("detect2", "detect", "--follow")
    later = [
        *vertical(t0 + dt.timedelta(seconds=700), "203.0.113.9", "192.0.2.11", range(2000, 2016)),
        *(
            Packet(t0 + dt.timedelta(seconds=1300 + i), "203.0.113.50", "192.0.2.10", "TCP", 41001, 80)
            for i in range(3)
        ),
    ]
    log2 = tmp_path / "fw2.log"
    write_lines(sorted(later), log2)
    assert system.ship([log2]).returncode == 0
    system.wait_for_rows(len(first) + len(later), timeout_s=120)
    wait_for(
        "the third scan on the topic", lambda: len(topic_scans()) >= 3, 90, lambda: system.log_of("detect2")
    )
    time.sleep(3)  # several more evaluation ticks: any repeat would show up now
    # The topic carries a scan again only when its record changed (keyed by scan_id, compacted):
    # the latest record per key is the dataset's, and the restart republished nothing unchanged.
    records = read_topic(system.bootstrap, topic)
    assert all(k == v["scan_id"].encode() for k, v in records)
    latest = {v["scan_id"]: v for _, v in records}
    assert len(latest) == 3
    third = [v for v in latest.values() if v["sources"] == ["203.0.113.9"]]
    assert len(third) == 1 and third[0]["distinct_ports"] == 16 and third[0]["status"] == "closed"
    listed = system.run("scans", "--since", iso(hour)).stdout.splitlines()
    stored = {s["scan_id"]: s for s in map(json.loads, listed)}
    assert latest == stored
    assert len(webhook.posts) == 3, "alerts: once per scan"
    assert sorted(s["scan_id"] for s in webhook.scans()) == sorted(latest)


def hostile_events() -> tuple[pa.Table, str, str]:
    """A vertical scan whose source and site carry text meant to break out of JSON and HTML."""
    src = 'x"}, {"kind": "forged"}\n</script><script>alert(1)</script>\u2028\x00'
    site = 's\\"\r\nX-Injected: 1'
    t0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
    rows = [
        {
            "ts": t0 + dt.timedelta(seconds=i),
            "site": site,
            "src_ip": src,
            "dst_ip": "10.0.0.1",
            "dst_port": 1000 + i,
            "prefix": "DROP ",
            "count": 1,
        }
        for i in range(16)
    ]
    return pa.Table.from_pylist(rows), src, site


def test_webhook_gets_one_post_per_new_scan_with_hostile_text_kept_as_json_data(
    tmp_path: Path, webhook: Webhook
) -> None:
    table, src, site = hostile_events()
    cfg = DetectConfig(alert_webhook=webhook.url)
    e = Evaluator(cfg, table_source(table), ScanStore(tmp_path / "scans"))
    e.on_new = alert_hooks(cfg, stats=e.stats)
    t0 = table.column("ts")[0].as_py()
    replay(e, t0, t0 + dt.timedelta(hours=2))
    replay(e, t0, t0 + dt.timedelta(hours=2))  # idempotent: nothing new, no second POST
    assert len(webhook.posts) == 1
    ctype, body = webhook.posts[0]
    assert ctype == "application/json"
    assert b"\n" not in body and b"\r" not in body and b"\x00" not in body, "JSON-escaped, one line"
    got = json.loads(body)
    assert (got["kind"], got["sources"], got["site"], got["sites"]) == ("vertical", [src], site, [site])
    stored = e.scans.read().to_pylist()
    assert len(stored) == 1 and got == json.loads(scan_json(stored[0]))
    assert (got["distinct_ports"], got["first_ts"]) == (16, "2025-03-01T10:00:00Z")
    assert e.stats.alerts_failed == {}


def test_webhook_that_fails_is_counted_and_detection_goes_on(tmp_path: Path) -> None:
    table, _, _ = hostile_events()
    with Webhook(status=500) as broken:
        cfg = DetectConfig(alert_webhook=broken.url)
        e = Evaluator(cfg, table_source(table), ScanStore(tmp_path / "scans"))
        e.on_new = alert_hooks(cfg, stats=e.stats)
        t0 = table.column("ts")[0].as_py()
        new = replay(e, t0, t0 + dt.timedelta(hours=2))
    assert len(new) == 1 and len(broken.posts) == 1
    assert e.stats.alerts_failed == {"webhook": 1}
    assert e.scans.read().num_rows == 1, "the scan is in the dataset although its alert failed"


def store_events(t0: dt.datetime, n: int, first_offset: int, src: str = "203.0.113.20") -> pa.Table:
    return table(
        [
            row(
                t0 + dt.timedelta(seconds=7 * i),
                first_offset + i,
                src_ip=src,
                src_port=40000,
                dst_port=1000 + i,
                prefix="DROP ",
                host="fw",
                in_if=None,
                source_id="t",
            )
            for i in range(n)
        ]
    )


def test_live_file_cache_reads_what_the_store_reads_across_new_files_and_compaction(tmp_path: Path) -> None:
    """The follow loop's cache of recent files answers like a fresh store read, reading each file once."""
    from pipeline.compact import compact
    from pipeline.detect.runner import DETECT_COLUMNS, RecentFiles, store_source, to_us
    from pipeline.store import OffsetRange, Store

    store = Store(tmp_path / "store")
    t0 = dt.datetime(2025, 3, 1, 9, 50, tzinfo=dt.UTC)  # the flushes straddle 10:00
    off = 0
    for k in range(6):
        batch = store_events(t0 + dt.timedelta(minutes=4 * k), 20, off)
        store.write_flush(OffsetRange("t", 0, off, off + 19), batch)
        off += 20
    recent = RecentFiles(store)
    floor = to_us(dt.datetime(2025, 3, 1, 9, 55, tzinfo=dt.UTC))
    recent.refresh(floor)
    cached, fresh = recent.source(store_source(store)), store_source(store)

    def same(lo: int, hi: int) -> None:
        key = [("ts", "ascending"), ("dst_port", "ascending")]
        got, want = cached(lo, hi).sort_by(key), fresh(lo, hi).select(DETECT_COLUMNS).sort_by(key)
        assert got.num_rows > 0 and got.equals(want.cast(got.schema))

    hi = to_us(dt.datetime(2025, 3, 1, 11, tzinfo=dt.UTC))
    same(floor, hi)
    assert recent.newest_us() == to_us(t0 + dt.timedelta(minutes=20, seconds=7 * 19))
    held = dict(recent.files)
    recent.refresh(floor)
    assert all(recent.files[f][0] is held[f][0] for f in held), "a file already read is not read again"
    # A new flush shows up; compaction replaces an hour's files by one: no event twice, none lost.
    late = store_events(t0 + dt.timedelta(minutes=30), 20, off)
    store.write_flush(OffsetRange("t", 0, off, off + 19), late)
    report = compact(store, older_than_s=0, now=dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
    assert report.hours_compacted >= 1
    recent.refresh(floor)
    same(floor, hi)
    # Reads reaching before the floor (the slow kinds' look-back) go to the store itself.
    assert cached(to_us(t0), hi).num_rows == fresh(to_us(t0), hi).num_rows == 140


def test_detector_crashing_after_announcing_announces_the_scan_again_on_restart_not_never(
    tmp_path: Path,
) -> None:
    """Announce, then write: a crash in between repeats the announcement (same scan_id) once."""
    table, _, _ = hostile_events()
    t0 = table.column("ts")[0].as_py()
    heard: list[str] = []

    def crash(scans: list[dict[str, Any]]) -> None:
        heard.extend(s["scan_id"] for s in scans)
        raise KeyboardInterrupt  # the process dies right after the alert went out

    first = Evaluator(DetectConfig(), table_source(table), ScanStore(tmp_path / "scans"), on_new=crash)
    with pytest.raises(KeyboardInterrupt):
        replay(first, t0, t0 + dt.timedelta(hours=2))
    assert len(heard) == 1 and first.scans.read().num_rows == 0, "announced, not yet written"
    restarted = Evaluator(
        DetectConfig(),
        table_source(table),
        ScanStore(tmp_path / "scans"),
        on_new=lambda scans: heard.extend(s["scan_id"] for s in scans),
    )
    replay(restarted, t0, t0 + dt.timedelta(hours=2))
    replay(restarted, t0, t0 + dt.timedelta(hours=2))
    assert heard == [heard[0], heard[0]], "once more after the crash, then never again"
    assert restarted.scans.read().column("scan_id").to_pylist() == [heard[0]]


def _topic_configs(bootstrap: str, topic: str) -> dict[str, Any]:
    """The topic's effective settings on the broker (key -> value)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    finally:
        admin.close()
    return {k: v["value"] for k, v in got["topic"][topic].items()}


def test_scans_topic_made_before_without_compaction_is_made_compacted(kafka_bootstrap: str) -> None:
    """A scans topic someone created with the default delete policy (by hand, an older fireplot):
    the publisher sets cleanup.policy=compact on it at start, keeping its other settings."""
    import uuid

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from pipeline.detect.runner import topic_publisher

    topic = f"scans-pre-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"retention.ms": "86400000"})])
    finally:
        admin.close()
    assert _topic_configs(kafka_bootstrap, topic)["cleanup.policy"] == "delete"
    publish = topic_publisher(DetectConfig(kafka_topic=topic), kafka_bootstrap)
    after = _topic_configs(kafka_bootstrap, topic)
    assert after["cleanup.policy"] == "compact"
    assert after["retention.ms"] == "86400000", "its other settings stay"
    # It publishes to the topic; a second start (already compacted) neither fails nor changes it.
    publish([{"scan_id": "x1", "kind": "vertical"}])
    topic_publisher(DetectConfig(kafka_topic=topic), kafka_bootstrap)
    assert _topic_configs(kafka_bootstrap, topic)["cleanup.policy"] == "compact"
    assert [(k, v["kind"]) for k, v in read_topic(kafka_bootstrap, topic)] == [(b"x1", "vertical")]
