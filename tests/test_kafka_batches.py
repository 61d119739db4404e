"""``pipeline.archive.kafka_batches`` held to aiokafka record by record.

Each fetched buffer is read two ways: by ``decode_batches`` (columns, no
object per record) and by aiokafka's own ``PartitionRecords`` (a
``ConsumerRecord`` each, at ``read_uncommitted`` as the raw feed reads),
and both must give the same offsets, keys and values in the same order and
the same next fetch offset. Buffers are built with aiokafka's batch builder
in every codec (none, gzip, snappy, lz4, zstd), with null and empty keys and
values, headers, long values (multi-byte lengths), offset gaps (compaction),
control batches (transaction markers), transactional batches, a fetch
offset inside a batch, and a partial batch at the end; and, through a real
broker, as kafka-python's producers write them (each codec this install
has, and transactions committed and aborted), read by a real consumer
through ``fetch_columns`` and through ``getmany``.
"""

from __future__ import annotations

import asyncio
import struct
import uuid

import pytest
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.archive.kafka_batches import NotV2Error, decode_batches, fetch_columns, keep_fetched_bytes

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
ATTRIBUTES_AT = 21  # the batch's attributes: the CRC covers them and all after


Row = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]  # offset, key, value, headers


def build(
    rows: list[Row], codec: int = 0, base: int = 0, transactional: bool = False, control: bool = False
) -> bytes:
    """One v2 record batch, as a producer (or, for ``control``, a transaction coordinator) writes it."""
    builder = DefaultRecordBatchBuilder(
        2, codec, int(transactional), 7 if transactional else -1, 0 if transactional else -1, -1, 2**30
    )
    for offset, key, value, headers in rows:
        builder.append(offset - base, 1_700_000_000_000 + offset, key, value, headers)
    batch = bytearray(builder.build())
    struct.pack_into(">q", batch, 0, base)
    if control:
        (attributes,) = struct.unpack_from(">h", batch, ATTRIBUTES_AT)
        struct.pack_into(">h", batch, ATTRIBUTES_AT, attributes | 0x20)
        struct.pack_into(">I", batch, 17, calc_crc32c(bytes(batch[ATTRIBUTES_AT:])))
    return bytes(batch)


def marker(offset: int, commit: bool) -> bytes:
    """A control batch holding one transaction marker (key: version, type; value: version, epoch)."""
    return build(
        [(offset, struct.pack(">hh", 0, int(commit)), struct.pack(">hi", 0, 0), [])], 0, offset, True, True
    )


def aiokafka_reads(buf: bytes, fetch_offset: int) -> tuple[list[tuple[int, bytes | None, bytes]], int]:
    """What aiokafka's consumer returns for this fetched buffer, and its next fetch offset."""
    pr = PartitionRecords(
        TopicPartition("t", 3), MemoryRecords(buf), [], fetch_offset, None, None, True, READ_UNCOMMITTED
    )
    rows = [(m.offset, m.key, m.value or b"") for m in pr]
    return rows, pr.next_fetch_offset


def ours(buf: bytes, fetch_offset: int) -> tuple[list[tuple[int, bytes | None, bytes]], int]:
    cols, next_offset = decode_batches("t", 3, buf, fetch_offset)
    assert (cols.topic, cols.partition) == ("t", 3)
    assert cols.values.null_count == 0
    rows = list(zip(cols.offsets.to_pylist(), cols.keys.to_pylist(), cols.values.to_pylist(), strict=True))
    assert [(r.offset, r.key, r.value) for r in cols] == rows  # the Records the sink makes agree
    return rows, next_offset


def same(buf: bytes, fetch_offset: int = 0) -> list[tuple[int, bytes | None, bytes]]:
    want = aiokafka_reads(buf, fetch_offset)
    got = ours(buf, fetch_offset)
    assert got == want
    return got[0]


