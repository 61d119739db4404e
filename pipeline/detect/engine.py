"""The grid detectors: event-time grid evaluation, one sorted pass per kind (``pipeline.detect.grid``).

Semantics (the same for replay and live, see ``pipeline.detect``):

* Each kind has a sliding window W and a grid step S. At every grid point ``b``
  (a multiple of S since the Unix epoch, in event time) the kind's measure is
  computed over the events with ``b - W <= ts < b``, per key. A grid point whose
  measure reaches the threshold is "hot".
* Consecutive hot grid points of one key form an island; an island is one scan.
  Islands never cross an epoch boundary (``fast_epoch_s`` / ``slow_epoch_s``),
  so an epoch can be evaluated on its own: that is what makes the live path
  (re-evaluate the current epoch up to the watermark) produce the very records
  replay produces (evaluate whole epochs).
* A scan's record summarises the key's events in ``[first_b - W, last_b)``; its
  id hashes kind, key, epoch and first grid point, so re-evaluation rewrites the
  same record rather than adding one. An island touching the evaluated end is
  ``open`` (it may grow); every other island is ``closed`` and final.

Every pass is bounded: keys that cannot reach a threshold in the evaluated range are
dropped before any grid work (which runs on intervals of grid indices, never the expanded
grid: ``pipeline.detect.cover``), and at most ``max_candidate_keys`` keys per kind survive,
highest measure first, then the smallest key (the rest are counted and the run marked
flooded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import DetectConfig
from pipeline.detect.coordinated import coordinated
from pipeline.detect.cover import Grid
from pipeline.detect.grid import Coded, distinct_kind, hammer, records
from pipeline.detect.records import (
    KINDS,
    SCAN_SCHEMA,
    US,
    DetectStats,
)

FAST_KINDS: Final = ("vertical", "horizontal", "coordinated")
SLOW_KINDS: Final = ("hammer",)  # grid kinds on the slow epoch; slow/distributed: pipeline.detect.slowtrack


@dataclass(frozen=True)
class KindSpec:
    kind: str
    keys: tuple[str, ...]
    window_us: int
    step_us: int
    epoch_us: int


def kind_specs(cfg: DetectConfig) -> dict[str, KindSpec]:
    fast_e, slow_e = int(cfg.fast_epoch_s * US), int(cfg.slow_epoch_s * US)
    v_step = int(cfg.vertical_step_s * US)
    return {
        "vertical": KindSpec(
            "vertical", ("site", "src_ip", "dst_ip"), int(cfg.vertical_window_s * US), v_step, fast_e
        ),
        "horizontal": KindSpec(
            "horizontal",
            ("site", "src_ip", "dst_port"),
            int(cfg.horizontal_window_s * US),
            int(cfg.horizontal_step_s * US),
            fast_e,
        ),
        "coordinated": KindSpec(
            "coordinated", ("site", "dst_ip"), int(cfg.coordinated_window_s * US), v_step, fast_e
        ),
        "hammer": KindSpec(
            "hammer",
            ("site", "src_ip", "dst_port"),
            int(cfg.hammer_window_s * US),
            int(cfg.hammer_step_s * US),
            slow_e,
        ),
    }


def lookback_us(cfg: DetectConfig) -> int:
    """How far before an epoch's start its evaluation reads events."""
    return max(s.window_us for s in kind_specs(cfg).values())


def connect(cfg: DetectConfig) -> Any:
    """One DuckDB thread: detection is numpy in one thread, its one SQL statement (the
    tracker's state bound) is rare and small, and the live detector shares the worker's cores."""
    import duckdb

    return duckdb.connect(config={"threads": 1, "memory_limit": f"{cfg.duckdb_memory_mb}MB"})


def _prefix_hits(prefix: pa.ChunkedArray, patterns: tuple[str, ...]) -> pa.ChunkedArray:
    """Rows whose log prefix holds one of the patterns (case-insensitive; null: no). Matched
    once per distinct prefix - a day has a handful - rather than once per row."""
    out = []
    for chunk in prefix.chunks:
        enc = pc.dictionary_encode(chunk)
        hit = pa.array(np.zeros(len(enc.dictionary), np.bool_))
        for p in patterns:
            hit = pc.or_(hit, pc.fill_null(pc.match_substring(enc.dictionary, p, ignore_case=True), False))
        out.append(pc.fill_null(hit.take(enc.indices), False))
    return pa.chunked_array(out, pa.bool_())


