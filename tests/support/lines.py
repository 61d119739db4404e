"""Line factories: firewall log files of known content, for the shipper tests.

``write_probe_lines`` writes distinct SYN probes (every one a valid, unfiltered
event, so the expected event ids are exactly the lines' byte offsets).
``write_mixed`` writes probes mixed with malformed, hostile and filtered lines,
and records which is which.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from producers.demo import Packet, format_line
from producers.lines import MAX_LINE_BYTES


def write_probe_lines(path: Path, n: int, start: int = 0, append: bool = False) -> np.ndarray:
    """``n`` distinct SYN probes (none filtered, none rejected); returns their byte offsets."""
    t0 = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    text = "".join(
        format_line(
            Packet(
                t0 + dt.timedelta(milliseconds=i),
                f"198.18.{i // 65536 % 256}.{i // 256 % 256}",
                "203.0.113.10",
                "TCP",
                1024 + i % 60000,
                1 + i % 65000,
            ),
            i / 1000,
        )
        + "\n"
        for i in range(start, start + n)
    ).encode()
    base = path.stat().st_size if append and path.exists() else 0
    with open(path, "ab" if append else "wb") as fh:
        fh.write(text)
    raw = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(raw == 0x0A)
    return np.concatenate(([0], ends[:-1] + 1)).astype(np.int64) + base


MIXED_T0 = dt.datetime(2026, 11, 27, 6, tzinfo=dt.UTC)
INSIDE_NETWORK = "10.99.0.0/16"


def probe(i: int, **kw: object) -> str:
    """Probe ``i`` of a mixed file, with any Packet field replaced."""
    packet = Packet(MIXED_T0 + dt.timedelta(milliseconds=i), f"198.18.{i // 256 % 256}.{i % 256}",
                    "203.0.113.10", "TCP", 1024 + i % 60000, 1 + i % 65000)  # fmt: skip
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
        add(probe(i).encode(), "sent")
        turn = i % 5
        if turn == 0:
            add(probe(i).replace("SRC=198.18.", "SRC=998.18.").encode(), "rejected")
        elif turn == 1:
            add(HOSTILE[i // 5 % len(HOSTILE)], "rejected")
        elif turn == 2:
            add(probe(i, flags="ACK RST").encode(), "late_tcp")
        elif turn == 3:
            add(probe(i, dport=0).encode(), "dst_port_zero")
        else:
            add(probe(i, src=f"10.99.{i // 256 % 256}.{i % 256}").encode(), "inside_network")
    path.write_bytes(b"".join(chunks))
    return out
