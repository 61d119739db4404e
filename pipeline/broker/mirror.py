"""Apache Kafka MirrorMaker 2 between site clusters and a central cluster (topology 2).

Each site runs its own Kafka; shippers publish there, so a site keeps
accepting events while its link to the centre is down. MirrorMaker 2 (the
Connect-based ``org.apache.kafka.connect.mirror.MirrorMaker``, dedicated
mode, jars from Maven Central like the broker's) copies each site's events,
raw-lines and dead-letter topics to the centre under its
``DefaultReplicationPolicy`` names, ``<site>.fireplot.events``; the central
worker subscribes by pattern ([kafka] events_topic_pattern, raw_topic_pattern)
and archives them.

Nothing lost, nothing duplicated across a cut link: MirrorMaker's source
offsets live in the centre (``mm2-offsets.<site>.internal``), so a
MirrorMaker that was stopped or killed resumes where its last committed
offset was. Replication is at-least-once: what it copied after that commit
is copied again. Remote topics keep the source partitioning (partition p
of ``fireplot.events`` at the site becomes partition p of
``<site>.fireplot.events``) and every event keeps its ``(source_id,
source_offset)``, so a re-copied batch lands on the same central partition
as its first copy and the store's per-partition dedupe drops it
(``pipeline.store``).

Everything of one MirrorMaker lives under its home: ``mm2.properties``,
``logs/server.log``, ``logs/stdout.log``, ``mirrormaker.pid``. ``supervise``
runs one in the foreground (``fireplot kafka mirror``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline.broker import KAFKA_VERSION, BrokerError, pid_alive
from pipeline.wire import MAX_REQUEST_BYTES

MAIN_CLASS = "org.apache.kafka.connect.mirror.MirrorMaker"
CENTRE_ALIAS = "centre"
# A site alias becomes the prefix of its remote topics ("<alias>.fireplot.events");
# a dot inside it would make DefaultReplicationPolicy read the wrong source back.
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
STARTED_LINE = "Kafka MirrorMaker started"
# Connect keeps the process alive after a task dies this way; nothing is copied until a restart.
TASK_FAILED_LINE = "Task threw an uncaught and unrecoverable exception"


class MirrorError(BrokerError):
    """MirrorMaker cannot be installed, configured or started."""


@dataclass(frozen=True)
class Site:
    """One site cluster: its alias (= site name) and where its Kafka answers."""

    alias: str
    bootstrap: str

    @classmethod
    def parse(cls, text: str) -> Site:
        """``NAME=HOST:PORT[,HOST:PORT...]`` as given to ``fireplot kafka mirror --site``."""
        alias, sep, bootstrap = text.partition("=")
        if not sep or not bootstrap.strip():
            raise ValueError(f"expected NAME=BOOTSTRAP, got {text!r}")
        return cls(alias.strip(), bootstrap.strip())


def mirror_lib(lib_root: Path) -> Path:
    """Where MirrorMaker's jars go: beside the broker's, in a directory of their own."""
    return lib_root.resolve() / f"mirror-{KAFKA_VERSION}"


def installed(lib_root: Path) -> bool:
    lib = mirror_lib(lib_root)
    return (lib / f"connect-mirror-{KAFKA_VERSION}.jar").is_file() and any(lib.glob("log4j-slf4j-impl-*.jar"))


def install(lib_root: Path, quiet: bool = True) -> Path:
    """Resolve MirrorMaker 2's jars from Maven Central into ``<lib_root>/mirror-<version>/`` (once)."""
    lib = mirror_lib(lib_root)
    if installed(lib_root):
        return lib
    if not shutil.which("java"):
        raise MirrorError("`java` not found on PATH: MirrorMaker 2 needs OpenJDK 17 or newer")
    mvn = shutil.which("mvn")
    if not mvn:
        raise MirrorError("`mvn` not found on PATH: MirrorMaker 2's jars come from Maven Central")
    pom = resources.files("pipeline.broker").joinpath("mirror-pom.xml")
    staging = lib.with_name(f".{lib.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with resources.as_file(pom) as pom_path:
        cmd = [mvn, "-B", "-f", str(pom_path), "dependency:copy-dependencies"]
        cmd += [f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
        if quiet:
            cmd.insert(1, "-q")
        proc = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stdout or "")[-2000:] + (proc.stderr or "")[-2000:]
        raise MirrorError(f"maven could not resolve MirrorMaker 2 ({KAFKA_VERSION}):\n{detail}")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    return lib


def mm2_properties(
    sites: Sequence[Site],
    centre_bootstrap: str,
    topics: Sequence[str],
    *,
    refresh_topics_interval_s: float = 30.0,
    offset_flush_interval_ms: int = 5000,
    heartbeats_interval_s: float = 5.0,
) -> dict[str, str]:
    """The MirrorMaker 2 configuration replicating ``topics`` of every site into the centre.

    Only ``<site>->centre`` flows run: the centre never writes back to a site.
    Consumer-group sync is off: the central worker has its own consumer group
    and its own exact offsets in the store's manifests.
    """
    if not sites:
        raise ValueError("no site to mirror: give at least one --site NAME=BOOTSTRAP")
    aliases = [s.alias for s in sites]
    for alias in aliases:
        if not ALIAS_RE.match(alias):
            raise ValueError(
                f"site {alias!r} cannot be a MirrorMaker alias: letters, digits, '_' and '-' only "
                "(its remote topics are named <site>.<topic>)"
            )
        if alias == CENTRE_ALIAS:
            raise ValueError(f"{CENTRE_ALIAS!r} is the central cluster's alias; name the site otherwise")
    if len(set(aliases)) != len(aliases):
        raise ValueError(f"a site is given twice: {aliases}")
    if not topics:
        raise ValueError("no topic to mirror")
    # Large Arrow batches (up to MAX_REQUEST_BYTES) must pass MirrorMaker's own
    # consumer and producer, whose defaults are 1 MiB.
    big = str(MAX_REQUEST_BYTES + 64 * 1024)
    props: dict[str, str] = {
        "clusters": ", ".join([*aliases, CENTRE_ALIAS]),
        f"{CENTRE_ALIAS}.bootstrap.servers": centre_bootstrap,
        # Site clusters at the edge are small; one replica of everything, like the local broker.
        "replication.factor": "1",
        "config.storage.replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1",
        # Checkpoints stay on although nothing here consumes them: with them off,
        # MirrorMaker 4.1 logs an ERROR for the checkpoint connector it still configures.
        "emit.checkpoints.enabled": "true",
        "emit.checkpoints.interval.seconds": "60",
        "sync.group.offsets.enabled": "false",
        # No authorizer on these clusters; ACL sync would only log errors.
        "sync.topic.acls.enabled": "false",
        "emit.heartbeats.enabled": "true",
        "emit.heartbeats.interval.seconds": f"{heartbeats_interval_s:g}",
        "refresh.topics.interval.seconds": f"{refresh_topics_interval_s:g}",
        # How much a killed MirrorMaker copies again: what it sent since the last flush.
        "offset.flush.interval.ms": str(offset_flush_interval_ms),
        # Client settings only take effect per cluster alias: MirrorMaker 4.1 ignores
        # top-level producer.* for the producer writing into the centre (measured:
        # RecordTooLargeException at 1 MiB, and the task dies for good).
        f"{CENTRE_ALIAS}.producer.max.request.size": big,
        f"{CENTRE_ALIAS}.producer.acks": "all",
        f"{CENTRE_ALIAS}.producer.enable.idempotence": "true",
        # Connect's default (hybrid_warn) finds plugins by their ServiceLoader manifests AND by a
        # reflection scan of every class on the classpath, for MirrorMaker (top level) and for its
        # herder into the centre (the centre's alias): ~15 s each of a 38 s start on a loaded
        # machine. The Kafka jars' manifests name every plugin MirrorMaker uses (its own log
        # suggests this setting); what is copied is the same.
        "plugin.discovery": "service_load",
        f"{CENTRE_ALIAS}.plugin.discovery": "service_load",
    }
    topic_regex = "|".join(re.escape(t) for t in topics)
    for site in sites:
        props[f"{site.alias}.bootstrap.servers"] = site.bootstrap
        props[f"{site.alias}.consumer.max.partition.fetch.bytes"] = big
        props[f"{site.alias}.consumer.auto.offset.reset"] = "earliest"
        props[f"{site.alias}->{CENTRE_ALIAS}.enabled"] = "true"
        props[f"{site.alias}->{CENTRE_ALIAS}.topics"] = topic_regex
        # Only the flows above: nothing from the centre back to the site.
        props[f"{CENTRE_ALIAS}->{site.alias}.enabled"] = "false"
    return props


def remote_topic(site: str, topic: str) -> str:
    """The name DefaultReplicationPolicy gives ``topic`` of ``site`` at the centre."""
    return f"{site}.{topic}"


class MirrorMaker:
    """One MirrorMaker 2 process (dedicated mode) replicating sites into the centre."""

    def __init__(
        self,
        sites: Sequence[Site],
        centre_bootstrap: str,
        topics: Sequence[str],
        home: Path,
        lib_root: Path,
        *,
        heap_mb: int = 256,
        # Its JVM and herders took over 90 s to start on a 2-core machine at load 30 beside four
        # other JVMs (measured); a start that exits is reported at once whatever this is.
        start_timeout_s: float = 240.0,
        refresh_topics_interval_s: float = 30.0,
        offset_flush_interval_ms: int = 5000,
    ) -> None:
        self.sites = list(sites)
        self.home = home.resolve()
        self.lib_root = lib_root
        self.lib = mirror_lib(lib_root)
        self.logs = self.home / "logs"
        self.pid_file = self.home / "mirrormaker.pid"
        self.properties = self.home / "mm2.properties"
        self.heap_mb = heap_mb
        self.start_timeout_s = start_timeout_s
        self.config = mm2_properties(
            sites,
            centre_bootstrap,
            topics,
            refresh_topics_interval_s=refresh_topics_interval_s,
            offset_flush_interval_ms=offset_flush_interval_ms,
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_mark = 0  # server.log size at start: older "started" lines are a previous run's
        self._failure_scan = 0

    def command(self) -> list[str]:
        java = shutil.which("java")
        if not java:
            raise MirrorError("`java` not found on PATH: MirrorMaker 2 needs OpenJDK 17 or newer")
        log_cfg = resources.files("pipeline.broker").joinpath("log4j2.properties")
        return [
            java,
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",  # one small heap on a shared machine; pauses do not matter here
            f"-Dlog4j2.configurationFile={log_cfg}",
            f"-Dkafka.logs.dir={self.logs}",
            "-cp",
            f"{self.lib}/*",
            MAIN_CLASS,
            str(self.properties),
            # Only the herders writing into the centre: a heartbeat flow back into a
            # site would put MirrorMaker's state there and fail whenever the link does.
            "--clusters",
            CENTRE_ALIAS,
        ]

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def start(self) -> int:
        """Start MirrorMaker (installing its jars first if needed); return its pid."""
        if (pid := self.pid()) is not None:
            raise MirrorError(f"MirrorMaker already runs as pid {pid} (home {self.home})")
        install(self.lib_root)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.properties.write_text("".join(f"{k} = {v}\n" for k, v in self.config.items()))
        self._log_mark = self._failure_scan = self._server_log_size()
        out = open(self.logs / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        self._proc = subprocess.Popen(
            self.command(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal must not kill it mid-commit
        )
        out.close()
        self.pid_file.write_text(str(self._proc.pid))
        return self._proc.pid

    def _server_log_size(self) -> int:
        with contextlib.suppress(FileNotFoundError):
            return (self.logs / "server.log").stat().st_size
        return 0

    def wait_started(self) -> None:
        """Return once MirrorMaker reports its herders started; raise if it exits or hangs."""
        deadline = time.monotonic() + self.start_timeout_s
        server_log = self.logs / "server.log"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise MirrorError(
                    f"MirrorMaker exited with code {self._proc.returncode} while starting; "
                    f"see {server_log} and {self.logs / 'stdout.log'}"
                )
            with contextlib.suppress(FileNotFoundError), open(server_log, "rb") as fh:
                # a log that rolled over since start is read from its beginning
                fh.seek(self._log_mark if fh.seek(0, os.SEEK_END) >= self._log_mark else 0)
                if STARTED_LINE.encode() in fh.read():
                    return
            time.sleep(0.3)
        raise MirrorError(f"MirrorMaker did not start within {self.start_timeout_s:.0f} s; see {server_log}")

    def failure(self) -> str | None:
        """A task failure MirrorMaker logged since start, or None. MirrorMaker keeps
        running without the dead task, so a supervisor must be told: restart it."""
        with contextlib.suppress(FileNotFoundError), open(self.logs / "server.log", "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            fh.seek(self._failure_scan if end >= self._failure_scan else 0)
            text = fh.read().decode("utf-8", "replace")
            at = text.find(TASK_FAILED_LINE)
            if at < 0:
                # keep the last partial line for the next look
                self._failure_scan = end - len(text.rpartition("\n")[2].encode())
                return None
            lines = text[text.rfind("\n", 0, at) + 1 :].splitlines()
            return " / ".join(line.strip() for line in lines[:2])
        return None

    def wait(self) -> int:
        """Block until the process ends; its exit code."""
        if self._proc is not None:
            return self._proc.wait()
        pid = self.pid()
        while pid is not None and pid_alive(pid):
            time.sleep(0.5)
        return 0

    def stop(self, grace_s: float = 30.0, *, kill: bool = False) -> bool:
        """Stop MirrorMaker: SIGTERM (it commits its offsets) and SIGKILL after ``grace_s``;
        ``kill`` sends SIGKILL at once, as a crash or power cut would. False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and pid_alive(pid):
            if self._proc is not None:
                self._proc.poll()
            time.sleep(0.2)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self.pid_file.unlink(missing_ok=True)
        return True


def supervise(
    runner: MirrorMaker,
    stop: Callable[[], bool],
    *,
    on_started: Callable[[], None] | None = None,
    poll_s: float = 0.5,
) -> str | None:
    """Run ``runner`` in the foreground until ``stop()`` says so or it ends; it is stopped in every case.

    Returns the failure of a task that died, else None. A dead task ends the run
    too: MirrorMaker keeps running without it and would copy nothing more until
    restarted, which is the caller's (or its service manager's) to do.
    """
    runner.start()
    try:
        runner.wait_started()
        if on_started is not None:
            on_started()
        while not stop() and runner.pid() is not None:
            if failed := runner.failure():
                return failed
            time.sleep(poll_s)
        return None
    finally:
        runner.stop()
