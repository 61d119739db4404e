"""Topology 2 on real parts: two site clusters replicated into a central cluster by MirrorMaker 2.

Three Apache Kafka brokers (site a, site b, centre) on free loopback ports,
one MirrorMaker 2 per site, shippers publishing to their own site's cluster
and the archive worker at the centre subscribed by pattern to the
replicated ``<site>.<events topic>`` topics. Heavy (five JVMs): marked
``mirror`` so it can be picked (``-m mirror``) or left out (``-m "not mirror"``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import signal
import string
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline.archive.topics import PatternTopics
from pipeline.broker import LocalKafka
from pipeline.broker.mirror import MirrorMaker, Site, mm2_properties, remote_topic
from pipeline.config import ConfigError, KafkaConfig
from pipeline.wire import MAX_REQUEST_BYTES
from producers.demo import Demo, write_lines
from tests.support.system import System, free_port

END = dt.datetime(2026, 11, 27, 18, 30, tzinfo=dt.UTC)
BROKER_HEAP_MB = 320
MIRROR_HEAP_MB = 256


# ---- configuration, no Kafka needed ----------------------------------------------


def test_mm2_properties_for_two_sites_replicate_only_into_the_centre() -> None:
    """Each site gets a site->centre flow for exactly the given topics; nothing flows back."""
    props = mm2_properties(
        [Site("a", "127.0.0.1:1"), Site("b", "127.0.0.1:2")],
        "127.0.0.1:3",
        ["fireplot.events", "fireplot.raw"],
    )
    assert props["clusters"] == "a, b, centre"
    assert props["a->centre.enabled"] == props["b->centre.enabled"] == "true"
    assert props["centre->a.enabled"] == props["centre->b.enabled"] == "false"
    topics = re.compile(props["a->centre.topics"])
    assert topics.fullmatch("fireplot.events") and topics.fullmatch("fireplot.raw")
    assert not topics.fullmatch("fireplotXevents") and not topics.fullmatch("fireplot.dead-letters")
    assert props["sync.group.offsets.enabled"] == "false"
    assert props["replication.factor"] == "1"
    # Per cluster alias: MirrorMaker ignores top-level producer.* for its producer into the centre.
    assert int(props["centre.producer.max.request.size"]) > MAX_REQUEST_BYTES
    assert int(props["a.consumer.max.partition.fetch.bytes"]) > MAX_REQUEST_BYTES


@pytest.mark.parametrize("alias", ["a.b", "centre", "", "-x"])
def test_mm2_properties_with_unusable_site_name_are_refused(alias: str) -> None:
    """A site alias that would garble remote topic names (or clash with the centre) is a clear error."""
    with pytest.raises(ValueError, match=r"alias|centre"):
        mm2_properties([Site(alias, "127.0.0.1:1")], "127.0.0.1:3", ["fireplot.events"])


def test_site_argument_without_bootstrap_is_refused() -> None:
    """``--site NAME`` without ``=BOOTSTRAP`` says what it expected."""
    with pytest.raises(ValueError, match="NAME=BOOTSTRAP"):
        Site.parse("a")
    assert Site.parse(" a = 10.0.0.1:9092 ") == Site("a", "10.0.0.1:9092")


def test_mirror_maker_task_death_in_its_log_is_reported(tmp_path: Path) -> None:
    """A task Connect killed for good (MirrorMaker itself keeps running) is found in the log, once started."""
    mm = MirrorMaker([Site("a", "127.0.0.1:1")], "127.0.0.1:2", ["t"], tmp_path, tmp_path / "lib")
    mm.logs.mkdir(parents=True)
    log = mm.logs / "server.log"
    log.write_text(
        "[2026-11-28 21:24:52,952] INFO Kafka MirrorMaker started (org.apache.kafka.connect.mirror)\n"
    )
    assert mm.failure() is None
    with log.open("a") as fh:  # lines as MirrorMaker 4.1.1 wrote them for a record over max.request.size
        fh.write(
            "[2026-11-28 21:25:03,234] ERROR WorkerSourceTask{id=MirrorSourceConnector-0} Task threw an "
            "uncaught and unrecoverable exception. Task is being killed and will not recover until manually "
            "restarted (org.apache.kafka.connect.runtime.WorkerTask)\n"
            "org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer send "
            "callback\n"
        )
    failure = mm.failure()
    assert failure is not None
    assert "MirrorSourceConnector-0" in failure and "Unrecoverable exception from producer" in failure


def test_pattern_topics_take_matching_names_once_and_never_for_two_sinks() -> None:
    """Replicated topics join the sink whose pattern they match; other topics are left alone."""
    topics = PatternTopics(
        {
            "fireplot.events": r"[A-Za-z0-9_-]+\.fireplot\.events",
            "fireplot.raw": r"[A-Za-z0-9_-]+\.fireplot\.raw",
        }
    )
    events_list = topics.names["fireplot.events"]
    added = topics.add(
        ["a.fireplot.events", "b.fireplot.raw", "heartbeats", "mm2-offsets.a.internal", "fireplot.events"]
    )
    assert added == ["a.fireplot.events", "b.fireplot.raw"]
    assert topics.names == {
        "fireplot.events": ["fireplot.events", "a.fireplot.events"],
        "fireplot.raw": ["fireplot.raw", "b.fireplot.raw"],
    }
    assert topics.names["fireplot.events"] is events_list  # the agent's list grows in place
    assert topics.add(["a.fireplot.events", "c.fireplot.events"]) == ["c.fireplot.events"]


def test_pattern_topics_with_broken_regex_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a regular expression"):
        PatternTopics({"fireplot.events": "(["})


# ---- three clusters + MirrorMaker 2 ------------------------------------------------


@pytest.fixture
def clusters(tmp_path: Path, mirror_jars: Path) -> Iterator[dict[str, str]]:
    """Site a, site b and the centre: three single-node KRaft brokers sharing one copy of the jars."""
    brokers = {
        name: LocalKafka(
            KafkaConfig(
                local_port=free_port(),
                local_controller_port=free_port(),
                local_heap_mb=BROKER_HEAP_MB,
                var_dir=str(tmp_path / name),
            ),
            home=tmp_path / f"kafka-{name}",
            lib_root=mirror_jars,
        )
        for name in ("a", "b", "centre")
    }
    try:
        with ThreadPoolExecutor(3) as pool:
            for status in pool.map(lambda b: b.up(), brokers.values()):
                assert status.answering, status.describe()
        yield {name: b.cfg.local_bootstrap for name, b in brokers.items()}
    finally:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda b: b.down(), brokers.values()))


def _ship(site: System, name: str, tmp_path: Path, seed: int, per_hour: int, noise_bytes: int = 0) -> int:
    """Ship a fresh demo log at ``site``; the number of events the shipper says Kafka took.

    ``noise_bytes``: a random word of that length in each line's log prefix,
    which no compression shrinks much.
    """
    log = tmp_path / f"{name}-{seed}.log"
    write_lines(Demo(seed=seed).history(END, hours=1, per_hour=per_hour), log)
    if noise_bytes:
        rng = random.Random(seed)
        letters = string.ascii_letters + string.digits
        lines = log.read_text().splitlines()
        noisy = [
            line.replace(" DROP IN=", f" DROP {''.join(rng.choices(letters, k=noise_bytes))} IN=", 1)
            for line in lines
        ]
        log.write_text("\n".join(noisy) + "\n")
    summary = json.loads(site.ship([log], name).stderr.strip().splitlines()[-1])
    assert summary["rejected"] == 0
    sent = int(summary["events_sent"])
    assert sent > 0
    return sent


def _ids(table: pa.Table) -> set[tuple[str, int]]:
    return set(
        zip(table.column("source_id").to_pylist(), table.column("source_offset").to_pylist(), strict=True)
    )


def _metric(port: int, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name + "{"))


@pytest.mark.slow
def test_two_sites_mirrored_to_centre_arrive_once_each_and_a_cut_site_catches_up(
    tmp_path: Path, clusters: dict[str, str], mirror_jars: Path
) -> None:
    """Events shipped at sites a and b reach the central store exactly once each with their site;
    site a's MirrorMaker killed (-9, offsets uncommitted), more shipped there, restarted: the centre
    catches up with nothing lost, and what MirrorMaker copied twice is stored once."""
    centre = System(tmp_path / "centre", clusters["centre"])
    topic = centre.topic
    centre.configure(
        "kafka", events_topic_pattern=rf"[A-Za-z0-9_-]+\.{re.escape(topic)}", events_partitions=4
    )
    centre.configure("worker", raw_enabled=False, topic_discovery_interval_s=1.0)
    sites = {name: System(tmp_path / name, clusters[name]) for name in ("a", "b")}
    for site in sites.values():
        site.configure("kafka", events_topic=topic)
    sites["a"].configure("shipper", batch_lines=500)  # several records, so several offsets to replicate
    # Site b's first log goes out in records of over 1 MiB (compressed, thanks to
    # random words in its log prefixes): the size the Kafka clients in MirrorMaker
    # refuse unless configured otherwise.
    sites["b"].configure("shipper", batch_lines=20000)
    web_port = int(tomllib.loads(centre.config.read_text())["worker"]["web_port"])

    def mirror_maker(name: str, offset_flush_interval_ms: int) -> MirrorMaker:
        return MirrorMaker(
            [Site(name, clusters[name])],
            clusters["centre"],
            [topic],
            tmp_path / f"mm-{name}",
            mirror_jars,
            heap_mb=MIRROR_HEAP_MB,
            refresh_topics_interval_s=2.0,
            offset_flush_interval_ms=offset_flush_interval_ms,
        )

    # Site a's first MirrorMaker never commits its source offsets before it is killed,
    # so its replacement copies everything it had copied again: real duplicates.
    mirrors = {"a": mirror_maker("a", 600_000)}
    try:
        # The worker starts before any replicated topic exists: it must discover them.
        centre.start_worker()
        mirrors["a"].start()  # its JVM boots while the shippers run
        with ThreadPoolExecutor(2) as pool:
            shipped = pool.map(
                lambda job: _ship(sites[job[0]], job[0], tmp_path, job[1], job[2], job[3]),
                [("a", 21, 3000, 0), ("b", 22, 20000, 400)],
            )
            sent = dict(zip(("a", "b"), shipped, strict=True))
        # Site b's MirrorMaker is the command operators run; with production intervals
        # (topics refreshed every 30 s) it starts once b's topic exists.
        mirror_b = sites["b"].start(
            "mirror", "kafka", "mirror", "--site", f"b={clusters['b']}", "--centre", clusters["centre"]
        )
        mirrors["a"].wait_started()
        assert _largest_record(clusters["b"], topic) > 1 << 20

        table = centre.wait_for_rows(sent["a"] + sent["b"], timeout_s=150)
        assert table.num_rows == len(_ids(table))
        assert {s: n for s, n in zip(*_site_counts(table), strict=True)} == sent
        for name, site in sites.items():
            assert _ids(table.filter(pc.equal(table["site"], name))) == _ids(site.topic_events(topic))

        # Site a is cut off: its MirrorMaker dies without committing; the site keeps taking events.
        mirrors["a"].stop(kill=True)
        more_a = _ship(sites["a"], "a", tmp_path, 23, 1500)
        more_b = _ship(sites["b"], "b", tmp_path, 24, 500)
        # Site b is not held up by site a's outage.
        centre.wait_for_rows(sent["a"] + sent["b"] + more_b, timeout_s=120)

        mirrors["a"] = mirror_maker("a", 500)
        mirrors["a"].start()
        mirrors["a"].wait_started()
        total = sent["a"] + more_a + sent["b"] + more_b
        table = centre.wait_for_rows(total, timeout_s=150, settle_s=4.0)

        assert table.num_rows == len(_ids(table)) == total
        assert {s: n for s, n in zip(*_site_counts(table), strict=True)} == {
            "a": sent["a"] + more_a,
            "b": sent["b"] + more_b,
        }
        for name, site in sites.items():
            assert _ids(table.filter(pc.equal(table["site"], name))) == _ids(site.topic_events(topic))
        # MirrorMaker really did deliver site a's first events twice; the store kept one of each.
        replicated = centre.topic_events(remote_topic("a", topic))
        assert replicated.num_rows >= sent["a"] + (sent["a"] + more_a)
        assert len(_ids(replicated)) == sent["a"] + more_a
        assert _metric(web_port, "fireplot_worker_duplicate_events_dropped_total") >= sent["a"]
        assert mirrors["a"].failure() is None
        # `fireplot kafka mirror` stops cleanly on SIGTERM and says so with its exit code.
        os.killpg(mirror_b.pid, signal.SIGTERM)
        assert mirror_b.wait(timeout=60) == 0, sites["b"].log_of("mirror")
    finally:
        mirrors["a"].stop()
        centre.stop()
        for site in sites.values():
            site.stop()


def _largest_record(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=16 << 20
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        largest, deadline = 0, time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in consumer.poll(timeout_ms=1000).values():
                largest = max([largest, *(len(r.value) for r in records)])
        return largest
    finally:
        consumer.close()


def _site_counts(table: pa.Table) -> tuple[list[str], list[int]]:
    counts = table.group_by("site").aggregate([("site", "count")])
    return counts.column("site").to_pylist(), counts.column("site_count").to_pylist()
