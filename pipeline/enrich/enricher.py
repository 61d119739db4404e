"""The read-time enricher: every label ``[enrich]`` configures, added to events as they are read.

Where it happens, and why there: the archive keeps what the firewall said
(ports, protocols, addresses) and nothing derived. Names and labels are added
when events are read for display or export (the day page, the source panel,
the CSV, ``fireplot top``) by :class:`Enricher`, and nowhere else. A
relabelled network, a newer GeoLite2 file or a longer scanner list then takes
effect on the next read, with no rewrite of months of Parquet, and two
readers with the same config always agree.

Columns added (those whose input columns the table has):

- ``dst_service``: IANA service name of (dst_port, proto) (:mod:`.services`);
- ``src_network``, ``dst_network``: ``[enrich] networks`` labels;
- ``src_asn`` (int64, null = unknown), ``src_as_org``, ``src_country`` (ISO
  3166 alpha-2): from ``[enrich] databases`` (:mod:`.geo`), "" / null when
  none is configured or the address is in none;
- ``src_scanner``: the label of the scanner list entry holding the source
  (:mod:`.scanners`), "".

A missing or unreadable database or scanner list is a ConfigError when the
enricher is made, which every command that reads events does at its start.
"""

from __future__ import annotations

import functools
import threading
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import ConfigError, EnrichConfig
from pipeline.enrich.geo import GeoDatabaseError, GeoLookup
from pipeline.enrich.scanners import ScannerListError, ScannerNetworks
from pipeline.enrich.services import service_names
from pipeline.networks import NetworkTable, parse_named

__all__ = ["SOURCE_COLUMNS", "Enricher", "shared_enricher"]

# What source_columns() adds, in order.
SOURCE_COLUMNS: Final = ("src_asn", "src_as_org", "src_country", "src_scanner")
_NONE: Final = ""


class Enricher:
    """Read-time labels from ``[enrich]``; ConfigError at construction when a file cannot be used."""

    def __init__(self, cfg: EnrichConfig) -> None:
        try:
            named = parse_named(cfg.networks)
        except ValueError as exc:
            raise ConfigError(f"[enrich] networks: {exc}") from None
        self.labels = pa.array([label for label, _ in named] + [_NONE], pa.string())
        self.networks = NetworkTable([net for _, net in named])
        try:
            self.geo = GeoLookup(cfg.databases)
        except GeoDatabaseError as exc:
            raise ConfigError(f"[enrich] databases: {exc}") from None
        try:
            self.scanners = ScannerNetworks(cfg.scanner_networks_path or None)
        except ScannerListError as exc:
            self.geo.close()
            raise ConfigError(f"[enrich] scanner_networks_path: {exc}") from None
        # Web sessions read on several threads; the geo cache is shared, its growth is not atomic.
        self._lock = threading.Lock()

    @property
    def has_geo(self) -> bool:
        """Whether ASN/country columns carry anything (a database is configured)."""
        return bool(self.geo)

    @property
    def has_scanners(self) -> bool:
        return len(self.scanners) > 0

    def network_labels(self, addresses: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Per address, the label of the first configured network holding it; "" if none."""
        hit = self.networks.match(addresses)
        return self.labels.take(pc.fill_null(hit, len(self.labels) - 1))

    def source_columns(self, addresses: pa.Array | pa.ChunkedArray) -> pa.Table:
        """``SOURCE_COLUMNS`` per source address (text dictionary-coded when a file is configured)."""
        if isinstance(addresses, pa.ChunkedArray):
            addresses = addresses.combine_chunks()
        # Coded once for both lookups (each works on the distinct addresses); a Parquet column read
        # with read_dictionary arrives coded already.
        if not pa.types.is_dictionary(addresses.type):
            addresses = pc.dictionary_encode(addresses)
        with self._lock:
            geo = self.geo.lookup(addresses)
        return pa.table(
            {
                "src_asn": geo.column("asn"),
                "src_as_org": geo.column("as_org"),
                "src_country": geo.column("country"),
                "src_scanner": self.scanners.label(addresses),
            }
        )

    def add_source_columns(self, table: pa.Table, address: str = "src_ip") -> pa.Table:
        """``table`` with ``SOURCE_COLUMNS`` of its ``address`` column appended (replaced if present)."""
        extra = self.source_columns(table.column(address))
        for name in SOURCE_COLUMNS:
            if name in table.column_names:
                table = table.drop_columns([name])
            table = table.append_column(name, extra.column(name))
        return table

    def __call__(self, table: pa.Table) -> pa.Table:
        """The events with every label column their columns allow (see the module doc)."""
        if {"dst_port", "proto"} <= set(table.column_names):
            table = table.append_column(
                "dst_service", service_names(table.column("dst_port"), table.column("proto"))
            )
        for column in ("src_ip", "dst_ip"):
            if column in table.column_names:
                name = column.removesuffix("_ip") + "_network"
                table = table.append_column(name, self.network_labels(table.column(column)))
        if "src_ip" in table.column_names:
            table = self.add_source_columns(table)
        return table


_shared_lock = threading.Lock()


@functools.cache
def _shared(cfg: EnrichConfig) -> Enricher:
    return Enricher(cfg)


def shared_enricher(cfg: EnrichConfig) -> Enricher:
    """One enricher per configuration in a process, so every page and export shares its address cache."""
    with _shared_lock:
        return _shared(cfg)
