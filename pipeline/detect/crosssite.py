"""Cross-site scans: one source detected scanning at several sites within one slow epoch.

Read from the other kinds' records (the scan dataset), not from events: a source counts at
a site once some detector found it scanning there.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import DetectConfig
from pipeline.detect.records import SCAN_SCHEMA, days_spanned, epoch_scan_id


def cross_site(scans: pa.Table, cfg: DetectConfig, epoch_us: int) -> pa.Table:
    """Sources detected scanning at several sites within one slow epoch, from the other kinds' scans."""
    # A distributed scan's sources are each below every threshold: not a source's scan.
    base = scans.filter(
        pc.invert(pc.is_in(scans.column("kind"), value_set=pa.array(["cross_site", "distributed"])))
    )
    if base.num_rows == 0:
        return SCAN_SCHEMA.empty_table()
    flat = pa.table(
        {
            "src": pc.list_flatten(base.column("sources")),
            "i": pc.list_parent_indices(base.column("sources")),
        }
    )
    row = flat.column("i")
    epoch = pc.divide(pc.cast(pc.cast(base.column("first_ts"), pa.int64()), pa.int64()), epoch_us)
    flat = flat.append_column("epoch", pc.take(epoch, row)).append_column(
        "site", pc.take(base.column("site"), row)
    )
    g = flat.group_by(["src", "epoch"]).aggregate([("site", "count_distinct"), ("i", "list")])
    g = g.filter(pc.greater_equal(g.column("site_count_distinct"), cfg.cross_site_min_sites))
    recs: list[dict[str, Any]] = []
    for src, ep, idx in zip(
        g.column("src").to_pylist(),
        g.column("epoch").to_pylist(),
        g.column("i_list").to_pylist(),
        strict=True,
    ):
        part = base.take(pa.array(sorted(set(idx))))
        sites = sorted(set(part.column("site").to_pylist()))
        pmins = [p for p in part.column("port_min").to_pylist() if p is not None]
        pmaxs = [p for p in part.column("port_max").to_pylist() if p is not None]
        recs.append(
            {
                "scan_id": epoch_scan_id("cross_site", (src,), ep, 0),
                "kind": "cross_site",
                "site": "*",
                "sources": [src],
                "first_ts": pc.min(part.column("first_ts")).as_py(),
                "last_ts": pc.max(part.column("last_ts")).as_py(),
                "detected_at": pc.min(part.column("detected_at")).as_py(),
                "port_min": min(pmins) if pmins else None,
                "port_max": max(pmaxs) if pmaxs else None,
                "distinct_ports": int(pc.max(part.column("distinct_ports")).as_py()),
                "distinct_targets": int(pc.sum(part.column("distinct_targets")).as_py()),
                "packets": int(pc.sum(part.column("packets")).as_py()),
                "sites": sites,
                "score": float(len(sites)) / cfg.cross_site_min_sites,
                "lower_bound": bool(pc.any(part.column("lower_bound")).as_py()),
                "status": "closed"
                if all(s == "closed" for s in part.column("status").to_pylist())
                else "open",
                "epoch_start": ep * epoch_us,
                "order": None,
                "tau": None,
                "days_spanned": days_spanned(
                    int(pc.min(pc.cast(part.column("first_ts"), pa.int64())).as_py()),
                    int(pc.max(pc.cast(part.column("last_ts"), pa.int64())).as_py()),
                ),
                "distributed": False,
            }
        )
    if not recs:
        return SCAN_SCHEMA.empty_table()
    for r in recs:
        r["epoch_start"] = pa.scalar(r["epoch_start"], pa.int64()).cast(pa.timestamp("us", tz="UTC")).as_py()
    return pa.Table.from_pylist(recs, schema=SCAN_SCHEMA).sort_by([("scan_id", "ascending")])
