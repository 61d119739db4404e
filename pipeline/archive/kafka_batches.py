"""Fetched Kafka record batches straight into Arrow columns: no Python object per record.

aiokafka hands out one ``ConsumerRecord`` per record, built from a Cython
``DefaultRecord`` per record: ~3 µs of CPU a record, more than the raw
worker's parse and write of the line it holds (``benchmarks/bench_raw.py``).
``fetch_columns`` drains the consumer's fetched buffers itself, one
``RecordColumns`` per partition, and ``decode_batches`` reads the record
batches (Kafka message format v2, the only one Kafka 4 writes) of a buffer:
a batch's header with ``struct``, its CRC with aiokafka's own check, its
records decompressed with aiokafka's codecs, then one Python step per record
(its length, to find the next) and numpy for every field; keys and values
become Arrow arrays over the batch's bytes, copied once by ``take``.

What aiokafka does at the ``read_uncommitted`` level, this does too, and
``tests/test_kafka_batches.py`` holds it to aiokafka record by record:
control batches (transaction markers) are skipped, records below the fetch
offset (a compressed batch fetched from its middle) are skipped, a partial
batch at the end of a fetch is left for the next fetch, a batch whose CRC is
wrong raises ``CorruptRecordException``. A buffer of the old formats (v0,
v1), a consumer with deserializers or at ``read_committed``, or an aiokafka
whose internals are not as expected (pinned in pyproject.toml) take
aiokafka's own path, record by record: slower, the same records.

The raw bytes of a fetch are not kept by aiokafka's ``MemoryRecords``;
``keep_fetched_bytes`` wraps the class the fetcher builds them with, keeping
a reference to them beside it (every consumer in the process gets the
wrapper; it only delegates).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from typing import Any, Final

import numpy as np
import pyarrow as pa

from pipeline.archive.decoders import RecordColumns

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, records count
_HEADER: Final = struct.Struct(">qiibIhiqqqhii")
_LOG_OVERHEAD: Final = 12  # baseOffset and batchLength: batchLength counts what follows them
_CODEC_MASK: Final = 0x07
_CONTROL: Final = 0x20
_MAX_VARINT_BYTES: Final = 10


class NotV2Error(Exception):
    """The buffer holds a batch of an older message format: aiokafka's path reads it."""


def _decompress(codec: int, data: memoryview) -> bytes:
    from aiokafka import codec as codecs
    from aiokafka.errors import UnsupportedCodecError

    decoders = {
        1: codecs.gzip_decode,
        2: codecs.snappy_decode,
        3: codecs.lz4_decode,
        4: codecs.zstd_decode,
    }
    if codec not in decoders:
        raise UnsupportedCodecError(f"record batch compression codec {codec}")
    out: bytes = decoders[codec](data)
    return out


