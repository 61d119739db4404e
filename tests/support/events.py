"""Event factories: every test builds its events here, so a schema change is made once.

``row`` is one event as a dict with every column filled (a plain IPv4 TCP SYN
drop unless told otherwise); tests override only the columns they are about.
``table`` turns rows into a table of the event schema. ``events`` and
``hour_events`` build large tables column-wise, for tests that need volume.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline import wire
from pipeline.archive.decoders import Record
from pipeline.event import EVENT_SCHEMA, FIELD_NAMES, SCHEMA_VERSION

T0 = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)

# A raw netfilter line as a syslog relay forwards it (format with m=minute, i=host octet, p=port).
RAW_LINE = (
    "2026-11-27T10:{m:02d}:00+00:00 fw1 kernel: DROP IN=eth0 OUT= MAC= SRC=198.51.100.{i} "
    "DST=203.0.113.5 LEN=60 TOS=0x00 PREC=0x00 TTL=50 ID=1 DF PROTO=TCP SPT=40000 DPT={p} "
    "WINDOW=1024 RES=0x00 SYN URGP=0"
)


def row(ts: dt.datetime, n: int = 0, **fields: Any) -> dict[str, Any]:
    """One event, every column filled; ``n`` varies the source address and is its offset.

    Addresses follow ``ip_version``, the source port is null when the
    destination port is, TCP events carry SYN; any column can be given.
    """
    unknown = set(fields) - set(FIELD_NAMES)
    assert not unknown, f"not event columns: {sorted(unknown)}"
    v4 = fields.get("ip_version", 4) == 4
    proto = fields.get("proto", "TCP")
    dst_port = fields.get("dst_port", 22)
    event: dict[str, Any] = {
        "ts": ts,
        "site": "a",
        "host": "fw1",
        "src_ip": f"198.51.100.{n % 250}" if v4 else f"2001:db8::{n:x}",
        "dst_ip": "192.0.2.1" if v4 else "2001:db8:ffff::1",
        "src_port": None if dst_port is None else 40000 + n % 20000,
        "dst_port": dst_port,
        "proto": proto,
        "ip_version": 4 if v4 else 6,
        "action": "drop",
        "in_if": "eth0",
        "out_if": None,
        "tcp_flags": "SYN" if proto == "TCP" else None,
        "prefix": None,
        "count": 1,
        "source_id": "test:log",
        "source_offset": n,
        "schema_version": SCHEMA_VERSION,
    }
    event.update(fields)
    return event


def table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows from ``row`` as a table of the event schema."""
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def events(
    n: int,
    start: dt.datetime = T0,
    span_s: float = 3 * 3600,
    source: str = "s:1",
    first: int = 0,
    site: str = "a",
    seed: int = 0,
) -> pa.Table:
    """``n`` events of one source over ``span_s`` from ``start``, offsets ``first``, +100, +200, ..."""
    rng = np.random.default_rng(seed)
    t0 = int(start.timestamp() * 1e6)
    ts = np.sort(t0 + rng.integers(0, int(span_s * 1e6), n))
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "site": pa.array([site] * n),
            "host": pa.array(["fw"] * n),
            "src_ip": pa.array([f"198.51.100.{i % 50}" for i in range(n)]),
            "dst_ip": pa.array([f"203.0.113.{i % 7}" for i in range(n)]),
            "src_port": pa.array(rng.integers(1024, 65535, n).astype(np.int32)),
            "dst_port": pa.array((np.arange(n) % 20 + 20).astype(np.int32)),
            "proto": pa.array(["TCP"] * n),
            "ip_version": pa.array(np.full(n, 4, np.int8)),
            "action": pa.array(["drop"] * n),
            "in_if": pa.array(["eth0"] * n),
            "out_if": pa.nulls(n, pa.string()),
            "tcp_flags": pa.array(["SYN"] * n),
            "prefix": pa.nulls(n, pa.string()),
            "count": pa.array(np.ones(n, np.int32)),
            "source_id": pa.array([source] * n),
            "source_offset": pa.array(first + np.arange(n, dtype=np.int64) * 100),
            "schema_version": pa.array(np.full(n, SCHEMA_VERSION, np.int8)),
        },
        schema=EVENT_SCHEMA,
    )


def hour_events(hour_start: dt.datetime, n: int, site: str, first_offset: int, seed: int) -> pa.Table:
    """n events spread over one hour, random enough that Parquet cannot shrink them to nothing."""
    rng = np.random.default_rng(seed)
    us = int(hour_start.timestamp() * 1_000_000) + rng.integers(0, 3_600_000_000, n)
    src = rng.integers(0, 2**32, n, dtype=np.uint64)
    cols = {
        "ts": pa.array(us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "site": pa.array([site] * n),
        "host": pa.array(["fw1"] * n),
        "src_ip": pa.array([f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in src.tolist()]),
        "dst_ip": pa.array(["203.0.113.7"] * n),
        "src_port": pa.array(rng.integers(1024, 65536, n), pa.int32()),
        "dst_port": pa.array(rng.integers(1, 65536, n), pa.int32()),
        "proto": pa.array(["TCP"] * n),
        "ip_version": pa.array(np.full(n, 4), pa.int8()),
        "action": pa.array(["drop"] * n),
        "in_if": pa.array(["eth0"] * n),
        "out_if": pa.nulls(n, pa.string()),
        "tcp_flags": pa.array(["SYN"] * n),
        "prefix": pa.nulls(n, pa.string()),
        "count": pa.array(np.ones(n, dtype=np.int32), pa.int32()),
        "source_id": pa.array([f"{site}:fw1"] * n),
        "source_offset": pa.array(np.arange(first_offset, first_offset + n), pa.int64()),
        "schema_version": pa.array(np.full(n, SCHEMA_VERSION), pa.int8()),
    }
    return pa.table(cols, schema=EVENT_SCHEMA)


def records(
    table: pa.Table, topic: str = "ev", partition: int = 0, first_offset: int = 0, per_record: int = 100
) -> list[Record]:
    """``table`` as the worker's sink receives it: Kafka records of ``per_record`` events each."""
    return [
        Record(topic, partition, first_offset + i, wire.encode(table.slice(s, per_record)))
        for i, s in enumerate(range(0, table.num_rows, per_record))
    ]
