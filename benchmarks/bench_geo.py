"""How fast source enrichment from .mmdb files is, next to the obvious way, in one run.

    python -m benchmarks.bench_geo [--rows 1000000] [--sources 50000] [--networks 4000] [--repeat 3]

A day of ``--rows`` events from ``--sources`` distinct sources (80% IPv4, 20%
IPv6, a Zipf mix: a few sources send most events) against an ASN file and a
country file written here with mmdb-writer (``--networks`` networks each, in
the GeoLite2 record shapes). Ours: ``GeoLookup.lookup`` (dictionary-code the
column, look each distinct address up once, take), cold (a new lookup, empty
cache) and warm (the same column again: the web page's next load). Reference:
a plain per-row loop over both readers with a dict cache of addresses seen (the
cache-per-address any careful Python would write); and the same loop without a
cache. Every reference must give our answer, or the numbers mean nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import maxminddb
import numpy as np
import pyarrow as pa

from benchmarks.harness import best_of, report
from pipeline.enrich.geo import GeoLookup


def _databases(directory: Path, networks: int, rng: np.random.Generator) -> tuple[Path, Path]:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    country = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    codes = ["DE", "US", "CN", "NL", "RU", "BR", "FR", "JP"]
    for i in range(networks):
        # /16s of IPv4 (every 4th), /32s of IPv6 under 2001:db8::/20-ish space.
        net = f"{(i % 200) + 20}.{i // 200 * 4 % 256}.0.0/16" if i % 5 else f"2001:{0xD00 + i:x}::/32"
        a = int(rng.integers(1000, 400000))
        asn.insert_network(
            IPSet([net]), {"autonomous_system_number": a, "autonomous_system_organization": f"AS {a} Org"}
        )
        cc = codes[i % len(codes)]
        country.insert_network(
            IPSet([net]), {"country": {"iso_code": cc, "names": {"en": cc}}, "continent": {"code": "EU"}}
        )
    a_path, c_path = directory / "asn.mmdb", directory / "country.mmdb"
    asn.to_db_file(str(a_path))
    country.to_db_file(str(c_path))
    return a_path, c_path


def _sources(n: int, rng: np.random.Generator) -> list[str]:
    out = []
    for i in range(n):
        if i % 5:
            a = rng.integers(20 << 24, 224 << 24)
            out.append(f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}")
        else:
            out.append(f"2001:{0xD00 + int(rng.integers(0, 1200)):x}::{int(rng.integers(1, 1 << 16)):x}")
    return out


def _cpu(fn: Any) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sources", type=int, default=50_000, help="distinct source addresses")
    ap.add_argument("--networks", type=int, default=4000, help="networks in each database")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(19)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        paths = _databases(Path(tmp), args.networks, rng)
        print(f"(wrote two databases of {args.networks:,} networks in {time.perf_counter() - t:.1f} s)")
        sources = np.array(_sources(args.sources, rng), dtype=object)
        pick = np.minimum(rng.zipf(1.2, args.rows) - 1, args.sources - 1)
        # Every source appears at least once: the cold run looks each up.
        pick[: args.sources] = np.arange(args.sources)
        addresses = pa.array(sources[rng.permutation(pick)], pa.string())
        n = args.rows

        def cold() -> pa.Table:
            return GeoLookup(paths).lookup(addresses)

        warm_lookup = GeoLookup(paths)
        ours = warm_lookup.lookup(addresses)
        readers = [maxminddb.open_database(str(p)) for p in paths]

        def one(address: str) -> tuple[Any, str, str]:
            r1, r2 = readers[0].get(address), readers[1].get(address)
            asn = r1.get("autonomous_system_number") if isinstance(r1, dict) else None
            org = r1.get("autonomous_system_organization", "") if isinstance(r1, dict) else ""
            c = r2.get("country") if isinstance(r2, dict) else None
            return asn, org, c["iso_code"] if isinstance(c, dict) else ""

        def per_row_cached() -> pa.Table:
            seen: dict[str, tuple[Any, str, str]] = {}
            rows = []
            for a in addresses.to_pylist():
                hit = seen.get(a)
                if hit is None:
                    hit = seen[a] = one(a)
                rows.append(hit)
            asn, org, cc = zip(*rows, strict=True)
            return pa.table({"asn": pa.array(asn, pa.int64()), "as_org": org, "country": cc})

        def per_row() -> pa.Table:
            asn, org, cc = zip(*(one(a) for a in addresses.to_pylist()), strict=True)
            return pa.table({"asn": pa.array(asn, pa.int64()), "as_org": org, "country": cc})

        reference = per_row_cached()
        plain = ours.cast(reference.schema)
        assert plain.equals(reference), "ours and the per-row loop disagree"
        known = ours.column("asn").null_count
        print(f"{n:,} events, {args.sources:,} sources, {n - known:,} events with an ASN")
        title = f"ASN + organisation + country, {n:,} events, {args.sources:,} distinct sources"
        t_cold = best_of(args.repeat, cold)
        t_warm = best_of(args.repeat, lambda: warm_lookup.lookup(addresses))
        t_ref = best_of(1, per_row_cached)
        report(title + " (cold cache)", "events", n, t_cold, "row+cache", t_ref)
        report(title + " (warm cache)", "events", n, t_warm, "row+cache", t_ref)
        coded = addresses.dictionary_encode()
        t_coded = best_of(args.repeat, lambda: warm_lookup.lookup(coded))
        report(title + " (warm, column read dictionary-coded)", "events", n, t_coded, "row+cache", t_ref)
        # The goal is per core: CPU seconds of the process (a shared machine stretches wall time).
        for name, fn in (("cold", cold), ("warm", lambda: warm_lookup.lookup(addresses))):
            cpu = min(_cpu(fn) for _ in range(args.repeat))
            print(f"  fireplot {name}: {cpu:.3f} CPU s for {n:,} events (goal <= 0.2 s per core)")
        t_plain = best_of(1, per_row)
        report(title + " (cold cache)", "events", n, t_cold, "per row", t_plain)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
