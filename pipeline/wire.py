"""The events topic's record format.

One Kafka record carries one Arrow IPC stream holding one record batch of
events (the schema in ``pipeline.event``). Batching is what lets a Python
shipper and a faust worker move hundreds of thousands of events per second:
the per-record cost of kafka-python and faust is paid once per batch, not once
per packet. Any Arrow implementation reads the value
(``pyarrow.ipc.open_stream(value).read_all()``); ``fireplot tail`` prints it as
JSON lines.

Key: ``<site>/<host>`` (UTF-8), so the site is the key's first part and one
sensor's batches stay ordered on one partition.
Headers: ``content-type`` and ``fireplot-schema``.
Record timestamp: the time the shipper published the batch, never the event
time (Kafka 4 rejects timestamps over an hour in the future, and firewall
clocks drift).

Compression is inside the value: Arrow's own IPC buffer compression (zstd,
level 1), which every Arrow reader undoes by itself; the records go to Kafka
uncompressed. The Kafka client would instead compress the whole value with
zstd level 3 (kafka-python offers no level), measured at twice the CPU for
records 15% smaller, and compression is a large share of a shipper's work.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION, conform

# A record stays well under the broker's and producer's size limits; the
# publisher splits larger batches by rows before encoding.
MAX_RECORD_BYTES: Final = 4 * 1024 * 1024
MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024
TOPIC_CONFIGS: Final = {"max.message.bytes": str(MAX_REQUEST_BYTES)}

CONTENT_TYPE: Final = b"application/vnd.apache.arrow.stream"
HEADERS: Final = [
    ("content-type", CONTENT_TYPE),
    ("fireplot-schema", str(SCHEMA_VERSION).encode()),
]


class WireError(ValueError):
    """A record on the events topic that is not a fireplot event batch."""


def record_key(site: str, host: str) -> bytes:
    return f"{site}/{host}".encode()


# No intra-batch threads: the shipper already parses in a thread of its own, and
# handing buffers to Arrow's pool cost more CPU than it saved in wall time.
WRITE_OPTIONS: Final = pa.ipc.IpcWriteOptions(
    compression=pa.Codec("zstd", compression_level=1), use_threads=False
)


def encode(batch: pa.RecordBatch | pa.Table) -> bytes:
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, EVENT_SCHEMA, options=WRITE_OPTIONS) as writer:
        writer.write_table(table.cast(EVENT_SCHEMA))
    return bytes(sink.getvalue().to_pybytes())


def decode(value: bytes) -> pa.Table:
    """The events in one record, checked against the event schema."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(value)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise WireError(f"value is not an Arrow IPC stream: {exc}") from None
    try:
        return conform(table)
    except (KeyError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise WireError(f"batch does not match the event schema: {exc}") from None
