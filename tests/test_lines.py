"""Cutting byte streams into Arrow lines with their byte offsets."""

from __future__ import annotations

import io
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.parsers import netfilter_native
from producers.lines import MAX_LINE_BYTES, fingerprint, read_batches, to_batch


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


# Lines as logs have them, and what attackers can put in them: carriage
# returns anywhere, bytes that are not UTF-8, multi-byte characters.
_LINE_BYTES = st.lists(
    st.sampled_from(
        [b"a", b"Z", b" ", b"\r", b"\t", b"\xff", b"\xc3", b"\xc3\xa9", b"\xe2\x82\xac", b"\x00"]
    ),
    max_size=40,
).map(b"".join)


def _python_cut(data: bytes, base: int) -> tuple[list[str], list[int], int]:
    with mock.patch.object(netfilter_native, "cut_lines", return_value=None):
        b = to_batch(data, base)
    return b.lines.to_pylist(), b.offsets.to_pylist(), b.end_offset


@pytest.mark.skipif(not netfilter_native.available(), reason=netfilter_native.why_unavailable())
@given(st.lists(_LINE_BYTES, min_size=1, max_size=40), st.integers(min_value=0, max_value=2**40))
def test_native_cut_gives_the_python_paths_lines_and_offsets(parts: list[bytes], base: int) -> None:
    data = b"".join(p + b"\n" for p in parts)
    native = netfilter_native.cut_lines(data, base, MAX_LINE_BYTES)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert native is None  # invalid UTF-8 is the Python path's (it replaces bytes)
    else:
        assert native is not None
        lines, offsets = native
        assert (lines.to_pylist(), offsets.to_pylist(), base + len(data)) == _python_cut(data, base)
    b = to_batch(data, base)
    assert (b.lines.to_pylist(), b.offsets.to_pylist(), b.end_offset) == _python_cut(data, base)


@pytest.mark.skipif(not netfilter_native.available(), reason=netfilter_native.why_unavailable())
def test_native_cut_leaves_overlong_lines_to_the_python_path() -> None:
    data = b"short\n" + b"x" * (MAX_LINE_BYTES + 1) + b"\r\nlast\n"
    assert netfilter_native.cut_lines(data, 0, MAX_LINE_BYTES) is None
    assert netfilter_native.cut_lines(data, 0, MAX_LINE_BYTES + 2) is not None  # the limit counts the \r
    b = to_batch(data, 7)
    assert b.lines.to_pylist() == ["short", "x" * MAX_LINE_BYTES, "last"]
    assert b.offsets.to_pylist() == [7, 13, 13 + MAX_LINE_BYTES + 3]


def test_a_line_longer_than_the_read_buffer_grows_it() -> None:
    long = b"y" * 1000
    assert _all(b"a\n" + long + b"\nb", chunk_bytes=64) == (["a", long.decode(), "b"], [0, 2, 1003], 1004)
