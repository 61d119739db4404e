"""The netfilter LOG parser: golden fixtures per scenario, and what holds for any input.

Each ``tests/parsers/netfilter/<scenario>.log`` sits beside
``<scenario>.expected.jsonl``: one JSON object per input line, in order, either
the event (``pipeline.event.rows`` format) or ``{"source_offset": ..,
"reject": reason}``. Regenerate them with ``FIREPLOT_REGEN_GOLDEN=1`` and read
the diff before committing it: the goldens are the specification.
"""

from __future__ import annotations

import functools
import ipaddress

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.event import EVENT_SCHEMA, conform
from pipeline.parsers import ParseContext, ParseResult, get, netfilter_arrow
from pipeline.parsers.address import normalise_addresses
from pipeline.parsers.netfilter import parse
from tests.support.golden import NETFILTER_FIXTURES as FIXTURES
from tests.support.golden import NETFILTER_SCENARIOS as SCENARIOS
from tests.support.golden import expected_outcome, lines_that_made_events, mutations, outcome, read_lines
from tests.support.golden import netfilter_context as context

KERNEL_LINE = (
    "Mar  3 04:11:27 gw kernel: [ 8812.004211] DROP IN=eth0 OUT= "
    "MAC=02:00:5e:10:00:01:02:00:5e:10:00:99:86:dd SRC={src} DST={dst} LEN=80 TC=0 "
    "HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=46395 DPT=443 WINDOW=5760 RES=0x00 SYN URGP=0 "
)


# The LOG format's own syntax: keys, separators and digits are where parsers break.
PATCHES = ["=", " ", "[", "]", ":", "0", "IN=", " SRC=", " PROTO="]


def sample(text: str, ctx: ParseContext | None = None) -> ParseResult:
    lines = text.split("\n")
    return parse(
        pa.array(lines, pa.string()),
        pa.array(range(len(lines)), pa.int64()),
        ctx or context("sample"),
    )


class TestGoldenFixtures:
    @pytest.mark.parametrize("scenario", SCENARIOS)
    def test_scenario_matches_golden(self, scenario: str) -> None:
        """Every line of the scenario becomes the event or reject its golden file records."""
        lines, offsets = read_lines(FIXTURES / f"{scenario}.log")
        rv = outcome(parse(lines, offsets, context(scenario)))

        golden = FIXTURES / f"{scenario}.expected.jsonl"
        expected = expected_outcome(golden, rv)
        assert expected == rv

    @pytest.mark.parametrize("scenario", SCENARIOS)
    def test_scenario_events_conform(self, scenario: str) -> None:
        """Events come out in the event schema with every required column filled."""
        lines, offsets = read_lines(FIXTURES / f"{scenario}.log")
        rv = parse(lines, offsets, context(scenario)).events

        assert rv.schema == EVENT_SCHEMA
        assert rv.num_rows == conform(rv).num_rows

    def test_every_fixture_has_a_golden(self) -> None:
        """No scenario is missing its expected output, and no golden is orphaned."""
        rv = sorted(path.name.removesuffix(".expected.jsonl") for path in FIXTURES.glob("*.jsonl"))

        assert rv == SCENARIOS


class TestPaths:
    @pytest.mark.parametrize("scenario", SCENARIOS)
    def test_fast_path_reads_what_the_whole_line_pattern_reads(self, scenario: str) -> None:
        """Cutting lines at IN=, SRC= and PROTO= gives the fields the whole-line pattern gives."""
        lines, _ = read_lines(FIXTURES / f"{scenario}.log")
        fast, _ = netfilter_arrow.read_fast(lines)
        whole, _ = netfilter_arrow.read_whole(lines, fast.position)

        expected = {name: value.to_pylist() for name, value in vars(whole).items()}
        rv = {name: value.to_pylist() for name, value in vars(fast).items()}
        assert expected == rv

    def test_registry_finds_the_parser(self) -> None:
        """The shipper's --format netfilter resolves to this parser."""
        rv = get("netfilter")

        assert parse is rv


