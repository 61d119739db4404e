"""Per-line format detection: each line goes to the parser of the format it looks like.

Sites mix sources (a syslog file with netfilter, ASA and filterlog lines), so
the format is decided per line, by cheap RE2 matches over the whole column
that look for each format's signature, in an order where no signature can
steal another's lines (JSON first, then tagged syslog messages, then the
netfilter body, then the looser layouts). Each parser then runs once on its
subset, and the results are stitched back in input order. A line no
signature fits is rejected as such; a line that fits one is judged by that
format's parser alone, so its reason is that format's.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.event import EVENT_SCHEMA
from pipeline.parsers import ParseContext, Parser, ParseResult, Reject, get, netfilter
from pipeline.parsers.assemble import start

# (format, signature) in the order they are tried.
SIGNATURES: Final = (
    ("journald", r'^\s*\{.*"__REALTIME_TIMESTAMP"'),
    ("ulogd_json", r"^\s*\{"),
    ("asa", r"%(?:ASA|FTD)-\d-\d{6}: "),
    ("filterlog", r"filterlog\b.* [^,\s]*,[^,]*,[^,]*,[^,]*,"),
    ("netfilter", r"IN=\S* .*SRC="),
    ("pf", r"rule \S+\(\w+\):? .*(?:in|out) on \S+: "),
    ("mikrotik", r" in:.* out:.*, proto \S+.*->"),
    (
        "winfw",
        r"^(?:#(?:Version|Software|Time Format|Fields):"
        r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?:DROP|ALLOW|INFO-EVENTS-LOST) )",
    ),
    (
        "vpc",
        r"^(?:version account-id "
        r"|2 \S+ \S+ \S+ \S+ \S+ \S+ \S+ \S+ \S+ \d+ \d+ \S+ (?:OK|NODATA|SKIPDATA)$)",
    ),
)
FORMATS: Final = tuple(name for name, _ in SIGNATURES)


def detect(lines: pa.Array) -> pa.Array:
    """The format each line looks like (index into FORMATS), null where none fits."""
    lines, _ = start(lines, pa.array(range(len(lines)), pa.int64()))
    which = pa.nulls(len(lines), pa.int64())
    for index, (_, signature) in enumerate(SIGNATURES):
        undecided = pc.is_null(which)
        if not pc.any(undecided).as_py():
            break
        hit = pc.and_(undecided, pc.fill_null(pc.match_substring_regex(lines, signature), False))
        which = pc.if_else(hit, index, which)
    return which


def parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Parse each line with the parser of the format it looks like."""
    lines, offsets = start(lines, offsets)
    # Netfilter lines the native scanner claims need no detection: it claims
    # only lines no earlier signature can match (see netfilter.read_claimed).
    claimed = netfilter.read_claimed(lines, offsets, ctx, alone=True) if len(lines) else None
    if claimed is None:
        return _detected(lines, offsets, ctx)
    events, good = claimed
    rest = pc.indices_nonzero(pc.invert(good)).cast(pa.int64())
    if len(rest) == 0:
        return ParseResult(events, [])
    other, positions, rejects = _on_subset(_detected, lines, offsets, rest, ctx)
    return ParseResult(netfilter.merge_in_order(events, good, other, positions), [r for _, r in rejects])


def _on_subset(
    parse: Parser, lines: pa.Array, offsets: pa.Array, positions: pa.Array, ctx: ParseContext
) -> tuple[pa.Table, pa.Array, list[tuple[int, Reject]]]:
    """``parse`` on the lines at ``positions``, with their real offsets.

    Returns the events, the position of each event's line, and each reject
    with its line's position.
    """
    # Positions as offsets, so results map back to the input order.
    result = parse(pc.take(lines, positions), positions, ctx)
    made = result.events.column("source_offset").combine_chunks()
    events = result.events.set_column(
        result.events.schema.get_field_index("source_offset"),
        EVENT_SCHEMA.field("source_offset"),
        pc.take(offsets, made),
    )
    rejects = [
        (r.offset, Reject(r.source_id, int(offsets[r.offset].as_py()), r.line, r.reason))
        for r in result.rejects
    ]
    return events, made, rejects


def _detected(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    which = detect(lines)
    # Most batches come from one source in one format: no reordering needed.
    counts = pc.value_counts(which)
    if len(counts) == 1 and counts.field("values")[0].is_valid:
        return get(FORMATS[counts.field("values")[0].as_py()])(lines, offsets, ctx)
    tables: list[pa.Table] = []
    rejects: list[tuple[int, Reject]] = []
    for index, name in enumerate(FORMATS):
        rows = pc.fill_null(pc.equal(which, index), False)
        if not pc.any(rows).as_py():
            continue
        positions = pc.indices_nonzero(rows).cast(pa.int64())
        events, made, format_rejects = _on_subset(get(name), lines, offsets, positions, ctx)
        tables.append(events.append_column("_position", made))
        rejects += format_rejects
    unknown = pc.indices_nonzero(pc.is_null(which)).to_pylist()
    if unknown:
        text = pc.take(lines, pa.array(unknown, pa.int64())).to_pylist()
        where = pc.take(offsets, pa.array(unknown, pa.int64())).to_pylist()
        rejects += [
            (
                p,
                Reject(
                    ctx.source_id, o, t, "empty line" if not t.strip() else "no known log format recognised"
                ),
            )
            for p, o, t in zip(unknown, where, text, strict=True)
        ]
    if not tables:
        events = EVENT_SCHEMA.empty_table()
    else:
        joined = pa.concat_tables(tables)
        joined = joined.take(pc.sort_indices(joined.column("_position")))
        events = joined.drop_columns(["_position"])
    rejects.sort(key=lambda pair: pair[0])
    return ParseResult(events, [r for _, r in rejects])
