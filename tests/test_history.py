"""History: replay archived events into a separate dataset, resumable, identical to the archive."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition

from pipeline import datasets, rollup
from pipeline.store import Store
from producers.demo import Demo, write_lines
from tests.support.system import System, free_port

END = dt.datetime(2026, 11, 20, 6, 0, tzinfo=dt.UTC)
IDENTITY = [("source_id", "ascending"), ("source_offset", "ascending")]


def _archive(system: System, tmp_path: Path, hours: float, per_hour: float) -> pa.Table:
    packets = Demo(seed=21).history(END, hours=hours, per_hour=per_hour)
    log = tmp_path / "history.log"
    write_lines(packets, log)
    shipped = system.ship([log], "hist")
    sent = json.loads(shipped.stderr.strip().splitlines()[-1])["events_sent"]
    system.start_worker()
    return system.wait_for_rows(sent)


def _replay(system: System, *args: str, check: bool = True) -> dict[str, object]:
    proc = system.run("replay", *args, check=check)
    return json.loads(proc.stderr.strip().splitlines()[-1])


def _dataset_worker(system: System, name: str, web_port: int | None = None) -> subprocess.Popen[bytes]:
    out = open(system.logs / f"worker-{name}.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        system.command("worker", "--dataset", name, "--web-port", str(web_port or free_port())),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    system.procs.append(proc)
    return proc


def _wait(store: Store, n: int, worker: subprocess.Popen[bytes], timeout_s: float = 120) -> pa.Table:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.poll() is None, f"dataset worker exited with {worker.returncode}"
        have = store.count()
        assert have <= n, f"dataset holds {have} events, more than the {n} replayed"
        if have == n:
            time.sleep(1.5)
            assert store.count() == n
            return store.read_all()
        time.sleep(0.25)
    raise AssertionError(f"dataset holds {have} events, expected {n}")


def test_replay_into_a_dataset_reproduces_the_archive_and_a_rerun_adds_nothing(
    system: System, tmp_path: Path
) -> None:
    archived = _archive(system, tmp_path, hours=3, per_hour=3000)
    start, end = (END - dt.timedelta(hours=3)).isoformat(), END.isoformat()
    summary = _replay(system, "--from", start, "--to", end, "--max", "--into", "r1")
    assert summary == {
        "topic": "fireplot.replay.r1",
        "events_sent": archived.num_rows,
        "complete": True,
        "done_until": END.isoformat(),
    }
    worker = _dataset_worker(system, "r1")
    replayed = _wait(Store(datasets.root(system.store_dir, "r1")), archived.num_rows, worker)
    assert replayed.sort_by(IDENTITY).equals(archived.sort_by(IDENTITY))
    again = _replay(system, "--from", start, "--to", end, "--max", "--into", "r1")
    assert again["events_sent"] == 0 and again["complete"] is True
    _wait(Store(datasets.root(system.store_dir, "r1")), archived.num_rows, worker, timeout_s=5)


def _wait_for_records(bootstrap: str, topic: str, proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"replay exited early: {proc.communicate()[1]}"
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            if tps and sum(consumer.end_offsets(tps).values()) > 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"no record reached {topic} in {timeout_s} s")
    finally:
        consumer.close()


def test_interrupted_replay_resumes_where_kafka_acknowledged_without_duplicates(
    system: System, tmp_path: Path
) -> None:
    archived = _archive(system, tmp_path, hours=1, per_hour=6000)
    start, end = (END - dt.timedelta(hours=1)).isoformat(), END.isoformat()
    # 3600 s of event time at 600x takes about 6 s: interrupt it in the middle.
    proc = subprocess.Popen(
        system.command("replay", "--from", start, "--to", end, "--speed", "600", "--into", "r2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # Interrupt once records are on the topic (the run is then under way, whatever the
    # machine's load did to the process's start), well before the 6 s run ends.
    _wait_for_records(system.bootstrap, datasets.replay_topic("r2"), proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert err.strip(), "replay printed no summary"
    first = json.loads(err.strip().splitlines()[-1])
    assert first["complete"] is False
    assert 0 < int(first["events_sent"]) < archived.num_rows  # type: ignore[call-overload]
    rest = _replay(system, "--from", start, "--to", end, "--max", "--into", "r2")
    assert rest["complete"] is True
    assert first["events_sent"] + rest["events_sent"] == archived.num_rows  # type: ignore[operator]
    worker = _dataset_worker(system, "r2")
    replayed = _wait(Store(datasets.root(system.store_dir, "r2")), archived.num_rows, worker)
    assert replayed.sort_by(IDENTITY).equals(archived.sort_by(IDENTITY))


def test_paced_replay_keeps_event_time_spacing(system: System, tmp_path: Path) -> None:
    """Two minutes of event time at 60x cannot finish in less than two seconds."""
    _archive(system, tmp_path, hours=1, per_hour=3000)
    start = END - dt.timedelta(minutes=2)
    t = time.monotonic()
    summary = _replay(
        system, "--from", start.isoformat(), "--to", END.isoformat(), "--speed", "60", "--into", "paced"
    )
    assert summary["complete"] is True and int(summary["events_sent"]) > 0  # type: ignore[call-overload]
    assert time.monotonic() - t >= 1.8


def test_bad_replay_arguments_are_usage_errors(system: System) -> None:
    bad_name = system.run(
        "replay", "--from", "2026-11-20T00:00Z", "--to", "2026-11-20T01:00Z", "--into", "../etc", check=False
    )
    assert bad_name.returncode == 2 and "dataset name '../etc'" in bad_name.stderr
    backwards = system.run(
        "replay", "--from", "2026-11-20T01:00Z", "--to", "2026-11-20T00:00Z", "--into", "x", check=False
    )
    assert backwards.returncode == 2 and "--to must be after --from" in backwards.stderr


def test_rebuild_from_kafka_reproduces_the_archive_and_a_rerun_adds_nothing(
    system: System, tmp_path: Path
) -> None:
    before_shipping = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    archived = _archive(system, tmp_path, hours=2, per_hour=3000)
    first = json.loads(
        system.run("rebuild", "--since", before_shipping.isoformat(), "--into", "rb")
        .stderr.strip()
        .splitlines()[-1]
    )
    assert first["events_written"] == archived.num_rows
    rebuilt = Store(datasets.root(system.store_dir, "rb")).read_all()
    assert rebuilt.sort_by(IDENTITY).equals(archived.sort_by(IDENTITY))
    again = json.loads(
        system.run("rebuild", "--since", before_shipping.isoformat(), "--into", "rb")
        .stderr.strip()
        .splitlines()[-1]
    )
    assert again["records"] == 0 and again["events_written"] == 0
    later = json.loads(
        system.run("rebuild", "--since", dt.datetime.now(dt.UTC).isoformat(), "--into", "rb2")
        .stderr.strip()
        .splitlines()[-1]
    )
    assert later["records_to_read"] == 0


def _scans(system: System, store: Path, since: str, until: str) -> list[dict[str, object]]:
    system.run("detect", "--since", since, "--until", until, "--store", str(store))
    listed = system.run("scans", "--since", since, "--until", until, "--store", str(store))
    return sorted(
        (
            {k: v for k, v in json.loads(line).items() if k not in {"status"}}
            for line in listed.stdout.splitlines()
        ),
        key=lambda r: json.dumps(r, sort_keys=True),
    )


def test_replayed_dataset_has_the_same_rollups_and_scan_detections_as_the_archive(
    system: System, tmp_path: Path
) -> None:
    """Live and replayed processing agree beyond rows: same rollups, same detected scans."""
    archived = _archive(system, tmp_path, hours=6, per_hour=2000)
    start, end = (END - dt.timedelta(hours=6)).isoformat(), END.isoformat()
    _replay(system, "--from", start, "--to", end, "--max", "--into", "same")
    worker = _dataset_worker(system, "same")
    replay_root = datasets.root(system.store_dir, "same")
    _wait(Store(replay_root), archived.num_rows, worker)

    for root in (system.store_dir, replay_root):
        system.run("rollup", "--store", str(root))
    for name in rollup.NAMES:
        live, replayed = rollup.read(Store(system.store_dir), name), rollup.read(Store(replay_root), name)
        assert live.num_rows > 0
        keys = [(c, "ascending") for c in live.column_names]
        assert replayed.sort_by(keys).equals(live.sort_by(keys)), name

    live_scans = _scans(system, system.store_dir, start, end)
    replay_scans = _scans(system, replay_root, start, end)
    assert {s["kind"] for s in live_scans} >= {
        "vertical",
        "hammer",
    }  # the demo's fast scan and telnet hammering
    assert replay_scans == live_scans


def _metric(port: int, name: str, topic: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(f'{name}{{topic="{topic}"}} '):
                return float(line.split()[-1])
    return 0.0


def test_replay_into_the_live_archive_is_idempotent(system: System, tmp_path: Path) -> None:
    """--into main: every replayed event is recognised as stored; the archive stays exact."""
    archived = _archive(system, tmp_path, hours=2, per_hour=3000)
    start, end = (END - dt.timedelta(hours=2)).isoformat(), END.isoformat()
    summary = _replay(system, "--from", start, "--to", end, "--max", "--into", "main")
    assert summary["topic"] == "fireplot.replay.main" and summary["events_sent"] == archived.num_rows
    port = free_port()
    worker = _dataset_worker(system, "main", web_port=port)
    topic = "fireplot.replay.main"
    deadline = time.monotonic() + 120
    dropped = 0.0
    while time.monotonic() < deadline:
        assert worker.poll() is None, f"replay worker exited with {worker.returncode}"
        try:
            dropped = _metric(port, "fireplot_worker_duplicate_events_dropped_total", topic)
        except OSError:
            dropped = 0.0
        if dropped >= archived.num_rows:
            break
        time.sleep(0.5)
    assert dropped == archived.num_rows
    assert _metric(port, "fireplot_worker_events_written_total", topic) == 0
    after = system.store.read_all()
    assert after.num_rows == archived.num_rows
    assert after.sort_by(IDENTITY).equals(archived.sort_by(IDENTITY))
