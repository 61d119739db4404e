"""Read-time enrichment: IANA service names and inside-network labels, column by column."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from consumers.web.feeds.columns import empty_data
from consumers.web.feeds.day import DayFeed
from pipeline.config import ConfigError, EnrichConfig, ShipperConfig, load
from pipeline.enrich import SOURCE_COLUMNS, Enricher, service_names, services_table
from pipeline.event import SCHEMA_VERSION, conform
from pipeline.filters import DROP_INSIDE, EdgeFilter
from pipeline.networks import NetworkTable, parse_ipv6
from pipeline.store import OffsetRange, Store

REPO = Path(__file__).resolve().parents[1]


class TestServiceNames:
    """service_names: the shipped IANA data joined onto (port, protocol) columns."""

    def test_well_known_ports_get_their_iana_names(self) -> None:
        """22/tcp is ssh, 53/udp domain, 443/tcp https; event protocols are upper case."""
        rv = service_names(pa.array([22, 53, 443, 53], pa.int32()), pa.array(["TCP", "UDP", "TCP", "tcp"]))
        assert rv.to_pylist() == ["ssh", "domain", "https", "domain"]

    def test_unknown_port_portless_packet_or_other_protocol_gets_empty_name(self) -> None:
        """Unregistered ports, null ports, ICMP and numeric protocols are "" (never null, never a guess)."""
        ports = pa.array([49999, None, 22, 22, 65535, 0], pa.int32())
        protos = pa.array(["TCP", "ICMP", "ICMP", "47", "UDP", "TCP"])
        rv = service_names(ports, protos)
        assert rv.to_pylist() == ["", "", "", "", "", ""]

    def test_million_rows_are_named_without_a_row_loop(self) -> None:
        """1M rows of a mix come back named exactly like a per-row lookup of the shipped table."""
        table = services_table()
        known = {
            (p, proto.upper()): name
            for p, proto, name in zip(
                table.column("port").to_pylist(),
                table.column("protocol").to_pylist(),
                table.column("name").to_pylist(),
                strict=True,
            )
        }
        rng = np.random.default_rng(4)
        n = 1_000_000
        ports = rng.integers(0, 1100, n).astype(np.int32)
        protos = np.array(["TCP", "UDP", "ICMP", "SCTP"])[rng.integers(0, 4, n)]
        rv = service_names(pa.array(ports), pa.array(protos))
        assert n == len(rv)
        # Check against the dictionary on the distinct pairs, then count rows per pair.
        pairs = pa.table({"port": ports, "proto": protos, "name": rv})
        grouped = pairs.group_by(["port", "proto", "name"]).aggregate([])
        keys = zip(grouped["port"].to_pylist(), grouped["proto"].to_pylist(), strict=True)
        expected = [known.get(key, "") for key in keys]
        assert expected == grouped["name"].to_pylist()
        assert len(grouped) == len(pairs.group_by(["port", "proto"]).aggregate([]))
        assert pc.sum(pc.equal(rv, "ssh")).as_py() == int(((ports == 22) & (protos == "TCP")).sum())

    def test_shipped_data_file_names_its_provenance(self) -> None:
        """The package data says where it came from and carries hundreds of assignments."""
        from importlib import resources

        text = resources.files("pipeline").joinpath("data", "services.csv").read_text()
        assert "IANA" in text and "netbase" in text and "GPL-2" in text
        assert services_table().num_rows > 250

    def test_built_package_ships_the_service_data_and_finds_it_outside_the_checkout(
        self, tmp_path: Path
    ) -> None:
        """setuptools' build (what a wheel installs) holds the CSV, and an import from there names ports.

        ``build_py`` is the step of ``bdist_wheel`` that lays out packages and
        package data; the ``wheel`` package itself is not installable offline here.
        """
        src, lib = tmp_path / "src", tmp_path / "lib"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, src / name)
        for package in ("fireplot", "pipeline", "producers", "consumers"):
            shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(
            [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib",
             str(lib)],
            check=True, capture_output=True, timeout=300, cwd=src,
        )  # fmt: skip
        assert (lib / "pipeline" / "data" / "services.csv").is_file()
        probe = (
            "import pipeline, pyarrow as pa; from pipeline.enrich import service_names; "
            "print(pipeline.__file__); print(service_names(pa.array([22]), pa.array(['TCP']))[0])"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe],
            check=True, capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(lib)},
        ).stdout.split()  # fmt: skip
        assert out[0].startswith(str(lib)), "the probe imported the editable checkout, not the build"
        assert out[1] == "ssh"


class TestNetworkLabels:
    """[enrich] networks: named CIDRs, v4 and v6, first match wins."""

    CFG = EnrichConfig(
        networks=(
            "dmz=192.0.2.0/28",
            "office=192.0.2.0/24",
            "office=2001:db8:1::/48",
            "lab=10.0.0.0/8",
            "v6-rest=2001:db8::/32",
        )
    )

    def test_addresses_get_the_label_of_the_first_network_holding_them(self) -> None:
        """Order matters: the /28 DMZ inside the office /24 keeps its own name; v6 works alike."""
        addrs = pa.array(
            ["192.0.2.5", "192.0.2.200", "10.9.8.7", "198.51.100.1", "2001:db8:1::7", "2001:db8:2::1",
             "2001:db9::1", None, "not an address", "::ffff:192.0.2.5"]
        )  # fmt: skip
        rv = Enricher(self.CFG).network_labels(addrs)
        assert rv.to_pylist() == ["dmz", "office", "lab", "", "office", "v6-rest", "", "", "", ""]

    def test_labels_agree_with_ipaddress_on_many_random_addresses(self) -> None:
        """200k random rows (v4 and v6) are labelled exactly as ipaddress would, network by network."""
        rng = np.random.default_rng(7)
        v4 = [f"10.{a}.{b}.{c}" for a, b, c in rng.integers(0, 256, (3000, 3))]
        v4 += [f"192.0.2.{d}" for d in range(256)] + [f"203.0.113.{d}" for d in range(256)]
        v6 = [
            str(ipaddress.IPv6Address((0x20010DB8 << 96) | int(x) << 80 | int(y)))
            for x, y in rng.integers(0, 4, (500, 2))
        ]
        distinct = np.array(v4 + v6, dtype=object)
        rows = distinct[rng.integers(0, len(distinct), 200_000)]
        rv = Enricher(self.CFG).network_labels(pa.array(rows, pa.string()))
        named = [
            (lab, ipaddress.ip_network(c)) for lab, _, c in (e.partition("=") for e in self.CFG.networks)
        ]

        def reference(a: str) -> str:
            ip = ipaddress.ip_address(a)
            return next((lab for lab, net in named if ip.version == net.version and ip in net), "")

        expected = {a: reference(a) for a in distinct}
        table = pa.table({"a": pa.array(rows, pa.string()), "label": rv})
        got = table.group_by(["a", "label"]).aggregate([])
        assert len(got) == len(set(rows))  # one label per distinct address
        assert {a: expected[a] for a in got["a"].to_pylist()} == dict(
            zip(got["a"].to_pylist(), got["label"].to_pylist(), strict=True)
        )
        assert {"dmz", "office", "lab", "v6-rest", ""} == set(got["label"].to_pylist())

    def test_ipv6_text_parses_column_wise_exactly_as_ipaddress_does(self) -> None:
        """Any spelling (compressed, exploded, upper case) gives ipaddress's value; what it refuses fails."""
        rng = random.Random(3)
        cases: list[str | None] = [
            "::", "::1", "1::", "2001:DB8:0:0:0:0:0:1", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
            "0001:0db8::00ff", "1:::2", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", ":1:2:3:4:5:6:7", "1::2::3",
            ":::", "1:2:3:4:5:6:7", "1::2:3:4:5:6:7:8", "", ":", "1:", "::1:", "00000::1", None,
        ]  # fmt: skip
        for _ in range(5000):
            groups = [rng.choice([0, 0, 0, rng.randrange(65536)]) for _ in range(8)]
            a = ipaddress.IPv6Address(sum(v << (16 * (7 - i)) for i, v in enumerate(groups)))
            cases.append(
                rng.choice(
                    [a.compressed, a.exploded, a.compressed.upper(), ":".join(f"{v:x}" for v in groups)]
                )
            )

        hi, lo, ok = parse_ipv6(pa.array(cases, pa.string()))

        for text, h, low, parsed in zip(cases, hi, lo, ok, strict=True):
            try:
                want: int | None = int(ipaddress.IPv6Address(text or ""))
            except ValueError:
                want = None
            assert bool(parsed) == (want is not None), text
            if parsed:
                assert (int(h) << 64 | int(low)) == want, text

    def test_enricher_adds_service_and_network_columns_without_touching_the_events(self) -> None:
        """The enriched table keeps every event column as it was and appends the labels."""
        events = pa.table(
            {"src_ip": ["10.0.0.1", "2001:db8:1::1"], "dst_ip": ["192.0.2.1", "198.51.100.9"],
             "dst_port": pa.array([22, None], pa.int32()), "proto": ["TCP", "ICMPv6"]}
        )  # fmt: skip
        rv = Enricher(self.CFG)(events)
        assert [*events.column_names, "dst_service", "src_network", "dst_network", *SOURCE_COLUMNS] == (
            rv.column_names
        )
        assert events == rv.select(events.column_names)
        assert rv["dst_service"].to_pylist() == ["ssh", ""]
        assert rv["src_network"].to_pylist() == ["lab", "office"]
        assert rv["dst_network"].to_pylist() == ["dmz", ""]

    def test_shipper_exclude_filter_uses_the_same_matcher(self) -> None:
        """exclude_networks drops exactly the sources NetworkTable places inside, IPv6 included."""
        cfg = ShipperConfig(exclude_networks=("10.0.0.0/8", "2001:db8:1::/48"))
        src = ["10.1.1.1", "192.0.2.1", "2001:db8:1::9", "2001:db8:2::9"]
        table = pa.table(
            {"src_ip": src, "dst_port": pa.array([22] * 4, pa.int32()), "proto": ["UDP"] * 4,
             "tcp_flags": pa.array([None] * 4, pa.string())}
        )  # fmt: skip
        rv = EdgeFilter(cfg)(table)
        assert rv.kept["src_ip"].to_pylist() == ["192.0.2.1", "2001:db8:2::9"]
        assert rv.dropped[DROP_INSIDE] == 2
        assert NetworkTable.from_cidrs(cfg.exclude_networks).contains(pa.array(src)).to_pylist() == [
            True,
            False,
            True,
            False,
        ]


