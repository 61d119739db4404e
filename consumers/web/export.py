"""CSV of the events a page shows, safe to open in a spreadsheet.

Every text field of an event can come from an attacker (log prefixes, host
names, interface names). A spreadsheet runs a cell starting with ``=``, ``+``,
``-`` or ``@`` (and tab or carriage return, OWASP's list) as a formula, so such
fields get a leading apostrophe, which spreadsheets show as text. The
enrichment columns (``[enrich]``: ASN, organisation, country, scanner label)
end each row; an organisation name comes from a database file and is treated
the same way.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from consumers import style
from consumers.web.feeds.filters import Filters
from pipeline.config import EnrichConfig
from pipeline.enrich import SOURCE_COLUMNS, Enricher, shared_enricher
from pipeline.store import Store

EVENT_COLUMNS: Final = [
    "ts", "site", "host", "src_ip", "src_port", "dst_ip", "dst_port", "proto", "ip_version", "action",
    "in_if", "out_if", "tcp_flags", "prefix", "count",
]  # fmt: skip
# The file's columns: the stored ones, then the source's enrichment (empty when [enrich] has none).
CSV_COLUMNS: Final = [*EVENT_COLUMNS, *SOURCE_COLUMNS]
FORMULA_START: Final = r"^[=+\-@\t\r]"


class TooManyEvents(ValueError):
    """The view holds more events than one export may carry."""


def neutralise(table: pa.Table) -> pa.Table:
    """Every string column with formula-like cells prefixed by an apostrophe."""
    for i, fld in enumerate(table.schema):
        if pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type):
            col = table.column(i)
            risky = pc.fill_null(pc.match_substring_regex(col, FORMULA_START), False)
            safe = pc.if_else(risky, pc.binary_join_element_wise("'", col, ""), col)
            table = table.set_column(i, fld.name, safe)
    return table


def visible_events(
    store: Store,
    start: dt.datetime,
    end: dt.datetime,
    port_low: float,
    port_high: float,
    site: str | None,
    filters: Filters,
    limit: int,
    enricher: Enricher | None = None,
) -> pa.Table:
    """The stored events inside the view's time and port ranges, oldest first.

    Raises TooManyEvents past ``limit``: the operator should zoom in, not get a
    truncated file that looks complete.
    """
    sites = [site] if site is not None else None
    table = filters.apply(store.read(start, end, sites=sites, columns=EVENT_COLUMNS))
    y = style.encode(table.select(["dst_port", "proto", "ip_version"])).column("y")
    table = table.filter(pc.and_(pc.greater_equal(y, port_low), pc.less_equal(y, port_high)))
    if table.num_rows > limit:
        raise TooManyEvents(f"{table.num_rows:,} events in view, more than {limit:,} per export: zoom in")
    table = table.sort_by([("ts", "ascending")])
    table = (enricher or shared_enricher(EnrichConfig())).add_source_columns(table)
    # Plain text for the CSV writer and the formula check (the enricher's columns are dictionary-coded).
    return table.cast(
        pa.schema(
            [
                pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
                for f in table.schema
            ]
        )
    )


def to_csv(table: pa.Table) -> str:
    """RFC 4180 CSV with a header row; times in ISO 8601 UTC."""
    ts = pc.strftime(table.column("ts"), format="%Y-%m-%dT%H:%M:%SZ")
    table = table.set_column(table.schema.get_field_index("ts"), "ts", ts)
    sink = pa.BufferOutputStream()
    pcsv.write_csv(neutralise(table), sink, pcsv.WriteOptions(quoting_style="needed"))
    text: str = sink.getvalue().to_pybytes().decode("utf-8")
    return text
