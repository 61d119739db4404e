"""Who a source is, on the page: ASN, organisation, country and scanner label of dots and the panel.

The enrichment itself is :class:`pipeline.enrich.Enricher` (``[enrich]``); this
module shapes it for the page. Raw dots get four text columns (``asn`` as
``AS64500``, ``as_org``, ``country``, ``scanner``) for the tooltip; they travel
dictionary-coded like the other text (a day's sources share few ASNs and
countries). Bins (many sources each) and views without a source column get the
columns empty, so every view and every live addition has the same columns. The
source panel's title gets one line about the source, or says that the columns
are off when no database is configured. All of it is text from a database
file or the operator's list: shown as text, never markup, like log text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.enrich import Enricher
from pipeline.networks import LABEL

# The dot columns added, in order.
WHO_COLUMNS: Final = ("asn", "as_org", "country", "scanner")
OFF_NOTE: Final = "ASN, organisation, country: off (no [enrich] databases configured)"


def _text(col: pa.Array | pa.ChunkedArray) -> npt.NDArray[Any]:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return np.asarray(pc.fill_null(col, "").to_numpy(zero_copy_only=False), dtype=object)


def dot_columns(enricher: Enricher, data: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    """``data`` (a view's or a live addition's source columns) with ``WHO_COLUMNS`` added."""
    out = dict(data)
    n = len(next(iter(data.values()))) if data else 0
    src = data.get("src_ip")
    if src is None or n == 0 or not (enricher.has_geo or enricher.has_scanners):
        for name in WHO_COLUMNS:
            out[name] = np.full(n, "", dtype=object)
        return out
    who = enricher.source_columns(pa.array(src, pa.string()))
    asn = who.column("src_asn")
    out["asn"] = _text(pc.binary_join_element_wise("AS", pc.cast(asn, pa.string()), ""))
    out["as_org"] = _text(who.column("src_as_org"))
    out["country"] = _text(who.column("src_country"))
    out["scanner"] = _text(who.column("src_scanner"))
    return out


def describe(enricher: Enricher, src_ip: str) -> str:
    """One line about a source for its panel: ASN, organisation, country, scanner label."""
    who = enricher.source_columns(pa.array([src_ip], pa.string())).to_pylist()[0]
    parts = []
    if enricher.has_geo:
        asn = who["src_asn"]
        parts.append(f"AS{asn} {who['src_as_org']}".strip() if asn is not None else "ASN unknown")
        parts.append(f"country {who['src_country'] or 'unknown'}")
    else:
        parts.append(OFF_NOTE)
    if who["src_scanner"]:
        parts.append(f"known scanner: {who['src_scanner']}")
    return " \u00b7 ".join(parts)


# ---- the "who" filter: ASN, country and scanner label ---------------------------------------

WHO_HINT: Final = "AS64500, DE, scanner or a scanner label; ! leaves out (e.g. !scanner)"
_ASN = re.compile(r"(?i)AS(\d{1,10})")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
ANY_SCANNER: Final = "scanner"


@dataclass(frozen=True)
class WhoFilter:
    """Sources by ASN, country and scanner label, as typed: ``AS64500, DE, scanner, !example-research``.

    A token is an ASN (``AS`` and digits), a country (two letters, ISO 3166), ``scanner``
    (any source in the scanner list) or one scanner label; ``!`` before it leaves such
    sources out instead. Kept: sources matching some kept ASN *and* some kept country *and*
    some kept label, for each kind that has kept tokens; then every left-out token removes.
    """

    asns: frozenset[int] = frozenset()
    countries: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    not_asns: frozenset[int] = frozenset()
    not_countries: frozenset[str] = frozenset()
    not_labels: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str, enricher: Enricher) -> WhoFilter:
        """Raises ValueError naming a token it cannot read, or one the configuration cannot answer."""
        sets: dict[str, set[Any]] = {k: set() for k in ("asns", "countries", "labels")}
        nots: dict[str, set[Any]] = {k: set() for k in ("asns", "countries", "labels")}
        for raw in (t.strip() for t in text.split(",")):
            if not raw:
                continue
            into = nots if raw.startswith("!") else sets
            token = raw.lstrip("!").strip()
            value: int | str
            if m := _ASN.fullmatch(token):
                kind, value = "asns", int(m.group(1))
            elif _COUNTRY.fullmatch(token):
                kind, value = "countries", token.upper()
            elif token.lower() == ANY_SCANNER or LABEL.fullmatch(token):
                kind, value = "labels", token.lower() if token.lower() == ANY_SCANNER else token
            else:
                raise ValueError(f"not an ASN, country or scanner label: {raw[:80]!r} ({WHO_HINT})")
            if kind != "labels" and not enricher.has_geo:
                raise ValueError(f"{raw[:80]!r}: ASN and country are off (no [enrich] databases configured)")
            if kind == "labels" and not enricher.has_scanners:
                raise ValueError(f"{raw[:80]!r}: no scanner list ([enrich] scanner_networks_path) configured")
            into[kind].add(value)
        return cls(
            frozenset(sets["asns"]), frozenset(sets["countries"]), frozenset(sets["labels"]),
            frozenset(nots["asns"]), frozenset(nots["countries"]), frozenset(nots["labels"]),
        )  # fmt: skip

    def __bool__(self) -> bool:
        return any(
            (self.asns, self.countries, self.labels, self.not_asns, self.not_countries, self.not_labels)
        )

    def mask(self, enricher: Enricher, addresses: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Per address, whether its source passes."""
        who = enricher.source_columns(addresses)
        asn = who.column("src_asn")
        country = who.column("src_country").cast(pa.string())
        label = who.column("src_scanner").cast(pa.string())

        def asn_in(values: frozenset[int]) -> pa.Array:
            return pc.fill_null(pc.is_in(asn, value_set=pa.array(sorted(values), pa.int64())), False)

        def label_in(values: frozenset[str]) -> pa.Array:
            named = pc.is_in(label, value_set=pa.array(sorted(values - {ANY_SCANNER}), pa.string()))
            return pc.or_(named, pc.not_equal(label, "")) if ANY_SCANNER in values else named

        def country_in(values: frozenset[str]) -> pa.Array:
            return pc.is_in(country, value_set=pa.array(sorted(values), pa.string()))

        keep = pa.array(np.ones(len(addresses), dtype=bool))
        keep = _narrow(keep, self.asns, self.not_asns, asn_in)
        keep = _narrow(keep, self.countries, self.not_countries, country_in)
        return _narrow(keep, self.labels, self.not_labels, label_in)


def _narrow(
    keep: pa.Array, kept: frozenset[Any], left_out: frozenset[Any], test: Callable[[Any], pa.Array]
) -> pa.Array:
    if kept:
        keep = pc.and_(keep, test(kept))
    if left_out:
        keep = pc.and_(keep, pc.invert(test(left_out)))
    return keep
