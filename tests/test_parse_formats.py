"""Every format parser but netfilter's, and per-line auto-detection: goldens and any input.

Each ``tests/parsers/<format>/<scenario>.log`` sits beside
``<scenario>.expected.jsonl``: one JSON object per input line, in order, either
the event (``pipeline.event.rows`` format) or ``{"source_offset": ..,
"reject": reason}``. Regenerate with ``FIREPLOT_REGEN_GOLDEN=1`` and read the
diff before committing it: the goldens are the specification.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.event import EVENT_SCHEMA, conform
from pipeline.parsers import FORMATS, ParseContext, ParseResult, assemble, auto, get, winfw
from tests.support.golden import expected_outcome, lines_that_made_events, mutations, outcome, read_lines

ROOT = Path(__file__).parent / "parsers"
PARSED = ("ulogd_json", "journald", "filterlog", "pf", "asa", "winfw", "vpc", "mikrotik", "auto")
CASES = sorted((fmt, path.stem) for fmt in PARSED for path in (ROOT / fmt).glob("*.log"))
REFERENCE_TIME = dt.datetime(2024, 6, 15, 12, 0, tzinfo=dt.UTC)
# What a scenario's shipper would know beyond the lines themselves.
CONTEXTS: dict[tuple[str, str], dict[str, object]] = {
    ("winfw", "pfirewall"): {"tz": ZoneInfo("Europe/Oslo")},
    ("winfw", "dst_fold"): {"tz": ZoneInfo("Europe/Oslo")},
    ("ulogd_json", "nmap_lab_real"): {
        "host": "fw-lab",
        "reference_time": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    },
    ("ulogd_json", "plugin_variants"): {"host": "fw-lab", "tz": ZoneInfo("Europe/Oslo")},
    ("pf", "edge_cases"): {"reference_time": dt.datetime(2025, 1, 1, 0, 30, tzinfo=dt.UTC)},
}


# Syntax characters of the formats here (JSON, CSV, pf and ASA text): the likeliest edges.
PATCHES = ['"', "{", ",", " ", ":", "/", "[", "]", "-", "0", "9" * 12]


def context(fmt: str, scenario: str) -> ParseContext:
    settings_: dict[str, object] = {
        "site": "lab",
        "source_id": f"{fmt}/{scenario}.log",
        "reference_time": REFERENCE_TIME,
    }
    settings_.update(CONTEXTS.get((fmt, scenario), {}))
    return ParseContext(**settings_)  # type: ignore[arg-type]


def run(fmt: str, scenario: str, parser_name: str | None = None) -> ParseResult:
    # A fresh source each run: winfw remembers headers per source_id.
    winfw.forget(f"{fmt}/{scenario}.log")
    lines, offsets = read_lines(ROOT / fmt / f"{scenario}.log")
    return get(parser_name or fmt)(lines, offsets, context(fmt, scenario))


class TestGoldenFixtures:
    @pytest.mark.parametrize(("fmt", "scenario"), CASES)
    def test_scenario_matches_golden(self, fmt: str, scenario: str) -> None:
        """Every line of the scenario becomes the event or reject its golden file records."""
        rv = outcome(run(fmt, scenario))

        golden = ROOT / fmt / f"{scenario}.expected.jsonl"
        expected = expected_outcome(golden, rv)
        assert expected == rv

    @pytest.mark.parametrize(("fmt", "scenario"), CASES)
    def test_scenario_events_conform_and_account_for_every_line(self, fmt: str, scenario: str) -> None:
        """Events are in the event schema, and events plus rejects are exactly the lines, in order."""
        _, offsets = read_lines(ROOT / fmt / f"{scenario}.log")
        rv = run(fmt, scenario)

        assert rv.events.schema == EVENT_SCHEMA
        assert rv.events.num_rows == conform(rv.events).num_rows
        seen = [*rv.events.column("source_offset").to_pylist(), *(r.offset for r in rv.rejects)]
        assert sorted(seen) == offsets.to_pylist()
        assert rv.events.column("source_offset").to_pylist() == sorted(
            rv.events.column("source_offset").to_pylist()
        )
        assert all(reject.reason for reject in rv.rejects)

    @pytest.mark.parametrize("fmt", PARSED)
    def test_every_format_has_scenarios_with_goldens(self, fmt: str) -> None:
        """Each format has at least one scenario, and no scenario misses its golden."""
        logs = sorted(path.stem for path in (ROOT / fmt).glob("*.log"))
        goldens = sorted(path.name.removesuffix(".expected.jsonl") for path in (ROOT / fmt).glob("*.jsonl"))

        assert logs
        assert logs == goldens

    @pytest.mark.parametrize(("fmt", "scenario"), [c for c in CASES if c[0] != "auto"])
    def test_auto_detection_makes_the_same_events(self, fmt: str, scenario: str) -> None:
        """Auto-detection routes each line of a format's fixture so that it makes the same events."""
        expected = run(fmt, scenario).events
        rv = run(fmt, scenario, "auto").events

        assert expected.to_pylist() == rv.to_pylist()

    def test_real_ulogd_capture_agrees_with_its_logemu_twin(self) -> None:
        """The real ulogd2 JSON capture gives the events the same packets' LOGEMU text gives."""
        ctx = context("ulogd_json", "nmap_lab_real")
        text_lines, text_offsets = read_lines(ROOT.parent / "fixtures" / "ulogd" / "nmap-lab.logemu.log")
        from_text = get("netfilter")(text_lines, text_offsets, ctx).events
        from_json = run("ulogd_json", "nmap_lab_real").events

        def key(table: pa.Table) -> list[tuple[object, ...]]:
            columns = ("src_ip", "dst_ip", "src_port", "dst_port", "proto", "in_if", "tcp_flags", "prefix")
            return [tuple(row[c] for c in columns) for row in table.to_pylist()]

        assert from_json.num_rows == 19
        assert key(from_text) == key(from_json)
        # The text has whole seconds only; the JSON's epoch fields are the same second.
        text_seconds = [t.replace(microsecond=0) for t in from_text.column("ts").to_pylist()]
        json_seconds = [t.replace(microsecond=0) for t in from_json.column("ts").to_pylist()]
        assert text_seconds == json_seconds


