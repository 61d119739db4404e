"""Every shape a raw-topic batch can take, through ``RawLines`` and the ``ArchiveSink`` on real Parquet.

Each case is checked against an oracle written here, independently of the
decoder: it reads one line at a time, as the shipper's line reader reads a
file's line (cut at ``MAX_LINE_BYTES`` bytes, ``\\r`` stripped, invalid UTF-8
replaced), unwraps JSON with ``json.loads``, resolves the site, and runs the
parser on that single line. The decoder, handed the same lines packed into
records any way, must give exactly the oracle's events (no loss, no
duplicate) and the oracle's dead letters (same line, same kind, same reason).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.archive.decoders import (
    DEAD_LETTER_KINDS,
    MAX_LINES_PER_RECORD,
    RawLines,
    Record,
    RecordColumns,
    raw_parser,
)
from pipeline.archive.kafka_batches import decode_batches
from pipeline.archive.sink import ArchiveSink
from pipeline.event import EVENT_SCHEMA
from pipeline.parsers import ParseContext
from pipeline.store import Store
from producers.demo import Packet, format_line
from producers.lines import MAX_LINE_BYTES

T0 = dt.datetime(2026, 11, 27, 10, tzinfo=dt.UTC)
DEFAULT_SITE = "dflt"
TOPIC = "raw"
PARSER = raw_parser("auto")
SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # the store's rule, fullmatch: no trailing "\n"


def fw_line(i: int, port: int = 22, proto: str = "TCP") -> str:
    """A real netfilter LOG line; ``i`` makes its source address (and so the event) distinct."""
    p = Packet(T0 + dt.timedelta(seconds=i), f"198.18.{i // 250 % 250}.{i % 250 + 1}", "203.0.113.9",
               proto, 40000 + i % 20000, port)  # fmt: skip
    return format_line(p, 100 + i / 1000)


HOSTILE: tuple[bytes, ...] = (
    b"<script>alert(1)</script> kernel: DROP IN=eth0 SRC=<img src=x onerror=alert(1)>",
    b"\x1b[2J\x1b[31mOWNED\x1b[0m kernel: DROP SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP",
    b"\x00\x01\x02 NUL and control bytes \x7f\x08",
    b"\xff\xfe\xfd invalid UTF-8 SRC=1.2.3.4 DST=5.6.7.8",
    b'{"message": "\'; DROP TABLE events; --", "__proto__": {"x": 1}}',
    b'{"message": "=cmd|\' /C calc\'!A0", "site": "a\\nb"}',
    b"\xe2\x80\xae RLO override kernel: DROP",
    b"%s%s%n{{7*7}}${jndi:ldap://x/a}",
)


# --- the oracle: one line at a time -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Letter:
    offset: int  # the record's
    kind: str
    line: str
    reason: str


def oracle(records: Sequence[Record]) -> tuple[list[dict[str, Any]], list[Letter]]:
    events: list[dict[str, Any]] = []
    letters: list[Letter] = []
    for r in records:
        key_site = None
        if r.key:
            key_site = r.key.decode("utf-8", "replace").split("/", 1)[0] or None
        for idx, raw in enumerate(r.value.split(b"\n")):
            text = raw[:MAX_LINE_BYTES].decode("utf-8", "replace").rstrip("\r")
            if not text:
                continue
            if idx >= MAX_LINES_PER_RECORD:
                letters.append(
                    Letter(
                        r.offset, "too_many_lines", text, f"record has more than {MAX_LINES_PER_RECORD} lines"
                    )
                )
                continue
            message, json_site, json_host = text, None, None
            if text.lstrip(" \t").startswith("{"):
                unwrapped = unwrap(text)
                if isinstance(unwrapped, Letter):
                    letters.append(dataclasses.replace(unwrapped, offset=r.offset))
                    continue
                message, json_site, json_host = unwrapped
            site = next(s for s in (key_site, json_site, json_host, DEFAULT_SITE) if s is not None)
            if not SITE.fullmatch(site):
                letters.append(
                    Letter(r.offset, "invalid_site", text, f"site {site!r} is not a valid site name")
                )
                continue
            ident = r.offset * MAX_LINES_PER_RECORD + idx
            ctx = ParseContext(site=site, source_id=f"{TOPIC}:{r.partition}", host=json_host or "")
            result = PARSER(pa.array([message]), pa.array([ident], pa.int64()), ctx)
            events += result.events.to_pylist()
            letters += [Letter(r.offset, "unparsed_line", rj.line, rj.reason) for rj in result.rejects]
    return events, letters


def unwrap(text: str) -> tuple[str, str | None, str | None] | Letter:
    """message, site, host of a JSON line, or why it is dead."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return Letter(-1, "invalid_json", text, f"not valid JSON: {exc}")
    no_message = "JSON object has no string `message` field"
    if not isinstance(obj, dict) or not isinstance(obj.get("message"), str):
        return Letter(-1, "json_without_message", text, no_message)
    host = obj.get("host")
    host = host.get("name") if isinstance(host, dict) else host
    read = {"message": obj["message"], "site": obj.get("site"), "host": host}
    out: dict[str, str | None] = {}
    for name, value in read.items():
        if isinstance(value, str) and re.search("[\ud800-\udfff]", value):
            return Letter(
                -1, "invalid_json", text, f"not valid JSON: `{name}` holds an unpaired surrogate escape"
            )
        out[name] = value if isinstance(value, str) else None
    assert out["message"] is not None
    return out["message"], out["site"], out["host"]


