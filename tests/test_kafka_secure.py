"""Remote shippers publish to the central Kafka over TLS with SASL/SCRAM (issue 8, topology 1).

The module generates its own CA and a broker certificate for 127.0.0.1 and
localhost with ``openssl``, and starts its own broker with an extra SASL_SSL
listener whose SCRAM-SHA-512 user is created when the storage is formatted.
Shippers and the worker are real ``fireplot`` processes; the password reaches
them only through ``FIREPLOT_KAFKA__SASL_PASSWORD``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline import wire
from pipeline.broker import LocalKafka, SecureListener
from pipeline.config import ConfigError, KafkaConfig, load
from pipeline.event import EVENT_SCHEMA
from pipeline.kafka_security import REDACTED, client_kwargs
from tests.support.lines import write_probe_lines
from tests.support.system import System, free_port, registry_offsets
from tests.support.tls import KEYSTORE_PASSWORD, PASSWORD, USER, Pki, make_pki

# A refused shipper must give up within this (plus start-up): never hang.
SEND_TIMEOUT_S = 8.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None or shutil.which("keytool") is None:
        pytest.skip("openssl or keytool missing (Debian: apt-get install openssl openjdk-17-jre-headless)")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory, kafka_jars: Path) -> Iterator[str]:
    """Its own broker (free ports, own var dir) with a SASL_SSL listener; yields that listener's address."""
    home = tmp_path_factory.mktemp("kafka-secure")
    cfg = KafkaConfig(local_port=free_port(), local_controller_port=free_port(), var_dir=str(home))
    listener = SecureListener(
        port=free_port(),
        keystore=pki.keystore,
        keystore_password=KEYSTORE_PASSWORD,
        scram_users={USER: PASSWORD},
        # Client certificates are requested, not required: verified when a client sends one.
        truststore=pki.truststore,
        truststore_password=KEYSTORE_PASSWORD,
    )
    broker = LocalKafka(cfg, home=home, lib_root=kafka_jars, secure=listener)
    broker.up()
    try:
        yield f"127.0.0.1:{listener.port}"
    finally:
        broker.down()


def secure_system(root: Path, bootstrap: str, pki: Pki, **kafka: object) -> System:
    system = System(root, bootstrap)
    system.configure(
        "kafka",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        ssl_cafile=str(pki.ca),
        **kafka,
    )
    system.configure("shipper", send_timeout_s=SEND_TIMEOUT_S)
    return system


def kafka_config(system: System) -> KafkaConfig:
    """The [kafka] section the system's processes use, password from the environment."""
    return load(system.config, environ={"FIREPLOT_KAFKA__SASL_PASSWORD": PASSWORD}).kafka