class TestRegistry:
    def test_every_format_is_registered(self) -> None:
        """--format knows auto, netfilter and every format parsed here, and each resolves."""
        rv = sorted(FORMATS)

        assert sorted(("netfilter", *PARSED)) == rv
        assert all(callable(get(name)) for name in FORMATS)

    def test_auto_is_the_default_format(self) -> None:
        """auto comes first in FORMATS, and fireplot's --format flags default to it."""
        from fireplot.cli import build_parser

        parser = build_parser()
        rv = {name: parser.parse_args([name, "x.log"]).format for name in ("parse", "ship")}

        assert FORMATS[0] == "auto"
        assert rv == {"parse": "auto", "ship": "auto"}

    def test_unknown_format_raises(self) -> None:
        """An unknown format name is an error naming the known ones."""
        with pytest.raises(KeyError, match="known: auto, netfilter"):
            get("syslog-ng")


class TestWindowsHeaders:
    def test_header_is_remembered_across_batches_of_one_source(self) -> None:
        """A #Fields header read in one batch decides the columns of the source's next batch."""
        ctx = ParseContext(site="lab", source_id="winfw-batches", reference_time=REFERENCE_TIME)
        winfw.forget(ctx.source_id)
        header = "#Fields: time date action protocol src-ip dst-ip src-port dst-port"
        line = "14:22:05 2024-03-10 DROP TCP 198.51.100.7 192.0.2.10 40000 22"
        winfw.parse(pa.array([header]), pa.array([0], pa.int64()), ctx)

        rv = winfw.parse(pa.array([line]), pa.array([100], pa.int64()), ctx)

        assert [(r.offset, r.reason) for r in rv.rejects] == []
        assert rv.events.column("dst_port").to_pylist() == [22]

    def test_context_fields_declare_columns_out_of_band(self) -> None:
        """ctx.fields gives the columns of a source whose header is not in the lines."""
        ctx = ParseContext(
            site="lab",
            source_id="winfw-declared",
            reference_time=REFERENCE_TIME,
            fields=("action", "date", "time", "protocol", "src-ip", "dst-ip", "src-port", "dst-port"),
        )
        winfw.forget(ctx.source_id)

        rv = winfw.parse(
            pa.array(["ALLOW 2024-03-10 14:22:05 UDP 198.51.100.7 192.0.2.10 5353 53"]), pa.array([0]), ctx
        )

        assert rv.events.select(["action", "dst_port"]).to_pylist() == [{"action": "accept", "dst_port": 53}]


@functools.cache
def valid_lines(fmt: str) -> list[str]:
    """Lines of the format's fixtures that make events: seeds for mutation."""
    seeds: list[str] = []
    for case_fmt, scenario in CASES:
        if case_fmt != fmt:
            continue
        lines, offsets = read_lines(ROOT / fmt / f"{scenario}.log")
        seeds += lines_that_made_events(lines, offsets, run(fmt, scenario))
    return seeds


