"""The native JSON scanners (journald, ulogd2 JSON) against their pyarrow parsers: any disagreement is a bug.

``journald.parse`` and ``ulogd_json.parse`` hand the lines their scanner
(``native/src/formats/json.rs`` and the two format modules) is sure of to it
and every other line to ``parse_arrow``. For any batch the two must give the
same events and the same rejects, reasons included, in the same order. Every
test parses a batch both ways and compares, and checks what the scanner
claimed, so a scanner that claims nothing cannot pass as "identical": the
golden fixtures; every shape of every key either parser reads (missing,
null, wrong type, out of range, each JSON spelling of the value); JSON
escapes (``\\uXXXX``, surrogate pairs, lone surrogates, every short escape);
hostile strings; duplicate keys; nesting; numbers as strings and strings as
numbers; white space; invalid UTF-8; every IPv6 spelling; and hypothesis
mixing all of it and patching the text.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.parsers import ParseContext, ParseResult, journald, native_formats, syslog, ulogd_json
from tests.support.golden import mutations, outcome

FIXTURES = Path(__file__).resolve().parent / "parsers"
Parse = Callable[[pa.Array, pa.Array, ParseContext], ParseResult]
PARSERS: dict[str, tuple[Parse, Parse]] = {
    "journald": (journald.parse, journald.parse_arrow),
    "ulogd_json": (ulogd_json.parse, ulogd_json.parse_arrow),
}
CONTEXTS: dict[str, ParseContext] = {
    "utc": ParseContext(
        site="lab", source_id="x.json", reference_time=dt.datetime(2024, 6, 15, 12, tzinfo=dt.UTC)
    ),
    "oslo": ParseContext(
        site="lab",
        source_id="o.json",
        host="fw-9",
        tz=ZoneInfo("Europe/Oslo"),
        reference_time=dt.datetime(2024, 3, 31, 0, 30, tzinfo=dt.UTC),
    ),
}


@pytest.fixture(autouse=True)
def _native_required(monkeypatch: pytest.MonkeyPatch) -> None:
    # A missing or refusing library must fail these tests, not pass them on the pyarrow path twice.
    monkeypatch.setenv("FIREPLOT_NATIVE", "native")
    assert native_formats.engine() == "native", native_formats.why_unavailable()


def claimed(fmt: str, lines: list[str] | pa.Array) -> list[bool]:
    array = lines if isinstance(lines, pa.Array) else pa.array(lines, pa.string())
    found = native_formats.scan(fmt, array, syslog.year_rule(CONTEXTS["utc"]))
    if found is None:
        return [False] * len(array)
    return [status == 1 for status in found.numbers["status"].to_pylist()]


def compare(fmt: str, lines: list[str] | pa.Array, ctx: ParseContext = CONTEXTS["utc"]) -> ParseResult:
    ours, reference = PARSERS[fmt]
    array = lines if isinstance(lines, pa.Array) else pa.array(lines, pa.string())
    offsets = pa.array([100 * i for i in range(len(array))], pa.int64())
    got = ours(array, offsets, ctx)
    want = reference(array, offsets, ctx)
    assert got.events.schema == want.events.schema
    assert outcome(got) == outcome(want), lines
    assert got.events.equals(want.events), lines
    assert got.rejects == want.rejects
    # Nothing lost, nothing twice: every line is one event or one reject.
    offsets_seen = got.events.column("source_offset").to_pylist() + [r.offset for r in got.rejects]
    assert sorted(offsets_seen) == offsets.to_pylist()
    return got


def compare_each(fmt: str, lines: list[str]) -> list[bool]:
    """Compare the batch, then each line alone (a batch of one is claimed or given up on by itself)."""
    for ctx in CONTEXTS.values():
        compare(fmt, lines, ctx)
    for line in lines:
        compare(fmt, [line])
    return claimed(fmt, lines)


# --- the lines -------------------------------------------------------------------------------------

V4_BODY = (
    "IN=eth0 OUT= MAC=02:00:5e:10:00:01:02:00:5e:10:00:99:08:00 SRC=198.51.100.23 DST=203.0.113.10 "
    "LEN=44 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP SPT=43210 DPT=3389 WINDOW=1024 RES=0x00 SYN URGP=0 "
)
V6_BODY = (
    "IN=eth0 OUT= MAC= SRC=2001:0db8:0000:0000:0000:0000:0000:0007 "
    "DST=2001:0db8:0000:0000:0000:0000:0000:0010 "
    "LEN=80 TC=0 HOPLIMIT=57 FLOWLBL=0 PROTO=UDP SPT=40000 DPT=53 LEN=40 "
)
ICMP_BODY = (
    "IN=eth0 OUT=eth1 SRC=198.51.100.9 DST=192.0.2.1 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=ICMP "
    "TYPE=8 CODE=0 ID=7 SEQ=1 "
)
FLAGS_BODY = V4_BODY.replace("SYN URGP", "CWR ECE URG ACK PSH RST SYN FIN URGP")
NO_FLAGS_BODY = V4_BODY.replace("SYN URGP", "URGP")
PREFIXES = [
    "DROP ",
    "[UFW BLOCK] ",
    '"filter_IN_public_REJECT: "',
    "",
    "accept-log ",
    "kernel: [ 12.5] DROP ",
]
MESSAGES = [p + b for p in PREFIXES for b in (V4_BODY, V6_BODY)] + [
    "DROP " + ICMP_BODY,
    "DROP " + FLAGS_BODY,
    "DROP " + NO_FLAGS_BODY,
    "DROP " + V4_BODY.replace("PROTO=TCP", "PROTO=47").split(" SPT=")[0],
    "DROP IN=eth0 OUT= SRC=198.51.100.9 DST=192.0.2.1 LEN=84",  # no PROTO: rejected
    "something else from the kernel",
]


def journal(**changes: Any) -> dict[str, Any]:
    """A journald export entry (the keys `journalctl -k -o json` writes), with changes; _DROP drops a key."""
    entry: dict[str, Any] = {
        "__CURSOR": "s=0a1b;i=23c2;b=d8b1;m=de;t=61a;x=9",
        "__REALTIME_TIMESTAMP": "1718530010123456",
        "__MONOTONIC_TIMESTAMP": "956932482352",
        "_BOOT_ID": "d8b1db9b444a499496cf0cefcb9a14c2",
        "_TRANSPORT": "kernel",
        "SYSLOG_FACILITY": "0",
        "SYSLOG_IDENTIFIER": "kernel",
        "PRIORITY": "4",
        "_SOURCE_MONOTONIC_TIMESTAMP": "956932482127",
        "_HOSTNAME": "fw-oslo-1",
        "MESSAGE": "DROP " + V4_BODY,
    }
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not _DROP}


def record(**changes: Any) -> dict[str, Any]:
    """A ulogd2 JSON record (the plugin's keys, tests/parsers/ulogd_json), with changes ("." as "__")."""
    entry: dict[str, Any] = {
        "timestamp": "2024-06-15T10:00:00.000001",
        "dvc": "Netfilter",
        "raw.pktlen": 44,
        "raw.pktcount": 1,
        "oob.prefix": "fp-lab DROP: ",
        "oob.time.sec": 1718438400,
        "oob.time.usec": 596499,
        "oob.mark": 0,
        "oob.family": 2,
        "oob.protocol": 2048,
        "ip.protocol": 6,
        "ip.ttl": 46,
        "src_port": 46801,
        "dest_port": 3389,
        "tcp.seq": 4017957551,
        "tcp.urg": 0,
        "tcp.ack": 0,
        "tcp.psh": 0,
        "tcp.rst": 0,
        "tcp.syn": 1,
        "tcp.fin": 0,
        "oob.in": "fp-fw0",
        "oob.out": "",
        "src_ip": "198.51.100.1",
        "dest_ip": "198.51.100.2",
        "mac.str": "4e:fb:86:62:bb:5f:c6:f6:1f:f6:e1:1b:08:00",
    }
    entry.update({k.replace("__", "."): v for k, v in changes.items()})
    return {k: v for k, v in entry.items() if v is not _DROP}


_DROP: Final = object()
BASE = {"journald": journal, "ulogd_json": record}


def dumps(entry: dict[str, Any], style: int = 0) -> str:
    """JSON as the writers spell it, and as they might: compact, escaped non-ASCII, spaced out."""
    if style == 1:
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    if style == 2:
        return " \t" + json.dumps(entry, separators=(" , ", " : ")) + "\t "
    return json.dumps(entry)


HOSTILE = [
    "<script>alert(1)</script>",
    "'; DROP TABLE events; --",
    "\u202eevil\u202c",
    "a\u0000b",
    "\x1b[31mred",
    "\U0001f600 smile",
    "é\u20ac\U0001f4a9",
    'back\\slash "quoted" /slash',
    "tab\there",
    "x" * 5000,
]

# Every key's shapes: missing, null, wrong type, out of range, each spelling.
JOURNAL_SHAPES: dict[str, list[Any]] = {
    "__REALTIME_TIMESTAMP": [_DROP, None, 1718530010123456, "", "0", "12345678901234567",
                             "123456789012345678", "17185300101234x6", " 1718530010123456", "-1", 1.5,
                             ["1"], {"a": "1"}],
    "_HOSTNAME": [_DROP, None, "", "Netfilter", 5, True, ["h"], *HOSTILE],
    "MESSAGE": [_DROP, None, 5, {"m": "x"}, list(("DROP " + V4_BODY).encode()), [68, 300], *MESSAGES,
                *("DROP " + V4_BODY.replace("DROP", "").replace("IN=", h + " IN=") for h in HOSTILE)],
    "__CURSOR": [_DROP, None, 5, 1.5e300, -0.0, True, [1, [2, [3, {"MESSAGE": "x"}]]], {"MESSAGE": [1]},
                 {"a": {"b": {"c": None}}}, *HOSTILE],
}  # fmt: skip
ULOGD_SHAPES: dict[str, list[Any]] = {
    "oob__time__sec": [_DROP, None, "1718438400", -1, 0, 253402300799, 253402300800, 1.5, 1e3, True],
    "oob__time__usec": [_DROP, None, "1", -1, 0, 999999, 1000000, 0.5],
    "oob__family": [_DROP, None, "2", 10, 7, 2.0],
    "ip__protocol": [_DROP, None, "6", 1, 17, 58, 132, 136, 50, 51, 2, 47, 0, 255, 256, -1, 6.0],
    "src_port": [_DROP, None, "1", 0, 65535, 65536, -1, 1.0, 10**20],
    "dest_port": [_DROP, None, "22", 0, 65535, 65536, -5],
    "tcp__syn": [_DROP, None, 0, 1, 2, "1", True],
    "tcp__fin": [_DROP, None, 1, "1"],
    "tcp__ack": [_DROP, 1, 2],
    "timestamp": [_DROP, None, 5, "2024-06-15T10:00:00+02:00", "garbage"],
    "dvc": [_DROP, None, "", "Netfilter", "fw-gw", 5, *HOSTILE[:3]],
    "oob__prefix": [_DROP, None, "", "ACCEPT-LOG ", '"REJECT" ', 7, *HOSTILE],
    "action": [_DROP, None, "blocked", "allowed", "", "BLOCKED", "dropped", 1],
    "oob__in": [_DROP, None, "", "eth0", 3, *HOSTILE[:4]],
    "oob__out": [_DROP, None, "", "eth1", []],
    "src_ip": [_DROP, None, "", "198.51.100.300", "2001:db8::1", "::ffff:198.51.100.1", "fe80::1%eth0",
               "2001:DB8::1", 3232235777, "198.51.100.01", " 198.51.100.1"],
    "dest_ip": [_DROP, None, "192.0.2.1", "2001:db8::2", "ff02::1"],
    "mac__str": [_DROP, None, 1e308, "NaN", {"x": [1, 2, {"y": "z"}]}],
}  # fmt: skip


def shaped_lines(fmt: str) -> list[str]:
    shapes = JOURNAL_SHAPES if fmt == "journald" else ULOGD_SHAPES
    lines = []
    for key, values in shapes.items():
        for i, value in enumerate(values):
            lines.append(dumps(BASE[fmt](**{key: value}), i % 3))
    return lines


def test_golden_fixtures_parse_alike() -> None:
    for fmt in PARSERS:
        paths = sorted((FIXTURES / fmt).glob("*.log"))
        if fmt == "ulogd_json":
            # A real ulogd2 capture of an nmap scan through nftables (tests/fixtures/ulogd/README.md).
            paths.append(FIXTURES.parent / "fixtures" / "ulogd" / "nmap-lab.ulogd.json")
        assert paths
        lines = [line for path in paths for line in path.read_text().splitlines()]
        taken = compare_each(fmt, lines)
        # journald's fixture is mostly rejects and a byte-array MESSAGE: three entries to claim.
        assert sum(taken) >= (3 if fmt == "journald" else len(lines) // 2), (fmt, sum(taken))


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_every_key_shape_parses_alike(fmt: str) -> None:
    lines = shaped_lines(fmt)
    taken = compare_each(fmt, lines)
    # Most shapes are ones a claimed line may take; each of those made an event.
    assert sum(taken) >= len(lines) // 3, (sum(taken), len(lines))


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_the_scanner_claims_the_usual_lines(fmt: str) -> None:
    """Without this, a scanner that claims nothing would pass every comparison above."""
    if fmt == "journald":
        usual = [journal(MESSAGE=m) for m in MESSAGES[:-2]]
    else:
        usual = [record(), record(src_ip="2001:db8::7", dest_ip="ff02::1", oob__family=10, ip__protocol=58),
                 record(action="allowed", dvc="fw-gw", ip__protocol=17, tcp__syn=_DROP),
                 record(oob__prefix=_DROP, oob__time__usec=_DROP, oob__family=_DROP)]  # fmt: skip
    lines = [dumps(entry, style) for entry in usual for style in range(3)]
    assert all(claimed(fmt, lines)), claimed(fmt, lines)
    assert len(compare(fmt, lines).events) == len(lines)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_escapes_decode_alike(fmt: str) -> None:
    """Every JSON escape in the values read, and in keys (which the scanner leaves to pyarrow)."""
    field = "MESSAGE" if fmt == "journald" else "oob.prefix"
    plain = dumps(BASE[fmt]())
    value = json.dumps(BASE[fmt]()[field])[1:-1]
    escaped = {
        "unicode": value.replace("D", "\\u0044", 1),
        "upper hex": value.replace("D", "\\u0044", 1).replace(
            "\\u0044", "\\u0044".upper().replace("\\U", "\\u")
        ),
        "solidus": value.replace("O", "\\/O", 1),
        "quote": value.replace("D", '\\"D', 1),
        "backslash": value.replace("D", "\\\\D", 1),
        "pair": value.replace("D", "\\ud83d\\ude00D", 1),
        "pair upper": value.replace("D", "\\uD83D\\uDE00D", 1),
        "lone high": value.replace("D", "\\ud83dD", 1),
        "lone low": value.replace("D", "\\ude00D", 1),
        "reversed pair": value.replace("D", "\\ude00\\ud83dD", 1),
        "high then letter": value.replace("D", "\\ud83d\\u0041D", 1),
        "short escapes": value.replace("D", "\\b\\f\\n\\r\\tD", 1),
        "nul": value.replace("D", "\\u0000D", 1),
        "bad escape": value.replace("D", "\\xD", 1),
        "short unicode": value.replace("D", "\\u004D", 1),
        "raw tab": value.replace("D", "\tD", 1),
        "raw del": value.replace("D", "\x7fD", 1),
    }
    lines = [plain.replace(json.dumps(BASE[fmt]()[field]), f'"{text}"') for text in escaped.values()]
    host = "_HOSTNAME" if fmt == "journald" else "dvc"
    lines += [
        plain.replace(f'"{host}"', '"\\u' + f"{ord(host[0]):04x}" + host[1:] + '"'),  # an escaped key
        plain.replace(f'"{field}"', f'"{field}\\u0000"'),
        plain.replace('"fw-', '"\\u00e9\\ud83d\\ude00fw-'),
    ]
    taken = compare_each(fmt, lines)
    names = [*escaped, "escaped key", "key with nul", "escaped host"]
    by_name = dict(zip(names, taken, strict=True))
    for name in ("unicode", "upper hex", "solidus", "pair", "pair upper", "escaped host"):
        assert by_name[name], name
    for name in ("lone high", "lone low", "reversed pair", "bad escape", "raw tab", "escaped key"):
        assert not by_name[name], name


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_duplicate_keys_nesting_and_layout_parse_alike(fmt: str) -> None:
    plain = dumps(BASE[fmt]())
    field = '"MESSAGE"' if fmt == "journald" else '"src_ip"'
    value = json.dumps(BASE[fmt]()[field.strip('"')])
    deep = "[" * 32 + "]" * 32
    lines = {
        "wanted twice": plain[:-1] + f", {field}: {value}}}",
        "wanted twice, null": plain.replace("{", f"{{{field}: null, ", 1),
        "unknown twice": plain[:-1] + ', "x": 1, "x": [2]}',
        "nested wanted key": plain[:-1] + f', "x": {{{field}: 5}}}}',
        "nested byte array": plain[:-1] + ', "x": {"MESSAGE": [68]}}',
        "byte array in a string": plain[:-1] + ', "x": "\\"MESSAGE\\": [68]"}',
        "deep": plain[:-1] + f', "x": {deep}}}',
        "too deep": plain[:-1] + f', "x": {"[" * 40 + "]" * 40}}}',
        "trailing comma": plain[:-1] + ", }",
        "two objects": plain + plain,
        "trailing text": plain + " x",
        "array": f"[{plain}]",
        "no braces": plain[1:-1],
        "empty object": "{}",
        "empty": "",
        "blank": "   ",
        "nbsp": "\u00a0" + plain,
        "form feed": plain + "\x0c",
        "carriage return": plain[:-1] + ', "x": 1\r}',
        "nan": plain[:-1] + ', "x": NaN}',
        "infinity": plain[:-1] + ', "x": -Infinity}',
        "big number": plain[:-1] + ', "x": 123456789012345678901234567890}',
        "exponent": plain[:-1] + ', "x": -1.5E-30}',
        "long exponent": plain[:-1] + ', "x": 1.5e-300}',
        "huge exponent": plain[:-1] + ', "x": 1e999}',
        "leading zero": plain[:-1] + ', "x": 01}',
        "single quotes": plain.replace('"', "'"),
    }
    taken = dict(zip(lines, compare_each(fmt, list(lines.values())), strict=True))
    assert taken["unknown twice"] and taken["deep"] and taken["exponent"]
    for name in ("wanted twice", "wanted twice, null", "too deep", "two objects", "nan", "long exponent"):
        assert not taken[name], name
    # journald's reference reads any line with a "MESSAGE": [ as a byte-array entry, at any depth.
    assert taken["nested byte array"] == (fmt == "ulogd_json")


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_numbers_as_strings_and_strings_as_numbers(fmt: str) -> None:
    if fmt == "journald":
        lines = [dumps(journal(__REALTIME_TIMESTAMP=v)) for v in (1718530010123456, "1718530010123456", 1.0)]
        lines += [dumps(journal(_HOSTNAME=v)) for v in (1, "1", None)]
    else:
        keys = ("oob.time.sec", "ip.protocol", "src_port", "dest_port", "oob.family", "tcp.syn")
        base = record()
        lines = [dumps({**base, key: str(base[key])}) for key in keys]
        lines += [dumps({**base, key: float(base[key])}) for key in keys]
        lines += [dumps({**base, key: 7}) for key in ("src_ip", "dest_ip", "oob.prefix", "dvc", "timestamp")]
    taken = compare_each(fmt, lines)
    # Only the lines with every value of its type are claimed.
    want = [False, True, False, False, True, True] if fmt == "journald" else [False] * len(lines)
    assert taken == want


def test_invalid_utf8_is_left_to_the_pyarrow_path() -> None:
    """Lines come from the cutter as valid UTF-8; bytes that are not still do not get claimed."""
    for fmt in PARSERS:
        good = dumps(BASE[fmt]()).encode()
        bad = [good.replace(b"DROP", b"DR\xffP"), good.replace(b"DROP", b"DR\xed\xa0\x80P"),
               good.replace(b"DROP", b"DR\xc0\xafP"), good.replace(b"DROP", b"DR\xe2\x82P")]  # fmt: skip
        lines = [good, *bad]
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        array = pa.StringArray.from_buffers(
            len(lines),
            pa.py_buffer(pa.array(offsets, pa.int32()).buffers()[1]),
            pa.py_buffer(b"".join(lines)),
        )
        assert claimed(fmt, array) == [True, False, False, False, False]


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@settings(max_examples=150, deadline=None)
@given(
    groups=st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8),
    style=st.sampled_from(["compressed", "exploded", "upper", "short", "mapped"]),
)
def test_every_ipv6_spelling_parses_alike(fmt: str, groups: list[int], style: str) -> None:
    address = ipaddress.IPv6Address(bytes(b for g in groups for b in g.to_bytes(2, "big")))
    text = {
        "compressed": address.compressed,
        "exploded": address.exploded,
        "upper": address.compressed.upper(),
        "short": ":".join(f"{g:x}" for g in groups),
        "mapped": f"::ffff:{ipaddress.IPv4Address(groups[6] << 16 | groups[7])}",
    }[style]
    if fmt == "journald":
        line = dumps(
            journal(MESSAGE="DROP " + V6_BODY.replace("2001:0db8:0000:0000:0000:0000:0000:0007", text))
        )
    else:
        line = dumps(record(src_ip=text, dest_ip="2001:db8::1", oob__family=10))
    compare(fmt, [line, dumps(BASE[fmt]())])


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def hostile_batches(draw: st.DrawFn, fmt: str) -> list[str]:
    shapes = JOURNAL_SHAPES if fmt == "journald" else ULOGD_SHAPES
    batch = []
    for _ in range(draw(st.integers(1, 8))):
        changes = {}
        for key in draw(st.lists(st.sampled_from(sorted(shapes)), max_size=4)):
            changes[key] = draw(st.sampled_from(shapes[key]) | JSON_VALUES)
        line = dumps(BASE[fmt](**changes), draw(st.integers(0, 2)))
        if draw(st.integers(0, 3)) == 0:
            line = draw(mutations(line, ['"', "\\", "\\u", "{", "}", "[", "]", ",", ":", " ", "null", "-0"]))
        batch.append(line)
    return batch


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_and_patched_lines_parse_alike(fmt: str, data: st.DataObject) -> None:
    batch = data.draw(hostile_batches(fmt))
    compare(fmt, batch, CONTEXTS[data.draw(st.sampled_from(sorted(CONTEXTS)))])


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_a_batch_of_unknown_lines_is_given_up_on(fmt: str) -> None:
    other = ['{"not": "a firewall line"}'] * 64
    good = dumps(BASE[fmt]())
    assert native_formats.scan(fmt, pa.array([*other, good]), syslog.year_rule(CONTEXTS["utc"])) is None
    assert claimed(fmt, [*other[:63], good])[-1]
    compare(fmt, [*other, good])


def test_the_switch_turns_the_scanners_off(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = pa.array([dumps(journal())])
    offsets = pa.array([0], pa.int64())
    monkeypatch.setenv("FIREPLOT_NATIVE", "off")
    calls: list[int] = []
    real_scan = native_formats.scan
    monkeypatch.setattr(native_formats, "scan", lambda *a: calls.append(1) or real_scan(*a))
    assert len(journald.parse(lines, offsets, CONTEXTS["utc"]).events) == 1
    assert calls == []
    # MESSAGE is netfilter text: the netfilter scanner's own switch keeps it off too.
    monkeypatch.setenv("FIREPLOT_NATIVE", "auto")
    monkeypatch.setenv("FIREPLOT_NETFILTER_ENGINE", "arrow")
    assert len(journald.parse(lines, offsets, CONTEXTS["utc"]).events) == 1
    assert calls == []
    monkeypatch.delenv("FIREPLOT_NETFILTER_ENGINE")
    assert len(journald.parse(lines, offsets, CONTEXTS["utc"]).events) == 1
    assert calls == [1]
