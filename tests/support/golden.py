"""Golden-file and mutation machinery shared by the parser tests.

A scenario is ``<name>.log`` beside ``<name>.expected.jsonl``: one JSON object per
input line, in order, the event it made or ``{"source_offset", "reject"}``.
``FIREPLOT_REGEN_GOLDEN=1`` rewrites the goldens from the parsers' current output
(review the diff before committing it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import strategies as st

from pipeline.event import rows
from pipeline.parsers import ParseContext, ParseResult
from producers.lines import to_batch

REGENERATE = os.environ.get("FIREPLOT_REGEN_GOLDEN") == "1"


def read_lines(path: Path) -> tuple[pa.Array, pa.Array]:
    """The lines of a file without their newlines, and the byte offset of each."""
    data = path.read_bytes()
    lines: list[str] = []
    offsets: list[int] = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        lines.append(data[start:end].decode())
        offsets.append(start)
        start = end + 1
    return pa.array(lines, pa.string()), pa.array(offsets, pa.int64())


def outcome(result: ParseResult) -> list[dict[str, object]]:
    """What became of each line, in input order."""
    records: list[dict[str, object]] = list(rows(result.events))
    records += [{"source_offset": r.offset, "reject": r.reason} for r in result.rejects]
    return sorted(records, key=lambda record: int(str(record["source_offset"])))


def expected_outcome(golden: Path, rv: list[dict[str, object]]) -> list[dict[str, object]]:
    """The golden file's records (rewritten from ``rv`` first when regenerating)."""
    if REGENERATE:
        golden.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rv))
    return [json.loads(line) for line in golden.read_text().splitlines()]


def lines_that_made_events(lines: pa.Array, offsets: pa.Array, result: ParseResult) -> list[str]:
    """The input lines that became events: seeds for mutation."""
    made = set(result.events.column("source_offset").to_pylist())
    return [
        line for line, offset in zip(lines.to_pylist(), offsets.to_pylist(), strict=True) if offset in made
    ]


@st.composite
def mutations(draw: st.DrawFn, line: str, patches: Sequence[str]) -> str:
    """The line cut short, with text patched in, a span deleted, repeated or replaced by a patch.

    ``patches`` are the format's own syntax characters: replacing a span with one
    of them reaches the parser's edge cases far more often than random text."""
    cut = draw(st.integers(0, len(line)))
    end = draw(st.integers(cut, len(line)))
    kind = draw(st.sampled_from(["truncate", "insert", "delete", "repeat", "replace"]))
    if kind == "truncate":
        return line[:cut]
    if kind == "insert":
        return line[:cut] + draw(st.text(max_size=20)) + line[cut:]
    if kind == "delete":
        return line[:cut] + line[end:]
    if kind == "repeat":
        return line[:end] + line[cut:end] + line[end:]
    return line[:cut] + draw(st.sampled_from(list(patches))) + line[end:]


def parse_file(
    path: Path, *, site: str, reference_time: dt.datetime | None = None
) -> tuple[ParseResult, pa.Int64Array]:
    """Parse a whole log file the way the shipper cuts it: complete lines + byte offsets."""
    from pipeline.parsers.netfilter import parse

    batch = to_batch(path.read_bytes(), 0)
    ctx = ParseContext(
        site=site,
        source_id=f"netlab:{path.name}",
        tz=ZoneInfo("UTC"),
        reference_time=reference_time or dt.datetime.now(dt.UTC),
    )
    return parse(batch.lines, batch.offsets, ctx), batch.offsets


# The netfilter parser's golden scenarios (tests/parsers/netfilter): Python and native parser tests.
NETFILTER_FIXTURES = Path(__file__).resolve().parents[1] / "parsers" / "netfilter"
NETFILTER_SCENARIOS = sorted(path.stem for path in NETFILTER_FIXTURES.glob("*.log"))

REFERENCE_TIME = dt.datetime(2024, 6, 15, 12, 0, tzinfo=dt.UTC)
# What a netfilter scenario's shipper would know beyond the lines themselves.
CONTEXTS: dict[str, dict[str, object]] = {
    "new_year_rollover": {"reference_time": dt.datetime(2025, 1, 1, 0, 30, tzinfo=dt.UTC)},
    "timezone": {
        "tz": ZoneInfo("Europe/Oslo"),
        "reference_time": dt.datetime(2024, 11, 1, tzinfo=dt.UTC),
    },
    "hostless_header": {"host": "fw-lab-9"},
}


def netfilter_context(scenario: str) -> ParseContext:
    settings_: dict[str, object] = {
        "site": "lab",
        "source_id": f"{scenario}.log",
        "reference_time": REFERENCE_TIME,
    }
    settings_.update(CONTEXTS.get(scenario, {}))
    return ParseContext(**settings_)  # type: ignore[arg-type]
