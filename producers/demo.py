"""A realistic demo day of blocked packets, written as kernel netfilter LOG lines.

What a small Internet-facing gateway sees: background radiation from many
sources aimed at popular ports, UDP probes, some IPv6, conntrack leftovers
(late ACK+FIN / RST, which the shipper filters), plus the pictures the plot
exists for: a fast vertical port scan, a slow descending diagonal scan and a
horizontal line of one port being hammered. Deterministic for a seed, so
tests and screenshots are repeatable.

Addresses come from ranges reserved for documentation and benchmarking
(198.18.0.0/15, 203.0.113.0/24, 2001:db8::/32): the demo names no real host.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "gw-demo"
TARGET_V4 = "203.0.113.10"
TARGET_V6 = "2001:db8:f00::1"
# Popular targets of background scanning and their relative weights.
TCP_PORTS = {
    22: 30,
    23: 25,
    80: 15,
    443: 12,
    445: 14,
    3389: 12,
    8080: 8,
    1433: 5,
    3306: 5,
    5900: 4,
    6379: 3,
    8443: 3,
    25: 4,
    21: 3,
    5555: 2,
    9200: 2,
    2323: 3,
    81: 2,
    8888: 2,
}
UDP_PORTS = {53: 10, 123: 8, 161: 8, 1900: 6, 5060: 8, 137: 4, 500: 3, 11211: 2, 19: 1, 6881: 3}


@dataclass(frozen=True, order=True)
class Packet:
    ts: dt.datetime
    src: str
    dst: str
    proto: str
    sport: int
    dport: int
    flags: str = "SYN"


def _expanded(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    return addr.exploded if addr.version == 6 else ip


def format_line(p: Packet, uptime_s: float) -> str:
    """One kernel LOG line exactly as nf_log_syslog prints it, in an RFC 3339 syslog envelope."""
    v6 = ":" in p.src
    stamp = p.ts.isoformat(timespec="microseconds")
    head = f"{stamp} {HOST} kernel: [{uptime_s:12.6f}] DROP IN=eth0 OUT= "
    mac = "MAC=00:16:3e:5e:6c:00:00:16:3e:aa:bb:cc:" + ("86:dd " if v6 else "08:00 ")
    pid = zlib.crc32(f"{p.ts}{p.src}{p.dport}".encode()) & 0xFFFF
    if v6:
        ip = (
            f"SRC={_expanded(p.src)} DST={_expanded(p.dst)} LEN={80 if p.proto == 'TCP' else 68} "
            "TC=0 HOPLIMIT=52 FLOWLBL=0 "
        )
    else:
        length = 44 if p.proto == "TCP" else 40
        ip = f"SRC={p.src} DST={p.dst} LEN={length} TOS=0x00 PREC=0x00 TTL=241 ID={pid} "
    if p.proto == "TCP":
        l4 = f"PROTO=TCP SPT={p.sport} DPT={p.dport} WINDOW=1024 RES=0x00 {p.flags} URGP=0"
    else:
        l4 = f"PROTO=UDP SPT={p.sport} DPT={p.dport} LEN=20"
    return head + mac + ip + l4


class Demo:
    def __init__(self, seed: int = 1) -> None:
        self.seed = seed

    def _rng(self, salt: str) -> random.Random:
        return random.Random(f"{self.seed}:{salt}")

    def _v4_source(self, rng: random.Random) -> str:
        return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("198.18.0.0")) + rng.randrange(2**17)))

    def _v6_source(self, rng: random.Random) -> str:
        return f"2001:db8:{rng.randrange(1, 0xFFFF):x}::{rng.randrange(1, 0xFFFF):x}"

    def background(
        self, start: dt.datetime, end: dt.datetime, per_hour: float, salt: str = "bg"
    ) -> Iterator[Packet]:
        rng = self._rng(f"{salt}:{start.isoformat()}")
        tcp_ports, tcp_w = list(TCP_PORTS), list(TCP_PORTS.values())
        udp_ports, udp_w = list(UDP_PORTS), list(UDP_PORTS.values())
        t = start
        while True:
            t += dt.timedelta(seconds=rng.expovariate(per_hour / 3600))
            if t >= end:
                return
            v6 = rng.random() < 0.12
            src = self._v6_source(rng) if v6 else self._v4_source(rng)
            dst = TARGET_V6 if v6 else TARGET_V4
            r = rng.random()
            if r < 0.70:
                port = rng.choices(tcp_ports, tcp_w)[0]
                yield Packet(t, src, dst, "TCP", rng.randrange(1024, 65535), port)
            elif r < 0.88:
                port = rng.choices(udp_ports, udp_w)[0]
                yield Packet(t, src, dst, "UDP", rng.randrange(1024, 65535), port)
            elif r < 0.95:
                # Random high ports: the haze across the top of the plot.
                proto = "TCP" if rng.random() < 0.6 else "UDP"
                yield Packet(t, src, dst, proto, rng.randrange(1024, 65535), rng.randrange(1024, 65536))
            else:
                # Late packets of connections the firewall forgot: not probes.
                flags = rng.choice(["ACK FIN", "RST", "ACK RST"])
                yield Packet(t, src, dst, "TCP", rng.choice([443, 80]), rng.randrange(32768, 61000), flags)

    def scenarios(self, start: dt.datetime, end: dt.datetime, slow_at: float = 0.45) -> Iterator[Packet]:
        """The planted scans, placed at fractions of ``start``..``end``; the slow one (8 h) at ``slow_at``."""
        span = (end - start).total_seconds()
        rng = self._rng(f"scen:{start.isoformat()}")
        # Fast scan: ports 1-1024 plus common high ones, in random order, in ~6 s.
        t0 = start + dt.timedelta(seconds=span * 0.30)
        fast_src = "203.0.113.66"
        ports = [*list(range(1, 1025)), 1433, 3306, 3389, 5432, 5900, 6379, 8080, 8443, 9200, 27017]
        rng.shuffle(ports)
        for i, port in enumerate(ports):
            yield Packet(
                t0 + dt.timedelta(seconds=6 * i / len(ports)), fast_src, TARGET_V4, "TCP", 54321, port
            )
        # Slow descending scan: one port every ~4 minutes from 9000 down to 1000 over ~8 h.
        t1 = start + dt.timedelta(seconds=span * slow_at)
        slow_src = "203.0.113.77"
        for i, port in enumerate(range(9000, 999, -67)):
            yield Packet(
                t1 + dt.timedelta(seconds=240 * i + rng.uniform(0, 20)),
                slow_src,
                TARGET_V4,
                "TCP",
                40000 + i,
                port,
            )
        # Hammering: telnet every ~90 s for 10 hours from one source.
        t2 = start + dt.timedelta(seconds=span * 0.10)
        for i in range(400):
            yield Packet(
                t2 + dt.timedelta(seconds=90 * i), "203.0.113.99", TARGET_V4, "TCP", 50000 + i % 1000, 23
            )
        # An IPv6 UDP sweep of a few service ports, and an IPv6 TCP mini-scan.
        t3 = start + dt.timedelta(seconds=span * 0.62)
        for i, port in enumerate([53, 123, 161, 500, 1900, 5060, 5353, 11211]):
            yield Packet(t3 + dt.timedelta(seconds=i * 3), "2001:db8:bad::5", TARGET_V6, "UDP", 33000, port)
        for i, port in enumerate(range(20, 120)):
            yield Packet(
                t3 + dt.timedelta(seconds=60 + i * 0.2), "2001:db8:bad::6", TARGET_V6, "TCP", 45000, port
            )

    def history(self, end: dt.datetime, hours: float = 24, per_hour: float = 1500) -> list[Packet]:
        start = end - dt.timedelta(hours=hours)
        packets = [*self.background(start, end, per_hour), *self.scenarios(start, end)]
        return sorted(p for p in packets if p.ts < end)

    def last_day(self, end: dt.datetime, per_hour: float = 1500) -> tuple[list[Packet], dt.date]:
        """The 24 h before ``end``, with every planted scan inside one UTC day, and that day.

        A day page shows one day, so a demo whose scans straddle midnight shows half a picture. The
        scans go into today when at least 12 h of it have passed, otherwise into yesterday's part of
        the window (then at least 12 h long), which always holds the 8 h slow scan whole.
        """
        start = end - dt.timedelta(hours=24)
        midnight = end.replace(hour=0, minute=0, second=0, microsecond=0)
        window = (midnight, end) if end - midnight >= dt.timedelta(hours=12) else (start, midnight)
        packets = [*self.background(start, end, per_hour), *self.scenarios(*window, slow_at=0.15)]
        return sorted(p for p in packets if p.ts < end), window[0].date()


def write_lines(packets: list[Packet], path: Path, append: bool = False) -> int:
    with open(path, "a" if append else "w", encoding="ascii") as fh:
        for p in packets:
            uptime = p.ts.timestamp() % 10_000_000
            fh.write(format_line(p, uptime) + "\n")
    return len(packets)