class TestConfig:
    """[enrich] networks is validated when the config loads, naming the bad entry."""

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ("dmz=192.0.2.0/33", "192.0.2.0/33"),
            ("dmz=192.0.2.1/24", "host bits set"),
            ("lab=10.0.0.0/8x", "10.0.0.0/8x"),
            ("192.0.2.0/24", "expected label=cidr"),
            ("<b>=192.0.2.0/24", "expected label=cidr"),
            ("v6=2001:db8::/129", "2001:db8::/129"),
        ],
    )
    def test_bad_network_entry_is_a_config_error(self, tmp_path: Path, entry: str, message: str) -> None:
        """A bad CIDR or label fails the load with [enrich] networks and the entry in the message."""
        path = tmp_path / "f.toml"
        path.write_text(f"[enrich]\nnetworks = [{entry!r}]\n".replace("'", '"'))
        with pytest.raises(ConfigError, match=r"\[enrich\] networks") as err:
            load(path, environ={})
        assert message in str(err.value)

    def test_networks_from_file_and_environment(self, tmp_path: Path) -> None:
        """A TOML list and a comma-separated FIREPLOT_ENRICH__NETWORKS both configure labels."""
        path = tmp_path / "f.toml"
        path.write_text('[enrich]\nnetworks = ["dmz=192.0.2.0/24", "v6=2001:db8::/32"]\n')
        assert load(path, environ={}).enrich.networks == ("dmz=192.0.2.0/24", "v6=2001:db8::/32")
        cfg = load(environ={"FIREPLOT_ENRICH__NETWORKS": "a=10.0.0.0/8, b=::/0"})
        assert Enricher(cfg.enrich).network_labels(pa.array(["10.2.3.4", "::1"])).to_pylist() == ["a", "b"]


