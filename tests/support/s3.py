"""The shared S3 API for tests: moto's real S3 server on 127.0.0.1, and local stores to sync to it.

moto implements the S3 REST API over HTTP; pyarrow's S3FileSystem (the AWS C++
SDK) talks to it exactly as to AWS or MinIO, via ``endpoint_override``. Test
modules get the ``s3`` fixture (a running server) from tests/conftest.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from pipeline.store import OffsetRange, Store, partition_dir
from tests.support.events import hour_events

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
