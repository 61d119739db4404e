"""Top talkers over a time range: events, distinct ports and distinct targets per key.

The key is the source address, its ASN, its country (both from the
``[enrich] databases``), its scanner label, or the destination port. The
distinct counts are exact. Distinct counts of hours do not add up to the
distinct count of a range (a source probing port 22 every hour has one port,
not 24), so the rollup behind this keeps the sets themselves: ``talker_hour``
(:mod:`pipeline.rollup`), one row per (source, target, destination port) of
each site-hour with its events. A range is the union of its hours' rows,
grouped by the key; ASN and country are looked up once per distinct source.

What that costs: a row per distinct (source, target, port) of an hour, which
is at most the hour's events and usually far fewer (a source hammering one
port is one row an hour; a vertical scan of 1,000 ports is 1,000 rows, as in
the events). Four columns, sorted by source, dictionary-coded: a small
fraction of the hour's event file, and the only columns read.

Which hours come from where, so nothing is missed or counted twice: an hour
inside the range whose rollup is current (its input digest matches the
hour's files, or the hour's events are gone to retention) is read from the
rollup; an hour without one or with a stale one, and the hours the range
cuts at either end, are computed from their events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import rollup
from pipeline.enrich import Enricher
from pipeline.store import Store, partition_dir

__all__ = ["KEYS", "TALKER_SCHEMA", "TopReport", "talkers", "top", "top_by"]

ROLLUP: Final = "talker_hour"
KEYS: Final = ("src", "asn", "country", "label", "port")
Key = Literal["src", "asn", "country", "label", "port"]
ScannerFilter = Literal["include", "exclude", "only"]
TALKER_SCHEMA: Final = pa.schema(
    [("src_ip", pa.string()), ("dst_ip", pa.string()), ("dst_port", pa.int32()), ("events", pa.int64())]
)
_EVENT_COLUMNS: Final = ["src_ip", "dst_ip", "dst_port", "count"]


@dataclass
class TopReport:
    """The rows (key, events, ports, targets, sources, and enrichment of the key) and where they came from."""

    rows: pa.Table
    hours_from_rollup: int = 0
    hours_from_events: int = 0
    meta: dict[str, object] = field(default_factory=dict)


def _hour_start(date: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(date, dt.time(hour), tzinfo=dt.UTC)


def _site_hours(
    store: Store, start: dt.datetime, end: dt.datetime, sites: Sequence[str] | None
) -> list[tuple[str, dt.date, int]]:
    """Site-hours overlapping [start, end) holding events or a talker rollup (directory listings only)."""
    found: set[tuple[str, dt.date, int]] = set()
    first, last = start.date(), (end - dt.timedelta(microseconds=1)).date()
    for base, is_events in ((store.events_root, True), (store.root / rollup.ROLLUPS_DIR / ROLLUP, False)):
        for site_dir in sorted(base.glob("site=*")) if base.exists() else ():
            site = site_dir.name.removeprefix("site=")
            if sites is not None and site not in sites:
                continue
            for date_dir in site_dir.glob("date=*"):
                try:
                    date = dt.date.fromisoformat(date_dir.name.removeprefix("date="))
                except ValueError:
                    continue
                if not first <= date <= last:
                    continue
                for entry in date_dir.iterdir():
                    hour = _hour_of(entry, is_events)
                    if hour is None:
                        continue
                    begin = _hour_start(date, hour)
                    if begin < end and begin + dt.timedelta(hours=1) > start:
                        found.add((site, date, hour))
    return sorted(found)


def _hour_of(entry: Path, is_events: bool) -> int | None:
    """The hour an events directory (``hour=HH``) or a rollup file (``HH.parquet``) is of."""
    name = entry.name
    if is_events:
        text = name.removeprefix("hour=") if name.startswith("hour=") else ""
    else:
        text = name.removesuffix(".parquet") if name.endswith(".parquet") else ""
    return int(text) if text.isdigit() and len(text) == 2 else None


def _from_events(store: Store, site: str, start: dt.datetime, end: dt.datetime) -> pa.Table:
    events = store.read(start, end, sites=[site], columns=_EVENT_COLUMNS)
    return rollup.talker_hour(events).cast(TALKER_SCHEMA)


def _hour_rows(
    store: Store, site: str, date: dt.date, hour: int, start: dt.datetime, end: dt.datetime
) -> tuple[pa.Table, bool]:
    """One site-hour's talker rows within [start, end), and whether a current rollup gave them."""
    begin = _hour_start(date, hour)
    finish = begin + dt.timedelta(hours=1)
    if begin < start or finish > end:
        return _from_events(store, site, max(begin, start), min(finish, end)), False
    path = rollup.rollup_path(store, ROLLUP, site, date, hour)
    directory = partition_dir(store.root, site, date, hour)
    try:
        table = pq.read_table(path, use_threads=False)
    except FileNotFoundError:
        table = None
    if table is not None:
        stored = (table.schema.metadata or {}).get(rollup.DIGEST_KEY, b"").decode()
        digest, files = rollup.events_digest(directory)
        # Retention deletes events but keeps rollups: then the rollup is all there is.
        if not files or stored == digest:
            return table.replace_schema_metadata(None).select(TALKER_SCHEMA.names).cast(TALKER_SCHEMA), True
    return _from_events(store, site, begin, finish), False


