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
import subprocess
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
from pipeline.broker import KAFKA_VERSION, LocalKafka
from pipeline.broker.mirror import MirrorMaker, Site, mm2_properties, remote_topic
from pipeline.config import ConfigError, KafkaConfig
from pipeline.wire import MAX_REQUEST_BYTES
from producers.demo import Demo, write_lines
from tests.support.system import System, free_port
from tests.support.topics import TopicReader

END = dt.datetime(2026, 11, 27, 18, 30, tzinfo=dt.UTC)
BROKER_HEAP_MB = 320
MIRROR_HEAP_MB = 256
MIRROR_KILLS = 3
# Each kill's point: the fraction copied of what was left to copy. MirrorMaker copies up to the
# quota's burst allowance (10 s of it) at once after a start, and the copy goes on while the test
# polls, so a kill lands past its point (by up to 8,000 events, measured at load 15): they stay low.
KILL_AT = (0.1, 0.2, 0.3)
# Site a's fetch quota while the kills run, and the backlog shipped before each (lines an hour):
# before the first kill about 20,000 events of 41 bytes, a copy of over 15 s past the quota's
# 10 s burst allowance. Each kill leaves most of what was left uncopied (it lands at 10-30% of
# it), so the later backlogs are smaller: what is left to copy stays about 20,000 events at every
# kill instead of growing to 45,000 and 62,000, whose copy at the quota took 40 and 80 s more
# for the same check (some copied, some not, duplicates after the first kill).
COPY_RATE_BYTES_S = 32_000
BACKLOG_PER_HOUR = (30_000, 10_000, 10_000)
FETCH_BYTES = 64 << 10


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
# Four MirrorMaker starts among five JVMs: 4-5 min on a quiet machine, 10 at load 25.
@pytest.mark.timeout(1500)
def test_two_sites_mirrored_to_centre_arrive_once_each_and_a_cut_site_catches_up(
    tmp_path: Path, clusters: dict[str, str], mirror_jars: Path
) -> None:
    """Events shipped at sites a and b reach the central store exactly once each with their site.
    Then site a's MirrorMaker is killed (-9) mid-copy MIRROR_KILLS times, each time with part of a
    fresh backlog copied and part not (checked after the kill, from what the centre holds), the
    first never having committed its offsets; more is shipped while it is down; the last one
    catches up. MirrorMaker is at-least-once, so the centre's remote topic holds every site event
    at least once (and really some twice); the store holds every one exactly once."""
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
        mm = MirrorMaker(
            [Site(name, clusters[name])],
            clusters["centre"],
            [topic],
            tmp_path / f"mm-{name}",
            mirror_jars,
            heap_mb=MIRROR_HEAP_MB,
            refresh_topics_interval_s=2.0,
            offset_flush_interval_ms=offset_flush_interval_ms,
        )
        # Small fetches, so the copy quota (below) paces the copy a record or two at a time
        # instead of one fetch taking the whole backlog before the broker throttles.
        mm.config[f"{name}.consumer.max.partition.fetch.bytes"] = str(FETCH_BYTES)
        mm.config[f"{name}.consumer.fetch.max.bytes"] = str(FETCH_BYTES)
        # mm2_properties turns Connect's reflection scan of the classpath off (plugin.discovery):
        # a start in ~7 s instead of ~38 s at load, four starts here.
        assert mm.config["plugin.discovery"] == mm.config["centre.plugin.discovery"] == "service_load"
        return mm

    # Site a's first MirrorMaker never commits its source offsets before it is killed,
    # so its replacement copies everything it had copied again: real duplicates.
    mirrors = {"a": mirror_maker("a", 600_000)}
    copier = Copier(clusters["centre"], remote_topic("a", topic), produced=0)
    try:
        clock = time.monotonic()  # for the phase times printed (pytest -s)
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

        # Bounds for a machine at load 40 (two JVMs starting, site b's copy waiting for its
        # MirrorMaker's 30 s topic refresh): each wait ends as soon as the rows are in.
        table = centre.wait_for_rows(sent["a"] + sent["b"], timeout_s=360)
        assert table.num_rows == len(_ids(table))
        assert {s: n for s, n in zip(*_site_counts(table), strict=True)} == sent
        for name, site in sites.items():
            assert _ids(table.filter(pc.equal(table["site"], name))) == _ids(site.topic_events(topic))

        # Site a's MirrorMaker is killed mid-copy, again and again. Site a's brokers serve its
        # consumers COPY_RATE_BYTES_S at most (a Kafka client quota), so copying each fresh
        # backlog takes many seconds on any machine, and each kill is aimed at a point of the
        # copy's measured progress, not at a time.
        print(f"both sites copied and stored at {time.monotonic() - clock:.0f} s")
        copier.produced = sent["a"]
        copier.poll()
        assert copier.copied == sent["a"]
        _copy_quota(mirror_jars, clusters["a"], COPY_RATE_BYTES_S)
        for kill in range(MIRROR_KILLS):
            # A fresh backlog: shipped while the first MirrorMaker runs, and while each later
            # one is down (it copies what it finds when it starts).
            copier.produced += _ship(sites["a"], "a", tmp_path, 30 + kill, BACKLOG_PER_HOUR[kill])
            if kill:
                mirrors["a"] = mirror_maker("a", 500)
                mirrors["a"].start()
                mirrors["a"].wait_started()
            copier.kill_mid_copy(mirrors["a"], kill, KILL_AT[kill])
        _copy_quota(mirror_jars, clusters["a"], None)

        # Site a is cut off (its MirrorMaker is down); the site keeps taking events.
        more_a = _ship(sites["a"], "a", tmp_path, 23, 1500)
        more_b = _ship(sites["b"], "b", tmp_path, 24, 500)
        # Site b is not held up by site a's outage; the store holds exactly what reached the centre.
        centre.wait_for_rows(copier.copied + sent["b"] + more_b, timeout_s=240)
        copier.close()
        print(f"kills done, site b stored during the outage at {time.monotonic() - clock:.0f} s")

        mirrors["a"] = mirror_maker("a", 500)
        mirrors["a"].start()
        mirrors["a"].wait_started()
        sent_a = copier.produced + more_a
        total = sent_a + sent["b"] + more_b
        table = centre.wait_for_rows(total, timeout_s=300, settle_s=4.0)
        print(f"site a caught up at {time.monotonic() - clock:.0f} s")

        assert table.num_rows == len(_ids(table)) == total
        assert {s: n for s, n in zip(*_site_counts(table), strict=True)} == {
            "a": sent_a,
            "b": sent["b"] + more_b,
        }
        for name, site in sites.items():
            assert _ids(table.filter(pc.equal(table["site"], name))) == _ids(site.topic_events(topic))
        # MirrorMaker really did deliver site a's events twice (the first one's successor copied
        # everything again); the centre has each at least once, the store kept one of each.
        replicated = centre.topic_events(remote_topic("a", topic))
        assert replicated.num_rows >= sent_a + sent["a"]
        assert _ids(replicated) == _ids(sites["a"].topic_events(topic))
        assert _metric(web_port, "fireplot_worker_duplicate_events_dropped_total") >= sent["a"]
        assert mirrors["a"].failure() is None
        # `fireplot kafka mirror` stops cleanly on SIGTERM and says so with its exit code.
        os.killpg(mirror_b.pid, signal.SIGTERM)
        assert mirror_b.wait(timeout=60) == 0, sites["b"].log_of("mirror")
    finally:
        copier.close()
        mirrors["a"].stop()
        centre.stop()
        for site in sites.values():
            site.stop()


