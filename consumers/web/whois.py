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

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.enrich import Enricher

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