def _varints(a: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The zigzag varints starting at the positions ``at`` of ``a``: (values, sizes in bytes)."""
    value = np.zeros(len(at), np.uint64)
    size = np.zeros(len(at), np.int64)
    todo = np.ones(len(at), bool)
    last = len(a) - 1
    for k in range(_MAX_VARINT_BYTES):
        b = a[np.minimum(at + k, last)].astype(np.uint64)
        value |= np.where(todo, (b & np.uint64(0x7F)) << np.uint64(7 * k), np.uint64(0))
        ends = todo & (b < 0x80)
        size[ends] = k + 1
        todo &= ~ends
        if not todo.any():
            break
    if todo.any():
        from aiokafka.errors import CorruptRecordException

        raise CorruptRecordException("a record's varint runs past its batch")
    signed = (value >> np.uint64(1)).astype(np.int64) ^ -(value & np.uint64(1)).astype(np.int64)
    return signed, size


def _record_starts(body: memoryview, count: int) -> np.ndarray:
    """Where each record's fields begin (after its length): one step per record, the only one."""
    starts = [0] * count
    pos = 0
    try:
        for i in range(count):
            b = body[pos]
            if b < 0x80:  # a record under 64 bytes
                pos += 1
                starts[i] = pos
                pos += b >> 1
                continue
            b2 = body[pos + 1]
            if b2 < 0x80:  # under 8 KiB: most log lines
                pos += 2
                starts[i] = pos
                pos += ((b & 0x7F) | (b2 << 7)) >> 1
                continue
            shift, length = 0, 0
            while b >= 0x80:
                length |= (b & 0x7F) << shift
                shift += 7
                pos += 1
                b = body[pos]
            length |= b << shift
            pos += 1
            starts[i] = pos
            pos += (length >> 1) ^ -(length & 1)
    except IndexError:
        from aiokafka.errors import CorruptRecordException

        raise CorruptRecordException("a record batch holds fewer records than it says") from None
    return np.array(starts, np.int64)


def _spans(data: pa.Buffer, starts: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """The byte spans of ``data`` as a binary array: one copy, by ``take`` of every other element.

    The spans lie in order with gaps between them (the other fields of each
    record): an array of spans and gaps over the buffer as it is, taken
    without the gaps."""
    n = len(starts)
    if n == 0:
        return pa.array([], pa.binary())
    large = data.size >= 2**31  # past int32 offsets (a record is far smaller: its span is not)
    bounds = np.empty(2 * n, np.int64 if large else np.int32)
    bounds[0::2] = starts
    bounds[1::2] = starts + lengths
    kind = pa.large_binary() if large else pa.binary()
    spans_and_gaps = pa.Array.from_buffers(kind, 2 * n - 1, [None, pa.py_buffer(bounds), data])
    spans = spans_and_gaps.take(pa.array(np.arange(0, 2 * n, 2, dtype=np.int64)))
    return spans.cast(pa.binary()) if large else spans


class _Fields:
    """Where a batch's records' fields lie in its body: offsets, and keys' and values' spans."""

    __slots__ = ("key_at", "key_len", "offsets", "value_at", "value_len")

    def __init__(self, body: memoryview, count: int, base_offset: int) -> None:
        a = np.frombuffer(body, np.uint8)
        at = _record_starts(body, count) + 1  # past the record's attributes byte
        _, size = _varints(a, at)  # timestampDelta
        at += size
        offset_delta, size = _varints(a, at)
        at += size
        self.key_len, size = _varints(a, at)  # -1: no key
        self.key_at = at + size
        at = self.key_at + np.maximum(self.key_len, 0)
        self.value_len, size = _varints(a, at)  # -1: null, read as b""
        self.value_at = at + size
        self.offsets = base_offset + offset_delta

    def drop_before(self, offset: int) -> None:
        """Forget the records below ``offset`` (a batch fetched from its middle)."""
        keep = int(np.searchsorted(self.offsets, offset))
        for name in self.__slots__:
            setattr(self, name, getattr(self, name)[keep:])

    def shift(self, by: int) -> None:
        self.key_at += by
        self.value_at += by


def _joined(batches: list[_Fields], name: str) -> np.ndarray:
    if not batches:
        return np.zeros(0, np.int64)
    return np.concatenate([getattr(b, name) for b in batches])


def _keys(buffer: pa.Buffer, at: np.ndarray, length: np.ndarray) -> pa.Array:
    """Keys' spans as a binary array, null where a record has no key (length -1)."""
    keys = _spans(buffer, at, np.maximum(length, 0))
    if not (length < 0).any():
        return keys
    valid = pa.array(length >= 0).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), len(keys), [valid, *keys.buffers()[1:]])


def decode_batches(
    topic: str, partition: int, data: bytes | memoryview, fetch_offset: int, check_crcs: bool = True
) -> tuple[RecordColumns, int]:
    """The records of a fetched buffer at or past ``fetch_offset``, and the offset to fetch next.

    Raises ``NotV2Error`` before reading anything when a batch is of an older format."""
    from aiokafka.errors import CorruptRecordException
    from aiokafka.record.default_records import DefaultRecordBatch

    view = memoryview(data)
    batches: list[_Fields] = []
    bodies: list[memoryview] = []
    origins: list[int] = []  # where each body lies in the fetch
    compressed = False
    next_offset = fetch_offset
    pos = 0
    while pos + _HEADER.size <= len(view):
        base, length = struct.unpack_from(">qi", view, pos)
        end = pos + _LOG_OVERHEAD + length
        if end > len(view):
            break  # cut by the fetch's size limit: the next fetch starts with it
        (_, _, _, magic, _, attributes, last_delta, _, _, _, _, _, count) = _HEADER.unpack_from(view, pos)
        if magic != 2:
            raise NotV2Error(f"message format v{magic}")
        if check_crcs and not DefaultRecordBatch(view[pos:end]).validate_crc():
            raise CorruptRecordException(
                f"Invalid CRC - TopicPartition(topic={topic!r}, partition={partition})"
            )
        if not attributes & _CONTROL and count > 0:
            body = view[pos + _HEADER.size : end]
            codec = attributes & _CODEC_MASK
            if codec:
                body = memoryview(_decompress(codec, body))
                compressed = True
            fields = _Fields(body, count, base)
            if fields.offsets[0] < next_offset:
                fields.drop_before(next_offset)
            batches.append(fields)
            bodies.append(body)
            origins.append(pos + _HEADER.size)
        next_offset = max(next_offset, base + last_delta + 1)
        pos = end
    if compressed:
        # The bodies end to end, decompressed: keys and values are then copied once, together.
        origins = list(itertools.accumulate((len(b) for b in bodies[:-1]), initial=0))
        buffer = pa.py_buffer(b"".join(bodies))
    else:
        buffer = pa.py_buffer(view)  # the fetch as it is
    for fields, origin in zip(batches, origins, strict=True):
        fields.shift(origin)
    return RecordColumns(
        topic,
        partition,
        pa.array(_joined(batches, "offsets")),
        _spans(buffer, _joined(batches, "value_at"), np.maximum(_joined(batches, "value_len"), 0)),
        _keys(buffer, _joined(batches, "key_at"), _joined(batches, "key_len")),
    ), next_offset