def talkers(
    store: Store, start: dt.datetime, end: dt.datetime, sites: Sequence[str] | None = None
) -> tuple[pa.Table, int, int]:
    """Every (source, target, port, events) row of [start, end); hours read from rollups, from events."""
    if store.filesystem is not None:
        raise ValueError("fireplot top reads a local store directory, not an object-store URI")
    hours = _site_hours(store, start, end, sites)
    threads = 2 * max(1, int(pa.cpu_count()))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = list(pool.map(lambda h: _hour_rows(store, h[0], h[1], h[2], start, end), hours))
    table = pa.concat_tables([TALKER_SCHEMA.empty_table(), *(t for t, _ in parts)])
    from_rollup = sum(1 for _, r in parts if r)
    return table, from_rollup, len(parts) - from_rollup


def _decoded(table: pa.Table) -> pa.Table:
    """Dictionary-coded text as plain text: joins and group keys want it plain (a row per source here)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    return table


def top(
    store: Store,
    enricher: Enricher,
    start: dt.datetime,
    end: dt.datetime,
    by: Key,
    sites: Sequence[str] | None = None,
    limit: int = 20,
    scanners: ScannerFilter = "include",
) -> TopReport:
    """The ``limit`` keys with the most events in [start, end), most first (ties: by key)."""
    return top_by(store, enricher, start, end, (by,), sites, limit, scanners)[by]


def top_by(
    store: Store,
    enricher: Enricher,
    start: dt.datetime,
    end: dt.datetime,
    keys: Sequence[Key],
    sites: Sequence[str] | None = None,
    limit: int = 20,
    scanners: ScannerFilter = "include",
) -> dict[str, TopReport]:
    """:func:`top` for several keys at once, from one read of the range (the web page's table)."""
    for by in keys:
        if by not in KEYS:
            raise ValueError(f"--by: one of {', '.join(KEYS)}, not {by!r}")
    rows, from_rollup, from_events = talkers(store, start, end, sites)
    # Distinct sources first: enrichment runs once per source, then reaches rows by a join.
    sources = pc.unique(rows.column("src_ip"))
    labels = _decoded(enricher.source_columns(sources)).add_column(0, "src_ip", sources)
    if scanners != "include":
        listed = pc.not_equal(labels.column("src_scanner"), "")
        keep = listed if scanners == "only" else pc.invert(listed)
        labels = labels.filter(keep)
        rows = rows.filter(pc.is_in(rows.column("src_ip"), value_set=labels.column("src_ip")))
    meta: dict[str, object] = {"geo": enricher.has_geo, "scanners": enricher.has_scanners}
    return {
        by: TopReport(_rank(rows, labels, by, limit), from_rollup, from_events, dict(meta)) for by in keys
    }


def _rank(rows: pa.Table, labels: pa.Table, by: Key, limit: int) -> pa.Table:
    """The ``limit`` keys of ``rows`` with the most events; ``labels``: the enrichment per source."""
    if by in ("src", "port"):
        key = "src_ip" if by == "src" else "dst_port"
        keyed = rows.append_column("key", rows.column(key))
    else:
        column = {"asn": "src_asn", "country": "src_country", "label": "src_scanner"}[by]
        per_source = labels.select(["src_ip", column]).rename_columns(["src_ip", "key"])
        keyed = rows.join(per_source, "src_ip", join_type="left outer", use_threads=False)
    grouped = (
        keyed.group_by("key", use_threads=False)
        .aggregate(
            [
                ("events", "sum"),
                ("dst_port", "count_distinct"),
                ("dst_ip", "count_distinct"),
                ("src_ip", "count_distinct"),
            ]
        )
        .rename_columns(["key", "events", "ports", "targets", "sources"])
    )
    grouped = grouped.sort_by([("events", "descending"), ("key", "ascending")]).slice(0, limit)
    if by == "src":
        grouped = grouped.join(labels, keys="key", right_keys="src_ip", use_threads=False).sort_by(
            [("events", "descending"), ("key", "ascending")]
        )
    elif by == "asn":
        orgs = (
            labels.filter(pc.is_valid(labels.column("src_asn")))
            .group_by("src_asn", use_threads=False)
            .aggregate([("src_as_org", "max")])
            .rename_columns(["key", "as_org"])
        )
        grouped = grouped.join(orgs, keys="key", use_threads=False).sort_by(
            [("events", "descending"), ("key", "ascending")]
        )
    return grouped