# --- shapes, one by one --------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_and_field_shape(codec: str) -> None:
    fields: list[tuple[bytes | None, bytes | None]] = [
        (None, b"plain line"),
        (b"", b""),
        (b"oslo/fw1", None),
        (None, None),
        (b"k" * 300, b"v" * 70_000),  # 3-byte lengths
        (b"\xff\x00", b"\r\n\x00\xff{json"),
    ]

    def rows(base: int) -> list[Row]:
        return [(base + o, k, v, [("h", b"x")] if o % 2 else []) for o, (k, v) in enumerate(fields)]

    got = same(build(rows(100), CODECS[codec], base=100) + build(rows(200), CODECS[codec], base=200))
    assert len(got) == 12 and got[0] == (100, None, b"plain line") and got[5][0] == 105


def test_offset_gaps_of_compaction_and_an_emptied_batch() -> None:
    buf = build([(10, b"a", b"x", []), (13, None, b"y", [])], base=10)
    emptied = bytearray(build([(20, None, b"z", [])], base=20))
    struct.pack_into(">i", emptied, 23, 4)  # lastOffsetDelta 4: the batch ends at 24, as compaction leaves it
    emptied[57:61] = struct.pack(">i", 0)  # its records count 0, its records gone
    emptied = emptied[:61]
    struct.pack_into(">i", emptied, 8, len(emptied) - 12)
    struct.pack_into(">I", emptied, 17, calc_crc32c(bytes(emptied[ATTRIBUTES_AT:])))
    buf += bytes(emptied) + build([(30, None, b"w", [])], base=30)
    assert [r[0] for r in same(buf, 10)] == [10, 13, 30]
    assert ours(bytes(buf[: -len(build([(30, None, b"w", [])], base=30))]), 10)[1] == 25


def test_control_batches_are_skipped_and_transactions_read_uncommitted() -> None:
    committed = build([(0, None, b"a", []), (1, None, b"b", [])], transactional=True)
    aborted = build([(3, None, b"c", [])], base=3, transactional=True)
    buf = committed + marker(2, commit=True) + aborted + marker(4, commit=False) + marker(5, commit=True)
    got = same(buf)
    assert [r[0] for r in got] == [0, 1, 3]  # aiokafka at read_uncommitted returns the aborted one too
    assert ours(buf, 0)[1] == 6


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_a_fetch_offset_inside_a_batch(codec: str) -> None:
    buf = build([(o, None, f"line {o}".encode(), []) for o in range(50, 60)], CODECS[codec], base=50)
    assert [r[0] for r in same(buf, 55)] == list(range(55, 60))
    assert same(buf, 60) == [] and ours(buf, 60)[1] == 60


def test_a_partial_batch_at_the_end_is_left_for_the_next_fetch() -> None:
    whole = build([(0, None, b"a", [])])
    second = build([(1, None, b"b", [])], base=1)
    for cut in (1, 11, 12, 40, len(second) - 1):
        assert same(whole + second[:cut]) == [(0, None, b"a")]
        assert ours(whole + second[:cut], 0)[1] == 1
    assert same(b"") == []


def test_a_corrupt_batch_raises_as_aiokafka_does() -> None:
    buf = bytearray(build([(0, None, b"some line", [])]))
    buf[-3] ^= 0xFF
    with pytest.raises(CorruptRecordException):
        aiokafka_reads(bytes(buf), 0)
    with pytest.raises(CorruptRecordException):
        ours(bytes(buf), 0)


def test_an_old_format_batch_is_left_to_aiokafka() -> None:
    buf = bytearray(build([(0, None, b"a", [])]))
    buf[16] = 1
    with pytest.raises(NotV2Error):
        decode_batches("t", 0, bytes(buf), 0)


# --- any batches: the property ------------------------------------------------------------

_bytes = st.one_of(st.none(), st.binary(max_size=20), st.binary(min_size=60, max_size=300))


