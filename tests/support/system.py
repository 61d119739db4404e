"""One isolated fireplot deployment on a real Kafka broker: config, processes, store.

``System`` is what the ``system`` fixture (tests/conftest.py) yields: its own
topic, consumer group, store, registry and spool on the shared session broker,
so tests never see each other's events. The helpers beside it start and kill
its processes and check the store holds exactly what was sent.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa

from pipeline.broker import LocalKafka
from pipeline.config import KafkaConfig
from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
JAR_CACHE = REPO / "var" / "kafka" / "lib"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# A worker killed with -9 holds its partitions until its group session expires: every restart
# after a kill waited that long to join (at least 6 s, Kafka's smallest allowed session: most of
# the kill tests' ~6 s per kill). The brokers the tests start allow shorter sessions, and systems on them use
# SESSION_TIMEOUT_S; on any other broker (FIREPLOT_TEST_BOOTSTRAP, MirrorMaker's, the SASL one)
# systems use Kafka's default minimum. The kills, and what they must leave, stay the same.
GROUP_MIN_SESSION_TIMEOUT_MS = 1000
SESSION_TIMEOUT_S = 3.0  # heartbeats every 0.75 s, off the flush thread (pipeline/archive/app.py)
DEFAULT_MIN_SESSION_TIMEOUT_S = 6.0
_SHORT_SESSION_BROKERS: set[str] = set()


class ShortSessionKafka(LocalKafka):
    """The local broker with shorter consumer-group sessions allowed (``GROUP_MIN_SESSION_TIMEOUT_MS``)."""

    def _write_properties(self) -> None:
        super()._write_properties()
        with self.properties.open("a") as fh:
            fh.write(f"group.min.session.timeout.ms={GROUP_MIN_SESSION_TIMEOUT_MS}\n")


def local_broker(home: Path) -> LocalKafka:
    """A single-node broker of our own on free loopback ports, not started yet."""
    cfg = KafkaConfig(local_port=free_port(), local_controller_port=free_port(), var_dir=str(home))
    _SHORT_SESSION_BROKERS.add(cfg.local_bootstrap)
    return ShortSessionKafka(cfg, home=home, lib_root=JAR_CACHE)


def session_timeout_s(bootstrap: str) -> float:
    """The worker session timeout a system on ``bootstrap`` uses: short on the tests' own brokers."""
    return SESSION_TIMEOUT_S if bootstrap in _SHORT_SESSION_BROKERS else DEFAULT_MIN_SESSION_TIMEOUT_S


