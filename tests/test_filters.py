"""Edge filtering as the original script did it, each drop counted by reason."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from pipeline.config import ShipperConfig
from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION
from pipeline.filters import EdgeFilter

T = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)


def _table(rows: list[tuple[str, str, str | None, int | None]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "ts": T,
                "site": "s",
                "host": "h",
                "src_ip": src,
                "dst_ip": "203.0.113.1",
                "src_port": 1,
                "dst_port": dport,
                "proto": proto,
                "ip_version": 6 if ":" in src else 4,
                "action": "drop",
                "in_if": None,
                "out_if": None,
                "tcp_flags": flags,
                "prefix": None,
                "count": 1,
                "source_id": "x",
                "source_offset": i,
                "schema_version": SCHEMA_VERSION,
            }
            for i, (src, proto, flags, dport) in enumerate(rows)
        ],
        schema=EVENT_SCHEMA,
    )


def test_original_rules_drop_inside_late_tcp_and_port_zero_and_count_each() -> None:
    table = _table(
        [
            ("198.51.100.1", "TCP", "SYN", 22),  # kept
            ("10.1.2.3", "TCP", "SYN", 22),  # inside
            ("2001:db8:1::5", "UDP", None, 53),  # inside (v6)
            ("198.51.100.2", "TCP", "ACK FIN", 40000),  # late
            ("198.51.100.3", "TCP", "RST", 40000),  # late
            ("198.51.100.4", "TCP", "ACK", 443),  # kept: a lone ACK may be an ACK scan
            ("198.51.100.5", "UDP", None, 0),  # port zero
            ("198.51.100.6", "ICMP", None, None),  # kept: port-less
            ("10.9.9.9", "TCP", "RST", 0),  # inside wins, counted once
        ]
    )
    cfg = ShipperConfig(exclude_networks=("10.0.0.0/8", "2001:db8:1::/48"))
    result = EdgeFilter(cfg)(table)
    assert result.kept.column("src_ip").to_pylist() == ["198.51.100.1", "198.51.100.4", "198.51.100.6"]
    assert result.dropped == {"inside_network": 3, "late_tcp": 2, "dst_port_zero": 1}
    assert sum(result.dropped.values()) + result.kept.num_rows == table.num_rows


def test_rules_can_be_switched_off() -> None:
    table = _table([("198.51.100.3", "TCP", "RST", 0)])
    cfg = ShipperConfig(drop_late_tcp=False, drop_port_zero=False)
    result = EdgeFilter(cfg)(table)
    assert result.kept.num_rows == 1
    assert result.dropped == {"inside_network": 0, "late_tcp": 0, "dst_port_zero": 0}
