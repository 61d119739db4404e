"""Format detection with the native netfilter scanner in front of it, against detection alone.

`pipeline.parsers.auto` lets the scanner claim netfilter lines before any
signature is tried, and detects the format of the rest. That is right only if
every claimed line is one detection would have handed to the netfilter parser;
a line that also fits an earlier signature (ASA's ``%ASA-``, filterlog's
commas) must go through detection. These tests run ``auto.parse`` both ways
(``FIREPLOT_NETFILTER_ENGINE`` auto and arrow) on mixed batches and require
the same events and rejects.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.parsers import ParseContext, ParseResult, auto, netfilter, winfw
from tests.support.golden import mutations, outcome, read_lines

ROOT = Path(__file__).parent / "parsers"
CTX = ParseContext(
    site="lab", source_id="mixed.log", reference_time=dt.datetime(2024, 6, 15, 12, tzinfo=dt.UTC)
)
# One real line of each format, from the goldens, to mix into batches.
SAMPLES: list[str] = [
    path.read_text(encoding="utf-8").splitlines()[0]
    for path in sorted(ROOT.glob("*/*.log"))
    if path.stat().st_size
]
NETFILTER = [
    line for line in (ROOT / "netfilter" / "ipv4_tcp_syn_uptime.log").read_text().splitlines() if line
]
# Text that makes a netfilter line fit an earlier signature, or breaks it.
PATCHES = ["%ASA-4-106023: ", "%FTD-1-106001: ", ",", "filterlog ", " 5,,,1000000103,igb1,", "{", " ", "IN="]


def both_ways(lines: list[str]) -> tuple[ParseResult, ParseResult]:
    """``auto.parse`` with the scanner, then with detection alone, on the same batch."""
    array = pa.array(lines, pa.string())
    offsets = pa.array([100 * n for n in range(len(lines))], pa.int64())
    assert netfilter.engine() == "native", "the scanner library is not built (scripts/bootstrap builds it)"
    winfw.forget(CTX.source_id)
    native = auto.parse(array, offsets, CTX)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIREPLOT_NETFILTER_ENGINE", "arrow")
        assert netfilter.engine() == "arrow"
        winfw.forget(CTX.source_id)
        reference = auto.parse(array, offsets, CTX)
    return native, reference


def assert_same(native: ParseResult, reference: ParseResult) -> None:
    assert outcome(native) == outcome(reference)
    assert native.events.equals(reference.events)
    assert native.rejects == reference.rejects


def test_the_mixed_sources_golden_parses_the_same_with_the_scanner() -> None:
    lines, _ = read_lines(ROOT / "auto" / "mixed_sources.log")
    native, reference = both_ways(lines.to_pylist())
    assert native.events.num_rows > 0
    assert_same(native, reference)


@pytest.mark.parametrize("patch", PATCHES)
def test_a_netfilter_line_carrying_another_formats_signature_is_detected_as_before(patch: str) -> None:
    """The scanner must leave such a line to detection; a claim would change its parser."""
    line = NETFILTER[0]
    at = line.index("IN=")
    patched = [line[:at] + patch + line[at:], line + " " + patch, patch + line]
    native, reference = both_ways([*patched, *NETFILTER])
    assert_same(native, reference)


def test_a_netfilter_line_with_an_asa_tag_is_not_claimed_by_the_scanner() -> None:
    """Detection tries ASA before netfilter: the line's event, if any, is ASA's business."""
    line = NETFILTER[0]
    at = line.index("IN=")
    asa_like = line[:at] + "%ASA-4-106023: " + line[at:]
    lines = pa.array([asa_like, NETFILTER[0]], pa.string())
    claimed = netfilter.read_claimed(lines, pa.array([0, 1], pa.int64()), CTX, alone=True)
    assert claimed is not None
    _, good = claimed
    assert good.to_pylist() == [False, True]
    # Forced to netfilter (no detection), the same line is the scanner's to read.
    forced = netfilter.read_claimed(lines, pa.array([0, 1], pa.int64()), CTX, alone=False)
    assert forced is not None and forced[1].to_pylist() == [True, True]


def test_every_golden_file_of_every_format_parses_the_same_with_the_scanner() -> None:
    for path in sorted(ROOT.glob("*/*.log")):
        lines, _ = read_lines(path)
        native, reference = both_ways(lines.to_pylist())
        assert_same(native, reference)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mix_of_formats_and_mutated_netfilter_lines_parses_the_same(data: st.DataObject) -> None:
    picks = data.draw(st.lists(st.sampled_from(SAMPLES + NETFILTER), min_size=1, max_size=25))
    lines = [data.draw(mutations(line, PATCHES)) if data.draw(st.booleans()) else line for line in picks]
    native, reference = both_ways(lines)
    assert_same(native, reference)