def check_accounts(fmt: str, lines: list[str | None]) -> None:
    offsets = list(range(0, 1000 * len(lines), 1000))
    ctx = ParseContext(site="lab", source_id=f"any-{fmt}", reference_time=REFERENCE_TIME)
    rv = get(fmt)(pa.array(lines, pa.string()), pa.array(offsets, pa.int64()), ctx)

    outcomes = sorted([*rv.events.column("source_offset").to_pylist(), *(r.offset for r in rv.rejects)])
    assert offsets == outcomes
    assert all(reject.reason for reject in rv.rejects)
    assert rv.events.num_rows == conform(rv.events).num_rows


class TestAnyInput:
    @pytest.mark.parametrize("fmt", PARSED)
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(lines=st.lists(st.one_of(st.none(), st.text(max_size=200)), max_size=12))
    def test_arbitrary_text_never_raises(self, fmt: str, lines: list[str | None]) -> None:
        """Any text, nulls included, is split into events and rejects, one outcome per line, explained."""
        check_accounts(fmt, lines)

    @pytest.mark.parametrize("fmt", PARSED)
    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_mutated_lines_never_raise(self, fmt: str, data: st.DataObject) -> None:
        """Valid lines cut, patched or spliced anywhere still give one explained outcome each."""
        originals = data.draw(st.lists(st.sampled_from(valid_lines(fmt)), min_size=1, max_size=8))
        check_accounts(fmt, [data.draw(mutations(line, PATCHES)) for line in originals])

    @pytest.mark.parametrize("fmt", PARSED)
    def test_empty_batch(self, fmt: str) -> None:
        """No lines give an empty table in the event schema and no rejects."""
        rv = get(fmt)(pa.array([], pa.string()), pa.array([], pa.int64()), context(fmt, "empty"))

        assert (rv.events.schema, rv.events.num_rows, rv.rejects) == (EVENT_SCHEMA, 0, [])

    @pytest.mark.parametrize("fmt", PARSED)
    def test_lines_and_offsets_must_pair_up(self, fmt: str) -> None:
        """A batch with more lines than offsets is a caller's bug, not data: it raises."""
        with pytest.raises(ValueError, match="2 lines but 1 offsets"):
            get(fmt)(pa.array(["a", "b"]), pa.array([0], pa.int64()), context(fmt, "pairs"))


class TestDetection:
    def test_each_format_fixture_is_detected_as_its_format(self) -> None:
        """Lines that make events in a format's fixtures are detected as that format."""
        for fmt in PARSED:
            if fmt == "auto":
                continue
            seeds = valid_lines(fmt)
            rv = auto.detect(pa.array(seeds)).to_pylist()

            assert {auto.FORMATS[i] if i is not None else None for i in rv} == {fmt}, fmt


class TestDeferredReasons:
    @settings(max_examples=150, deadline=None)
    @given(
        rows=st.lists(
            st.tuples(
                st.one_of(st.none(), st.sampled_from(["earlier reason", ""])),
                st.one_of(st.none(), st.booleans()),
                st.one_of(st.none(), st.text(max_size=100)),
            ),
            max_size=20,
        )
    )
    def test_reason_is_built_for_the_rejected_rows_as_for_every_row(
        self, rows: list[tuple[str | None, bool | None, str | None]]
    ) -> None:
        """first() with a deferred quoted reason gives, row by row, what spelling it out for all rows gave."""
        reason = pa.array([r for r, _, _ in rows], pa.string())
        bad = pa.array([b for _, b, _ in rows], pa.bool_())
        text = pa.array([t for _, _, t in rows], pa.string())

        got = assemble.first(reason, bad, assemble.joined("bad value ", assemble.quoted(text))).to_pylist()
        twice = assemble.first(
            reason,
            bad,
            assemble.joined(assemble.quoted(text), assemble.joined(" and ", assemble.quoted(text))),
        ).to_pylist()

        def quote(t: str | None) -> str:
            t = t or ""
            return "'" + (t[: assemble.QUOTE_LIMIT] + "..." if len(t) > assemble.QUOTE_LIMIT else t) + "'"

        assert got == [r if r is not None or not b else f"bad value {quote(t)}" for r, b, t in rows]
        assert twice == [r if r is not None or not b else f"{quote(t)} and {quote(t)}" for r, b, t in rows]
