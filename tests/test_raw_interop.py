"""The raw-lines topic fed by the programs a firewall admin already runs, with the worker running.

Each test starts the real third-party program (rsyslog's omkafka, syslog-ng's
kafka-c, kcat) against the session broker on 127.0.0.1, with the very
config file of ``deploy/shippers/`` that README shows, and checks the store
exactly: every netfilter line once, with its port and site. Filebeat and
Vector are not packaged where our tests run (Debian, PyPI); their Kafka
output documents (shapes from their documentation: Filebeat's ECS event with
``@timestamp``, ``@metadata``, ``host.name``, ``agent``, ``log.file.path``;
Vector's log event with ``host``, ``source_type``, ``file``, ``timestamp``) are
produced here with kafka-python. A program that is missing fails the test:
``scripts/bootstrap test`` installs them.

Last, a flood of every bad shape and then good lines: the worker keeps
running, stores each good line once, keeps each bad line in dead letters with
its reason and counts them by reason on /metrics.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from producers.demo import Packet, format_line
from producers.lines import MAX_LINE_BYTES
from tests.support.system import REPO, System, free_port

SHIPPERS = REPO / "deploy" / "shippers"
SYSLOG_NG_ROOT = REPO / "var" / "syslog-ng"  # unpacked by scripts/bootstrap test (conflicts with rsyslog)
T0 = dt.datetime(2026, 11, 27, 10, tzinfo=dt.UTC)


def fw_line(i: int) -> str:
    """A real netfilter LOG line; source address and port tell each line apart."""
    p = Packet(T0 + dt.timedelta(seconds=i), f"198.18.{i // 250 % 250}.{i % 250 + 1}", "203.0.113.9",
               "TCP" if i % 3 else "UDP", 40000 + i % 20000, 1 + (i * 7919) % 65535)  # fmt: skip
    return format_line(p, 100 + i / 1000)


def expected(first: int, n: int, site: str) -> Counter[tuple[str, str, int]]:
    return Counter(
        (site, f"198.18.{i // 250 % 250}.{i % 250 + 1}", 1 + (i * 7919) % 65535)
        for i in range(first, first + n)
    )


@pytest.fixture
def raw(system: System) -> Iterator[System]:
    """A system whose worker archives its own raw topic (default site ``dflt``), running."""
    system.configure("kafka", raw_topic=f"{system.topic}-raw", raw_partitions=2)
    system.configure("worker", raw_default_site="dflt", web_port=free_port(), raw_flush_max_records=2000)
    system.start_worker()
    wait_for_topic(system)
    yield system


def raw_topic(system: System) -> str:
    return f"{system.topic}-raw"


def wait_for_topic(system: System, timeout_s: float = 60) -> None:
    """The worker creates the raw topic at start; shippers must not race it into auto-creation."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=system.bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while not consumer.partitions_for_topic(raw_topic(system)):
            assert time.monotonic() < deadline, f"raw topic not created:\n{system.worker_log()}"
            time.sleep(0.3)
            consumer.topics()  # refresh metadata
    finally:
        consumer.close()


def assert_store(system: System, want: Counter[tuple[str, str, int]], timeout_s: float = 120) -> None:
    """Exactly the wanted lines: count, no duplicate id, each (site, source, port) as often as sent."""
    table = system.wait_for_rows(sum(want.values()), timeout_s=timeout_s)
    ids = list(zip(table["source_id"].to_pylist(), table["source_offset"].to_pylist(), strict=True))
    assert len(ids) == len(set(ids)), "an event stored twice"
    got = Counter(
        zip(
            table["site"].to_pylist(), table["src_ip"].to_pylist(), table["dst_port"].to_pylist(), strict=True
        )
    )
    assert got == want
    assert set(table["host"].to_pylist()) == {"gw-demo"}  # the line's own syslog host


def program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: scripts/bootstrap test installs it")
    return path


def shipper_config(name: str, system: System, log_file: Path) -> str:
    """A deploy/shippers file as README shows it, pointed at this test's file, broker and topic."""
    text = (SHIPPERS / name).read_text()
    for placeholder in ("/var/log/kern.log", "127.0.0.1:9092", "fireplot.raw"):
        assert placeholder in text, f"{name} no longer has {placeholder}"
    return (
        text.replace("/var/log/kern.log", str(log_file))
        .replace("127.0.0.1:9092", system.bootstrap)
        .replace("fireplot.raw", raw_topic(system))
    )


