"""[enrich]: read-time enrichment (labels shown and exported, never stored)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.keys import ConfigError, doc


@dataclass(frozen=True)
class EnrichConfig:
    """Read-time enrichment (pipeline.enrich): labels added for display and export, never stored."""

    networks: tuple[str, ...] = doc(
        'named networks as "label=cidr" (IPv4 or IPv6; a label may repeat); the first that holds an '
        "address labels it",
        (),
    )
    databases: tuple[str, ...] = doc(
        "MaxMind-format .mmdb files (GeoLite2 ASN/Country, DB-IP Lite, IPinfo Lite) giving sources their "
        "ASN, organisation and country; each field from the first file that has it; empty: off",
        (),
    )
    scanner_networks_path: str = doc(
        "file of known scanner networks, one 'CIDR LABEL' a line (# comments); empty: none", ""
    )

    def check(self) -> None:
        """Each named network parses (the one CIDR matcher reads them)."""
        from pipeline.networks import parse_named

        try:
            parse_named(self.networks)
        except ValueError as exc:
            raise ConfigError(f"[enrich] networks: {exc}") from None
