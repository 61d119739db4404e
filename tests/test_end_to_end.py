"""Scenarios through every real part: log file → shipper → Kafka → faust worker → Parquet."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pyarrow.compute as pc

from producers.demo import Demo, Packet, write_lines
from tests.support.system import System

END = dt.datetime(2026, 11, 27, 18, 30, tzinfo=dt.UTC)


def _is_late_tcp(p: Packet) -> bool:
    return "RST" in p.flags or ("ACK" in p.flags and "FIN" in p.flags)


def _expected(packets: list[Packet]) -> set[tuple[object, ...]]:
    return {(p.ts, p.src, p.dst, p.proto, p.dport) for p in packets if not _is_late_tcp(p)}


def _stored(table) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    import ipaddress

    return [
        (
            r["ts"],
            str(ipaddress.ip_address(r["src_ip"])),
            str(ipaddress.ip_address(r["dst_ip"])),
            r["proto"],
            r["dst_port"],
        )
        for r in table.select(["ts", "src_ip", "dst_ip", "proto", "dst_port"]).to_pylist()
    ]


def test_shipped_lines_land_exactly_once_with_their_values(system: System, tmp_path: Path) -> None:
    """Every shipped demo packet is in Parquet once, with time, addresses, protocol and port intact."""
    packets = Demo(seed=7).history(END, hours=3, per_hour=2000)
    log = tmp_path / "fw.log"
    write_lines(packets, log)
    expected = _expected(packets)

    shipped = system.ship([log], "site-a")
    summary = json.loads(shipped.stderr.strip().splitlines()[-1])
    assert summary["lines"] == len(packets)
    assert summary["rejected"] == 0
    assert summary["events_sent"] == len(expected)
    assert summary["filtered_by_reason"]["late_tcp"] == len(packets) - len(expected)

    system.start_worker()
    table = system.wait_for_rows(len(expected))
    stored = _stored(table)
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
    assert set(table.column("site").to_pylist()) == {"site-a"}
    # Partitions follow event time: each file's rows sit in its own date/hour.
    for path in system.store.events_root.rglob("*.parquet"):
        date = path.parent.parent.name.removeprefix("date=")
        hour = int(path.parent.name.removeprefix("hour="))
        import pyarrow.parquet as pq

        ts = pq.read_table(path, columns=["ts"]).column("ts")
        assert {t.date().isoformat() for t in ts.to_pylist()} == {date}
        assert {t.hour for t in ts.to_pylist()} == {hour}


def test_worker_killed_mid_stream_resumes_without_loss_or_duplicate(system: System, tmp_path: Path) -> None:
    """kill -9 the worker three times while it archives; the store ends with each event exactly once."""
    # 72,000 events in 12 hourly partitions: 36 flushes of 2,000 to cut into (twice as many
    # gave the same kills and the same checks in twice the time).
    packets = Demo(seed=11).history(END, hours=12, per_hour=6000)
    log = tmp_path / "fw.log"
    write_lines(packets, log)
    expected = _expected(packets)
    # Small batches → many Kafka records → many small flushes to interrupt.
    system.configure("shipper", batch_lines=500)
    system.configure("worker", flush_max_records=4)
    system.run("ship", str(log), "--site", "site-k", check=True)
    kills = 0
    system.start_worker()
    targets = [len(expected) // 5, len(expected) // 2, (len(expected) * 4) // 5]
    for target in targets:
        deadline = time.monotonic() + 120
        while system.rows() < target and time.monotonic() < deadline:
            assert system.worker is not None and system.worker.poll() is None, system.worker_log()
            time.sleep(0.05)
        assert system.rows() < len(expected), "the worker finished before it could be interrupted"
        system.kill_worker()
        kills += 1
        system.start_worker()
    table = system.wait_for_rows(len(expected), timeout_s=180)
    ids = table.select(["source_id", "source_offset"]).to_pylist()
    assert len({(r["source_id"], r["source_offset"]) for r in ids}) == len(expected)
    assert set(_stored(table)) == expected
    assert kills == 3


def test_rejected_lines_are_counted_and_kept_with_reasons(system: System, tmp_path: Path) -> None:
    """Garbage between good lines is rejected with a reason, kept in dead letters, and never shipped."""
    packets = Demo(seed=3).history(END, hours=1, per_hour=300)
    good = [p for p in packets if not _is_late_tcp(p)]
    log = tmp_path / "mixed.log"
    write_lines(good, log)
    hostile = "<script>alert(1)</script> IN=eth0 SRC=not-an-ip DST=1.2.3.4 PROTO=TCP DPT=22\n"
    with open(log, "a") as fh:
        fh.write("this is not a firewall line\n")
        fh.write(hostile)
    shipped = system.ship([log], "site-r")
    summary = json.loads(shipped.stderr.strip().splitlines()[-1])
    assert summary["rejected"] == 2
    assert summary["events_sent"] == len(good)
    dead = [
        json.loads(line)
        for line in (system.dead_letter_dir / "site-r.rejects.jsonl").read_text().splitlines()
    ]
    assert [d["line"] for d in dead] == ["this is not a firewall line", hostile.rstrip("\n")]
    assert all(d["reason"] for d in dead)
    system.start_worker()
    table = system.wait_for_rows(len(good))
    assert pc.count_distinct(table.column("source_offset")).as_py() == len(good)