def _dictionary(col: pa.ChunkedArray) -> pa.DictionaryArray:
    """A string column as one dictionary array: the grid kinds and the tracker take their
    codes from it rather than each hashing the day's half-million addresses again."""
    if pa.types.is_dictionary(col.type):
        col = col.unify_dictionaries()
        if col.num_chunks == 1:
            return col.chunk(0)
        dictionary = col.chunk(0).dictionary if col.num_chunks else pa.array([], pa.string())
        indices = pa.chunked_array([c.indices for c in col.chunks], col.type.index_type).combine_chunks()
        return pa.DictionaryArray.from_arrays(indices, dictionary)
    out: pa.DictionaryArray = pc.dictionary_encode(col.combine_chunks())
    return out


def points(events: pa.Table, cfg: DetectConfig) -> pa.Table:
    """The columns detection needs, time as integer microseconds, the lower-bound flag;
    the strings dictionary-encoded once (``site``, ``src_ip``, ``dst_ip``)."""
    lb = pc.is_in(events.column("site"), value_set=pa.array(list(cfg.rate_limited_sites), pa.string()))
    if "prefix" in events.column_names and cfg.rate_limited_prefixes:
        lb = pc.or_(lb, _prefix_hits(events.column("prefix"), cfg.rate_limited_prefixes))
    ts_us = pc.cast(pc.cast(events.column("ts"), pa.timestamp("us", tz="UTC")), pa.int64())
    n = events.num_rows
    cnt = events.column("count") if "count" in events.column_names else pa.array(np.ones(n, np.int64))
    return pa.table(
        {
            "site": _dictionary(events.column("site")),
            "src_ip": _dictionary(events.column("src_ip")),
            "dst_ip": _dictionary(events.column("dst_ip")),
            "dst_port": events.column("dst_port"),
            "ts_us": ts_us,
            "cnt": pc.cast(cnt, pa.int64()),
            "lb": lb,
        }
    )


class Detector:
    """Evaluates grid points in ``(start_us, end_us]`` for each kind over a points table.

    ``start_us`` must lie on every evaluated kind's epoch boundary, and the points
    must cover ``[start_us - lookback_us(cfg), end_us)``.
    """

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self.specs = kind_specs(cfg)
        self.stats = DetectStats()

    def run(self, pts: pa.Table, starts: dict[str, int], end_us: int) -> pa.Table:
        c = Coded.of(pts)
        self.stats.events += len(c.ts)
        self.stats.approx_sources = max(self.stats.approx_sources, len(c.srcs))
        out: list[pa.Table] = []
        for kind, start in sorted(starts.items()):
            if start >= end_us:
                continue
            spec = self.specs[kind]
            if start % spec.epoch_us:
                raise ValueError(f"{kind}: start {start} is not on an epoch boundary")
            table = self._kind(c, spec, start, end_us)
            self.stats.scans[kind] = self.stats.scans.get(kind, 0) + table.num_rows
            out.append(table)
        if not out:
            return SCAN_SCHEMA.empty_table()
        return pa.concat_tables(out).sort_by([("first_ts", "ascending"), ("scan_id", "ascending")])

    def _kind(self, c: Coded, spec: KindSpec, start: int, end: int) -> pa.Table:
        cfg, st = self.cfg, self.stats
        grid = Grid.of(spec.window_us, spec.step_us, spec.epoch_us, start, end)
        lo, cap = start - spec.window_us, cfg.max_candidate_keys
        if spec.kind == "vertical":
            t = cfg.vertical_min_ports
            return records(
                distinct_kind(c, "vertical", spec.keys, "dst_port", t, grid, lo, end, cap, st), end, t
            )
        if spec.kind == "horizontal":
            t = cfg.horizontal_min_targets
            return records(
                distinct_kind(c, "horizontal", spec.keys, "dst_ip", t, grid, lo, end, cap, st), end, t
            )
        if spec.kind == "hammer":
            f = hammer(c, cfg.hammer_min_hits, cfg.hammer_min_active_slots, grid, lo, end, cap, st)
            return records(f, end, cfg.hammer_min_active_slots)
        f = coordinated(
            c,
            cfg.coordinated_min_ports_per_source,
            cfg.vertical_min_ports,
            cfg.coordinated_min_sources,
            cfg.coordinated_min_ports,
            cfg.coordinated_min_disjoint,
            grid,
            lo,
            end,
            cap,
            st,
        )
        return records(f, end, cfg.coordinated_min_ports)


__all__ = [
    "FAST_KINDS",
    "KINDS",
    "SCAN_SCHEMA",
    "SLOW_KINDS",
    "US",
    "DetectStats",
    "Detector",
    "KindSpec",
    "connect",
    "kind_specs",
    "lookback_us",
    "points",
]
