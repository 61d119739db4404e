"""The local Kafka broker: clear errors when its tools are missing, status of a stopped broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.broker import BrokerError, LocalKafka
from pipeline.config import KafkaConfig
from tests.support.system import free_port


def test_missing_java_or_maven_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither java nor mvn on it
    broker = LocalKafka(KafkaConfig(var_dir=str(tmp_path)), lib_root=tmp_path / "nolib")
    with pytest.raises(BrokerError, match="`java` not found on PATH"):
        broker.install()


def test_status_of_a_stopped_broker_exits_1(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FIREPLOT_KAFKA__VAR_DIR": str(tmp_path),
        "FIREPLOT_KAFKA__LOCAL_PORT": str(free_port()),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "fireplot", "kafka", "status"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith("stopped")


def test_a_taken_port_is_reported_not_fought_over(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        broker = LocalKafka(KafkaConfig(local_port=port, var_dir=str(tmp_path)), lib_root=tmp_path / "nolib")
        with pytest.raises(BrokerError, match=f"port {port} is taken"):
            broker.up()


def test_session_broker_is_kafka_4_in_kraft_mode(kafka_bootstrap: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        cluster = admin.describe_cluster()
        assert len(cluster["brokers"]) == 1
        assert cluster["brokers"][0]["host"] == "127.0.0.1"
        versions = admin._client.check_version()
        assert versions >= (4, 0)
    finally:
        admin.close()