# --- running the decoder and the sink -----------------------------------------------


def sorted_events(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda e: (e["source_id"], e["source_offset"]))


def decode(records: Sequence[Record]) -> tuple[list[dict[str, Any]], list[Letter]]:
    table, dead = RawLines(PARSER, DEFAULT_SITE)(records)
    assert table.schema == EVENT_SCHEMA
    assert all(d.kind in DEAD_LETTER_KINDS and d.line is not None for d in dead)
    return table.to_pylist(), [Letter(d.record.offset, d.kind, d.line or "", d.reason) for d in dead]


def through_sink(
    records: Sequence[Record], root: Path
) -> tuple[list[dict[str, Any]], list[Letter], ArchiveSink]:
    """Flush the records into a real store; what it holds and what went to dead letters."""
    sink = ArchiveSink(
        Store(root / "store"), root / "dead", RawLines(PARSER, DEFAULT_SITE), future_tolerance_s=1e9
    )
    if isinstance(records, RecordColumns):
        sink.flush_partitions({(records.topic, records.partition): records})
    else:
        sink.flush(records)
    stored = sink.store.read_all().to_pylist()
    path = root / "dead" / f"{TOPIC}.jsonl"
    entries = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    letters = [Letter(e["offset"], e["kind"], e["line"], e["reason"]) for e in entries]
    return stored, letters, sink


def fetched(records: Sequence[Record], codec: int = 0) -> RecordColumns:
    """The records as the raw feed reads them: written into a Kafka record batch (aiokafka's
    builder, as a producer writes it), read back by ``kafka_batches`` into columns."""
    if not records:
        return RecordColumns.of(TOPIC, 0, [])
    base = records[0].offset
    builder = DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, 2**30)
    for r in records:
        builder.append(r.offset - base, 1_700_000_000_000, r.key, r.value, [])
    batch = bytearray(builder.build())
    batch[0:8] = base.to_bytes(8, "big")
    cols, _ = decode_batches(TOPIC, records[0].partition, bytes(batch), base)
    assert list(cols) == list(records)
    return cols


def check(records: Sequence[Record], root: Path, codec: int = 4) -> tuple[list[dict[str, Any]], list[Letter]]:
    """The decoder and the sink both equal the oracle, for the records as ``Record``s and as
    fetched from a Kafka record batch (``codec``: 0 none ... 4 zstd); the oracle's result."""
    want_events, want_letters = oracle(records)
    for given_as in (records, fetched(records, codec)):
        got_events, got_letters = decode(given_as)
        assert sorted_events(got_events) == sorted_events(want_events)
        assert sorted(got_letters, key=repr) == sorted(want_letters, key=repr)
    stored, filed, sink = through_sink(records, root)
    _check_stored(stored, filed, sink, want_events, want_letters)
    if records:
        stored, filed, sink = through_sink(fetched(records, codec), root / "fetched")
        _check_stored(stored, filed, sink, want_events, want_letters)
    return want_events, want_letters


