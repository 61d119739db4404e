"""Source enrichment from .mmdb files and the scanner list: every record shape, both families, bad files.

The databases are written by tests/support/mmdb.py with an independent writer
(mmdb-writer); labels are checked exactly against what was written, and
against a plain per-address maxminddb loop on random addresses.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import maxminddb
import pyarrow as pa
import pytest

from pipeline.config import ConfigError, EnrichConfig
from pipeline.enrich import SOURCE_COLUMNS, Enricher
from pipeline.enrich.geo import GeoLookup
from pipeline.enrich.scanners import ScannerListError, ScannerNetworks
from tests.support import mmdb

ADDRESSES = list(mmdb.EXPECTED)


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mmdb")
    return {
        "asn": mmdb.asn_db(d / "GeoLite2-ASN.mmdb"),
        "country": mmdb.country_db(d / "GeoLite2-Country.mmdb"),
        "ipinfo": mmdb.ipinfo_db(d / "ipinfo_lite.mmdb"),
    }


def _expected(addresses: list[str | None], asn: bool = True, country: bool = True) -> list[dict[str, object]]:
    out = []
    for a in addresses:
        number, org, cc = mmdb.EXPECTED.get(a, (None, "", "")) if a is not None else (None, "", "")
        out.append(
            {"asn": number if asn else None, "as_org": org if asn else "", "country": cc if country else ""}
        )
    return out


@pytest.mark.parametrize(
    ("names", "asn", "country"),
    [
        (["asn"], True, False),
        (["country"], False, True),
        (["asn", "country"], True, True),
        (["country", "asn"], True, True),
        (["ipinfo"], True, True),
        (["ipinfo", "asn", "country"], True, True),
    ],
)
def test_every_record_shape_gives_exact_labels_for_ipv4_and_ipv6(
    dbs: dict[str, Path], names: list[str], asn: bool, country: bool
) -> None:
    geo = GeoLookup([dbs[n] for n in names])
    # Repeats, nulls, text that is no address, and IPv6 spelled two ways (one only in EXPECTED's form).
    column: list[str | None] = [*ADDRESSES, None, "not-an-ip", "", *reversed(ADDRESSES), "2001:DB8:1::5"]
    got = geo.lookup(pa.array(column)).to_pylist()
    want = _expected(column, asn, country)
    want[-1] = _expected(["2001:db8:1::5"], asn, country)[0]
    assert got == want
    # Second call: answered from the cache, the same; a dictionary array and a chunked one likewise.
    assert geo.lookup(pa.array(column)).to_pylist() == want
    assert geo.lookup(pa.array(column).dictionary_encode()).to_pylist() == want
    assert geo.lookup(pa.chunked_array([column[:5], column[5:]])).to_pylist() == want
    assert geo.failures == 0


def test_matches_a_plain_per_address_reader_loop_on_random_addresses(dbs: dict[str, Path]) -> None:
    rng = random.Random(7)
    pool = [f"198.51.100.{rng.randrange(256)}" for _ in range(300)]
    pool += [f"203.0.113.{rng.randrange(256)}" for _ in range(100)]
    pool += [f"2001:db8:{rng.randrange(1, 4)}::{rng.randrange(1 << 16):x}" for _ in range(200)]
    pool += [f"10.{rng.randrange(256)}.0.1" for _ in range(50)]
    column = [rng.choice(pool) for _ in range(5000)]
    got = GeoLookup([dbs["asn"], dbs["country"]]).lookup(pa.array(column)).to_pylist()
    asn_r, cc_r = maxminddb.open_database(str(dbs["asn"])), maxminddb.open_database(str(dbs["country"]))
    want = []
    for a in column:
        r1, r2 = asn_r.get(a) or {}, cc_r.get(a) or {}
        assert isinstance(r1, dict) and isinstance(r2, dict)
        country = r2.get("country")
        want.append(
            {
                "asn": r1.get("autonomous_system_number"),
                "as_org": r1.get("autonomous_system_organization", ""),
                "country": country["iso_code"] if isinstance(country, dict) else "",
            }
        )
    assert got == want
    assert {w["asn"] for w in want} >= {64500, 64501, 64502, 64503, None}


def test_ipv4_only_database_answers_ipv4_and_leaves_ipv6_unknown(tmp_path: Path) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN")
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"autonomous_system_number": 64999})
    path = tmp_path / "v4.mmdb"
    writer.to_db_file(str(path))
    got = GeoLookup([path]).lookup(pa.array(["198.51.100.1", "2001:db8:1::5"])).to_pylist()
    assert got == [{"asn": 64999, "as_org": "", "country": ""}, {"asn": None, "as_org": "", "country": ""}]


def test_enricher_source_columns_and_no_database_means_empty_columns(
    dbs: dict[str, Path], tmp_path: Path
) -> None:
    scanners = tmp_path / "scanners.txt"
    scanners.write_text("# research\n198.51.100.0/26 example-research  # first wins\n198.51.100.0/24 wider\n"
                        "2001:db8:2::/48 v6-scanner\n")  # fmt: skip
    enricher = Enricher(EnrichConfig(databases=(str(dbs["ipinfo"]),), scanner_networks_path=str(scanners)))
    assert enricher.has_geo and enricher.has_scanners
    table = enricher.source_columns(pa.array(ADDRESSES))
    assert table.column_names == list(SOURCE_COLUMNS)
    assert table.to_pylist() == [
        {"src_asn": n, "src_as_org": o, "src_country": c, "src_scanner": s}
        for (n, o, c), s in zip(
            mmdb.EXPECTED.values(), ["example-research", "wider", "", "", "v6-scanner", "", ""], strict=True
        )
    ]
    off = Enricher(EnrichConfig())
    assert not off.has_geo and not off.has_scanners
    assert off.source_columns(pa.array(ADDRESSES)).to_pylist() == [
        {"src_asn": None, "src_as_org": "", "src_country": "", "src_scanner": ""} for _ in ADDRESSES
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("198.51.100.0/24\n", r":1: expected 'CIDR LABEL', got 1"),
        ("# ok\n\n198.51.100.1/24 x\n", r":3: .*host bits set"),
        ("198.51.100.0/24 <script>\n", r":1: label '<script>'"),
        ("nonsense label\n", r":1: .*does not appear to be"),
        ("198.51.100.0/24 a b\n", r":1: expected 'CIDR LABEL', got 3"),
    ],
)
def test_scanner_list_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.txt"
    path.write_text(text)
    with pytest.raises(ScannerListError, match=message):
        ScannerNetworks(path)
    with pytest.raises(ConfigError, match=r"\[enrich\] scanner_networks_path: .*s\.txt" + message):
        Enricher(EnrichConfig(scanner_networks_path=str(path)))


def test_example_scanner_list_in_deploy_parses() -> None:
    listed = ScannerNetworks(Path(__file__).parent.parent / "deploy" / "scanners.example.txt")
    assert len(listed) >= 2
    assert listed.label(pa.array(["192.0.2.77", "2001:db8:5ca::1", "8.8.8.8"])).to_pylist()[2] == ""


def _corrupt(dbs: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    good = dbs["asn"].read_bytes()
    random_bytes = tmp_path / "random.mmdb"
    random_bytes.write_bytes(random.Random(1).randbytes(4096))
    truncated = tmp_path / "truncated.mmdb"
    truncated.write_bytes(good[: len(good) // 3])  # the metadata at the end is gone
    tree_zeroed = tmp_path / "tree-zeroed.mmdb"
    tree_zeroed.write_bytes(b"\xff" * 64 + good[64:])  # the search tree's first nodes point nowhere
    empty = tmp_path / "empty.mmdb"
    empty.write_bytes(b"")
    directory = tmp_path / "a-directory.mmdb"
    directory.mkdir(exist_ok=True)
    return {
        "missing": tmp_path / "missing.mmdb",
        "random": random_bytes,
        "truncated": truncated,
        "tree": tree_zeroed,
        "empty": empty,
        "directory": directory,
    }


@pytest.mark.parametrize("kind", ["missing", "random", "truncated", "tree", "empty", "directory"])
def test_missing_or_corrupt_database_is_a_config_error_naming_it(
    dbs: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    bad = _corrupt(dbs, tmp_path)[kind]
    with pytest.raises(ConfigError, match=r"\[enrich\] databases: " + str(bad)):
        Enricher(EnrichConfig(databases=(str(dbs["country"]), str(bad))))


@pytest.mark.parametrize("kind", ["missing", "truncated"])
def test_validate_and_top_stop_at_start_on_a_bad_database(
    dbs: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    bad = _corrupt(dbs, tmp_path)[kind]
    cfg = tmp_path / "fireplot.toml"
    cfg.write_text(f'[enrich]\ndatabases = ["{bad}"]\n[worker]\nstore_dir = "{tmp_path / "store"}"\n')
    for args in (["validate"], ["top", "--since", "2026-11-27T00:00:00Z"]):
        rv = subprocess.run(
            [sys.executable, "-m", "fireplot", "-c", str(cfg), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rv.returncode == 2, (args, rv.stderr)
        assert f"configuration error: [enrich] databases: {bad}" in rv.stderr
        assert "Traceback" not in rv.stderr


def test_validate_reports_the_opened_databases(dbs: dict[str, Path], tmp_path: Path) -> None:
    import json

    cfg = tmp_path / "fireplot.toml"
    cfg.write_text(f'[enrich]\ndatabases = ["{dbs["asn"]}", "{dbs["ipinfo"]}"]\n')
    rv = subprocess.run(
        [sys.executable, "-m", "fireplot", "-c", str(cfg), "validate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rv.returncode == 0, rv.stderr
    opened = json.loads(rv.stdout)["enrich"]["opened"]
    assert [(o["path"], o["database_type"], o["ip_version"]) for o in opened] == [
        (str(dbs["asn"]), "GeoLite2-ASN", 6),
        (str(dbs["ipinfo"]), "ipinfo lite", 6),
    ]
