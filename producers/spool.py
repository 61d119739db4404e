"""A bounded on-disk FIFO of Kafka records that Kafka has not taken yet.

When the broker stops acknowledging, the publisher keeps the shipper reading
by appending encoded records here instead of piling them into kafka-python's
memory; when Kafka answers again they are sent in the order they were
spooled. When the spool reaches ``max_bytes`` the publisher stops accepting
batches, which stops the reader: back-pressure, never a silent drop.

Records live in numbered segment files; a segment is deleted only once every
record in it has been acknowledged, so records spooled by a process that died
are found and sent first by the next one. Each record carries a CRC: a record
torn by a crash mid-append is cut off at recovery (its lines were never
acknowledged, so a file source re-reads them).

Record layout (little endian): crc32 u32, value length u32, headers length
u32, key length u16, topic length u16, then topic, key, headers (JSON list of
[name, hex value]) and value. The CRC covers everything after itself.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("fireplot.shipper.spool")

_HEAD = struct.Struct("<IIIHH")
_SUFFIX = ".spool"


class SpoolFull(RuntimeError):
    """The spool is at its size limit."""


@dataclass
class SpoolRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    segment: int = 0


@dataclass
class _Segment:
    seq: int
    path: Path
    written: int = 0
    acked: int = 0
    size: int = 0
    sealed: bool = False  # no more appends: a newer segment exists


def _encode(rec: SpoolRecord) -> bytes:
    topic, hdrs = rec.topic.encode(), json.dumps([[k, v.hex()] for k, v in rec.headers]).encode()
    body = _HEAD.pack(0, len(rec.value), len(hdrs), len(rec.key), len(topic))[4:] + topic + rec.key + hdrs
    crc = zlib.crc32(rec.value, zlib.crc32(body))
    return struct.pack("<I", crc) + body + rec.value


def _read_one(fh: BinaryIO) -> SpoolRecord | None:
    """The next whole record, or None at the end (or at a torn tail)."""
    head = fh.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    crc, vlen, hlen, klen, tlen = _HEAD.unpack(head)
    rest = fh.read(tlen + klen + hlen + vlen)
    if len(rest) < tlen + klen + hlen + vlen:
        return None
    if zlib.crc32(rest[tlen + klen + hlen :], zlib.crc32(head[4:] + rest[: tlen + klen + hlen])) != crc:
        return None
    topic = rest[:tlen].decode()
    key = rest[tlen : tlen + klen]
    hdrs = [(k, bytes.fromhex(v)) for k, v in json.loads(rest[tlen + klen : tlen + klen + hlen])]
    return SpoolRecord(topic, key, rest[tlen + klen + hlen :], hdrs)


@dataclass
class Spool:
    """FIFO of records on disk: ``append`` at the tail, ``pop`` from the head, ``ack`` to free space."""

    directory: Path
    max_bytes: int
    segment_bytes: int = 0
    _segments: dict[int, _Segment] = field(default_factory=dict)
    _writer: BinaryIO | None = None
    _reader: BinaryIO | None = None
    _read_seq: int = 0
    _unread: int = 0

    def __post_init__(self) -> None:
        if not self.segment_bytes:
            self.segment_bytes = max(1 << 20, min(64 << 20, self.max_bytes // 8))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._recover()

    def _recover(self) -> None:
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            seq = int(path.stem)
            seg = _Segment(seq, path, sealed=True)
            with open(path, "r+b") as fh:
                good = 0
                while _read_one(fh) is not None:
                    seg.written += 1
                    good = fh.tell()
                if good < os.fstat(fh.fileno()).st_size:
                    log.warning("spool segment has a torn tail, cut", extra={"segment": str(path)})
                    fh.truncate(good)
            seg.size = good
            if seg.written == 0:
                path.unlink()
                continue
            self._segments[seq] = seg
            self._unread += seg.written
        if self._segments:
            self._read_seq = min(self._segments)
            log.info(
                "spool holds records from an earlier run; sending them first",
                extra={"records": self._unread, "bytes": self.bytes},
            )

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self._segments.values())

    @property
    def unread(self) -> int:
        """Records appended and not yet handed back by ``pop``."""
        return self._unread

    def has_room(self, nbytes: int) -> bool:
        # An empty spool always takes one record, however large, so progress is possible.
        return self.bytes + nbytes <= self.max_bytes or not self._segments

    def append(self, rec: SpoolRecord) -> int:
        """Append durably; return the record's segment number."""
        data = _encode(rec)
        if not self.has_room(len(data)):
            raise SpoolFull(f"spool at {self.bytes} of {self.max_bytes} bytes")
        tail = self._segments[max(self._segments)] if self._segments else None
        if tail is None or tail.sealed or (tail.size + len(data) > self.segment_bytes and tail.written):
            if tail is not None:
                tail.sealed = True
            seq = (max(self._segments) + 1) if self._segments else self._next_seq()
            tail = _Segment(seq, self.directory / f"{seq:020d}{_SUFFIX}")
            self._segments[seq] = tail
            if self._writer:
                self._writer.close()
            self._writer = open(tail.path, "ab")  # noqa: SIM115 - kept open across appends
            if len(self._segments) == 1:
                self._read_seq = seq
        assert self._writer is not None
        self._writer.write(data)
        self._writer.flush()
        os.fsync(self._writer.fileno())
        tail.written += 1
        tail.size += len(data)
        self._unread += 1
        return tail.seq

    def _next_seq(self) -> int:
        # Numbers keep increasing across runs so that file order is FIFO order.
        existing = [int(p.stem) for p in self.directory.glob(f"*{_SUFFIX}")]
        return max(existing, default=self._read_seq) + 1

    def pop(self) -> SpoolRecord | None:
        """The oldest record not yet handed out (it stays on disk until acknowledged)."""
        while self._unread:
            if self._reader is None:
                seg = self._segments[self._read_seq]
                self._reader = open(seg.path, "rb")  # noqa: SIM115 - kept open across pops
            rec = _read_one(self._reader)
            if rec is not None:
                rec.segment = self._read_seq
                self._unread -= 1
                return rec
            # End of this segment: move to the next one (if this one is sealed).
            cur = self._segments.get(self._read_seq)
            later = [s for s in self._segments if s > self._read_seq]
            if cur is not None and not cur.sealed and not later:
                return None
            self._reader.close()
            self._reader = None
            self._read_seq = min(later)
        return None

    def ack(self, segment: int) -> None:
        """One record of ``segment`` is acknowledged by Kafka; free the segment when all are."""
        seg = self._segments[segment]
        seg.acked += 1
        if seg.acked < seg.written:
            return
        if not seg.sealed:
            if self._unread:
                return
            seg.sealed = True  # fully sent and acknowledged: start afresh
            if self._writer:
                self._writer.close()
                self._writer = None
        if self._reader is not None and self._read_seq == segment:
            self._reader.close()
            self._reader = None
            later = [s for s in self._segments if s > segment]
            if later:
                self._read_seq = min(later)
        seg.path.unlink(missing_ok=True)
        del self._segments[segment]
        if not self._segments:
            self._read_seq = segment + 1

    def close(self) -> None:
        for fh in (self._writer, self._reader):
            if fh:
                fh.close()
        self._writer = self._reader = None
