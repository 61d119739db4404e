"""The persistent tracker's state: its tables, their daily checkpoints, and their bound.

Every table is keyed by the session it belongs to (see ``pipeline.detect.slowtrack``).
A checkpoint is a directory of one Parquet file per table, swapped in whole
(``durable.replace_dir``); the newest ``track_checkpoints_kept`` are kept.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import durable
from pipeline.config import DetectConfig
from pipeline.detect.records import US, DetectStats

DAY_US: Final = 86_400 * US

# The tracker's state, one Arrow table each (persisted as one Parquet file each per checkpoint).
STATE: Final = {
    "src_meta": pa.schema(
        [
            ("site", pa.string()),
            ("src_ip", pa.string()),
            ("sess", pa.int64()),
            ("last_ts", pa.int64()),
            ("packets", pa.int64()),
            ("lb", pa.bool_()),
        ]
    ),
    "src_ports": pa.schema(
        [
            ("site", pa.string()),
            ("src_ip", pa.string()),
            ("sess", pa.int64()),
            ("port", pa.int32()),
            ("t", pa.int64()),
        ]
    ),
    "src_targets": pa.schema(
        [
            ("site", pa.string()),
            ("src_ip", pa.string()),
            ("sess", pa.int64()),
            ("dst_ip", pa.string()),
            ("t", pa.int64()),
        ]
    ),
    "dpair": pa.schema(
        [("site", pa.string()), ("dst_ip", pa.string()), ("port", pa.int32()), ("last_ts", pa.int64())]
    ),
    "dist_meta": pa.schema(
        [
            ("site", pa.string()),
            ("dst_ip", pa.string()),
            ("blk", pa.int32()),
            ("sess", pa.int64()),
            ("last_ts", pa.int64()),
            ("lb", pa.bool_()),
        ]
    ),
    "dist_ports": pa.schema(
        [
            ("site", pa.string()),
            ("dst_ip", pa.string()),
            ("blk", pa.int32()),
            ("sess", pa.int64()),
            ("port", pa.int32()),
            ("t", pa.int64()),
            ("src_ip", pa.string()),
        ]
    ),
}


def empty_state() -> dict[str, pa.Table]:
    return {k: s.empty_table() for k, s in STATE.items()}


def checkpoint_path(root: Path, day_us: int) -> Path:
    return root / f"{day_us:020d}"


def load_checkpoint(root: Path, day_us: int) -> dict[str, pa.Table] | None:
    """The state saved at the day boundary day_us, or None when there is no checkpoint."""
    path = durable.current_dir(checkpoint_path(root, day_us))
    if path is None:
        return None
    return {k: pq.read_table(path / f"{k}.parquet").cast(s) for k, s in STATE.items()}


def save_checkpoint(root: Path, day_us: int, state: dict[str, pa.Table], kept: int) -> None:
    """Save the state at the day boundary day_us; keep the newest ``kept`` checkpoints."""
    durable.make_dirs(root)
    final = checkpoint_path(root, day_us)
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for k, table in state.items():
        pq.write_table(table, tmp / f"{k}.parquet", compression="zstd")
        with open(tmp / f"{k}.parquet", "rb") as fh:
            os.fsync(fh.fileno())
    durable.replace_dir(tmp, final)
    # A checkpoint a crash left moved aside (see durable.current_dir) is a checkpoint all the
    # same: back under its name, it is counted and pruned like the others.
    for old in root.glob(".*.old"):
        name = old.name.removeprefix(".").removesuffix(".old")
        if (root / name).exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, root / name)
    durable.fsync_dir(root)
    days = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in days[:-kept]:
        shutil.rmtree(old, ignore_errors=True)


def bound(con: Any, cfg: DetectConfig, stats: DetectStats) -> None:
    """Evict the sessions with the fewest ports until the state fits track_max_rows."""
    cap = cfg.track_max_rows
    sizes = {k: int(con.execute(f"SELECT count(*) FROM {k}").fetchall()[0][0]) for k in STATE}
    over = sum(sizes.values()) - cap
    if over <= 0:
        return
    # Port memory first (it only guards against background re-hits), oldest first.
    drop = min(over, sizes["dpair"])
    if drop:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE dpair AS SELECT * FROM dpair ORDER BY last_ts DESC "
            f"LIMIT {sizes['dpair'] - drop}"
        )
        over -= drop
    for kind, meta, parts, keys in (
        ("slow", "src_meta", ("src_ports", "src_targets"), "site, src_ip, sess"),
        ("distributed", "dist_meta", ("dist_ports",), "site, dst_ip, blk, sess"),
    ):
        if over <= 0:
            break
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE sz AS SELECT {keys}, sum(n) AS n, sum(np) AS np FROM ("
            + " UNION ALL ".join(
                f"SELECT {keys}, count(*) + {1 if i == 0 else 0} AS n, "
                f"{'count(*)' if i == 0 else '0'} AS np FROM {p} GROUP BY ALL"
                for i, p in enumerate(parts)
            )
            + f") GROUP BY ALL ORDER BY np, {keys}"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE gone AS SELECT * FROM (SELECT *, sum(n) OVER "
            f"(ORDER BY np, {keys} ROWS UNBOUNDED PRECEDING) - n AS before FROM sz) WHERE before < {over}"
        )
        dropped, rows = con.execute("SELECT count(*), coalesce(sum(n), 0) FROM gone").fetchall()[0]
        for t in (meta, *parts):
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {t} AS SELECT * FROM {t} ANTI JOIN gone USING ({keys})"
            )
        stats.dropped_keys[kind] = stats.dropped_keys.get(kind, 0) + int(dropped)
        over -= int(rows)
