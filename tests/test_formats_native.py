"""The native scanners of the other formats against their pyarrow parsers: any disagreement is a bug.

Each format's ``parse`` hands the lines its scanner (``native/src/formats/``)
is sure of to that scanner and every other line to the format's
``parse_arrow``. For any batch the two must give the same events table and
the same rejects in the same order, so every test parses one batch both ways
and compares: the golden fixtures, lines built from every field shape the
format allows (IPv6 in every spelling, PRI, stamps with and without a year,
hosts, topics, NAT, users, ICMP), those lines patched with the format's own
syntax and with hostile text, and batches mixing lines the scanner claims with
lines it leaves. Each test also checks that the scanner claimed what it should,
so a scanner that claims nothing cannot pass as "identical".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.parsers import (
    ParseContext,
    ParseResult,
    asa,
    filterlog,
    mikrotik,
    native_formats,
    pf,
    syslog,
    vpc,
    winfw,
)
from tests.support.golden import mutations, outcome
from tests.support.native_format_lines import (
    ASA_106023,
    ASA_106100,
    ASA_HEADS,
    ASA_TAGS,
    FILTERLOG_BODIES,
    FILTERLOG_HEADS,
    LINES,
    MIKROTIK_BODIES,
    MIKROTIK_HEADS,
    PATCHES,
    PF_BODIES,
    PF_HEADS,
    VPC_BODIES,
    WINFW_BODIES,
    WINFW_LINES,
)

FIXTURES = Path(__file__).resolve().parent / "parsers"
Parse = Callable[[pa.Array, pa.Array, ParseContext], ParseResult]
PARSERS: dict[str, tuple[Parse, Parse]] = {
    "mikrotik": (mikrotik.parse, mikrotik.parse_arrow),
    "asa": (asa.parse, asa.parse_arrow),
    "filterlog": (filterlog.parse, filterlog.parse_arrow),
    "winfw": (winfw.parse, winfw.parse_arrow),
    "vpc": (vpc.parse, vpc.parse_arrow),
    "pf": (pf.parse, pf.parse_arrow),
}

CONTEXTS: dict[str, ParseContext] = {
    "utc": ParseContext(
        site="lab", source_id="x.log", reference_time=dt.datetime(2024, 6, 15, 12, tzinfo=dt.UTC)
    ),
    "oslo_spring": ParseContext(
        site="lab",
        source_id="o.log",
        host="fw-9",
        tz=ZoneInfo("Europe/Oslo"),
        reference_time=dt.datetime(2024, 3, 31, 0, 30, tzinfo=dt.UTC),
    ),
    "new_year": ParseContext(
        site="lab", source_id="n.log", reference_time=dt.datetime(2025, 1, 1, 0, 30, tzinfo=dt.UTC)
    ),
    "non_leap": ParseContext(
        site="lab",
        source_id="k.log",
        tz=ZoneInfo("Asia/Kolkata"),
        reference_time=dt.datetime(2023, 2, 28, 20, 0, tzinfo=dt.UTC),
    ),
}


@pytest.fixture(autouse=True)
def _native_required(monkeypatch: pytest.MonkeyPatch) -> None:
    # A missing or refusing library must fail these tests, not pass them on the pyarrow path twice.
    monkeypatch.setenv("FIREPLOT_NATIVE", "native")
    assert native_formats.engine() == "native", native_formats.why_unavailable()
    # Windows Firewall headers remembered by an earlier test would change the columns of the next.
    for ctx in CONTEXTS.values():
        winfw.forget(ctx.source_id)


def claimed(fmt: str, lines: list[str], ctx: ParseContext) -> int:
    found = native_formats.scan(fmt, pa.array(lines, pa.string()), syslog.year_rule(ctx))
    return 0 if found is None else found.claimed


def compare(fmt: str, lines: list[str], ctx: ParseContext) -> ParseResult:
    ours, reference = PARSERS[fmt]
    array = pa.array(lines, pa.string())
    offsets = pa.array([100 * i for i in range(len(lines))], pa.int64())
    # Windows Firewall remembers a source's last #Fields header: both start from the same memory.
    remembered = winfw._remembered(ctx.source_id)
    got = ours(array, offsets, ctx)
    _remember(ctx.source_id, remembered)
    want = reference(array, offsets, ctx)
    assert got.events.schema == want.events.schema
    assert outcome(got) == outcome(want), lines
    assert got.events.equals(want.events), lines
    assert got.rejects == want.rejects
    return got


def _remember(source_id: str, fields: tuple[str, ...] | None) -> None:
    winfw.forget(source_id)
    if fields is not None:
        winfw._remember(source_id, fields)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_golden_fixtures_parse_alike(fmt: str) -> None:
    paths = sorted((FIXTURES / fmt).glob("*.log"))
    assert paths
    lines = [line for path in paths for line in path.read_text().splitlines()]
    for ctx in CONTEXTS.values():
        compare(fmt, lines, ctx)
        # Each line alone too: a batch of one is claimed or declined on its own.
        for line in lines:
            compare(fmt, [line], ctx)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@pytest.mark.parametrize("context", sorted(CONTEXTS))
def test_every_field_shape_parses_alike(fmt: str, context: str) -> None:
    lines = LINES[fmt]
    ctx = CONTEXTS[context]
    result = compare(fmt, lines, ctx)
    # The scanner must really read these: most of them are claimed, and every claimed line made an event.
    count = claimed(fmt, lines, ctx)
    assert count >= len(lines) // 4, (count, len(lines))
    assert len(result.events) >= count
    if context == "utc":
        # A batch of one is claimed or given up on by itself (a sample: each line costs a parse).
        for line in lines[::7]:
            compare(fmt, [line], ctx)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_the_scanner_claims_the_usual_lines(fmt: str) -> None:
    """Without this, a scanner that claims nothing would pass every comparison above."""
    usual = {
        "mikrotik": [
            MIKROTIK_HEADS[0] + MIKROTIK_BODIES[0].format(a="198.51.100.7:45678", b="192.0.2.1:22"),
            MIKROTIK_HEADS[8] + MIKROTIK_BODIES[1].format(a="[2001:db8::7]:5353", b="[2001:DB8::1]:53"),
        ],
        "asa": [
            ASA_HEADS[0] + ASA_TAGS[0] + ASA_106023[0].format(p="tcp", a="198.51.100.7", b="192.0.2.10"),
            ASA_HEADS[5] + ASA_TAGS[2] + ASA_106100[0].format(p="udp", a="2001:db8::7", b="2001:db8::10"),
        ],
        "pf": [
            PF_HEADS[0] + PF_BODIES[0].format(a="198.51.100.7", b="192.0.2.10"),
            PF_HEADS[0] + PF_BODIES[3].format(a="2001:db8::7", b="2001:db8::10"),
        ],
        "vpc": [
            VPC_BODIES[0].format(a="198.51.100.7", b="203.0.113.12"),
            VPC_BODIES[2].format(a="2001:db8::7", b="::1"),
        ],
        "winfw": [
            WINFW_BODIES[0].format(d="2024-03-10", t="14:22:05", a="198.51.100.7", b="192.0.2.10"),
            WINFW_BODIES[4].format(d="2024-03-10", t="14:22:05", a="2001:db8::7", b="ff02::fb"),
        ],
        "filterlog": [
            FILTERLOG_HEADS[0] + FILTERLOG_BODIES[0].format(a="198.51.100.50", b="203.0.113.1"),
            FILTERLOG_HEADS[2] + FILTERLOG_BODIES[1].format(a="2001:db8::9", b="ff02::1:2"),
        ],
    }[fmt]
    assert claimed(fmt, usual, CONTEXTS["utc"]) == len(usual)
    assert len(compare(fmt, usual, CONTEXTS["utc"]).events) == len(usual)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_a_batch_of_unknown_lines_is_given_up_on(fmt: str) -> None:
    other = ["Mar 10 14:22:05 gw kernel: something else entirely"] * 64
    good = LINES[fmt][0]
    assert native_formats.scan(fmt, pa.array([*other, good]), syslog.year_rule(CONTEXTS["utc"])) is None
    assert claimed(fmt, [*other[:63], good], CONTEXTS["utc"]) == 1
    compare(fmt, [*other, good], CONTEXTS["utc"])


@st.composite
def patched_batches(draw: st.DrawFn, fmt: str) -> list[str]:
    pool = LINES[fmt]
    size = draw(st.integers(1, 12))
    batch = []
    for _ in range(size):
        line = draw(st.sampled_from(pool))
        choice = draw(st.integers(0, 3))
        if choice == 1:
            line = draw(mutations(line, PATCHES[fmt]))
        elif choice == 2:
            line = draw(st.text(alphabet=st.sampled_from(list(set("".join(pool)))), max_size=60))
        elif choice == 3:
            line = draw(mutations(draw(mutations(line, PATCHES[fmt])), PATCHES[fmt]))
        batch.append(line)
    return batch


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_patched_and_hostile_lines_parse_alike(fmt: str, data: st.DataObject) -> None:
    batch = data.draw(patched_batches(fmt))
    ctx = CONTEXTS[data.draw(st.sampled_from(sorted(CONTEXTS)))]
    compare(fmt, batch, ctx)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    groups=st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8),
    style=st.sampled_from(["compressed", "exploded", "upper", "short"]),
)
def test_every_ipv6_spelling_parses_alike(
    fmt: str, data: st.DataObject, groups: list[int], style: str
) -> None:
    import ipaddress

    address = ipaddress.IPv6Address(bytes(b for g in groups for b in g.to_bytes(2, "big")))
    text = {
        "compressed": address.compressed,
        "exploded": address.exploded,
        "upper": address.compressed.upper(),
        "short": ":".join(f"{g:x}" for g in groups),
    }[style]
    if fmt == "mikrotik":
        line = MIKROTIK_HEADS[0] + MIKROTIK_BODIES[0].format(a=f"[{text}]:1", b="[2001:db8::1]:2")
    elif fmt == "asa":
        line = ASA_HEADS[0] + ASA_TAGS[0] + ASA_106023[0].format(p="tcp", a=text, b="2001:db8::1")
    elif fmt == "filterlog":
        line = FILTERLOG_HEADS[1] + FILTERLOG_BODIES[1].format(a=text, b="2001:db8::1")
    elif fmt == "winfw":
        line = WINFW_BODIES[0].format(d="2024-03-10", t="14:22:05", a=text, b="2001:db8::1")
    elif fmt == "vpc":
        line = VPC_BODIES[0].format(a=text, b="2001:db8::1")
    else:
        line = PF_HEADS[0] + PF_BODIES[3].format(a=text, b="2001:db8::1")
    compare(fmt, [line, data.draw(st.sampled_from(LINES[fmt]))], CONTEXTS["utc"])


def test_the_switch_turns_the_scanners_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREPLOT_NATIVE", "off")
    assert native_formats.engine() == "off"
    monkeypatch.setenv("FIREPLOT_NATIVE", "bogus")
    with pytest.raises(Exception, match="FIREPLOT_NATIVE='bogus'"):
        native_formats.engine()


@pytest.mark.parametrize(
    "declared",
    [
        None,
        winfw.STANDARD_FIELDS,
        (*winfw.STANDARD_FIELDS, "pid"),
        ("date", "time", "action", "protocol", "src-ip", "dst-ip"),
    ],
)
@pytest.mark.parametrize("how", ["context", "remembered", "header_in_batch"])
def test_windows_firewall_columns_decide_alike(declared: tuple[str, ...] | None, how: str) -> None:
    """The columns come from ctx.fields, a header remembered from an earlier batch, or one in the batch."""
    base = CONTEXTS["oslo_spring"]
    ctx = ParseContext(
        site=base.site,
        source_id=f"winfw-{how}",
        tz=base.tz,
        reference_time=base.reference_time,
        fields=declared if how == "context" else None,
    )
    lines = list(WINFW_LINES)
    winfw.forget(ctx.source_id)
    if declared is not None and how == "remembered":
        winfw._remember(ctx.source_id, declared)
    if declared is not None and how == "header_in_batch":
        lines = [lines[0], "#Fields: " + " ".join(declared), *lines]
    compare("winfw", lines, ctx)
    standard = declared in (None, winfw.STANDARD_FIELDS, (*winfw.STANDARD_FIELDS, "pid"))
    # A header line in the batch leaves it to the pyarrow path (which segments it by header).
    if standard and (how != "header_in_batch" or declared is None):
        assert winfw._native_layout(pa.array(lines), ctx) is not None
    else:
        assert winfw._native_layout(pa.array(lines), ctx) is None
    winfw.forget(ctx.source_id)
