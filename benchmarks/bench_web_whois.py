"""What ASN/country enrichment adds to the web day view's server time, next to DuckDB, in one run.

    python -m benchmarks.bench_web_whois [--day-events 150000] [--repeats 3]

A day of ``--day-events`` events (at most the page's point budget, so every event
is a raw dot carrying its source, the case enrichment touches; a larger day is
binned and its bins get empty columns) in a real store, and an ASN and a country
file written with mmdb-writer in the GeoLite2 shapes, naming every source's network. Ours:
the page's path for a view, ``DayFeed.load`` then ``whois.dot_columns``: without
databases (enrichment off), with them on a cold enricher (a new one each time: a
server's first page of the day's sources) and on a warm one (the next page, the
shared enricher's address cache). Reference: DuckDB reading the same day's dot
columns from the same files (less work than ours, which also builds the plot's colours, series,
labels and dictionary-coded text: the ratio that matters is on/off). The binned 1M-event day of
``bench_web_view`` gets empty enrichment columns (bins have no single source), so its time is
unchanged. Times are best of ``--repeats``, taken in turns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from benchmarks.bench_web_view import MAX_POINTS, best_in_turns, discard, filled, side_by_side
from consumers.web import whois
from consumers.web.feeds.day import DayFeed
from pipeline.config import EnrichConfig
from pipeline.enrich import Enricher
from pipeline.store import Store


def day_databases(directory: Path) -> tuple[Path, Path]:
    """ASN and country files (GeoLite2 shapes) naming every /24 of 198.18.0.0/16, where the
    synthetic day's sources are: one ASN per /22 and eight countries, so every dot has a label."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    country = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    codes = ["DE", "US", "CN", "NL", "RU", "BR", "FR", "JP"]
    for third in range(256):
        net = IPSet([f"198.18.{third}.0/24"])
        number = 64_512 + third // 4
        asn.insert_network(
            net, {"autonomous_system_number": number, "autonomous_system_organization": f"Bench Net {number}"}
        )
        country.insert_network(net, {"country": {"iso_code": codes[third % len(codes)]}})
    paths = directory / "asn.mmdb", directory / "country.mmdb"
    asn.to_db_file(str(paths[0]))
    country.to_db_file(str(paths[1]))
    return paths


def duckdb_dots(store: Store, day: dt.date) -> pa.Table:
    """The day's dots as the page draws them (time, port, protocol, family, source), from the files."""
    files = f"{store.events_root}/site=*/date=*/hour=*/*.parquet"
    con = duckdb.connect()
    try:
        query = """SELECT ts, dst_port, proto, ip_version, src_ip
                   FROM read_parquet(?, hive_partitioning = true) WHERE date = ?::DATE ORDER BY ts"""
        table: pa.Table = con.sql(query, params=[files, day]).to_arrow_table()
        return table
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--day-events", type=int, default=MAX_POINTS)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.day_events > MAX_POINTS:
        raise SystemExit(
            f"--day-events must be at most the point budget ({MAX_POINTS:,}): larger days are binned"
        )
    day = dt.date(2026, 11, 27)
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-whois-") as tmp:
        root = Path(tmp)
        store = filled(root / "store", [day], args.day_events, rollups=False)
        asn, country = day_databases(root)
        on = EnrichConfig(databases=(str(asn), str(country)))
        off_enricher, warm = Enricher(EnrichConfig()), Enricher(on)
        feed = DayFeed(store, day, None, MAX_POINTS)
        frame = feed.load()
        assert feed.bucket is None, "a day within the point budget is drawn as raw dots"
        shown = whois.dot_columns(warm, frame.data)
        ref = duckdb_dots(store, day)
        assert ref.num_rows == len(shown["asn"]) == args.day_events, (ref.num_rows, len(shown["asn"]))
        known = int(np.count_nonzero(shown["asn"] != ""))
        assert known == args.day_events, (
            f"only {known:,} dots got an ASN: the databases must name every source"
        )
        print(f"{args.day_events:,} raw dots, {feed.sources:,} distinct sources, {known:,} dots with an ASN")

        def view(enricher: Enricher) -> None:
            discard(whois.dot_columns(enricher, feed.load().data))

        off_s, cold_s, warm_s, ref_s = best_in_turns(
            args.repeats,
            lambda: view(off_enricher),
            lambda: view(Enricher(on)),
            lambda: view(warm),
            lambda: discard(duckdb_dots(store, day)),
        )
        goal = "goal: <= 1 s; the reference only reads the columns, ours also builds the plot's"
        side_by_side("day view, enrichment off", off_s, ref_s, goal)
        side_by_side("day view, ASN + country on, cold enricher", cold_s, ref_s, goal)
        side_by_side("day view, ASN + country on, warm enricher", warm_s, ref_s, goal)
        print(f"\nenrichment adds: cold {cold_s - off_s:+.3f} s ({cold_s / off_s:.2f}x), "
              f"warm {warm_s - off_s:+.3f} s ({warm_s / off_s:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