class System:
    """One isolated fireplot deployment on the session broker: config, processes, store."""

    def __init__(self, root: Path, bootstrap: str) -> None:
        self.root = root
        self.bootstrap = bootstrap
        run_id = uuid.uuid4().hex[:10]
        self.topic = f"fp-test-{run_id}"
        self.store_dir = root / "store"
        self.store = Store(self.store_dir)
        self.dead_letter_dir = root / "dead-letters"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.config = root / "fireplot.toml"
        self.config.write_text(
            f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{self.topic}"\n'
            f'var_dir = "{root / "var"}"\nevents_partitions = 4\n'
            f'[worker]\nstore_dir = "{self.store_dir}"\napp_id = "fp-test-{run_id}"\n'
            f"web_port = {free_port()}\nflush_max_records = 64\nflush_interval_s = 0.5\n"
            f"session_timeout_s = {session_timeout_s(bootstrap)}\n"
            f'[shipper]\ndead_letter_dir = "{self.dead_letter_dir}"\nsite = "test"\n'
            # Each system its own read positions and spool: a registry shared through
            # the repository's var/ would make a second test "resume" past its input.
            f'registry_path = "{root / "registry.json"}"\nspool_dir = "{root / "spool"}"\n'
        )
        self.procs: list[subprocess.Popen[bytes]] = []
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_name = "worker"  # its log: logs/NAME.log

    def configure(self, section: str, **values: object) -> None:
        """Add keys to one section of this system's config file (before starting processes)."""
        import tomllib

        data = tomllib.loads(self.config.read_text())
        data.setdefault(section, {}).update(values)
        lines = []
        for name, keys in data.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "fireplot", "-c", str(self.config), *args]

    def run(self, *args: str, check: bool = True, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"fireplot {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
            )
        return proc

    def ship(self, paths: list[Path], site: str = "test", *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("ship", *map(str, paths), "--site", site, *extra)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``fireplot ARGS`` in the background, output to logs/NAME.log."""
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            self.command(*args),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        self.procs.append(proc)
        return proc

    def log_of(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def topic_events(self, topic: str | None = None, timeout_s: float = 30) -> pa.Table:
        """Every event on the events topic so far, in partition then offset order."""
        from kafka import KafkaConsumer, TopicPartition

        from pipeline import wire

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        try:
            name = topic or self.topic
            parts = consumer.partitions_for_topic(name) or set()
            tps = [TopicPartition(name, p) for p in sorted(parts)]
            if not tps:  # not created yet: nothing shipped
                from pipeline.event import EVENT_SCHEMA

                return EVENT_SCHEMA.empty_table()
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout_s
            by_tp: dict[int, list[pa.Table]] = {tp.partition: [] for tp in tps}
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise AssertionError(f"could not read {name} to its end in {timeout_s} s")
                for tp, records in consumer.poll(timeout_ms=500, max_records=500).items():
                    by_tp[tp.partition] += [wire.decode(r.value) for r in records]
            tables = [t for p in sorted(by_tp) for t in by_tp[p]]
            from pipeline.event import EVENT_SCHEMA

            return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()
        finally:
            consumer.close()

    def start_worker(self, name: str = "worker", **env: str) -> subprocess.Popen[bytes]:
        """Start ``fireplot worker`` (output to logs/NAME.log, extra environment ``env``); it becomes
        ``self.worker``, the one ``wait_for_rows`` watches."""
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            self.command("worker"),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **env},
        )
        out.close()
        self.procs.append(proc)
        self.worker, self.worker_name = proc, name
        return proc

    def kill_worker(self) -> None:
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=30)

    def worker_log(self) -> str:
        """The end of the log of the worker started last (``self.worker``)."""
        path = self.logs / f"{self.worker_name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def rows(self) -> int:
        # The worker's recovery and compaction delete files under a reader's
        # listing; store.count() retries on a fresh listing as every reader must.
        return self.store.count()

    def wait_for_rows(self, n: int, timeout_s: float = 120, settle_s: float = 2.0) -> pa.Table:
        """Poll until the store holds exactly n events and stays there for settle_s."""
        deadline = time.monotonic() + timeout_s
        reached_at: float | None = None
        while time.monotonic() < deadline:
            have = self.rows()
            assert have <= n, f"store holds {have} events, more than the {n} shipped"
            if have == n:
                reached_at = reached_at or time.monotonic()
                if time.monotonic() - reached_at >= settle_s:
                    return self.store.read_all()
            else:
                reached_at = None
            if self.worker is not None and self.worker.poll() is not None:
                raise AssertionError(f"worker exited with {self.worker.returncode}:\n{self.worker_log()}")
            time.sleep(0.25)
        raise AssertionError(f"store holds {self.rows()} events, expected {n}\n{self.worker_log()}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def kill(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 a process started by ``System`` and everything in its session."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def ids(table: pa.Table) -> list[tuple[str, int]]:
    """Each event's identity, ``(source_id, source_offset)``, in table order."""
    return list(zip(table["source_id"].to_pylist(), table["source_offset"].to_pylist(), strict=True))


def assert_exact(system: System, expected: pa.Table, timeout_s: float = 180) -> pa.Table:
    """The store ends with exactly ``expected``'s events: none lost, none twice, nothing else."""
    table = system.wait_for_rows(expected.num_rows, timeout_s=timeout_s)
    got = ids(table)
    assert len(got) == len(set(got)), "duplicates in the store"
    assert set(got) == set(ids(expected))
    return table


def wait_events(system: System, n: int, timeout_s: float = 60, log: str = "follow") -> int:
    """Wait until the events topic holds at least ``n`` events; how many it holds."""
    deadline = time.monotonic() + timeout_s
    have = 0
    while time.monotonic() < deadline:
        have = system.topic_events().num_rows
        if have >= n:
            return have
        time.sleep(0.5)
    raise AssertionError(f"{have} events on Kafka, expected {n}\n{system.log_of(log)}")


def registry_offsets(path: Path) -> dict[str, int]:
    """The shipper registry's saved read position of each source (empty before its first save)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    assert data["version"] == 1
    return {e["source_id"]: e["offset"] for e in data["sources"]}


def ids_in_store(system: System) -> pa.Table:
    """Every stored event's identity columns, duplicates included."""
    empty = pa.table({"source_id": pa.array([], pa.string()), "source_offset": pa.array([], pa.int64())})
    return system.store.scan(lambda d: d.to_table(columns=["source_id", "source_offset"]), empty)


def distinct_ids(table: pa.Table) -> pa.Table:
    return table.group_by(["source_id", "source_offset"]).aggregate([])