def read_topic(cfg: KafkaConfig, topic: str, timeout_s: float = 60) -> pa.Table:
    """Every event on ``topic``, read by a real consumer over SASL_SSL."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=cfg.bootstrap, enable_auto_commit=False, group_id=None, **client_kwargs(cfg)
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return EVENT_SCHEMA.empty_table()
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        tables: list[pa.Table] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end in {timeout_s} s"
            for records in consumer.poll(timeout_ms=500, max_records=500).values():
                tables += [wire.decode(r.value) for r in records]
        return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()
    finally:
        consumer.close()


def crashed(stderr: str) -> bool:
    """An uncaught exception's traceback (kafka-python's own JSON log lines may quote one)."""
    return any(line.startswith("Traceback") for line in stderr.splitlines())


def sorted_offsets(table: pa.Table) -> np.ndarray:
    return np.sort(np.asarray(table.column("source_offset")))


@pytest.fixture
def right_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREPLOT_KAFKA__SASL_PASSWORD", PASSWORD)


def test_shipper_with_scram_credentials_and_ca_publishes_every_line(
    secure_broker: str, pki: Pki, tmp_path: Path, right_password: None
) -> None:
    """With the right user, password and CA, N shipped lines are N events for a SASL_SSL consumer."""
    system = secure_system(tmp_path, secure_broker, pki)
    log = tmp_path / "fw.log"
    offsets = write_probe_lines(log, 5000)
    proc = system.ship([log], "remote-a")
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    assert summary["events_sent"] == 5000
    assert PASSWORD not in proc.stderr
    events = read_topic(kafka_config(system), system.topic)
    assert events.num_rows == 5000
    assert np.array_equal(sorted_offsets(events), offsets)
    assert set(events.column("site").to_pylist()) == {"remote-a"}


def test_shipper_with_wrong_password_is_refused_then_delivers_exactly_once_when_fixed(
    secure_broker: str, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password fails the run naming authentication; after the fix nothing is lost or doubled."""
    system = secure_system(tmp_path, secure_broker, pki)
    registry = tmp_path / "registry.json"
    log = tmp_path / "fw.log"
    first = write_probe_lines(log, 3000)
    monkeypatch.setenv("FIREPLOT_KAFKA__SASL_PASSWORD", PASSWORD)
    system.ship([log], "remote-b")
    shipped_to = registry_offsets(registry)
    assert list(shipped_to.values()) == [log.stat().st_size]

    more = write_probe_lines(log, 2000, start=3000, append=True)
    monkeypatch.setenv("FIREPLOT_KAFKA__SASL_PASSWORD", "not-" + PASSWORD)
    # The subprocess timeout is the hang guard: the run must end by itself, bounded by send_timeout_s.
    refused = system.run("ship", str(log), "--site", "remote-b", check=False, timeout_s=SEND_TIMEOUT_S + 60)
    assert refused.returncode == 1, refused.stderr[-3000:]
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("fireplot: SASL authentication failed"), refused.stderr[-3000:]
    assert f"user {USER!r}" in last and "FIREPLOT_KAFKA__SASL_PASSWORD" in last
    assert not crashed(refused.stderr)
    assert "not-" + PASSWORD not in refused.stderr, "the password must never be printed"
    # Refused before reading: the read position stays where Kafka last acknowledged.
    assert registry_offsets(registry) == shipped_to
    assert read_topic(kafka_config(system), system.topic).num_rows == 3000

    monkeypatch.setenv("FIREPLOT_KAFKA__SASL_PASSWORD", PASSWORD)
    system.ship([log], "remote-b")
    events = read_topic(kafka_config(system), system.topic)
    assert events.num_rows == 5000, "each line exactly once after the password is fixed"
    assert np.array_equal(sorted_offsets(events), np.concatenate((first, more)))
    assert not any((tmp_path / "spool").glob("*.spool")), "the spool was left with records"


@pytest.mark.parametrize("trust", ["system CAs only", "another CA"])
def test_client_without_the_ca_fails_tls_verification_clearly(
    secure_broker: str, pki: Pki, tmp_path: Path, right_password: None, trust: str
) -> None:
    """A shipper that does not trust the broker's CA stops with a certificate error naming ssl_cafile."""
    cafile = "" if trust == "system CAs only" else str(pki.other_ca)
    system = secure_system(tmp_path, secure_broker, pki)
    system.configure("kafka", ssl_cafile=cafile)
    log = tmp_path / "fw.log"
    write_probe_lines(log, 100)
    proc = system.run("ship", str(log), "--site", "remote-c", check=False, timeout_s=SEND_TIMEOUT_S + 60)
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fireplot: TLS certificate verification failed"), proc.stderr[-3000:]
    assert "ssl_cafile" in last and "CERTIFICATE_VERIFY_FAILED" in last
    assert not crashed(proc.stderr)
    assert registry_offsets(tmp_path / "registry.json") == {}


@pytest.mark.parametrize("signed_by", ["the broker's CA", "another CA"])
def test_client_certificate_is_checked_by_the_broker(
    secure_broker: str, pki: Pki, tmp_path: Path, right_password: None, signed_by: str
) -> None:
    """With ssl_certfile/ssl_keyfile the shipper presents a certificate; one from an unknown CA is refused."""
    cert, key = pki.client if signed_by == "the broker's CA" else pki.rogue_client
    system = secure_system(tmp_path, secure_broker, pki, ssl_certfile=str(cert), ssl_keyfile=str(key))
    log = tmp_path / "fw.log"
    offsets = write_probe_lines(log, 500)
    proc = system.run("ship", str(log), "--site", "remote-e", check=False, timeout_s=SEND_TIMEOUT_S + 60)
    if signed_by == "the broker's CA":
        assert proc.returncode == 0, proc.stderr[-3000:]
        events = read_topic(kafka_config(system), system.topic)
        assert np.array_equal(sorted_offsets(events), offsets)
    else:
        assert proc.returncode == 1, proc.stderr[-3000:]
        last = proc.stderr.strip().splitlines()[-1]
        refused = "fireplot: the broker rejected our TLS client certificate"
        assert last.startswith(refused), proc.stderr[-3000:]
        assert not crashed(proc.stderr)