def start(
    system: System, name: str, argv: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    out = open(system.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out.close()
    system.procs.append(proc)  # stopped with the system
    time.sleep(1.0)
    if proc.poll() is not None:  # a config it refuses: say so now, not after the store's timeout
        pytest.fail(f"{name} exited with {proc.returncode}:\n{system.log_of(name)}")
    return proc


def write_lines(path: Path, first: int, n: int) -> None:
    with open(path, "a") as fh:
        fh.write("".join(fw_line(i) + "\n" for i in range(first, first + n)))


# --- rsyslog omkafka ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "site"), [("rsyslog-omkafka-plain.conf", "oslo"), ("rsyslog-omkafka-json.conf", "oslo")]
)
def test_rsyslog_omkafka(raw: System, tmp_path: Path, conf: str, site: str) -> None:
    """rsyslogd -n with imfile → omkafka: plain template keyed by site, or a JSON template naming it."""
    rsyslogd = program("rsyslogd")
    assert Path("/usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so").exists(), "rsyslog-kafka is not installed"
    log_file, work = tmp_path / "kern.log", tmp_path / "rsyslog"
    work.mkdir()
    log_file.write_text("")
    config = tmp_path / "rsyslog.conf"
    config.write_text(f'global(workDirectory="{work}")\n' + shipper_config(conf, raw, log_file))
    proc = start(raw, "rsyslog", [rsyslogd, "-n", "-f", str(config), "-i", str(tmp_path / "rsyslog.pid")])
    write_lines(log_file, 0, 1500)
    time.sleep(1)
    write_lines(log_file, 1500, 500)  # lines arriving while it runs, as a live log
    assert_store(raw, expected(0, 2000, site))
    assert proc.poll() is None, raw.log_of("rsyslog")


# --- syslog-ng kafka-c ----------------------------------------------------------------------


def test_syslog_ng_kafka(raw: System, tmp_path: Path) -> None:
    """syslog-ng -F with a file source → kafka-c, keyed by site."""
    binary = SYSLOG_NG_ROOT / "usr" / "sbin" / "syslog-ng"
    if not binary.exists():
        pytest.fail(
            f"{binary} missing: scripts/bootstrap test unpacks syslog-ng-core and syslog-ng-mod-rdkafka"
        )
    log_file = tmp_path / "kern.log"
    log_file.write_text("")
    config = tmp_path / "syslog-ng.conf"
    config.write_text(
        "@version: 3.38\noptions { stats-freq(0); };\n"
        + shipper_config("syslog-ng-kafka.conf", raw, log_file)
    )
    proc = start(
        raw,
        "syslog-ng",
        [str(binary), "-F", "-e", "--no-caps", "-f", str(config), "-R", str(tmp_path / "persist"),
         "-p", str(tmp_path / "syslog-ng.pid"), "-c", str(tmp_path / "ctl"),
         f"--module-path={SYSLOG_NG_ROOT / 'usr/lib/syslog-ng/3.38'}"],
        env={"LD_LIBRARY_PATH": str(SYSLOG_NG_ROOT / "usr/lib/syslog-ng")},
    )  # fmt: skip
    write_lines(log_file, 0, 1000)
    time.sleep(1)
    write_lines(log_file, 1000, 500)
    assert_store(raw, expected(0, 1500, "oslo"))
    assert proc.poll() is None, raw.log_of("syslog-ng")


# --- kcat -------------------------------------------------------------------------------------


def test_kcat_plain_and_keyed_json(raw: System, tmp_path: Path) -> None:
    """kcat -P: plain lines without a key (default site), plain lines and JSON lines keyed by site."""
    kcat = program("kcat")
    plain, keyed, js = tmp_path / "plain.log", tmp_path / "keyed.log", tmp_path / "json.log"
    write_lines(plain, 0, 700)
    keyed.write_text("".join(f"bergen|{fw_line(i)}\n" for i in range(700, 1200)))
    js.write_text(
        "".join(
            f"{'oslo' if i % 2 else 'tromso'}|{json.dumps({'message': fw_line(i), 'host': 'fw9'})}\n"
            for i in range(1200, 1800)
        )
    )
    base = [kcat, "-P", "-b", raw.bootstrap, "-t", raw_topic(raw)]
    # -l: one record per line (without it kcat sends each file as one record)
    for argv in (
        [*base, "-l", str(plain)],
        [*base, "-K", "|", "-l", str(keyed)],
        [*base, "-K", "|", "-l", str(js)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    want = expected(0, 700, "dflt") + expected(700, 500, "bergen")
    for i in range(1200, 1800):
        want += expected(i, 1, "oslo" if i % 2 else "tromso")
    assert_store(raw, want)


# --- Filebeat and Vector documents --------------------------------------------------------------


def filebeat_doc(i: int, site: str | None) -> dict[str, object]:
    """Filebeat 8's Kafka output (codec.json): an ECS event, fields_under_root puts `site` on top."""
    doc: dict[str, object] = {
        "@timestamp": "2026-11-27T10:00:00.123Z",
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.15.0"},
        "message": fw_line(i),
        "log": {"offset": i * 200, "file": {"path": "/var/log/kern.log"}},
        "input": {"type": "filestream"},
        "ecs": {"version": "8.0.0"},
        "host": {
            "name": "fw-east",
            "hostname": "fw-east",
            "architecture": "x86_64",
            "os": {"family": "debian"},
        },
        "agent": {
            "type": "filebeat",
            "version": "8.15.0",
            "name": "fw-east",
            "id": "0b2f",
            "ephemeral_id": "9a",
        },
    }
    if site is not None:
        doc["site"] = site
    return doc


def vector_doc(i: int) -> dict[str, object]:
    """Vector's kafka sink (encoding.codec json) of a file source's log event, `.site` set by remap."""
    return {
        "file": "/var/log/kern.log",
        "host": "fw-west",
        "message": fw_line(i),
        "source_type": "file",
        "timestamp": "2026-11-27T10:00:00.123456789Z",
        "site": "lyon",
    }


def test_filebeat_and_vector_documents(raw: System) -> None:
    """Filebeat: key `%{[site]}` and `site`, or neither (host.name is the site then). Vector: key_field."""
    producer = KafkaProducer(bootstrap_servers=raw.bootstrap, acks="all")
    topic = raw_topic(raw)
    for i in range(0, 600):
        producer.send(topic, key=b"madrid", value=json.dumps(filebeat_doc(i, "madrid")).encode())
    for i in range(600, 900):
        producer.send(topic, value=json.dumps(filebeat_doc(i, None)).encode())
    for i in range(900, 1500):
        producer.send(topic, key=b"lyon", value=json.dumps(vector_doc(i)).encode())
    producer.flush(timeout=60)
    producer.close()
    assert_store(raw, expected(0, 600, "madrid") + expected(600, 300, "fw-east") + expected(900, 600, "lyon"))


# --- a flood of bad input never stops the worker, never loses a line ------------------------------------


BAD: dict[str, list[bytes]] = {
    "unparsed_line": [
        b"garbage line",
        b"<script>alert(1)</script> kernel: DROP IN=eth0 SRC=<img src=x onerror=alert(1)>",
        b"\x1b[2J\x1b[31mOWNED\x1b[0m kernel: DROP SRC=1.2.3.4",
        b"\x00\x01\x02 NUL and control bytes \x7f",
        b"\xff\xfe\xfd invalid UTF-8 SRC=1.2.3.4 DST=5.6.7.8",
        b"B" * (MAX_LINE_BYTES + 5000),
        b'["message", "an array is no object"]',
    ],
    "invalid_json": [b"{not json", b'{"message": "x"', b'{"message": "\\ud800"}'],
    "json_without_message": [b'{"msg": "x"}', b'{"message": 5}', b"{}"],
    "invalid_site": [json.dumps({"message": fw_line(0), "site": "../../etc"}).encode()],
}


def metrics(system: System) -> str:
    import tomllib

    port = tomllib.loads(system.config.read_text())["worker"]["web_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def test_flood_of_bad_input_then_good_lines(raw: System) -> None:
    rounds = 40
    producer = KafkaProducer(bootstrap_servers=raw.bootstrap, acks="all", max_request_size=4 << 20)
    topic = raw_topic(raw)
    for _ in range(rounds):
        for values in BAD.values():
            for value in values:
                producer.send(topic, value=value)
        producer.send(topic, key=b"../evil", value=fw_line(1).encode())  # a key naming an invalid site
        producer.send(topic, value=b"")  # an empty record is no line
    for i in range(3000):
        producer.send(topic, key=b"oslo", value=fw_line(i).encode())
    producer.flush(timeout=60)
    producer.close()
    assert_store(raw, expected(0, 3000, "oslo"), timeout_s=180)
    assert raw.worker is not None and raw.worker.poll() is None

    want = Counter({kind: len(values) * rounds for kind, values in BAD.items()})
    want["invalid_site"] += rounds
    dead_file = raw.store_dir / "_dead_letters" / f"{topic}.jsonl"
    letters = [json.loads(x) for x in dead_file.read_text().splitlines()]
    assert Counter(d["kind"] for d in letters) == want
    assert all(d["reason"] and "line" in d for d in letters)
    # each bad line kept as it came (cut and replaced as the shipper's reader does), inert
    sent = Counter(
        v[:MAX_LINE_BYTES].decode("utf-8", "replace")
        for vs in BAD.values()
        for v in vs
        for _ in range(rounds)
    )
    sent[fw_line(1)] += rounds
    assert Counter(d["line"] for d in letters) == sent
    text = metrics(raw)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    for kind, n in want.items():
        key = ("fireplot_worker_dead_letters_by_reason_total", (("reason", kind), ("topic", topic)))
        assert samples.get(key) == n, text
    assert samples.get(("fireplot_worker_dead_letters_total", (("topic", topic),))) == sum(want.values()), (
        text
    )
