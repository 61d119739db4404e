"""A local Apache Kafka 4 broker (single-node KRaft) run from the Maven Central jars.

No Docker and no tarball: `install` resolves the broker's jars with Maven from
the checked-in ``pom.xml``; `up` formats KRaft storage once, starts broker and
controller in one JVM bound to 127.0.0.1 and waits until it answers metadata
requests; `down` stops it with SIGTERM (a clean shutdown) and SIGKILL only
after a grace period.

Everything lives under ``<var_dir>/kafka``: ``lib/`` (jars, by version),
``data/`` (log dirs), ``logs/server.log``, ``broker.pid``, ``server.properties``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline.config import KafkaConfig

KAFKA_VERSION = "4.1.1"


class BrokerError(RuntimeError):
    """The local broker cannot be installed, started or reached."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    answering: bool
    home: Path

    def describe(self) -> str:
        if not self.running:
            return f"stopped (home {self.home})"
        state = "answering" if self.answering else "NOT answering"
        return f"running pid {self.pid} at {self.bootstrap}, {state} (home {self.home})"


def _port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not): for the pid files of the broker and MirrorMaker."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class SecureListener:
    """An extra SASL_SSL listener on 127.0.0.1 beside the PLAINTEXT one (which tools and health use).

    The broker's certificate and key come from a PKCS12 keystore; a truststore
    makes the broker ask clients for certificates too (TLS client auth,
    ``requested``). SCRAM users are created when the storage is formatted, so
    they exist before the first client connects: a broker already formatted
    keeps the users it has.
    """

    port: int
    keystore: Path
    keystore_password: str
    scram_users: dict[str, str]  # name -> password
    mechanism: str = "SCRAM-SHA-512"
    truststore: Path | None = None
    truststore_password: str = ""

    def __post_init__(self) -> None:
        if self.mechanism not in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise BrokerError(f"SecureListener: mechanism must be SCRAM-SHA-256/512, not {self.mechanism!r}")
        # StorageTool's --add-scram syntax is [name=...,password=...]: these would break it.
        for name, password in self.scram_users.items():
            if not name or any(c in name + password for c in ',[]="'):
                raise BrokerError(f'SecureListener: user {name!r}: no , [ ] = " in names or passwords')

    def properties(self) -> dict[str, str]:
        mech = self.mechanism.lower()
        props = {
            "sasl.enabled.mechanisms": self.mechanism,
            f"listener.name.sasl_ssl.{mech}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.sasl_ssl.ssl.keystore.type": "PKCS12",
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.keystore),
            "listener.name.sasl_ssl.ssl.keystore.password": self.keystore_password,
            "listener.name.sasl_ssl.ssl.key.password": self.keystore_password,
        }
        if self.truststore is not None:
            props |= {
                "listener.name.sasl_ssl.ssl.truststore.type": "PKCS12",
                "listener.name.sasl_ssl.ssl.truststore.location": str(self.truststore),
                "listener.name.sasl_ssl.ssl.truststore.password": self.truststore_password,
                "listener.name.sasl_ssl.ssl.client.auth": "requested",
            }
        return props

    def format_args(self) -> list[str]:
        return [
            f"--add-scram={self.mechanism}=[name={name},password={password}]"
            for name, password in self.scram_users.items()
        ]


