"""The scan record: its schema, its id, a run's counters, and conversions every detector shares."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

KINDS: Final = ("vertical", "horizontal", "slow", "distributed", "hammer", "coordinated", "cross_site")
US: Final = 1_000_000

SCAN_SCHEMA: Final = pa.schema(
    [
        pa.field("scan_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("site", pa.string(), nullable=False),
        pa.field("sources", pa.list_(pa.string()), nullable=False),
        pa.field("first_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("last_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("detected_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("port_min", pa.int32()),
        pa.field("port_max", pa.int32()),
        pa.field("distinct_ports", pa.int64(), nullable=False),
        pa.field("distinct_targets", pa.int64(), nullable=False),
        pa.field("packets", pa.int64(), nullable=False),
        pa.field("sites", pa.list_(pa.string()), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("lower_bound", pa.bool_(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("epoch_start", pa.timestamp("us", tz="UTC"), nullable=False),
        # Properties (null where they do not apply): the port order of a slow or distributed
        # scan (ascending | descending | random, from Kendall tau of port vs first-hit time),
        # the UTC dates the scan touches, whether several sources share the scan.
        pa.field("order", pa.string()),
        pa.field("tau", pa.float64()),
        pa.field("days_spanned", pa.int32(), nullable=False),
        pa.field("distributed", pa.bool_(), nullable=False),
    ]
)


def days_spanned(first_us: int, last_us: int) -> int:
    """UTC dates from the first to the last event, both counted (1: within one day)."""
    return int(last_us // (86_400 * US) - first_us // (86_400 * US)) + 1


def conform(table: pa.Table) -> pa.Table:
    """A scan table in SCAN_SCHEMA, properties filled in for files written before they existed."""
    n = table.num_rows
    if "order" not in table.column_names:
        first = pc.cast(pc.cast(table.column("first_ts"), pa.timestamp("us", tz="UTC")), pa.int64())
        last = pc.cast(pc.cast(table.column("last_ts"), pa.timestamp("us", tz="UTC")), pa.int64())
        day = 86_400 * US
        span = pc.add(pc.subtract(pc.divide(last, day), pc.divide(first, day)), 1)
        kinds = table.column("kind")
        table = (
            table.append_column("order", pa.nulls(n, pa.string()))
            .append_column("tau", pa.nulls(n, pa.float64()))
            .append_column("days_spanned", pc.cast(span, pa.int32()))
            .append_column("distributed", pc.is_in(kinds, value_set=pa.array(["coordinated", "distributed"])))
        )
    return table.select(SCAN_SCHEMA.names).cast(SCAN_SCHEMA)


def records_table(recs: list[dict[str, Any]]) -> pa.Table:
    """Scan records (times as integer microseconds) as a SCAN_SCHEMA table."""
    arrays = []
    for f in SCAN_SCHEMA:
        vals = [r[f.name] for r in recs]
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(vals, pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(vals, f.type))
    return pa.Table.from_arrays(arrays, schema=SCAN_SCHEMA)


@dataclass
class DetectStats:
    """What one run saw; ``flooded`` kinds dropped candidate keys beyond the cap."""

    events: int = 0
    approx_sources: int = 0
    candidates: dict[str, int] = field(default_factory=dict)
    dropped_keys: dict[str, int] = field(default_factory=dict)
    scans: dict[str, int] = field(default_factory=dict)
    alerts_failed: dict[str, int] = field(default_factory=dict)  # by channel: command, webhook, topic
    evaluations: int = 0
    eval_s_total: float = 0.0
    eval_s_max: float = 0.0

    @property
    def flooded(self) -> list[str]:
        return sorted(k for k, v in self.dropped_keys.items() if v)

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "approx_sources": self.approx_sources,
            "candidates": dict(sorted(self.candidates.items())),
            "dropped_keys": dict(sorted(self.dropped_keys.items())),
            "flooded": self.flooded,
            "scans": dict(sorted(self.scans.items())),
            "alerts_failed": dict(sorted(self.alerts_failed.items())),
            "evaluations": self.evaluations,
            "eval_s_total": round(self.eval_s_total, 3),
            "eval_s_max": round(self.eval_s_max, 3),
        }


def epoch_scan_id(kind: str, key: Sequence[object], epoch: int, first_b: int) -> str:
    """The id of a grid scan (and a cross-site one): kind, key, epoch and first grid point."""
    text = "\x1f".join([kind, *(str(k) for k in key), str(epoch), str(first_b)])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
