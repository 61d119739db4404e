"""The shared S3 API for tests: moto's real S3 server on 127.0.0.1, and local stores to sync to it.

moto implements the S3 REST API over HTTP; pyarrow's S3FileSystem (the AWS C++
SDK) talks to it exactly as to AWS or MinIO, via ``endpoint_override``. Test
modules get the ``s3`` fixture from tests/conftest.py, which imports it.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION
from pipeline.store import OffsetRange, Store, partition_dir

REGION = "us-east-1"
# Closed = ended more than this long ago (the [worker] compact_older_than_s default).
OLDER_THAN_S = 900.0
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "fireplot-test",
    "AWS_SECRET_ACCESS_KEY": "fireplot-test-secret",
    # Never ask an EC2 metadata service (a link-local address) for credentials or region.
    "AWS_EC2_METADATA_DISABLED": "true",
}


class S3:
    """The moto S3 server and a helper to make buckets on it."""

    def __init__(self, port: int) -> None:
        self.endpoint = f"127.0.0.1:{port}"
        self.fs = pafs.S3FileSystem(
            endpoint_override=self.endpoint,
            scheme="http",
            region=REGION,
            access_key=S3_ENV["AWS_ACCESS_KEY_ID"],
            secret_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
            allow_bucket_creation=True,
        )

    def bucket_uri(self, prefix: str = "fireplot") -> str:
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        self.fs.create_dir(bucket)
        return f"s3://{bucket}/{prefix}?endpoint_override={self.endpoint}&scheme=http&region={REGION}"

    def objects(self, uri: str, sub: str) -> dict[str, bytes]:
        """Every object under <uri>/<sub>, relative path -> content."""
        base = uri.removeprefix("s3://").split("?")[0] + "/" + sub
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        out = {}
        for info in infos:
            if info.type == pafs.FileType.File:
                with self.fs.open_input_stream(info.path) as fh:
                    out[info.path[len(base) + 1 :]] = fh.read()
        return out


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    # Imported here: only the sessions that run an S3 test pay for loading moto.
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield S3(server.get_host_and_port()[1])
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def hour_events(hour_start: dt.datetime, n: int, site: str, first_offset: int, seed: int) -> pa.Table:
    """n events spread over one hour, random enough that Parquet cannot shrink them to nothing."""
    rng = np.random.default_rng(seed)
    us = int(hour_start.timestamp() * 1_000_000) + rng.integers(0, 3_600_000_000, n)
    src = rng.integers(0, 2**32, n, dtype=np.uint64)
    cols = {
        "ts": pa.array(us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "site": pa.array([site] * n),
        "host": pa.array(["fw1"] * n),
        "src_ip": pa.array([f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in src.tolist()]),
        "dst_ip": pa.array(["203.0.113.7"] * n),
        "src_port": pa.array(rng.integers(1024, 65536, n), pa.int32()),
        "dst_port": pa.array(rng.integers(1, 65536, n), pa.int32()),
        "proto": pa.array(["TCP"] * n),
        "ip_version": pa.array(np.full(n, 4), pa.int8()),
        "action": pa.array(["drop"] * n),
        "in_if": pa.array(["eth0"] * n),
        "out_if": pa.nulls(n, pa.string()),
        "tcp_flags": pa.array(["SYN"] * n),
        "prefix": pa.nulls(n, pa.string()),
        "count": pa.array(np.ones(n, dtype=np.int32), pa.int32()),
        "source_id": pa.array([f"{site}:fw1"] * n),
        "source_offset": pa.array(np.arange(first_offset, first_offset + n), pa.int64()),
        "schema_version": pa.array(np.full(n, SCHEMA_VERSION), pa.int8()),
    }
    return pa.table(cols, schema=EVENT_SCHEMA)


class LocalStore:
    """A local store filled through the worker's write path: several flushes per hour, then compacted."""

    def __init__(self, root: Path) -> None:
        self.store = Store(root)
        self.offset = 0
        self.kafka_offset = 0

    def add(self, site: str, hour_start: dt.datetime, n: int, flushes: int = 3) -> None:
        for i in range(flushes):
            table = hour_events(hour_start, n // flushes, site, self.offset, seed=self.offset + i)
            self.offset += table.num_rows
            rng = OffsetRange("fireplot.events", 0, self.kafka_offset, self.kafka_offset + 1)
            self.kafka_offset += 2
            self.store.write_events(rng, table)

    def files(self, site: str, start: dt.datetime) -> list[Path]:
        return sorted(partition_dir(self.store.root, site, start.date(), start.hour).glob("*.parquet"))
