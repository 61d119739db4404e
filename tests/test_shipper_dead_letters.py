"""Rejected lines reach the dead-letter topic and file with position and reason, inert, all counted.

The input mixes valid probes with malformed and hostile lines (markup,
terminal escapes, NUL and other control bytes, invalid UTF-8, an oversized
line) and with lines the edge filter drops. The dead-letter topic is read back
with a real Kafka consumer and compared line by line with the input.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from producers.demo import Packet, format_line
from producers.lines import MAX_LINE_BYTES
from tests.conftest import System

T0 = dt.datetime(2026, 11, 27, 6, tzinfo=dt.UTC)
INSIDE_NETWORK = "10.99.0.0/16"


def _probe(i: int, **kw: object) -> str:
    packet = Packet(T0 + dt.timedelta(milliseconds=i), f"198.18.{i // 256 % 256}.{i % 256}", "203.0.113.10",
                    "TCP", 1024 + i % 60000, 1 + i % 65000)  # fmt: skip
    return format_line(dataclasses.replace(packet, **kw), i / 1000)


HOSTILE: tuple[bytes, ...] = (
    b"<script>alert(1)</script> kernel: DROP IN=eth0 SRC=<img src=x onerror=alert(1)>",
    b"\x1b[2J\x1b[31mOWNED\x1b[0m kernel: DROP SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP",
    b"\x00\x01\x02 NUL and control bytes \x7f\x08",
    b"\xff\xfe\xfd invalid UTF-8 SRC=1.2.3.4 DST=5.6.7.8",
    b'{"message": "\'; DROP TABLE events; --", "__proto__": {"x": 1}}',
    b"A" * 20_000 + b" a long line",
    b"B" * (MAX_LINE_BYTES + 5000) + b" longer than any line may be: cut, then rejected",
)


@dataclass
class Mixed:
    """A log file of known composition: what must be sent, filtered and rejected."""

    path: Path
    lines: int = 0
    sent: list[int] = field(default_factory=list)  # byte offsets of lines that become events
    filtered: dict[str, int] = field(default_factory=dict)
    rejected: dict[int, bytes] = field(default_factory=dict)  # offset -> the line as written


def write_mixed(path: Path, n: int) -> Mixed:
    """``n`` groups of: a valid probe, and in turn a malformed, hostile, RST, port-0 or inside line."""
    out = Mixed(path)
    chunks: list[bytes] = []
    pos = 0

    def add(line: bytes, kind: str) -> None:
        nonlocal pos
        if kind == "sent":
            out.sent.append(pos)
        elif kind == "rejected":
            out.rejected[pos] = line
        else:
            out.filtered[kind] = out.filtered.get(kind, 0) + 1
        chunks.append(line + b"\n")
        pos += len(line) + 1
        out.lines += 1

    for i in range(n):
        add(_probe(i).encode(), "sent")
        turn = i % 5
        if turn == 0:
            add(_probe(i).replace("SRC=198.18.", "SRC=998.18.").encode(), "rejected")
        elif turn == 1:
            add(HOSTILE[i // 5 % len(HOSTILE)], "rejected")
        elif turn == 2:
            add(_probe(i, flags="ACK RST").encode(), "late_tcp")
        elif turn == 3:
            add(_probe(i, dport=0).encode(), "dst_port_zero")
        else:
            add(_probe(i, src=f"10.99.{i // 256 % 256}.{i % 256}").encode(), "inside_network")
    path.write_bytes(b"".join(chunks))
    return out


def use_own_dead_letter_topic(system: System) -> str:
    """A dead-letter topic of this test alone (the default name is shared by every shipper)."""
    topic = f"fp-test-dl-{uuid.uuid4().hex[:10]}"
    system.configure("kafka", dead_letter_topic=topic)
    system.configure("shipper", exclude_networks=[INSIDE_NETWORK])
    return topic


def read_dead_letters(
    bootstrap: str, topic: str, expect: int, timeout_s: float = 60
) -> list[dict[str, object]]:
    """Every record of the dead-letter topic, waiting until at least ``expect`` are there."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        deadline = time.monotonic() + timeout_s
        out: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            if tps:
                consumer.assign(tps)
                consumer.seek_to_beginning(*tps)
                end = consumer.end_offsets(tps)
                out = []
                while any(consumer.position(tp) < end[tp] for tp in tps):
                    for records in consumer.poll(timeout_ms=500).values():
                        for r in records:
                            assert dict(r.headers)["content-type"] == b"application/json"
                            out.append(json.loads(r.value))
                if len(out) >= expect:
                    return out
            time.sleep(0.5)
        raise AssertionError(f"{len(out)} dead letters on {topic}, expected {expect}")
    finally:
        consumer.close()


def check_letters(letters: list[dict[str, object]], mixed: Mixed, source_id: str) -> None:
    """Each rejected line exactly once, at its offset, with a reason, its text kept as data."""
    by_offset = {int(str(d["offset"])): d for d in letters}
    assert len(by_offset) == len(letters), "a line was dead-lettered twice"
    assert sorted(by_offset) == sorted(mixed.rejected)
    for offset, line in mixed.rejected.items():
        letter = by_offset[offset]
        assert letter["source_id"] == source_id
        assert isinstance(letter["reason"], str) and letter["reason"]
        # The line comes back as read (invalid UTF-8 replaced, cut at MAX_LINE_BYTES), never interpreted.
        assert letter["line"] == line[:MAX_LINE_BYTES].decode("utf-8", "replace"), f"line at {offset} altered"


def test_malformed_and_hostile_lines_land_in_topic_and_file_with_reasons(
    system: System, tmp_path: Path
) -> None:
    """`fireplot ship`: the topic and the local file hold the same rejects, matching the shipper's count."""
    topic = use_own_dead_letter_topic(system)
    mixed = write_mixed(tmp_path / "fw.log", 300)

    proc = system.ship([mixed.path])

    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    assert summary["lines"] == mixed.lines
    assert summary["rejected"] == len(mixed.rejected)
    assert summary["filtered_by_reason"] == mixed.filtered
    assert summary["events_sent"] == len(mixed.sent)
    letters = read_dead_letters(system.bootstrap, topic, len(mixed.rejected))
    source_ids = {str(d["source_id"]) for d in letters}
    assert len(source_ids) == 1
    (source_id,) = source_ids
    check_letters(letters, mixed, source_id)
    filed = [json.loads(x) for x in (system.dead_letter_dir / "test.rejects.jsonl").read_text().splitlines()]
    assert filed == letters, "dead-letter file and topic disagree"
    # Control characters stay escaped in the file: a `cat` of it cannot drive the terminal.
    raw = (system.dead_letter_dir / "test.rejects.jsonl").read_bytes()
    assert b"\x1b" not in raw and b"\x00" not in raw and raw.isascii()
    events = system.topic_events()
    assert sorted(events.column("source_offset").to_pylist()) == mixed.sent