class TestWebHover:
    """The day page's source carries the service name for the hover."""

    def test_day_feed_columns_carry_service_names_raw_and_aggregated(self, tmp_path: Path) -> None:
        """Raw and aggregated frames and the empty page all have a "service" column, named from the port."""
        store, day = Store(tmp_path), dt.date(2026, 3, 4)
        start = dt.datetime.combine(day, dt.time(1), tzinfo=dt.UTC)
        rows = [
            {"ts": start + dt.timedelta(seconds=i), "site": "a", "host": "fw", "src_ip": f"198.51.100.{i}",
             "dst_ip": "192.0.2.1", "src_port": 40000, "dst_port": port, "proto": proto, "ip_version": 4,
             "action": "drop", "in_if": None, "out_if": None, "tcp_flags": None, "prefix": None, "count": 1,
             "source_id": "a:x", "source_offset": i, "schema_version": SCHEMA_VERSION}
            for i, (port, proto) in enumerate([(22, "TCP"), (53, "UDP"), (None, "ICMP"), (40123, "TCP")])
        ]  # fmt: skip
        store.write_flush(OffsetRange("t", 0, 0, 0), conform(pa.Table.from_pylist(rows)))
        raw = DayFeed(store, day, None, max_points=100).load().data
        assert dict(zip(raw["port"], raw["service"], strict=True)) == {
            "22": "ssh",
            "53": "domain",
            "none": "",
            "40123": "",
        }
        aggregated = DayFeed(store, day, None, max_points=2).load().data
        assert dict(zip(aggregated["port"], aggregated["service"], strict=True)) == {
            "22": "ssh",
            "53": "domain",
            "none": "",
            "40123": "",
        }
        assert "service" in empty_data()
