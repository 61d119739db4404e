"""Who is scanning: ``top``, the top talkers of a time range by source, ASN, country, label or port."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from fireplot.cli.exits import EXIT_OK, EXIT_USAGE
from fireplot.cli.options import Commands, add_store, command, iso_datetime
from pipeline.config import Config, with_overrides

_HEADINGS = {"src": "source", "asn": "ASN", "country": "country", "label": "scanner label", "port": "port"}


def register(sub: Commands) -> None:
    top = command(sub, "top", _top, "top talkers of a time range: events, distinct ports and targets per key")
    top.add_argument("--since", type=iso_datetime, required=True, help="start (ISO 8601; UTC without a zone)")
    top.add_argument("--until", type=iso_datetime, help="end, exclusive (ISO 8601; default: now)")
    top.add_argument(
        "--by",
        choices=["src", "asn", "country", "label", "port"],
        default="src",
        help="key: source address, its ASN or country ([enrich] databases), its scanner label, or port",
    )
    top.add_argument("--site", action="append", help="only this site (repeatable)")
    top.add_argument("--limit", type=int, default=20, help="most keys printed (default 20)")
    top.add_argument(
        "--scanners",
        choices=["include", "exclude", "only"],
        default="include",
        help="sources in the scanner list ([enrich] scanner_networks_path): counted, left out, or alone",
    )
    top.add_argument("--json", action="store_true", help="one JSON object per key instead of a table")
    add_store(top)


def _key_text(by: str, value: Any) -> str:
    if value is None or value == "":
        return "unknown" if by in ("asn", "country") else ("-" if by == "port" else "(none)")
    return f"AS{value}" if by == "asn" else str(value)


def _top(cfg: Config, args: argparse.Namespace) -> int:
    """Top talkers in [--since, --until): per key, the events (sum of counts), distinct
    destination ports, distinct targets (destination addresses) and distinct sources,
    most events first. Exact counts from the talker_hour rollup, one file per site-hour;
    hours without a current rollup, and the hours the range cuts, are read from their
    events. ASN, organisation and country come from [enrich] databases, labels from
    [enrich] scanner_networks_path; without them those keys are "unknown" / "(none)"."""
    from pipeline.enrich import shared_enricher
    from pipeline.store import Store
    from pipeline.top import top

    until = args.until or dt.datetime.now(dt.UTC)
    if args.since >= until:
        print("fireplot: --since must be before --until", file=sys.stderr)
        return EXIT_USAGE
    if args.limit < 1:
        print("fireplot: --limit must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    cfg = with_overrides(cfg, "worker", store_dir=args.store)
    enricher = shared_enricher(cfg.enrich)
    report = top(
        Store(cfg.worker.store_dir),
        enricher,
        args.since,
        until,
        args.by,
        sites=args.site,
        limit=args.limit,
        scanners=args.scanners,
    )
    rows = report.rows.to_pylist()
    if args.json:
        for row in rows:
            out = {"key": row.pop("key"), **row}
            sys.stdout.write(json.dumps(out) + "\n")
    else:
        sys.stdout.write(_table(args.by, rows))
    print(
        json.dumps(
            {
                "hours_from_rollup": report.hours_from_rollup,
                "hours_from_events": report.hours_from_events,
                **report.meta,
            }
        ),
        file=sys.stderr,
    )
    return EXIT_OK


def _table(by: str, rows: list[dict[str, Any]]) -> str:
    extra = {
        "src": [("src_asn", "ASN"), ("src_as_org", "organisation"), ("src_country", "country"),
                ("src_scanner", "label")],
        "asn": [("as_org", "organisation")],
    }.get(by, [])  # fmt: skip
    head = [_HEADINGS[by], "events", "ports", "targets", "sources", *(title for _, title in extra)]
    lines = [head]
    for row in rows:
        cells = [
            _key_text(by, row["key"]),
            *(f"{row[c]:,}" for c in ("events", "ports", "targets", "sources")),
        ]
        for name, _ in extra:
            value = row.get(name)
            cells.append(_key_text("asn", value) if name == "src_asn" else (str(value) if value else ""))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    numeric = range(1, 5)
    text = []
    for line in lines:
        text.append(
            "  ".join(
                c.rjust(w) if i in numeric else c.ljust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
    return "\n".join(text) + "\n"