def test_worker_archives_from_the_sasl_ssl_listener_and_one_with_a_wrong_password_stops(
    secure_broker: str, pki: Pki, tmp_path: Path, right_password: None
) -> None:
    """The faust worker authenticates with the same keys and archives every shipped event exactly
    once; a worker that cannot log in exits 1 with the authentication error, not a traceback or a
    hang.

    One test for both: the refused worker gives up only after its 30 s attempt to reach the
    cluster, which it spends beside the archiving worker's run instead of after it."""
    refused = secure_system(tmp_path / "refused", secure_broker, pki)
    system = secure_system(tmp_path / "archiving", secure_broker, pki)
    system.configure("worker", raw_enabled=False)
    log = tmp_path / "fw.log"
    offsets = write_probe_lines(log, 4000)
    try:
        bad = refused.start_worker("worker", FIREPLOT_KAFKA__SASL_PASSWORD="not-" + PASSWORD)
        system.ship([log], "remote-d")
        system.start_worker()
        table = system.wait_for_rows(4000, timeout_s=180)
        assert bad.wait(timeout=120) == 1, refused.worker_log()
    finally:
        system.stop()
        refused.stop()
    assert np.array_equal(sorted_offsets(table), offsets)
    output = (refused.logs / "worker.log").read_text(errors="replace")  # its stdout and stderr
    last = output.strip().splitlines()[-1]
    assert last.startswith("fireplot: SASL authentication failed"), output[-3000:]
    assert not crashed(output)
    assert "not-" + PASSWORD not in output, "the password must never be printed"
    assert refused.rows() == 0


@pytest.mark.parametrize(
    ("kafka", "env", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, {}, "[kafka] sasl_username: required with SASL_SSL"),
        ({"security_protocol": "SASL_SSL", "sasl_username": USER}, {}, "[kafka] sasl_password: required"),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
            {},
            "[kafka] ssl_cafile: no such file: /nonexistent/ca.pem",
        ),
        ({"security_protocol": "TLS"}, {}, "[kafka] security_protocol: 'TLS' is not one of"),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": USER, "sasl_mechanism": "SCRAM-SHA-1"},
            {"FIREPLOT_KAFKA__SASL_PASSWORD": "x"},
            "[kafka] sasl_mechanism",
        ),
        ({"sasl_username": USER}, {}, "security_protocol is PLAINTEXT, which sends no credentials"),
        ({"security_protocol": "SASL_SSL", "bootstrap": ""}, {}, "needs [kafka] bootstrap"),
    ],
)
def test_validate_with_bad_security_config_exits_2_naming_the_key(
    tmp_path: Path, kafka: dict[str, str], env: dict[str, str], message: str
) -> None:
    """`fireplot validate` reports an unusable TLS/SASL setting with its key, exit code 2."""
    values = {"bootstrap": "central.example:9093", **kafka}
    path = tmp_path / "fireplot.toml"
    path.write_text("[kafka]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    with pytest.raises(ConfigError) as err:
        load(path, environ=env)
    assert message in str(err.value)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIREPLOT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "fireplot", "-c", str(path), "validate"],
        capture_output=True, text=True, timeout=60, env={**clean, **env}, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_validate_prints_the_config_without_the_password(tmp_path: Path, pki: Pki) -> None:
    """The effective configuration shows that a password is set, never the password."""
    path = tmp_path / "fireplot.toml"
    path.write_text(
        f'[kafka]\nbootstrap = "central.example:9093"\nsecurity_protocol = "SASL_SSL"\n'
        f'sasl_username = "{USER}"\nssl_cafile = "{pki.ca}"\n'
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIREPLOT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "fireplot", "-c", str(path), "validate"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**clean, "FIREPLOT_KAFKA__SASL_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    shown = json.loads(proc.stdout)["kafka"]
    assert shown["sasl_password"] == REDACTED
    assert shown["security_protocol"] == "SASL_SSL" and shown["ssl_cafile"] == str(pki.ca)
    assert PASSWORD not in repr(load(path, environ={"FIREPLOT_KAFKA__SASL_PASSWORD": PASSWORD}).kafka)