def _check_stored(
    stored: list[dict[str, Any]],
    filed: list[Letter],
    sink: ArchiveSink,
    want_events: list[dict[str, Any]],
    want_letters: list[Letter],
) -> None:
    ids = [(e["source_id"], e["source_offset"]) for e in stored]
    assert len(ids) == len(set(ids)), "an event stored twice"
    # The store drops nothing but adds its partition columns' types: compare the values.
    assert sorted_events(_plain(stored)) == sorted_events(_plain(want_events))
    assert sorted(filed, key=repr) == sorted(want_letters, key=repr)
    kinds: dict[str, int] = {}
    for letter in want_letters:
        kinds[letter.kind] = kinds.get(letter.kind, 0) + 1
    assert sink.stats.dead_letters_by_kind == kinds
    assert sink.stats.events_written == len(want_events)


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("date", "hour")} for r in rows]


def recs(*values: bytes, key: bytes | None = None, first: int = 0, partition: int = 0) -> list[Record]:
    return [Record(TOPIC, partition, first + i, v, key) for i, v in enumerate(values)]


# --- the shapes, one by one -------------------------------------------------------------


def test_plain_only_one_line_per_record(tmp_path: Path) -> None:
    """rsyslog omkafka's plain template: each line an event of the default site (lost before 7dcbf56)."""
    events, letters = check(recs(*(fw_line(i, 22 + i).encode() for i in range(50))), tmp_path)
    assert len(events) == 50 and not letters
    assert {e["site"] for e in events} == {DEFAULT_SITE}
    assert sorted(e["dst_port"] for e in events) == list(range(22, 72))


def test_plain_only_many_lines_per_record(tmp_path: Path) -> None:
    """Several lines in one record, with and without a trailing newline: ids from the line index."""
    a = "\n".join(fw_line(i) for i in range(10)) + "\n"
    b = "\n".join(fw_line(i) for i in range(10, 15))
    events, letters = check(recs(a.encode(), b.encode(), first=7), tmp_path)
    assert len(events) == 15 and not letters
    assert sorted(e["source_offset"] for e in events) == [7 * 2**16 + i for i in range(10)] + [
        8 * 2**16 + i for i in range(5)
    ]


def test_json_only(tmp_path: Path) -> None:
    docs = [
        json.dumps({"message": fw_line(i, 443), "site": "s2", "host": "edge-1"}).encode() for i in range(20)
    ]
    events, letters = check(recs(*docs), tmp_path)
    assert len(events) == 20 and not letters
    assert {(e["site"], e["dst_port"]) for e in events} == {("s2", 443)}


def test_mixed_plain_and_json_in_one_batch_and_one_record(tmp_path: Path) -> None:
    one = (fw_line(1) + "\n" + json.dumps({"message": fw_line(2, 80), "site": "s3"}) + "\n").encode()
    events, letters = check(
        recs(one, fw_line(3).encode(), json.dumps({"message": fw_line(4)}).encode()), tmp_path
    )
    assert len(events) == 4 and not letters
    assert sorted(e["site"] for e in events) == ["dflt", "dflt", "dflt", "s3"]


def test_empty_lines_and_empty_records_are_no_lines(tmp_path: Path) -> None:
    events, letters = check(
        recs(b"", b"\n\n", b"\r\n", (fw_line(1) + "\n\n\n" + fw_line(2) + "\n").encode()), tmp_path
    )
    assert len(events) == 2 and not letters


def test_crlf_line_ends(tmp_path: Path) -> None:
    value = "".join(fw_line(i) + "\r\n" for i in range(5)).encode()
    js = (json.dumps({"message": fw_line(9), "site": "s4"}) + "\r\n").encode()
    events, letters = check(recs(value, js), tmp_path)
    assert len(events) == 6 and not letters
    assert not any("\r" in (e["tcp_flags"] or "") for e in events)


