"""Cutting byte streams into Arrow lines with their byte offsets."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from producers.lines import MAX_LINE_BYTES, fingerprint, read_batches


def _all(data: bytes, **kw: object) -> tuple[list[str], list[int], int]:
    lines: list[str] = []
    offsets: list[int] = []
    end = 0
    for b in read_batches(io.BytesIO(data), **kw):  # type: ignore[arg-type]
        lines += b.lines.to_pylist()
        offsets += b.offsets.to_pylist()
        end = b.end_offset
    return lines, offsets, end


def test_offsets_point_at_each_line_and_crlf_is_trimmed() -> None:
    assert _all(b"abc\r\nde\n\nf") == (["abc", "de", "", "f"], [0, 5, 8, 9], 10)


def test_a_partial_last_line_waits_when_the_file_may_grow() -> None:
    assert _all(b"abc\nde", final=False) == (["abc"], [0], 4)


def test_invalid_utf8_is_kept_visible_not_dropped() -> None:
    lines, _, _ = _all(b"ok\nbad \xff\xfe byte\n")
    assert lines == ["ok", "bad \ufffd\ufffd byte"]


def test_overlong_lines_are_cut() -> None:
    lines, offsets, _ = _all(b"x" * (MAX_LINE_BYTES + 10) + b"\nnext\n")
    assert len(lines[0]) == MAX_LINE_BYTES
    assert lines[1] == "next"
    assert offsets == [0, MAX_LINE_BYTES + 11]


@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=50),
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=1, max_value=7),
)
def test_batches_reassemble_to_the_input(parts: list[bytes], chunk: int, max_lines: int) -> None:
    data = b"".join(p + b"\n" for p in parts)
    got = []
    for b in read_batches(io.BytesIO(data), chunk_bytes=chunk, max_lines=max_lines):
        got += list(zip(b.offsets.to_pylist(), b.lines.to_pylist(), strict=True))
    expected, pos = [], 0
    for p in parts:
        expected.append((pos, p.decode("utf-8", errors="replace").rstrip("\r")))
        pos += len(p) + 1
    assert got == expected


def test_fingerprint_is_the_first_line_and_needs_one() -> None:
    assert fingerprint(io.BytesIO(b"no newline yet")) is None
    a = fingerprint(io.BytesIO(b"first\nsecond\n"))
    assert a == fingerprint(io.BytesIO(b"first\nother\n"))
    assert a != fingerprint(io.BytesIO(b"First\nsecond\n"))
