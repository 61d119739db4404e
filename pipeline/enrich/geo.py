"""ASN, AS organisation and country of addresses from MaxMind-format (``.mmdb``) databases.

The user supplies the files (``[enrich] databases``); nothing is downloaded.
Each file is opened once with the ``maxminddb`` reader (its C extension,
memory-mapped) and checked at start: a missing, unreadable or corrupt file is a
:class:`GeoDatabaseError` naming it, raised before any event is read.

Exactly these record fields are read; everything else in a record is ignored:

==========================  ======================================  =========================
database                    ASN and organisation                    country
==========================  ======================================  =========================
GeoLite2-ASN, DB-IP ASN     ``autonomous_system_number`` (int),
Lite                        ``autonomous_system_organization``
GeoLite2-Country / City,    ..                                      ``country.iso_code``, else
DB-IP Country Lite                                                  ``registered_country.iso_code``
IPinfo Lite                 ``asn`` (text ``"AS15169"``),           ``country_code``
                            ``as_name``
==========================  ======================================  =========================

With several databases, each field comes from the first database (in the
configured order) whose record for the address has it, so an ASN file and a
country file combine, and IPinfo Lite alone gives all three.

Lookups go per *distinct* address (a day of a million events comes from far
fewer sources): a column is dictionary-coded, each distinct address is looked
up once and remembered (up to ``CACHE_ADDRESSES``), and the answers reach the
rows with one ``take``. Distinct answers are interned, so the per-address
cache holds one small integer each.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["CACHE_ADDRESSES", "GEO_COLUMNS", "GeoDatabaseError", "GeoLookup"]

log = logging.getLogger(__name__)

# Remembered addresses before the cache starts over (~100 bytes each): a bound, not a tuning knob.
CACHE_ADDRESSES: Final = 1_000_000
# The columns lookup() returns, in order.
GEO_COLUMNS: Final = ("asn", "as_org", "country")
# Organisation names come from the database file, which the operator trusts less than the code:
# they end up in tooltips and CSV, so they are cut to a sane length (and shown as text everywhere).
_MAX_TEXT: Final = 200
_UNKNOWN: Final = (None, "", "")


class GeoDatabaseError(ValueError):
    """A configured database cannot be used: missing, unreadable, or not a MaxMind DB file."""


class _Database:
    """One opened ``.mmdb`` file."""

    def __init__(self, path: Path) -> None:
        try:
            import maxminddb
        except ImportError:  # pragma: no cover - installed with the worker and web extras
            raise GeoDatabaseError(
                f"{path}: reading .mmdb files needs the 'maxminddb' package (pip install fireplot[web])"
            ) from None
        self.path = path
        if not path.is_file():
            raise GeoDatabaseError(f"{path}: no such file")
        try:
            self.reader = maxminddb.open_database(os.fspath(path))
            meta = self.reader.metadata()
            # A probe of each family walks the search tree and decodes a record: a file whose
            # metadata survived but whose tree or data section did not fails here, not later.
            for probe in ("1.1.1.1", "2001:db8::1") if meta.ip_version == 6 else ("1.1.1.1",):
                self.reader.get(probe)
        except (maxminddb.InvalidDatabaseError, OSError, ValueError, IndexError, KeyError, TypeError) as exc:
            raise GeoDatabaseError(f"{path}: not a readable MaxMind DB (.mmdb) file: {exc}") from None
        self.ip_version = int(meta.ip_version)
        self.database_type = str(meta.database_type)
        self.failures = 0
        self._invalid: type[Exception] = maxminddb.InvalidDatabaseError

    def get(self, address: str) -> Mapping[str, Any] | None:
        try:
            record = self.reader.get(address)
        except ValueError:
            # Not an address, or IPv6 asked of an IPv4-only database: not in it.
            return None
        except (self._invalid, IndexError, KeyError, TypeError) as exc:
            # Damage the start-up probe did not reach: that address gets no answer, counted and logged once.
            self.failures += 1
            if self.failures == 1:
                log.warning("%s: lookup of %r failed: %s", self.path, address, exc)
            return None
        return record if isinstance(record, Mapping) else None

    def close(self) -> None:
        self.reader.close()


def _text(value: Any) -> str:
    return value[:_MAX_TEXT] if isinstance(value, str) else ""


def _asn(record: Mapping[str, Any]) -> int | None:
    number = record.get("autonomous_system_number")
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return number
    text = record.get("asn")  # IPinfo: "AS15169"
    if isinstance(text, str) and text[:2].upper() == "AS" and text[2:].isdigit():
        return int(text[2:])
    return None


def _org(record: Mapping[str, Any]) -> str:
    return _text(record.get("autonomous_system_organization")) or _text(record.get("as_name"))


def _country(record: Mapping[str, Any]) -> str:
    for key in ("country", "registered_country"):
        place = record.get(key)
        if isinstance(place, Mapping):
            code = place.get("iso_code")
            if isinstance(code, str) and len(code) == 2 and code.isalpha():
                return code.upper()
    code = record.get("country_code")  # IPinfo Lite
    if isinstance(code, str) and len(code) == 2 and code.isalpha():
        return code.upper()
    return ""


class GeoLookup:
    """ASN, organisation and country per address from the configured databases, cached per address."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.databases: list[_Database] = []
        try:
            for p in paths:
                self.databases.append(_Database(Path(p)))
        except GeoDatabaseError:
            self.close()
            raise
        self._cache: dict[str, int] = {}
        self._answers: dict[tuple[int | None, str, str], int] = {_UNKNOWN: 0}
        self._rows: list[tuple[int | None, str, str]] = [_UNKNOWN]
        self._table: pa.Table | None = None

    def __bool__(self) -> bool:
        return bool(self.databases)

    @property
    def failures(self) -> int:
        """Lookups a damaged database could not answer (each counted once per distinct address)."""
        return sum(db.failures for db in self.databases)

    def close(self) -> None:
        for db in self.databases:
            db.close()

    def describe(self) -> list[dict[str, str | int]]:
        """Each database's path, type and IP version, for ``fireplot validate``."""
        return [
            {"path": str(db.path), "database_type": db.database_type, "ip_version": db.ip_version}
            for db in self.databases
        ]

    def _resolve(self, address: str) -> int:
        asn: int | None = None
        org = country = ""
        for db in self.databases:
            record = db.get(address)
            if record is None:
                continue
            if asn is None:
                asn = _asn(record)
                # The organisation belongs to the ASN: taken from the same record as the number.
                org = _org(record) if asn is not None else ""
            country = country or _country(record)
            if asn is not None and country:
                break
        answer = (asn, org, country)
        row = self._answers.get(answer)
        if row is None:
            row = self._answers[answer] = len(self._rows)
            self._rows.append(answer)
            self._table = None
        return row

    def _answer_table(self) -> pa.Table:
        if self._table is None or self._table.num_rows != len(self._rows):
            asn, org, country = zip(*self._rows, strict=True)
            self._table = pa.table(
                {
                    "asn": pa.array(asn, pa.int64()),
                    "as_org": pa.array(org, pa.string()),
                    "country": pa.array(country, pa.string()),
                }
            )
        return self._table

    def rows_of(self, distinct: pa.Array) -> np.ndarray[Any, np.dtype[np.int32]]:
        """Per distinct address (string array), its row in the answer table."""
        rows = np.empty(len(distinct), np.int32)
        cache = self._cache
        if len(cache) + len(distinct) > CACHE_ADDRESSES:
            cache.clear()
        for i, address in enumerate(distinct.to_pylist()):
            row = cache.get(address) if address is not None else 0
            if row is None:
                row = cache[address] = self._resolve(address)
            rows[i] = row
        return rows

    def lookup(self, addresses: pa.Array | pa.ChunkedArray) -> pa.Table:
        """``asn`` (int64, null if unknown), ``as_org`` and ``country`` ("" if unknown) per address.

        The text columns are dictionary-coded (``.cast(pa.string())`` decodes them); without
        a database they are plain strings."""
        if isinstance(addresses, pa.ChunkedArray):
            addresses = addresses.combine_chunks()
        if not self.databases:
            n = len(addresses)
            return pa.table(
                {
                    "asn": pa.nulls(n, pa.int64()),
                    "as_org": pa.repeat(pa.scalar("", pa.string()), n),
                    "country": pa.repeat(pa.scalar("", pa.string()), n),
                }
            )
        encoded = addresses if pa.types.is_dictionary(addresses.type) else pc.dictionary_encode(addresses)
        rows = self.rows_of(encoded.dictionary)
        # Null addresses have a null index: they take row 0, the unknown answer.
        index = pc.fill_null(pa.array(rows).take(encoded.indices), 0)
        answers = self._answer_table()
        # Text stays dictionary-coded over the distinct answers: a row costs an index, not a copy of
        # its organisation's name (half the time of a plain take at a million rows).
        return pa.table(
            {
                "asn": answers.column("asn").take(index),
                "as_org": pa.DictionaryArray.from_arrays(index, answers.column("as_org").combine_chunks()),
                "country": pa.DictionaryArray.from_arrays(index, answers.column("country").combine_chunks()),
            }
        )