@st.composite
def fetches(draw: st.DrawFn) -> tuple[bytes, int]:
    buf = b""
    offset = draw(st.integers(0, 2**40))
    first = offset
    first_batch_end: int | None = None  # a fetch starts in the batch holding its offset, as a broker sends
    for _ in range(draw(st.integers(0, 5))):
        if first_batch_end is None and offset > first:
            first_batch_end = offset
        if draw(st.integers(0, 5)) == 0:
            buf += marker(offset, draw(st.booleans()))
            offset += 1
            continue
        rows: list[Row] = []
        base = offset
        for _ in range(draw(st.integers(1, 40))):
            headers = draw(st.lists(st.tuples(st.text(max_size=4), _bytes), max_size=2))
            rows.append((offset, draw(_bytes), draw(_bytes), headers))
            offset += draw(st.integers(1, 3))
        buf += build(rows, CODECS[draw(st.sampled_from(list(CODECS)))], base, draw(st.booleans()))
    if buf and draw(st.booleans()):
        buf = buf[: draw(st.integers(0, len(buf)))]
    return buf, draw(st.integers(first, max(first, first_batch_end or offset)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fetches())
def test_any_fetched_buffer_reads_as_aiokafka_reads_it(fetch: tuple[bytes, int]) -> None:
    same(*fetch)


# --- through a real broker, as the producers here write ---------------------------------


def produced(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Plain records in each codec kafka-python has here, and transactions committed and aborted."""
    from kafka import KafkaProducer
    from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd

    codecs: list[str | None] = [None]
    codecs += [
        c
        for c, ok in (("gzip", has_gzip), ("snappy", has_snappy), ("lz4", has_lz4), ("zstd", has_zstd))
        if ok()
    ]
    sent: list[tuple[bytes | None, bytes]] = []
    for codec in codecs:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, compression_type=codec, linger_ms=20, batch_size=1 << 16
        )
        for i in range(700):
            key = None if i % 3 == 0 else f"site-{i % 4}/fw".encode()
            value = f"{codec} line {i} ".encode() * (1 + i % 40)
            producer.send(topic, key=key, value=value, partition=0)
            sent.append((key, value))
        producer.flush()
        producer.close()
    for commit in (True, False, True):
        producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:6]}")
        producer.init_transactions()
        producer.begin_transaction()
        for i in range(50):
            producer.send(topic, key=b"tx", value=f"tx {commit} {i}".encode(), partition=0)
            sent.append((b"tx", f"tx {commit} {i}".encode()))
        producer.flush()  # in the log before the end: an aborted transaction's records too
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
        producer.close()
    return sent


async def consume(
    bootstrap: str, topic: str, columnar: bool, n: int
) -> list[tuple[int, bytes | None, bytes]]:
    from aiokafka import AIOKafkaConsumer

    assert keep_fetched_bytes()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=64 * 1024,  # many fetches, batches cut at a fetch's end
    )
    await consumer.start()
    rows: list[tuple[int, bytes | None, bytes]] = []
    try:
        async with asyncio.timeout(120):
            while len(rows) < n:
                if columnar:
                    for cols in await fetch_columns(consumer, 1.0):
                        rows += zip(
                            cols.offsets.to_pylist(),
                            cols.keys.to_pylist(),
                            cols.values.to_pylist(),
                            strict=True,
                        )
                else:
                    for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                        rows += [(m.offset, m.key, m.value or b"") for m in msgs]
    finally:
        await consumer.stop()
    return rows


def test_a_real_broker_read_through_fetch_columns_as_through_getmany(kafka_bootstrap: str) -> None:
    from pipeline.broker import ensure_topics

    topic = f"batches-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {topic: 1}, {})
    sent = produced(kafka_bootstrap, topic)
    via_getmany = asyncio.run(consume(kafka_bootstrap, topic, False, len(sent)))
    via_columns = asyncio.run(consume(kafka_bootstrap, topic, True, len(sent)))
    assert via_columns == via_getmany
    assert [(k, v) for _, k, v in via_columns] == sent  # read_uncommitted: the aborted ones too
    offsets = [o for o, _, _ in via_columns]
    assert offsets == sorted(set(offsets))