class TestAnyInput:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.text(max_size=300), max_size=20))
    def test_arbitrary_text_never_raises(self, lines: list[str]) -> None:
        """Any text is split into events and rejects, one outcome per line, rejects explained."""
        rv = parse(pa.array(lines, pa.string()), pa.array(range(len(lines)), pa.int64()), context("any"))

        assert len(lines) == rv.events.num_rows + len(rv.rejects)
        assert all(reject.reason for reject in rv.rejects)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def test_mutated_lines_never_raise(self, data: st.DataObject) -> None:
        """Valid lines cut, patched or spliced anywhere still give one explained outcome each."""
        originals = data.draw(st.lists(st.sampled_from(valid_lines()), min_size=1, max_size=8))
        lines = [data.draw(mutations(line, PATCHES)) for line in originals]
        offsets = list(range(0, 1000 * len(lines), 1000))

        rv = parse(pa.array(lines, pa.string()), pa.array(offsets, pa.int64()), context("any"))

        outcomes = sorted([*rv.events.column("source_offset").to_pylist(), *(r.offset for r in rv.rejects)])
        assert offsets == outcomes
        assert all(reject.reason for reject in rv.rejects)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def test_mutated_lines_read_alike_on_both_paths(self, data: st.DataObject) -> None:
        """Whatever the fast path reads from a damaged line, the whole-line pattern reads too."""
        originals = data.draw(st.lists(st.sampled_from(valid_lines()), min_size=1, max_size=8))
        lines = pa.array([data.draw(mutations(line, PATCHES)) for line in originals], pa.string())
        fast, _ = netfilter_arrow.read_fast(lines)
        whole, _ = netfilter_arrow.read_whole(lines, fast.position)

        expected = {name: value.to_pylist() for name, value in vars(whole).items()}
        rv = {name: value.to_pylist() for name, value in vars(fast).items()}
        assert expected == rv

    def test_nulls_and_empties_are_rejected_not_skipped(self) -> None:
        """Null, empty and blank lines each get a reject, in the order they came."""
        rv = parse(pa.array([None, "", "  \t"], pa.string()), pa.array([0, 1, 2], pa.int64()), context("any"))

        assert [(r.offset, r.reason) for r in rv.rejects] == [
            (0, "empty line"),
            (1, "empty line"),
            (2, "empty line"),
        ]

    def test_no_lines_give_no_events(self) -> None:
        """An empty batch gives an empty table in the event schema."""
        rv = parse(pa.array([], pa.string()), pa.array([], pa.int64()), context("any"))

        assert (rv.events.schema, rv.events.num_rows, rv.rejects) == (EVENT_SCHEMA, 0, [])

    def test_lines_and_offsets_must_pair_up(self) -> None:
        """A batch with more lines than offsets is a caller's bug, not data: it raises."""
        with pytest.raises(ValueError, match="2 lines but 1 offsets"):
            parse(pa.array(["a", "b"]), pa.array([0], pa.int64()), context("any"))


class TestAddresses:
    @settings(max_examples=500, deadline=None)
    @given(st.lists(st.ip_addresses(v=6), min_size=1, max_size=50))
    def test_kernel_ipv6_form_compresses_like_ipaddress(self, addresses: list[ipaddress.IPv6Address]) -> None:
        """The kernel's fully expanded IPv6 addresses come out as ipaddress compresses them."""
        rv = normalise_addresses(pa.array([a.exploded for a in addresses])).to_pylist()

        assert [a.compressed for a in addresses] == rv

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.ip_addresses(v=6), min_size=1, max_size=20), st.booleans())
    def test_other_ipv6_spellings_compress_like_ipaddress(
        self, addresses: list[ipaddress.IPv6Address], upper: bool
    ) -> None:
        """Compressed, upper-case or IPv4-suffixed IPv6 (ulogd2) comes out as ipaddress has it."""
        texts = [str(a).upper() if upper else str(a) for a in addresses]

        rv = normalise_addresses(pa.array(texts)).to_pylist()

        assert [a.compressed for a in addresses] == rv

    @settings(max_examples=100, deadline=None)
    @given(st.ip_addresses(v=6), st.ip_addresses(v=6))
    def test_parsed_lines_carry_compressed_addresses(
        self, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address
    ) -> None:
        """A kernel IPv6 line's event holds both addresses as ipaddress compresses them."""
        rv = sample(KERNEL_LINE.format(src=src.exploded, dst=dst.exploded)).events

        assert [(src.compressed, dst.compressed, 6)] == list(
            zip(
                rv.column("src_ip").to_pylist(),
                rv.column("dst_ip").to_pylist(),
                rv.column("ip_version").to_pylist(),
                strict=True,
            )
        )

    @pytest.mark.parametrize(
        "text",
        ["256.1.1.1", "01.2.3.4", "1.2.3", "2001:db8::1::2", "2001:db8::1%eth0", "fe80::g", ""],
    )
    def test_non_addresses_are_null(self, text: str) -> None:
        """Text that is no IP address normalises to null, never to a guess."""
        rv = normalise_addresses(pa.array([text])).to_pylist()

        assert rv == [None]


@functools.cache
def valid_lines() -> list[str]:
    """Lines of the fixtures that make events: seeds for mutation."""
    seeds: list[str] = []
    for scenario in SCENARIOS:
        lines, offsets = read_lines(FIXTURES / f"{scenario}.log")
        seeds += lines_that_made_events(lines, offsets, parse(lines, offsets, context(scenario)))
    return seeds