class _KeptBytes:
    """aiokafka's ``MemoryRecords`` and the bytes it was built from."""

    __slots__ = ("raw", "records")

    def __init__(self, raw: bytes) -> None:
        from aiokafka.record._crecords.memory_records import MemoryRecords

        self.records = MemoryRecords(raw)
        self.raw = raw

    def size_in_bytes(self) -> int:
        return int(self.records.size_in_bytes())

    def has_next(self) -> bool:
        return bool(self.records.has_next())

    def next_batch(self) -> Any:
        return self.records.next_batch()


def keep_fetched_bytes() -> bool:
    """Have aiokafka's fetcher keep each fetched buffer's bytes; False where it cannot."""
    from aiokafka.consumer import fetcher

    if getattr(fetcher, "MemoryRecords", None) is _KeptBytes:
        return True
    if not hasattr(fetcher, "MemoryRecords"):
        return False
    fetcher.MemoryRecords = _KeptBytes
    return True


def _drain(fetcher: Any, result: Any) -> RecordColumns | None:
    """One partition's fetched buffer as columns; its position moved past it, as aiokafka's ``getall``."""
    from aiokafka.consumer.fetcher import READ_UNCOMMITTED

    tp = result._topic_partition
    if not result.check_assignment(tp) or not result.has_more():
        return None
    records = result._partition_records
    raw = getattr(records._records, "raw", None)
    if (
        raw is not None
        and fetcher._isolation_level == READ_UNCOMMITTED
        and records._key_deserializer is None
        and records._value_deserializer is None
    ):
        try:
            columns, next_offset = decode_batches(
                tp.topic, tp.partition, raw, records.next_fetch_offset, fetcher._check_crcs
            )
        except NotV2Error:
            pass
        else:
            records.next_fetch_offset = next_offset
            result._update_position()
            result._partition_records = None
            return columns
    msgs = result.getall()
    return RecordColumns(
        tp.topic,
        tp.partition,
        pa.array([m.offset for m in msgs], pa.int64()),
        pa.array([m.value or b"" for m in msgs], pa.binary()),
        pa.array([m.key for m in msgs], pa.binary()),
    )


async def fetch_columns(consumer: Any, timeout_s: float) -> list[RecordColumns]:
    """What ``consumer.getmany(timeout_ms=…)`` returns, as one ``RecordColumns`` per partition.

    aiokafka's ``Fetcher.fetched_records`` step by step, but each partition's
    buffer is drained whole by ``decode_batches`` instead of record by record."""
    from aiokafka.consumer.fetcher import FetchResult
    from aiokafka.errors import ConsumerStoppedError

    if consumer._closed:
        raise ConsumerStoppedError()
    consumer._coordinator.check_errors()
    fetcher = consumer._fetcher
    while True:
        # As aiokafka: nothing fetched for the old assignment is returned during a rebalance.
        if fetcher._subscriptions.reassignment_in_progress:
            await fetcher._subscriptions.wait_for_assignment()
        start = time.monotonic()
        drained: list[RecordColumns] = []
        for tp in list(fetcher._records):
            result = fetcher._records[tp]
            if type(result) is FetchResult:
                columns = _drain(fetcher, result)
                if not result.has_more():
                    del fetcher._records[tp]  # all read: the fetcher may fetch this partition again
                    fetcher._notify(fetcher._wait_consume_future)
                if columns is not None and len(columns):
                    drained.append(columns)
            elif drained:
                return drained  # the error is raised by the next call
            else:
                del fetcher._records[tp]
                fetcher._notify(fetcher._wait_consume_future)
                result.check_raise()
        if drained or timeout_s <= 0:
            return drained
        waiter = fetcher._create_fetch_waiter()
        done, pending = await asyncio.wait([waiter], timeout=timeout_s)
        if not done or fetcher._closed:
            for fut in pending:
                fut.cancel()
            return []
        if waiter.done():
            waiter.result()  # authorization errors
        timeout_s = max(0.0, timeout_s - (time.monotonic() - start))


def usable(consumer: Any) -> bool:
    """This aiokafka's internals are the ones ``fetch_columns`` drives (else: ``getmany``)."""
    fetcher = getattr(consumer, "_fetcher", None)
    return (
        fetcher is not None
        and all(
            hasattr(fetcher, name)
            for name in (
                "_records",
                "_subscriptions",
                "_notify",
                "_wait_consume_future",
                "_create_fetch_waiter",
                "_isolation_level",
                "_check_crcs",
                "_closed",
            )
        )
        and hasattr(consumer, "_coordinator")
        and hasattr(consumer, "_closed")
    )
