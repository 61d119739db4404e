"""Small MaxMind-format databases written here, in the record shapes fireplot reads.

Each ``*_db`` function writes one ``.mmdb`` with the ``mmdb-writer`` package
(an independent writer: the reader under test is ``maxminddb``) holding the
networks of ``NETWORKS``, IPv4 and IPv6, in the shape of one real product:
GeoLite2-ASN (also DB-IP ASN Lite's), GeoLite2-Country (DB-IP Country Lite's),
IPinfo Lite. Tests check the labels of ``EXPECTED``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from mmdb_writer import MMDBWriter
from netaddr import IPSet

# network -> (asn, organisation, country)
NETWORKS: Final = {
    "198.51.100.0/25": (64500, "Example Scan Research", "DE"),
    "198.51.100.128/25": (64501, "Other \u00c9xample Net", "FR"),
    "203.0.113.0/24": (64502, "=cmd|' /C calc'!A0", "JP"),
    "2001:db8:1::/48": (64503, "Example IPv6 Transit", "CH"),
    "2001:db8:2::/48": (64500, "Example Scan Research", "DE"),
}
# address -> (asn, organisation, country); None / "" where no network holds it.
EXPECTED: Final = {
    "198.51.100.7": (64500, "Example Scan Research", "DE"),
    "198.51.100.200": (64501, "Other \u00c9xample Net", "FR"),
    "203.0.113.9": (64502, "=cmd|' /C calc'!A0", "JP"),
    "2001:db8:1::5": (64503, "Example IPv6 Transit", "CH"),
    "2001:db8:2:0:0:0:0:a": (64500, "Example Scan Research", "DE"),
    "192.0.2.1": (None, "", ""),
    "2001:db8:9::1": (None, "", ""),
}


def _write(path: Path, database_type: str, records: dict[str, dict[str, Any]]) -> Path:
    writer = MMDBWriter(ip_version=6, database_type=database_type, ipv4_compatible=True)
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


def asn_db(path: Path) -> Path:
    """GeoLite2-ASN / DB-IP ASN Lite shape: autonomous_system_number, autonomous_system_organization."""
    return _write(
        path,
        "GeoLite2-ASN",
        {
            net: {"autonomous_system_number": asn, "autonomous_system_organization": org}
            for net, (asn, org, _) in NETWORKS.items()
        },
    )


def country_db(path: Path) -> Path:
    """GeoLite2-Country / DB-IP Country Lite shape: country.iso_code (and names, continent)."""
    return _write(
        path,
        "GeoLite2-Country",
        {
            net: {
                "continent": {"code": "EU", "names": {"en": "Europe"}},
                "country": {"iso_code": cc, "names": {"en": f"name of {cc}"}},
                "registered_country": {"iso_code": cc},
            }
            for net, (_, _, cc) in NETWORKS.items()
        },
    )


def ipinfo_db(path: Path) -> Path:
    """IPinfo Lite shape: asn ("AS64500"), as_name, as_domain, country_code, country (a name)."""
    return _write(
        path,
        "ipinfo lite",
        {
            net: {
                "asn": f"AS{asn}",
                "as_name": org,
                "as_domain": "example.net",
                "country_code": cc,
                "country": f"name of {cc}",
                "continent_code": "EU",
            }
            for net, (asn, org, cc) in NETWORKS.items()
        },
    )