def test_key_names_the_site_and_wins_over_json(tmp_path: Path) -> None:
    """Key ``site`` or ``site/host``; the key's site wins over the JSON ``site`` and ``host``."""
    records = [
        *recs(fw_line(1).encode(), key=b"oslo"),
        *recs(fw_line(2).encode(), key=b"bergen/fw7", first=1),
        *recs(
            json.dumps({"message": fw_line(3), "site": "nope", "host": "h"}).encode(), key=b"oslo", first=2
        ),
        *recs(fw_line(4).encode(), key=b"", first=3),  # an empty key names no site
        *recs(fw_line(5).encode(), key=b"/fw1", first=4),  # nor does an empty site part
    ]
    events, letters = check(records, tmp_path)
    assert not letters
    assert [e["site"] for e in sorted_events(events)] == [
        "oslo",
        "bergen",
        "oslo",
        DEFAULT_SITE,
        DEFAULT_SITE,
    ]


def test_json_site_then_host_then_default(tmp_path: Path) -> None:
    """No key: the JSON ``site``, else its host (a string, or Filebeat's ``host.name``), else the default."""
    docs = [
        {"message": fw_line(1), "site": "s1", "host": "h1"},
        {"message": fw_line(2), "host": "h2"},
        {"message": fw_line(3), "host": {"name": "h3", "hostname": "x", "os": {"family": "debian"}}},
        {"message": fw_line(4), "host": {"hostname": "no-name"}},
        {"message": fw_line(5), "site": 5, "host": ["not", "a", "name"]},
    ]
    events, letters = check(recs(*(json.dumps(d).encode() for d in docs)), tmp_path)
    assert not letters
    assert [e["site"] for e in sorted_events(events)] == ["s1", "h2", "h3", DEFAULT_SITE, DEFAULT_SITE]


def test_json_without_message_and_invalid_json(tmp_path: Path) -> None:
    bad = [b'{"msg": "x"}', b'{"message": 5}', b'{"message": null}', b"{}", b'{"message": ["a"]}',
           b"{broken json", b'{"message": "x"', b'{"message": "x"}{"message": "y"}',
           b'{"message": "a\\ud800"}', b'  {"message": "x", "site": "\\udfff"}']  # fmt: skip
    events, letters = check(recs(*bad, fw_line(1).encode()), tmp_path)
    assert len(events) == 1
    assert [x.kind for x in sorted(letters, key=lambda x: x.offset)] == ["json_without_message"] * 5 + [
        "invalid_json"
    ] * 5


def test_arrays_and_other_json_values_are_plain_lines(tmp_path: Path) -> None:
    """Only a line starting with ``{`` is JSON; ``[...]``, ``"..."``, numbers are lines the parser rejects."""
    events, letters = check(recs(b'["message"]', b'"message"', b"5"), tmp_path)
    assert not events and [x.kind for x in letters] == ["unparsed_line"] * 3


def test_invalid_utf8_is_replaced_as_the_shipper_does(tmp_path: Path) -> None:
    """U+FFFD for each invalid sequence, then parsed: a bad byte in the host name still gives the event."""
    good = fw_line(1).encode().replace(b" gw-demo ", b" gw-d\xffemo ", 1)
    assert good != fw_line(1).encode()
    garbage = b"\xc3\x28 \xa0\xa1 \xf0\x28\x8c\xbc"
    js = b'{"message": "' + fw_line(2).encode() + b'", "site": "s9", "host": "h\xfe"}'
    events, letters = check(recs(good, garbage, js), tmp_path)
    assert len(events) == 2 and [x.kind for x in letters] == ["unparsed_line"]
    assert "\ufffd" in letters[0].line
    assert {e["host"] for e in events} >= {"gw-d\ufffdemo"}


