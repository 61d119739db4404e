"""The firewall event: one definition, one Arrow schema.

Every stage speaks this schema: parsers emit record batches of it, the wire
format carries them, the store writes them to Parquet and the web app reads
them back. Change a field here and nowhere else.

An event's identity is ``(source_id, source_offset)``: the shipper names each
input (site + file fingerprint) and the byte offset of the line in it, so a
line that is sent twice is recognisable downstream without hashing anything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import pyarrow as pa

SCHEMA_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: pa.DataType
    nullable: bool
    doc: str


TS_TYPE: Final = pa.timestamp("us", tz="UTC")

FIELDS: Final[tuple[Field, ...]] = (
    Field("ts", TS_TYPE, False, "event time, UTC, microseconds"),
    Field("site", pa.string(), False, "site the event was shipped from (Kafka key's first part)"),
    Field("host", pa.string(), False, "sensor: the firewall host that logged the packet"),
    Field("src_ip", pa.string(), False, "source address, normalised (IPv6 compressed)"),
    Field("dst_ip", pa.string(), False, "destination address, normalised"),
    Field("src_port", pa.int32(), True, "source port; null for port-less packets"),
    Field("dst_port", pa.int32(), True, "destination port; null for ICMP, ESP, fragments, ..."),
    Field("proto", pa.string(), False, "protocol name as logged (TCP, UDP, ICMP, ICMPv6, 47, ...)"),
    Field("ip_version", pa.int8(), False, "4 or 6"),
    Field("action", pa.string(), False, "drop, reject, accept, ... (lower case)"),
    Field("in_if", pa.string(), True, "input interface"),
    Field("out_if", pa.string(), True, "output interface"),
    Field("tcp_flags", pa.string(), True, "TCP flags as logged, space separated (e.g. 'SYN')"),
    Field("prefix", pa.string(), True, "log prefix / rule name: attacker-adjacent free text"),
    Field("count", pa.int32(), False, "packets this event stands for (1 unless aggregated)"),
    Field("source_id", pa.string(), False, "stable name of the input this event was read from"),
    Field("source_offset", pa.int64(), False, "byte offset of the line within source_id"),
    Field("schema_version", pa.int8(), False, "version of this schema the event was written with"),
)

EVENT_SCHEMA: Final = pa.schema(
    [pa.field(f.name, f.type, nullable=f.nullable) for f in FIELDS],
    metadata={b"fireplot.schema_version": str(SCHEMA_VERSION).encode()},
)

FIELD_NAMES: Final = tuple(f.name for f in FIELDS)


def empty_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=EVENT_SCHEMA)


def conform(table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Cast to the event schema, raising if a non-null column holds nulls.

    Arrow's cast does not check nullability, so we do: a null event time or
    address that slipped through a parser must fail loudly here rather than
    be written and plotted at 1970.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    table = table.select(list(FIELD_NAMES)).cast(EVENT_SCHEMA)
    for f in FIELDS:
        if not f.nullable and table.column(f.name).null_count:
            raise ValueError(f"event column {f.name!r} has nulls but is required")
    return table


def rows(table: pa.Table | pa.RecordBatch) -> list[dict[str, object]]:
    """Events as plain dicts (for JSON output), timestamps as ISO 8601 strings."""
    out: list[dict[str, object]] = table.to_pylist()
    for row in out:
        ts = row["ts"]
        if isinstance(ts, dt.datetime):
            row["ts"] = ts.isoformat().replace("+00:00", "Z")
    return out
