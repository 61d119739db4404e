"""``fireplot top`` end to end: a real store, its rollups, .mmdb files -> exact talkers; and the CSV.

The oracle is computed here from the raw events the store returns for the same
range, grouped in plain Python: events, distinct ports, targets and sources per
key, with the labels tests/support/mmdb.py wrote. ``top`` must agree exactly
whichever way each hour is read: a current rollup, a stale one (a late file
arrived), no rollup, or an hour the range cuts.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from consumers.web import export
from consumers.web.feeds.filters import Filters
from pipeline import rollup
from pipeline.config import EnrichConfig
from pipeline.enrich import Enricher
from pipeline.store import OffsetRange, Store
from tests.support import mmdb
from tests.support.events import row, table

T0 = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
SOURCES = [*mmdb.EXPECTED, "192.0.2.200"]
SCANNERS = (
    "198.51.100.0/25 example-research\n2001:db8:2::/48 example-research\n203.0.113.0/24 other-scanner\n"
)


def _events(rng: random.Random, start: dt.datetime, n: int, offset: int, site: str) -> pa.Table:
    rows = []
    for i in range(n):
        src = rng.choice(SOURCES)
        v6 = ":" in src
        rows.append(
            row(
                start + dt.timedelta(seconds=rng.randrange(3600)),
                offset + i,
                site=site,
                src_ip=src,
                dst_ip=rng.choice(
                    ["2001:db8:ffff::1", "2001:db8:ffff::2"]
                    if v6
                    else ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
                ),
                ip_version=6 if v6 else 4,
                dst_port=rng.choice([22, 23, 80, 443, 3389, 8080, None]),
                proto="TCP",
                count=rng.choice([1, 1, 1, 3]),
                source_id=f"{site}:test",
            )
        )
    return table(rows)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("top")
    store = Store(root / "store")
    rng = random.Random(19)
    offset = 0
    for site in ("a", "b"):
        for h in range(4):  # 10:00 .. 13:59
            t = _events(rng, T0 + dt.timedelta(hours=h), 150, offset, site)
            store.write_events(OffsetRange("events", 0 if site == "a" else 1, offset, offset), t)
            offset += 1000
    # Rollups of every hour, then a late file into 11:00 of site a: that rollup is stale now.
    assert rollup.update(store, 0.0, now=T0 + dt.timedelta(days=2)) == 8
    late = _events(rng, T0 + dt.timedelta(hours=1), 40, offset, "a")
    store.write_events(OffsetRange("events", 0, offset, offset), late)
    # Site b's 12:00 rollup is deleted: computed from events.
    rollup.rollup_path(store, "talker_hour", "b", T0.date(), 12).unlink()
    dbs = root / "db"
    dbs.mkdir()
    scanners = root / "scanners.txt"
    scanners.write_text(SCANNERS)
    cfg = root / "fireplot.toml"
    cfg.write_text(
        f'[worker]\nstore_dir = "{store.root}"\n[enrich]\n'
        f'databases = ["{mmdb.asn_db(dbs / "asn.mmdb")}", "{mmdb.country_db(dbs / "country.mmdb")}"]\n'
        f'scanner_networks_path = "{scanners}"\n'
    )
    return {"store": store, "cfg": cfg, "scanners": scanners, "dbs": dbs}


def _label(src: str) -> str:
    if (src.startswith("198.51.100.") and int(src.rsplit(".", 1)[1]) < 128) or src.startswith("2001:db8:2:"):
        return "example-research"
    return "other-scanner" if src.startswith("203.0.113.") else ""


def _oracle(events: pa.Table, by: str, scanners: str = "include") -> list[dict[str, Any]]:
    acc: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {"events": 0, "ports": set(), "targets": set(), "sources": set()}
    )
    for e in events.to_pylist():
        src = e["src_ip"]
        listed = _label(src) != ""
        if (scanners == "exclude" and listed) or (scanners == "only" and not listed):
            continue
        asn, _, cc = mmdb.EXPECTED.get(src, (None, "", ""))
        key = {"src": src, "asn": asn, "country": cc, "label": _label(src), "port": e["dst_port"]}[by]
        a = acc[key]
        a["events"] += e["count"]
        if e["dst_port"] is not None:
            a["ports"].add(e["dst_port"])
        a["targets"].add(e["dst_ip"])
        a["sources"].add(src)
    rows = [{"key": k, "events": v["events"], "ports": len(v["ports"]), "targets": len(v["targets"]),
             "sources": len(v["sources"])} for k, v in acc.items()]  # fmt: skip
    return sorted(rows, key=lambda r: (-r["events"], r["key"] is None, str(r["key"])))


def _top(world: dict[str, Any], *args: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rv = subprocess.run(
        [
            sys.executable,
            "-m",
            "fireplot",
            "-c",
            str(world["cfg"]),
            "top",
            "--json",
            "--limit",
            "1000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rv.returncode == 0, rv.stderr
    return [json.loads(line) for line in rv.stdout.splitlines()], json.loads(
        rv.stderr.strip().splitlines()[-1]
    )


SINCE, UNTIL = T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(hours=3, minutes=30)


@pytest.mark.parametrize("by", ["src", "asn", "country", "label", "port"])
def test_top_matches_the_events_exactly_whichever_way_each_hour_is_read(
    world: dict[str, Any], by: str
) -> None:
    got, meta = _top(world, "--since", SINCE.isoformat(), "--until", UNTIL.isoformat(), "--by", by)
    events = world["store"].read(SINCE, UNTIL)
    want = _oracle(events, by)
    key_order = lambda r: (-r["events"], r["key"] is None, str(r["key"]))  # noqa: E731
    assert [
        {k: r[k] for k in ("key", "events", "ports", "targets", "sources")}
        for r in sorted(got, key=key_order)
    ] == want
    assert sum(r["events"] for r in got) == sum(events.column("count").to_pylist())
    # a: 11:00 stale, 12:00 current; b: 11:00 current, 12:00 without a rollup; 10:00, 13:00 cut (both).
    assert (meta["hours_from_rollup"], meta["hours_from_events"]) == (2, 6)
    assert meta["geo"] is True and meta["scanners"] is True
    if by == "src":
        for r in got:
            asn, org, cc = mmdb.EXPECTED.get(r["key"], (None, "", ""))
            assert (r["src_asn"], r["src_as_org"], r["src_country"], r["src_scanner"]) == (
                asn,
                org,
                cc,
                _label(r["key"]),
            )
    if by == "asn":
        orgs = {asn: org for asn, org, _ in mmdb.EXPECTED.values() if asn is not None}
        assert {r["key"]: r.get("as_org") for r in got if r["key"] is not None} == orgs


def test_top_whole_hours_read_only_current_rollups_and_sites_and_scanner_filters(
    world: dict[str, Any],
) -> None:
    since, until = T0, T0 + dt.timedelta(hours=4)
    for scanners in ("include", "exclude", "only"):
        got, meta = _top(world, "--since", since.isoformat(), "--until", until.isoformat(), "--site", "a",
                         "--scanners", scanners)  # fmt: skip
        events = world["store"].read(since, until, sites=["a"])
        assert [{k: r[k] for k in ("key", "events", "ports", "targets", "sources")} for r in got] == _oracle(
            events, "src", scanners
        )
        # Site a: 10, 12, 13 from the rollup; 11 stale (late file) from events.
        assert (meta["hours_from_rollup"], meta["hours_from_events"]) == (3, 1)


def test_top_table_and_no_database(world: dict[str, Any], tmp_path: Path) -> None:
    cfg = tmp_path / "plain.toml"
    cfg.write_text(f'[worker]\nstore_dir = "{world["store"].root}"\n')
    rv = subprocess.run(
        [sys.executable, "-m", "fireplot", "-c", str(cfg), "top", "--since", T0.isoformat(), "--until",
         (T0 + dt.timedelta(hours=4)).isoformat(), "--by", "asn"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert rv.returncode == 0, rv.stderr
    lines = rv.stdout.splitlines()
    assert lines[0].split() == ["ASN", "events", "ports", "targets", "sources", "organisation"]
    # Without a database every source is of an unknown ASN: one row holding everything.
    total = sum(world["store"].read(T0, T0 + dt.timedelta(hours=4)).column("count").to_pylist())
    assert lines[1].split()[:2] == ["unknown", f"{total:,}"] and len(lines) == 2


def test_csv_export_carries_exact_enrichment_columns_neutralised(world: dict[str, Any]) -> None:
    enricher = Enricher(
        EnrichConfig(
            databases=(str(world["dbs"] / "asn.mmdb"), str(world["dbs"] / "country.mmdb")),
            scanner_networks_path=str(world["scanners"]),
        )
    )
    start, end = T0, T0 + dt.timedelta(hours=4)
    t = export.visible_events(world["store"], start, end, 0, 1e9, "a", Filters(), 10**6, enricher)
    rows = list(csv.DictReader(io.StringIO(export.to_csv(t))))
    assert list(rows[0]) == export.CSV_COLUMNS
    assert len(rows) == world["store"].read(start, end, sites=["a"]).num_rows
    seen = set()
    for r in rows:
        asn, org, cc = mmdb.EXPECTED.get(r["src_ip"], (None, "", ""))
        if org.startswith("="):
            org = "'" + org  # a formula-like organisation name stays text in a spreadsheet
        assert (r["src_asn"], r["src_as_org"], r["src_country"], r["src_scanner"]) == (
            "" if asn is None else str(asn),
            org,
            cc,
            _label(r["src_ip"]),
        )
        seen.add(r["src_ip"])
    assert seen == set(SOURCES)
    # Without [enrich] databases the columns are there and empty.
    plain = export.visible_events(world["store"], start, end, 0, 1e9, "a", Filters(), 10**6)
    assert {(r["src_asn"], r["src_as_org"], r["src_country"], r["src_scanner"]) for r in
            csv.DictReader(io.StringIO(export.to_csv(plain)))} == {("", "", "", "")}  # fmt: skip
