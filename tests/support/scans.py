"""Event tables for the scan detector: a small builder, and a mix with one scan of every kind."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

T0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)


class Events:
    """A small builder of event tables (the detector reads only these columns)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, t: float, src: str, dst: str, port: int, site: str = "a", prefix: str = "DROP ") -> None:
        self.rows.append(
            {
                "ts": T0 + dt.timedelta(seconds=t),
                "site": site,
                "src_ip": src,
                "dst_ip": dst,
                "dst_port": port,
                "prefix": prefix,
                "count": 1,
            }
        )

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows).sort_by("ts")


def mixed() -> Events:
    """One scan of every kind (vertical, horizontal, slow, hammer, coordinated, cross-site) and noise."""
    ev = Events()
    for i in range(100):
        ev.add(5 + i * 0.1, "1.1.1.1", "10.0.0.1", 1000 + i)
    for i in range(30):
        ev.add(300 + i * 2, "2.2.2.2", f"10.0.1.{i}", 23)
    for i in range(12):
        ev.add(1000 + i * 600, "3.3.3.3", "10.0.0.2", 20 + i)
    for i in range(80):
        ev.add(500 + i * 60, "4.4.4.4", "10.0.0.3", 3389)
    for s in range(5):
        for j in range(5):
            ev.add(2000 + s * 0.5 + j * 2, f"5.5.5.{s}", "10.0.0.9", 100 + s * 5 + j)
    for i in range(20):
        ev.add(3590 + i, "6.6.6.6", "10.9.0.1", 2000 + i, site="b")  # across an epoch boundary
    for i in range(20):
        ev.add(9000 + i, "6.6.6.6", "10.0.0.1", 3000 + i, site="a")
    for i in range(300):  # noise
        ev.add(i * 31.7, f"9.9.{i % 7}.{i}", f"10.0.0.{i % 50}", (i * 7919) % 65535 + 1)
    return ev
