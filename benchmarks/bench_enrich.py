"""How fast read-time enrichment is, next to the obvious alternatives, in one run.

    python -m benchmarks.bench_enrich [--rows 1000000] [--sources 50000] [--repeat 3]

Service names: ``pipeline.enrich.service_names`` against (a) a pyarrow hash
join of the events' (port, protocol) onto the shipped service table and (b) a
per-row Python dict lookup. Network labels: ``Enricher.network_labels``
against the way ``EdgeFilter`` matched before (``ipaddress`` per distinct
address, then ``is_in``) and a per-row ``ipaddress`` loop, on a mixed day and
on an IPv6 scan where nearly every source is new. Every reference
must give the same answer as ours, or the numbers mean nothing; the script checks.
"""

from __future__ import annotations

import argparse
import ipaddress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.harness import best_of, report
from pipeline.config import EnrichConfig
from pipeline.enrich import Enricher, service_names, services_table

NETWORKS = ("dmz=192.0.2.0/28", "office=192.0.2.0/24", "lab=10.0.0.0/8", "v6=2001:db8::/32")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sources", type=int, default=50_000, help="distinct source addresses")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n = args.rows

    # Scans hit low ports most: a Zipf-ish mix of ports, mostly TCP.
    ports = pa.array(np.minimum(rng.zipf(1.3, n), 65535).astype(np.int32))
    protos = pa.array(np.array(["TCP", "UDP", "ICMP"])[rng.choice(3, n, p=[0.7, 0.25, 0.05])])
    ours = service_names(ports, protos)

    table = services_table()
    services = table.set_column(1, "protocol", pc.utf8_upper(table.column("protocol")))

    def joined() -> pa.Array:
        events = pa.table({"row": pa.array(np.arange(n)), "port": ports, "protocol": protos})
        out = events.join(services, ["port", "protocol"], join_type="left outer").sort_by("row")
        return pc.fill_null(out.column("name"), "").combine_chunks()

    lookup = {
        (p, proto): name
        for p, proto, name in zip(
            *(services.column(c).to_pylist() for c in services.column_names), strict=True
        )
    }

    def per_row() -> pa.Array:
        return pa.array([lookup.get(k, "") for k in zip(ports.to_pylist(), protos.to_pylist(), strict=True)])

    assert ours.equals(joined()) and ours.equals(per_row()), "references disagree with service_names"
    t_ours = best_of(args.repeat, lambda: service_names(ports, protos))
    report(f"service names, {n:,} rows", "rows", n, t_ours, "pa join", best_of(args.repeat, joined))
    report(f"service names, {n:,} rows", "rows", n, t_ours, "dict/row", best_of(1, per_row))

    v4 = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(0, 256, (args.sources, 4))]
    v4[: args.sources // 4] = [f"192.0.2.{d}" for d in rng.integers(0, 256, args.sources // 4)]
    v4[args.sources // 4 : args.sources // 2] = [
        f"10.0.{c}.{d}" for c, d in rng.integers(0, 256, (args.sources // 4, 2))
    ]
    v6 = [
        str(ipaddress.IPv6Address((0x20010DB8 << 96) | int(x)))
        for x in rng.integers(0, 1 << 62, args.sources // 10)
    ]
    distinct = np.array(v4 + v6, dtype=object)
    addresses = pa.array(distinct[rng.integers(0, len(distinct), n)], pa.string())
    enricher = Enricher(EnrichConfig(networks=NETWORKS))
    named = [(label, ipaddress.ip_network(cidr)) for label, _, cidr in (e.partition("=") for e in NETWORKS)]

    def label(text: str) -> str:
        ip = ipaddress.ip_address(text)
        return next((lab for lab, net in named if net.version == ip.version and ip in net), "")

    def per_distinct() -> pa.Array:
        values = pc.unique(addresses)
        labels = pa.array([label(a) for a in values.to_pylist()], pa.string())
        return labels.take(pc.index_in(addresses, value_set=values))

    def per_row_labels() -> pa.Array:
        return pa.array([label(a) for a in addresses.to_pylist()], pa.string())

    mine = enricher.network_labels(addresses)
    assert mine.equals(per_distinct()), "per-distinct ipaddress disagrees with network_labels"
    t_ours = best_of(args.repeat, lambda: enricher.network_labels(addresses))
    title = f"network labels, {n:,} rows, {len(distinct):,} distinct addresses"
    report(title, "rows", n, t_ours, "ipaddr/uniq", best_of(args.repeat, per_distinct))
    t_row = best_of(1, per_row_labels)
    report(title, "rows", n, t_ours, "ipaddr/row", t_row)

    # An IPv6 scan from a whole prefix: nearly every source is new.
    v6_scan = [
        str(ipaddress.IPv6Address((0x20010DB8 << 96) | int(x))) for x in rng.integers(0, 1 << 62, n // 5)
    ]
    addresses = pa.array(np.array(v6_scan, dtype=object)[rng.integers(0, len(v6_scan), n)], pa.string())
    assert enricher.network_labels(addresses).equals(per_distinct()), "IPv6 labels disagree with ipaddress"
    t_ours = best_of(args.repeat, lambda: enricher.network_labels(addresses))
    title = f"network labels, IPv6 scan: {n:,} rows, {len(set(v6_scan)):,} distinct sources"
    report(title, "rows", n, t_ours, "ipaddr/uniq", best_of(args.repeat, per_distinct))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
