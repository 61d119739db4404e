"""Raw lines → store against the events topic → store, per worker, the same events in the same run.

The same netfilter lines reach the store two ways: parsed by the shipper and
sent as Arrow event batches (the events topic: records of 8192 events), or
sent as they are by rsyslog/kcat/Filebeat (the raw-lines topic: one line per
record, plain or a Filebeat JSON document) and parsed by the worker's
``RawLines``. The events path's events are the parser's own output for these
lines, so both sides write exactly the same rows.

Two measurements, each side in the same run:

- in-process: ``ArchiveSink`` flushes with the worker's flush sizes
  (``flush_max_records`` 32 events records, ``raw_flush_max_records`` 20000
  raw records) into a fresh real store, CPU seconds of this process; what
  the decoder and the store cost, without the network (the raw records
  read from Kafka record batches into columns as the raw feed does);
- through Kafka: the real worker (``fireplot worker``: faust's agent for the
  events topic, ``pipeline.archive.raw_feed`` for the raw topic) archiving a
  pre-filled topic on a real broker, the same events each side, from the
  measured topic's partitions assigned (its /ready lists them: consumption
  starts) to all rows durable and visible in the store, plus its CPU seconds
  (whole process, start-up included).

    python -m benchmarks.bench_raw [--lines 200000] [--repeats 3] [--no-kafka | --kafka-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa

from benchmarks.bench_sink import Run, wait_rows
from benchmarks.harness import broker, free_port, report
from pipeline import wire
from pipeline.archive.decoders import RawLines, Record, raw_parser
from pipeline.archive.kafka_batches import decode_batches
from pipeline.archive.sink import ArchiveSink
from pipeline.broker import ensure_topics
from pipeline.parsers import ParseContext
from pipeline.store import Store
from producers.demo import Packet, format_line

T0 = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
BATCH = 8192
FLUSH_EVENTS_RECORDS = 32
FLUSH_RAW_RECORDS = 20000


def lines(n: int) -> list[str]:
    out = []
    for i in range(n):
        ts = T0 + dt.timedelta(milliseconds=86_400_000 * i // n)
        src = f"198.18.{i // 250 % 250}.{i % 250 + 1}"
        p = Packet(
            ts, src, "203.0.113.10", "TCP" if i % 5 else "UDP", 1024 + i % 60000, 1 + (i * 7919) % 65535
        )
        out.append(format_line(p, i / 1000))
    return out


def filebeat(line: str, i: int) -> str:
    return json.dumps(
        {
            "@timestamp": "2026-11-27T10:00:00.123Z",
            "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.15.0"},
            "message": line,
            "log": {"offset": i * 200, "file": {"path": "/var/log/kern.log"}},
            "input": {"type": "filestream"},
            "ecs": {"version": "8.0.0"},
            "host": {"name": "fw1"},
            "agent": {"type": "filebeat", "version": "8.15.0", "name": "fw1"},
            "site": "bench",
        }
    )


def cpu() -> float:
    return time.process_time()


def sink_run(
    root: Path, records: Sequence[Record], per_flush: int, decode: Callable[..., object] | None
) -> float:
    """CPU seconds to flush the records into a fresh store, ``per_flush`` at a time.

    Raw records (a decoder given) go in as the raw feed reads them: written
    into Kafka record batches first (as a producer does, not timed), then
    each flush's batches read by ``kafka_batches`` into columns (timed)."""
    if decode is None:
        sink = ArchiveSink(Store(root), root / "dead", future_tolerance_s=1e9)
        t = cpu()
        for i in range(0, len(records), per_flush):
            sink.flush(records[i : i + per_flush])
        return cpu() - t
    sink = ArchiveSink(Store(root), root / "dead", decode, future_tolerance_s=1e9)  # type: ignore[arg-type]
    fetches = [kafka_fetch(records[i : i + per_flush]) for i in range(0, len(records), per_flush)]
    t = cpu()
    for first, fetch in fetches:
        columns, _ = decode_batches(records[0].topic, records[0].partition, fetch, first)
        sink.flush_partitions({(columns.topic, columns.partition): columns})
    return cpu() - t