def test_over_long_lines_are_cut_as_the_shipper_does(tmp_path: Path) -> None:
    """Cut at MAX_LINE_BYTES bytes: a firewall line with a long tail still parses; garbage is rejected cut;
    a multi-byte character split by the cut becomes U+FFFD; a longer JSON document is invalid JSON."""
    long_good = (fw_line(1) + " " + "x" * (MAX_LINE_BYTES + 100)).encode()
    garbage = b"B" * (MAX_LINE_BYTES + 5000)
    split_char = b"C" * (MAX_LINE_BYTES - 1) + "\u00e9".encode() + b"tail"
    big_json = json.dumps({"message": fw_line(2), "pad": "p" * MAX_LINE_BYTES}).encode()
    events, letters = check(recs(long_good, garbage, split_char, big_json + b"\r\n"), tmp_path)
    assert len(events) == 1
    by_offset = {x.offset: x for x in letters}
    assert by_offset[1].line == "B" * MAX_LINE_BYTES and by_offset[1].kind == "unparsed_line"
    assert by_offset[2].line == "C" * (MAX_LINE_BYTES - 1) + "\ufffd"
    assert by_offset[3].kind == "invalid_json"
    assert RawLines.MAX_LINE_BYTES == MAX_LINE_BYTES


def test_hostile_text_is_kept_verbatim_as_data(tmp_path: Path) -> None:
    events, letters = check(recs(*HOSTILE, key=b"site-h"), tmp_path)
    assert not events and len(letters) == len(HOSTILE)
    lines = {x.line for x in letters}
    assert "<script>alert(1)</script> kernel: DROP IN=eth0 SRC=<img src=x onerror=alert(1)>" in lines
    assert "\x1b[2J\x1b[31mOWNED\x1b[0m kernel: DROP SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP" in lines


def test_invalid_sites_from_key_and_json(tmp_path: Path) -> None:
    records = [
        *recs(fw_line(1).encode(), key=b"../etc"),
        *recs(json.dumps({"message": fw_line(2), "site": "../../etc"}).encode(), first=1),
        *recs(json.dumps({"message": fw_line(3), "site": "a b"}).encode(), first=2),
        *recs(json.dumps({"message": fw_line(4), "site": ""}).encode(), first=3),
        *recs(json.dumps({"message": fw_line(5), "host": "x" * 65}).encode(), first=4),
        *recs(fw_line(6).encode(), key=b"\xff\xfe", first=5),
    ]
    events, letters = check(records, tmp_path)
    assert not events and [x.kind for x in letters] == ["invalid_site"] * 6


def test_too_many_lines_in_one_record(tmp_path: Path) -> None:
    """Lines past 2**16 in one record have no event id: dead letters; the rest stored.

    (Not through the oracle: 65k single-line parser calls take minutes.)"""
    lines = [fw_line(i % 5000) for i in range(MAX_LINES_PER_RECORD + 3)]
    records = recs("\n".join(lines).encode(), first=4)
    stored, letters, sink = through_sink(records, tmp_path)
    assert sorted(e["source_offset"] for e in stored) == [4 * 2**16 + i for i in range(MAX_LINES_PER_RECORD)]
    assert letters == [
        Letter(4, "too_many_lines", line, f"record has more than {MAX_LINES_PER_RECORD} lines")
        for line in lines[MAX_LINES_PER_RECORD:]
    ]
    assert sink.stats.dead_letters_by_kind == {"too_many_lines": 3}


def test_redelivery_adds_nothing(tmp_path: Path) -> None:
    records = recs(*(fw_line(i).encode() for i in range(10)), b"garbage")
    stored, _, _ = through_sink(records, tmp_path)
    again, letters, sink = through_sink(records, tmp_path)
    assert len(again) == len(stored) == 10
    assert sink.stats.skipped_records == 11 and len(letters) == 1  # the first run's letter only


# --- any mix, packed any way: the property --------------------------------------------