class LocalKafka:
    def __init__(
        self,
        cfg: KafkaConfig,
        home: Path | None = None,
        lib_root: Path | None = None,
        secure: SecureListener | None = None,
    ) -> None:
        self.cfg = cfg
        self.secure = secure
        self.home = (home or Path(cfg.var_dir) / "kafka").resolve()
        # Tests run throwaway brokers but share one copy of the jars.
        self.lib = (lib_root or self.home / "lib").resolve() / KAFKA_VERSION
        self.data = self.home / "data"
        self.logs = self.home / "logs"
        self.pid_file = self.home / "broker.pid"
        self.properties = self.home / "server.properties"

    # ---- install -----------------------------------------------------------

    def installed(self) -> bool:
        return (self.lib / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file() and any(
            self.lib.glob("log4j-slf4j-impl-*.jar")
        )

    def install(self, quiet: bool = True) -> Path:
        """Resolve the broker's jars from Maven Central into lib/<version>/ (once)."""
        if self.installed():
            return self.lib
        self._require("java", "OpenJDK 17 or newer (Debian: apt-get install openjdk-17-jre-headless)")
        mvn = self._require("mvn", "Apache Maven (Debian: apt-get install maven)")
        pom = resources.files("pipeline.broker").joinpath("pom.xml")
        staging = self.lib.with_name(f".{KAFKA_VERSION}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with resources.as_file(pom) as pom_path:
            cmd = [
                mvn,
                "-B",
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ]
            if quiet:
                cmd.insert(1, "-q")
            proc = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
        if proc.returncode != 0:
            detail = (proc.stdout or "")[-2000:] + (proc.stderr or "")[-2000:]
            raise BrokerError(f"maven could not resolve Kafka {KAFKA_VERSION}:\n{detail}")
        shutil.rmtree(self.lib, ignore_errors=True)
        staging.rename(self.lib)
        return self.lib

    @staticmethod
    def _require(tool: str, what: str) -> str:
        path = shutil.which(tool)
        if not path:
            raise BrokerError(f"`{tool}` not found on PATH: the local Kafka broker needs {what}")
        return path

    # ---- run ---------------------------------------------------------------

    def _java(self, main: str, *args: str, heap: bool = False) -> list[str]:
        java = self._require("java", "OpenJDK 17 or newer")
        log_cfg = resources.files("pipeline.broker").joinpath("log4j2.properties")
        cmd = [java]
        if heap:
            mb = self.cfg.local_heap_mb
            cmd += [f"-Xms{mb}m", f"-Xmx{mb}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
        cmd += [
            f"-Dlog4j2.configurationFile={log_cfg}",
            f"-Dkafka.logs.dir={self.logs}",
            "-cp",
            f"{self.lib}/*",
            main,
            *args,
        ]
        return cmd

    def _write_properties(self) -> None:
        host = "127.0.0.1"
        port, cport = self.cfg.local_port, self.cfg.local_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{cport}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": str(self.cfg.events_partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            # The default 128 MiB dedupe buffer alone would not fit a 512 MB heap.
            "log.cleaner.dedupe.buffer.size": "2097152",
            "auto.create.topics.enable": "false",
        }
        if self.secure is not None:
            sp = self.secure.port
            props["listeners"] += f",SASL_SSL://{host}:{sp}"
            props["advertised.listeners"] += f",SASL_SSL://{host}:{sp}"
            props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
            props |= self.secure.properties()
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        # It may hold keystore passwords.
        self.properties.chmod(0o600)

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def status(self) -> BrokerStatus:
        pid = self._pid()
        answering = pid is not None and _port_open("127.0.0.1", self.cfg.local_port)
        return BrokerStatus(pid is not None, pid, self.cfg.local_bootstrap, answering, self.home)

    def up(self) -> BrokerStatus:
        """Start the broker unless it runs; return once it answers metadata requests."""
        current = self.status()
        if current.running:
            self.wait_ready()
            return self.status()
        if _port_open("127.0.0.1", self.cfg.local_port):
            raise BrokerError(
                f"port {self.cfg.local_port} is taken by another program; set "
                "[kafka] local_port or FIREPLOT_KAFKA__LOCAL_PORT"
            )
        self.install()
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        if not (self.data / "meta.properties").exists():
            self.data.mkdir(parents=True, exist_ok=True)
            fmt = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    # "=" form: an id may start with "-", which argparse would take for a flag.
                    f"--cluster-id={_cluster_id()}",
                    f"--config={self.properties}",
                    "--ignore-formatted",
                    *(self.secure.format_args() if self.secure is not None else []),
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise BrokerError(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        out = open(self.logs / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            self._java("kafka.Kafka", str(self.properties), heap=True),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal must not kill the broker mid-write
        )
        out.close()
        self.pid_file.write_text(str(proc.pid))
        try:
            self.wait_ready(proc)
        except BrokerError:
            self.down()
            raise
        return self.status()

    def wait_ready(self, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + self.cfg.local_start_timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {proc.returncode} while starting; "
                    f"see {self.logs / 'server.log'} and {self.logs / 'stdout.log'}"
                )
            if _port_open("127.0.0.1", self.cfg.local_port) and _answers(self.cfg.local_bootstrap):
                return
            time.sleep(0.3)
        raise BrokerError(
            f"the broker did not answer on {self.cfg.local_bootstrap} within "
            f"{self.cfg.local_start_timeout_s:.0f} s; see {self.logs / 'server.log'}"
        )

    def down(self, grace_s: float = 30.0) -> bool:
        """Stop the broker. Returns False if it was not running."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.2)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        self.pid_file.unlink(missing_ok=True)
        return True


def _cluster_id() -> str:
    # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding,
    # exactly what `StorageTool random-uuid` prints; no need to start a JVM for it.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _answers(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def ensure_topics(
    bootstrap: str,
    topics: dict[str, int],
    configs: dict[str, str] | None = None,
    security: KafkaConfig | None = None,
    timeout_s: float = 30.0,
    align_existing: bool = False,
) -> None:
    """Create the topics that do not exist yet (name -> partitions).

    ``security``: the [kafka] section whose TLS/SASL settings the admin client
    uses (None: PLAINTEXT). ``timeout_s`` bounds reaching the cluster, so a
    refused login fails the command instead of retrying for ever.
    ``align_existing``: also set ``configs`` on topics that already exist (an
    incremental alter: their other settings stay), for a setting the topic's
    consumers rely on, such as ``cleanup.policy=compact``; a refusal raises.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from pipeline.kafka_security import client_kwargs

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=30000,
        bootstrap_timeout_ms=int(timeout_s * 1000),
        **(client_kwargs(security) if security is not None else {}),
    )
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name, partitions, 1, topic_configs=dict(configs or {}))
            for name, partitions in topics.items()
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        old = sorted(name for name in topics if name in existing)
        if align_existing and configs and old:
            res = [ConfigResource(ConfigResourceType.TOPIC, name, configs=dict(configs)) for name in old]
            result = admin.alter_configs(res, incremental=True)
            refused = {n: r for n, r in result.get("topic", {}).items() if r != "OK"}
            if refused or set(result.get("topic", {})) != set(old):
                raise RuntimeError(f"setting {configs} on existing topics failed: {refused or result}")
    finally:
        admin.close()