class Copier:
    """What MirrorMaker has copied of one site into the centre: the distinct events of the remote
    topic (MirrorMaker may copy an event twice), read as they come."""

    def __init__(self, centre: str, remote: str, produced: int) -> None:
        self.reader = TopicReader(centre, remote)
        self.seen: set[tuple[str, int]] = set()
        self.produced = produced  # the site's events (the shippers' acknowledged count)

    @property
    def copied(self) -> int:
        return len(self.seen)

    def poll(self) -> int:
        self.seen |= _ids(self.reader.read_new())
        return self.copied

    def kill_mid_copy(self, mm: MirrorMaker, n: int, at: float) -> None:
        """kill -9 ``mm`` once it has copied the fraction ``at`` of what it had left to copy;
        then check, from what the centre holds after the kill, that it had copied some of the
        backlog and not all: a kill that came too early or too late fails the test."""
        started, before = time.monotonic(), self.poll()
        left = self.produced - before
        assert left > 0, f"kill {n}: nothing left to copy"
        target = before + max(1, int(at * left))
        deadline = time.monotonic() + 180
        while self.poll() < target:
            assert mm.pid() is not None, f"kill {n}: MirrorMaker exited"
            assert time.monotonic() < deadline, f"kill {n}: copied {self.copied - before} of {left} in 180 s"
            time.sleep(0.2)
        assert mm.stop(kill=True), f"kill {n}: MirrorMaker was not running"
        after = self.poll()  # all it ever copied: it is dead
        print(
            f"MirrorMaker kill {n}: aimed at {at:.0%} of {left} events left, "
            f"killed with {after - before} copied, {self.produced - after} not, "
            f"after {time.monotonic() - started:.0f} s"
        )
        assert before < after < self.produced, (
            f"kill {n} not mid-copy: {after - before} of {left} events copied by then"
        )

    def close(self) -> None:
        self.reader.close()


def _copy_quota(jars: Path, bootstrap: str, bytes_per_s: int | None) -> None:
    """Set (or, with None, remove) the fetch quota every client of the cluster at ``bootstrap``
    gets, with Kafka's own ConfigCommand (``kafka-configs.sh``)."""
    change = (
        ["--add-config", f"consumer_byte_rate={bytes_per_s}"]
        if bytes_per_s is not None
        else ["--delete-config", "consumer_byte_rate"]
    )
    cmd = ["java", "-Xmx128m", "-cp", f"{jars.resolve() / KAFKA_VERSION}/*", "kafka.admin.ConfigCommand"]
    cmd += ["--bootstrap-server", bootstrap, "--alter", "--entity-type", "clients", "--entity-default"]
    proc = subprocess.run(cmd + change, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


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