def _line(draw: st.DrawFn, i: int) -> bytes:
    kind = draw(st.sampled_from(SHAPES))
    port = draw(st.integers(1, 65535))
    line = fw_line(i, port, draw(st.sampled_from(["TCP", "UDP"])))
    host = draw(st.one_of(st.none(), st.sampled_from(["h1", "edge-2", "../x"]), st.text(max_size=5)))
    site = draw(st.one_of(st.none(), st.sampled_from(["s1", "s.2", "", "bad site"])))
    meta: dict[str, Any] = draw(st.sampled_from([{}, FILEBEAT_META, VECTOR_META]))
    if kind == "plain":
        out = line.encode()
    elif kind == "json":
        doc: dict[str, Any] = {"message": line, **meta}
        if site is not None:
            doc["site"] = site
        if host is not None:
            doc["host"] = {"name": host} if draw(st.booleans()) else host
        out = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    elif kind == "json_no_message":
        out = json.dumps({"msg": line, "message": draw(st.sampled_from([None, 1, [], {}]))}).encode()
    elif kind == "bad_json":
        out = draw(st.sampled_from([b"{", b"{broken", b'{"message": "x"} tail', b'{"message": "\\ud800"}']))
    elif kind == "hostile":
        out = draw(st.sampled_from(HOSTILE))
    elif kind == "text":
        out = draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")
    elif kind == "bytes":
        out = draw(st.binary(max_size=40))
    elif kind == "bad_utf8":
        at = draw(st.integers(0, len(line)))
        out = (
            line.encode()[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"]))
            + line.encode()[at:]
        )
    elif kind == "long":
        out = (
            line.encode()
            + b" "
            + b"\xc3\xa9" * draw(st.integers(MAX_LINE_BYTES // 2 - 60, MAX_LINE_BYTES // 2))
        )
    else:
        out = b""
    if draw(st.integers(0, 3)) == 0:
        # Blanks before the line: a JSON object after them is still one (the decoder has a
        # fast path for batches where no line starts with a blank).
        out = draw(st.sampled_from([b" ", b"\t", b" \t "])) + out
    if draw(st.booleans()):
        out += b"\r"
    return out.replace(b"\n", b" ")  # one line each; records are where lines meet


SHAPES = (
    "plain",
    "json",
    "json_no_message",
    "bad_json",
    "hostile",
    "text",
    "bytes",
    "bad_utf8",
    "long",
    "empty",
)
FILEBEAT_META: dict[str, Any] = {
    "@timestamp": "2026-11-27T10:00:00.000Z",
    "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.15.0"},
    "agent": {"type": "filebeat", "version": "8.15.0", "name": "fw1"},
    "log": {"offset": 1234, "file": {"path": "/var/log/kern.log"}},
    "input": {"type": "filestream"},
    "ecs": {"version": "8.0.0"},
}
VECTOR_META: dict[str, Any] = {
    "timestamp": "2026-11-27T10:00:00.000Z",
    "source_type": "file",
    "file": "/var/log/kern.log",
}
KEYS = (None, b"", b"site-k", b"oslo/fw1", b"../bad", b"\xff")


@st.composite
def batches(draw: st.DrawFn) -> list[Record]:
    n = draw(st.integers(0, 30))
    lines = [_line(draw, i) for i in range(n)]
    cuts = sorted(draw(st.sets(st.integers(1, max(n - 1, 1)), max_size=n)))
    records: list[Record] = []
    offset = draw(st.integers(0, 10**9))
    for a, b in zip([0, *cuts], [*cuts, n], strict=True):
        if a >= b and records:
            continue
        value = b"\n".join(lines[a:b]) + (b"\n" if draw(st.booleans()) else b"")
        records.append(
            Record(TOPIC, draw(st.sampled_from([0, 3])), offset, value, draw(st.sampled_from(KEYS)))
        )
        offset += draw(st.integers(1, 3))
    # one partition per decoder call, as the sink hands them
    return [dataclasses.replace(r, partition=records[0].partition) for r in records] if records else []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(batches(), st.sampled_from([0, 1, 2, 3, 4]))
def test_any_mix_split_any_way_decodes_as_the_line_by_line_oracle(records: list[Record], codec: int) -> None:
    """Also as the raw feed reads them: from a Kafka record batch in any codec, as columns."""
    with tempfile.TemporaryDirectory(prefix="fireplot-raw-") as tmp:
        check(records, Path(tmp), codec)