def kafka_fetch(records: Sequence[Record], batch_bytes: int = 1 << 20) -> tuple[int, bytes]:
    """The records as a fetch returns them: v2 record batches of up to ``batch_bytes``
    (kafka-python's ``batch_size`` here), written with aiokafka's builder; (first offset, bytes)."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    out = bytearray()
    i = 0
    while i < len(records):
        base = records[i].offset
        builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, batch_bytes)
        while i < len(records) and builder.append(
            records[i].offset - base, 1_700_000_000_000, records[i].key, records[i].value, []
        ):
            i += 1
        batch = builder.build()
        batch[0:8] = base.to_bytes(8, "big")
        out += batch
    return records[0].offset, bytes(out)


def in_process(text: list[str], events: pa.Table, repeats: int, tmp: Path) -> None:
    n = events.num_rows
    ev_records = [
        Record("ev", 0, i, wire.encode(events.slice(s, BATCH))) for i, s in enumerate(range(0, n, BATCH))
    ]
    plain = [Record("raw", 0, i, t.encode(), b"bench") for i, t in enumerate(text)]
    docs = [Record("raw", 0, i, filebeat(t, i).encode()) for i, t in enumerate(text)]
    best: dict[str, float] = {}
    for r in range(repeats):
        for name, recs, per, dec in (
            ("events", ev_records, FLUSH_EVENTS_RECORDS, None),
            ("plain", plain, FLUSH_RAW_RECORDS, RawLines(raw_parser("auto"), "dflt")),
            ("filebeat", docs, FLUSH_RAW_RECORDS, RawLines(raw_parser("auto"), "dflt")),
        ):
            s = sink_run(tmp / f"{name}-{r}", recs, per, dec)
            best[name] = min(best.get(name, s), s)
    title = f"in-process ArchiveSink.flush, {n:,} events into a real store (CPU time, best of {repeats})"
    report(f"{title}: raw plain lines, one per record", "events", n, best["plain"], "events", best["events"])
    report(f"{title}: raw Filebeat JSON documents", "events", n, best["filebeat"], "events", best["events"])


def through_kafka(text: list[str], events: pa.Table, tmp: Path) -> None:
    n = events.num_rows
    from kafka import KafkaProducer

    from producers.publisher import Publisher

    with broker() as bootstrap:
        ev_topic, raw_topic = f"bench-ev-{uuid.uuid4().hex[:6]}", f"bench-raw-{uuid.uuid4().hex[:6]}"
        ensure_topics(bootstrap, {ev_topic: 4, raw_topic: 4}, wire.TOPIC_CONFIGS)
        pub = Publisher(bootstrap, ev_topic)
        for i in range(0, n, BATCH):
            pub.send(wire.record_key("bench", "fw1"), events.slice(i, BATCH))
        pub.close()
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50, batch_size=1 << 20)
        for i, t in enumerate(text):
            producer.send(raw_topic, key=f"bench/fw{i % 4}".encode(), value=t.encode())
        producer.flush()
        producer.close()
        runs: dict[str, Run] = {}
        for name, (events_topic, raw) in {
            "events": (ev_topic, "unused-raw"),
            "raw": ("unused-ev", raw_topic),
        }.items():
            measured = events_topic if name == "events" else raw
            runs[name] = run_worker(tmp / f"kafka-{name}", bootstrap, events_topic, raw, n, measured)
        ev, rw = runs["events"], runs["raw"]
        report(
            f"Kafka -> worker -> store, {n:,} events, from partitions assigned to all rows visible: "
            f"raw lines one per record vs events in records of {BATCH}",
            "events",
            n,
            rw.total_s - rw.ready_s,
            "events",
            ev.total_s - ev.ready_s,
        )
        print(
            f"  CPU        raw worker {rw.cpu_s:.1f} s ({n / rw.cpu_s:,.0f} events/CPU-s), "
            f"events worker {ev.cpu_s:.1f} s ({n / ev.cpu_s:,.0f} events/CPU-s), "
            f"ratio {ev.cpu_s / rw.cpu_s:.2f}x"
        )
        print(f"  peak RSS   raw worker {rw.rss_mb:.0f} MB, events worker {ev.rss_mb:.0f} MB")


def run_worker(root: Path, bootstrap: str, events_topic: str, raw_topic: str, n: int, measured: str) -> Run:
    root.mkdir(parents=True)
    port = free_port()
    cfg = root / "fireplot.toml"
    cfg.write_text(
        f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{events_topic}"\nraw_topic = "{raw_topic}"\n'
        f'var_dir = "{root / "var"}"\n[worker]\nstore_dir = "{root / "store"}"\n'
        f'app_id = "bench-{root.name}"\n'
        f"web_port = {port}\nfuture_tolerance_s = 1e9\n"
        # compaction of the closed hours would race the row count; neither side needs it
        "maintenance_enabled = false\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fireplot", "-c", str(cfg), "--log-level", "warning", "worker"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return wait_rows(root / "store" / "events", n, proc, reading(port, measured))
    finally:
        proc.terminate()
        proc.wait()


def reading(port: int, topic: str) -> Callable[[], bool]:
    """The worker holds partitions of the measured topic (its /ready lists them): consumption starts."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as resp:
                assigned = json.loads(resp.read()).get("assigned_partitions") or []
        except (OSError, ValueError):
            return False
        return any(p.rsplit(":", 1)[0] == topic for p in assigned)

    return check


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-kafka", action="store_true", help="only the in-process measurement")
    ap.add_argument("--kafka-only", action="store_true", help="only the measurement through Kafka")
    args = ap.parse_args()
    text = lines(args.lines)
    parsed = raw_parser("auto")(
        pa.array(text), pa.array(range(len(text)), pa.int64()), ParseContext("bench", "b:0")
    )
    assert not parsed.rejects and parsed.events.num_rows == len(text)
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-raw-") as tmp:
        if not args.kafka_only:
            in_process(text, parsed.events, args.repeats, Path(tmp))
        if not args.no_kafka:
            through_kafka(text, parsed.events, Path(tmp))


if __name__ == "__main__":
    main()
