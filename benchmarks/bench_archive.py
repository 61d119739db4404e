"""``fireplot store sync`` (pipeline.upload) against ``pyarrow.fs.copy_files`` of the same tree.

A local store of closed, compacted hours (written with the real Store, then
compacted) is uploaded to a real S3 API, moto's server on 127.0.0.1, through
pyarrow's S3FileSystem. The reference copies the same ``events/`` tree to
another bucket with ``pyarrow.fs.copy_files`` (threaded, no locks, no
manifests, no checks): the floor any upload of these bytes pays against this
server. Ours adds per hour the shared hour lock, the committed-file check,
sha256, a size check and the manifest object. Both run in the same process
against the same server, so the ratio is what the bookkeeping costs.
Absolute MB/s are moto's (a Python server), not S3's.

    python -m benchmarks.bench_archive [--hours 48] [--events-per-hour 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
from moto.server import ThreadedMotoServer

from benchmarks.harness import best_of, report
from pipeline.compact import compact
from pipeline.event import SCHEMA_VERSION, conform
from pipeline.store import OffsetRange, Store
from pipeline.upload import Uploader

REGION = "us-east-1"


def hour_of_events(start: dt.datetime, n: int, first_offset: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ts = np.datetime64(start.replace(tzinfo=None), "us") + rng.integers(0, 3_600 * 10**6, n).astype(
        "timedelta64[us]"
    )
    ips = rng.integers(0, 2**32, n, dtype=np.uint64)
    return conform(
        pa.table(
            {
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "site": pa.array(np.full(n, "hq")),
                "host": pa.array(np.full(n, "fw1")),
                "src_ip": pa.array((ips >> 8).astype(str)),
                "dst_ip": pa.array(np.full(n, "203.0.113.7")),
                "src_port": pa.array(rng.integers(1024, 65536, n).astype(np.int32)),
                "dst_port": pa.array(rng.integers(1, 65536, n).astype(np.int32)),
                "proto": pa.array(np.full(n, "TCP")),
                "ip_version": pa.array(np.full(n, 4, np.int8)),
                "action": pa.array(np.full(n, "drop")),
                "in_if": pa.array(np.full(n, "eth0")),
                "out_if": pa.nulls(n, pa.string()),
                "tcp_flags": pa.array(np.full(n, "SYN")),
                "prefix": pa.nulls(n, pa.string()),
                "count": pa.array(np.ones(n, np.int32)),
                "source_id": pa.array(np.full(n, "hq:fw1")),
                "source_offset": pa.array(np.arange(first_offset, first_offset + n, dtype=np.int64)),
                "schema_version": pa.array(np.full(n, SCHEMA_VERSION, np.int8)),
            }
        )
    )


def build_store(root: Path, hours: int, per_hour: int, now: dt.datetime) -> Store:
    store = Store(root)
    first = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=hours + 1)
    for h in range(hours):
        for flush in range(2):  # two flushes per hour, merged by compaction as in production
            n = per_hour // 2
            offset = (2 * h + flush) * n
            table = hour_of_events(first + dt.timedelta(hours=h), n, offset, seed=offset)
            store.write_events(OffsetRange("fireplot.events", 0, 2 * h + flush, 2 * h + flush), table)
    compact(store, 900.0, now=now)
    return store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=int, default=48)
    p.add_argument("--events-per-hour", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    # Dummy credentials for the local fake; no EC2 metadata look-up (a link-local address).
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_EC2_METADATA_DISABLED": "true"}
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"127.0.0.1:{server.get_host_and_port()[1]}"
    s3 = pafs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", region=REGION, allow_bucket_creation=True
    )

    def new_bucket() -> str:
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        s3.create_dir(bucket)
        return bucket

    now = dt.datetime.now(dt.UTC)
    try:
        with tempfile.TemporaryDirectory(prefix="fireplot-bench-archive-") as tmp:
            store = build_store(Path(tmp) / "store", args.hours, args.events_per_hour, now)
            files = [p for p in store.events_root.rglob("*.parquet") if not p.name.startswith(".")]
            total_bytes = sum(p.stat().st_size for p in files)
            print(f"{len(files)} closed hours, {total_bytes / 1e6:,.1f} MB, moto S3 at {endpoint}")

            def ours() -> None:
                uri = f"s3://{new_bucket()}/fireplot?endpoint_override={endpoint}&scheme=http&region={REGION}"
                done = Uploader(store, uri).sync(900.0, now=now)
                assert done.bytes_uploaded == total_bytes, done

            def reference() -> None:
                pafs.copy_files(
                    str(store.events_root),
                    f"{new_bucket()}/fireplot/events",
                    source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=s3,
                )

            ours_s = best_of(args.repeats, ours)
            ref_s = best_of(args.repeats, reference)
            report(
                "upload of closed hours to S3 (moto on 127.0.0.1)",
                "MB",
                round(total_bytes / 1e6),
                ours_s,
                "copy_files",
                ref_s,
            )
            uri = f"s3://{new_bucket()}/fireplot?endpoint_override={endpoint}&scheme=http&region={REGION}"
            Uploader(store, uri).sync(900.0, now=now)
            t = time.perf_counter()
            again = Uploader(store, uri).sync(900.0, now=now)
            print(
                f"  re-sync with nothing to send: {time.perf_counter() - t:.3f} s "
                f"({again.hours_present} hours checked, {again.bytes_uploaded} bytes sent)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
