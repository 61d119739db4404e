"""The registry and the spool on real files: atomic, versioned, FIFO, crash-tolerant."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.registry import Registry, RegistryError
from producers.spool import Spool, SpoolRecord
from producers.syslog_receiver import OffsetCounter, _block, _frames


class TestRegistry:
    def test_positions_survive_a_reload_and_never_move_back(self, tmp_path: Path) -> None:
        """A saved position is read back; a lower acknowledgement does not lower it."""
        reg = Registry(tmp_path / "r.json", flush_interval_s=0)
        reg.advance("s:abc", "abc", 100, 1, 2, "/x")
        reg.advance("s:abc", "abc", 50, 1, 2, "/x")
        rv = Registry(tmp_path / "r.json").offset("s:abc")
        assert rv == 100
        assert not list(tmp_path.glob(".*.tmp")), "temp file left behind"

    def test_unknown_version_is_refused(self, tmp_path: Path) -> None:
        """A registry from another version is an error, not a silent restart from zero."""
        (tmp_path / "r.json").write_text(json.dumps({"version": 99, "sources": []}))
        with pytest.raises(RegistryError):
            Registry(tmp_path / "r.json")


class TestSpool:
    def test_fifo_across_segments_and_restart_with_torn_tail(self, tmp_path: Path) -> None:
        """Records come back in order after a restart; a torn last record is cut, acked segments vanish."""
        sp = Spool(tmp_path, max_bytes=1 << 30, segment_bytes=1000)
        for i in range(10):
            sp.append(SpoolRecord("t", b"k", bytes([i]) * 300, [("h", b"v")]))
        sp.close()
        with open(sorted(tmp_path.glob("*.spool"))[-1], "ab") as fh:
            fh.write(b"\x01\x02\x03")  # a crash mid-append
        sp = Spool(tmp_path, max_bytes=1 << 30, segment_bytes=1000)
        assert sp.unread == 10
        recs = [sp.pop() for _ in range(10)]
        assert [r.value[0] for r in recs if r] == list(range(10))
        assert sp.pop() is None
        for r in recs:
            assert r is not None
            sp.ack(r.segment)
        assert sp.bytes == 0
        assert not list(tmp_path.glob("*.spool"))

    def test_full_spool_refuses(self, tmp_path: Path) -> None:
        """Past max_bytes the spool says no (the publisher then stops the reader)."""
        sp = Spool(tmp_path, max_bytes=1000, segment_bytes=1 << 20)
        sp.append(SpoolRecord("t", b"", b"x" * 900, []))
        assert not sp.has_room(200)


class TestReceiverParts:
    def test_octet_counted_and_newline_frames(self) -> None:
        """RFC 6587 framings mix on one connection; a partial frame waits for more bytes."""
        buf = bytearray(b"5 hello<13>a line\n11 hello\nworld3 ab")
        rv = _frames(buf)
        assert rv == [b"hello", b"<13>a line", b"hello\nworld"]
        assert bytearray(b"3 ab") == buf

    def test_newline_framed_reads_are_taken_whole_as_one_block(self) -> None:
        """The common case: complete lines taken in one piece, the partial one left for the next read."""
        buf = bytearray(b"<13>one\r\n<13>two 5 x\n<13>thr")
        assert _block(buf) == (b"<13>one\r\n<13>two 5 x\n", 2)
        assert buf == bytearray(b"<13>thr")
        assert _block(buf) == (b"", 0) and buf == bytearray(b"<13>thr")

    def test_blocks_frame_octet_counts_exactly_as_frames_do(self) -> None:
        """A line that could start an octet count sends the read through per-message framing;
        newlines inside a counted message become spaces, so a block has one message per line."""
        data = b"5 hello<13>a line\n11 hello\nworld3 ab"
        buf = bytearray(data)
        block, n = _block(buf)
        assert (block, n) == (b"hello\n<13>a line\nhello world\n", 3) and buf == bytearray(b"3 ab")
        assert [f.replace(b"\n", b" ") for f in _frames(bytearray(data))] == block.splitlines()

    def test_a_message_without_newline_past_the_limit_is_refused(self) -> None:
        with pytest.raises(ValueError, match="too long"):
            _block(bytearray(b"<13>" + b"x" * (256 * 1024)))

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.tuples(st.just(True), st.binary(max_size=40)),
                # A newline-framed message has no newline, and does not itself start like an
                # octet count (it would be read as one, as every RFC 6587 receiver does).
                st.tuples(
                    st.just(False),
                    st.binary(max_size=40).filter(lambda b: b"\n" not in b and not re.match(rb"[0-9]+ ", b)),
                ),
            ),
            max_size=30,
        ),
        st.lists(st.integers(1, 64), min_size=1, max_size=20),
    )
    def test_any_stream_cut_anywhere_gives_every_message_once_in_order(
        self, messages: list[tuple[bool, bytes]], reads: list[int]
    ) -> None:
        """Octet-counted and newline-framed messages, read in arbitrary pieces: the blocks hold
        exactly the messages, in order, one per line, whatever the read boundaries."""
        stream = b"".join(f"{len(m)} ".encode() + m if counted else m + b"\n" for counted, m in messages)
        buf, got, pos, i = bytearray(), [], 0, 0
        while pos < len(stream):
            step = reads[i % len(reads)]
            buf += stream[pos : pos + step]
            pos, i = pos + step, i + 1
            data, n = _block(buf)
            lines = data.split(b"\n")[:-1]
            assert len(lines) == n
            got += lines
        assert not buf
        assert got == [m.replace(b"\n", b" ") for _, m in messages]

    def test_offsets_never_repeat_across_restarts(self, tmp_path: Path) -> None:
        """A new counter starts past every block an earlier one reserved."""
        first = OffsetCounter(tmp_path / "c.json", block=10).take(3)
        second = OffsetCounter(tmp_path / "c.json", block=10).take(1)
        assert second >= first + 10
