"""File → Kafka: `fireplot ship` against `kcat -P` shipping the same file raw to the same broker.

kcat (librdkafka) sending each line as a raw message is the practical upper
bound for moving a log file into Kafka; fireplot additionally parses,
filters and encodes every line. Both run on the same file, broker and run,
and two rates are printed for each:

- whole process: lines / wall time from exec to exit (start-up, the last
  acknowledgements and the exit included);
- steady state: the rate at which records were handed to the Kafka client,
  from the record timestamps (CreateTime, stamped at send) of the first and
  the last record on the topic. Start-up and the final flush are outside the
  span, so a Python process's second of imports is not read as throughput.
  For kcat every record is a line; for fireplot a record is a batch of
  events, so the lines after the first record are counted in proportion to
  the events after it.

CPU seconds (user + system, the process and its children) are printed too:
on a shared machine wall time moves with the neighbours' load, CPU time much
less, and parse processes trade CPU for wall time only when a core is free.

Each fireplot setting given (``--parse-processes``, ``--batch-lines``, comma
lists) is run against the same kcat runs.

    python benchmarks/bench_ship.py [--lines 2000000] [--parse-processes 0,1] [--batch-lines 8192,32768]
                                    [--style demo,rfc5424-pri,rfc3164-uptime,...]

``--style`` ships the same lines behind each syslog header style of
``bench_parse`` in turn (``demo``: the demo's own, rsyslog's ISO-8601 format
with the kernel's uptime stamp), each against its own kcat runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.bench_parse import STYLES
from benchmarks.harness import broker, report
from pipeline import wire
from pipeline.broker import ensure_topics
from producers.demo import Demo, write_lines


def topic_span(bootstrap: str, topic: str, decode: bool) -> tuple[float, float]:
    """(seconds between first and last record timestamp, share of the data after the first record)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        end = consumer.end_offsets(tps)
        first_ts, last_ts = [], []
        # (timestamp, events) of every record when they must be counted; else the ends only.
        counted: list[tuple[int, int]] = []
        for tp in tps:
            if end[tp] == 0:
                continue
            wanted = [0, end[tp] - 1] if not decode else list(range(end[tp]))
            consumer.seek(tp, wanted[0])
            got = 0
            while got < len(wanted) and (decode or got == 0):
                for records in consumer.poll(timeout_ms=2000, max_records=500).values():
                    for r in records:
                        if decode:
                            counted.append((r.timestamp, wire.decode(r.value).num_rows))
                        if r.offset == 0:
                            first_ts.append(r.timestamp)
                        got += 1
            if not decode:
                consumer.seek(tp, end[tp] - 1)
                recs: list[object] = []
                while not recs:
                    recs = [r for rs in consumer.poll(timeout_ms=2000).values() for r in rs]
                last_ts.append(max(r.timestamp for r in recs))  # type: ignore[attr-defined]
            else:
                last_ts.append(max(t for t, _ in counted))
        t0, t1 = min(first_ts), max(last_ts)
        if not decode:
            return (t1 - t0) / 1000, 1.0
        total = sum(n for _, n in counted)
        at_start = sum(n for t, n in counted if t == t0)
        return (t1 - t0) / 1000, (total - at_start) / total
    finally:
        consumer.close()


_DEMO_HEAD = re.compile(r"^(\S+) (\S+) kernel: (\[[ \d.]+\] )")
_MAC = re.compile(r"MAC=\S+ ")


def restyle(source: Path, target: Path, style: str) -> None:
    """The demo log ``source`` with each line's header written in ``style`` (see bench_parse.STYLES)."""
    header = STYLES[style]
    with source.open(encoding="ascii") as lines, target.open("w", encoding="ascii") as out:
        for line in lines:
            found = _DEMO_HEAD.match(line)
            assert found is not None, line
            stamp, host, uptime = found.groups()
            body = line[found.end() :]
            if style == "ulogd-logemu":
                body = _MAC.sub("MAC= ", body.replace("TOS=0x", "TOS="), count=1)
            out.write(header(dt.datetime.fromisoformat(stamp), host, uptime) + body)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--parse-processes", default="0", help="comma list of [shipper] parse_processes (0)")
    ap.add_argument("--batch-lines", default="16384", help="comma list of [shipper] batch_lines (16384)")
    ap.add_argument(
        "--style", default="demo", help=f"comma list of header styles: demo, {', '.join(STYLES)} (demo)"
    )
    args = ap.parse_args()
    styles = args.style.split(",")
    unknown = [style for style in styles if style != "demo" and style not in STYLES]
    if unknown:
        sys.exit(f"unknown --style {', '.join(unknown)}")
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if not kcat:
        sys.exit("kcat not found (Debian: apt-get install kcat)")
    settings = [
        (int(p), int(b)) for b in args.batch_lines.split(",") for p in args.parse_processes.split(",")
    ]
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        log = Path(tmp) / "fw.log"
        end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
        packets = Demo(5).history(end, hours=24, per_hour=args.lines / 24 * 0.98)[: args.lines]
        write_lines(packets, log)
        n = len(packets)
        del packets
        demo_log = log
        for style in styles:
            if style != "demo":
                log = Path(tmp) / f"{style}.log"
                restyle(demo_log, log, style)
            else:
                log = demo_log
            print(f"header style {style}: {log.open().readline().strip()[:100]}...", flush=True)
            run_style(kcat, bootstrap, Path(tmp), log, n, settings, args.repeats)
            if log != demo_log:
                log.unlink()


def run_style(
    kcat: str, bootstrap: str, tmp: Path, log: Path, n: int, settings: list[tuple[int, int]], repeats: int
) -> None:
    """Ship ``log`` (``n`` lines) with fireplot at each setting and with kcat, interleaved; print ratios."""
    cfg = tmp / "fireplot.toml"

    def ours(processes: int, batch_lines: int) -> tuple[float, float, float]:
        topic = f"bench-ship-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, {topic: 4}, wire.TOPIC_CONFIGS)
        cfg.write_text(
            f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{topic}"\n'
            f'[shipper]\ndead_letter_dir = "{tmp}/dead"\n'
            f"parse_processes = {processes}\nbatch_lines = {batch_lines}\n"
            # A fresh registry per run: with a shared one, a repeat would resume at the end.
            f'registry_path = "{tmp}/{topic}/registry.json"\nspool_dir = "{tmp}/{topic}/spool"\n'
        )
        cmd = [sys.executable, "-m", "fireplot", "-c", str(cfg), "--log-level", "warning"]
        t, c = time.perf_counter(), cpu_s()
        subprocess.run([*cmd, "ship", str(log), "--site", "bench"], check=True, capture_output=True)
        whole, cpu = time.perf_counter() - t, cpu_s() - c
        # Every line must become an event, or the run measured something else.
        if any(f.is_file() and f.stat().st_size for f in (tmp / "dead").rglob("*")):
            sys.exit(f"{log.name}: lines were rejected (see {tmp}/dead): fix that before trusting any timing")
        span, share = topic_span(bootstrap, topic, decode=True)
        return whole, n * share / span, cpu

    def reference() -> tuple[float, float, float]:
        topic = f"bench-kcat-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, {topic: 4}, wire.TOPIC_CONFIGS)
        kcat_opts = ["-l", "-z", "zstd", "-X", "linger.ms=20", "-X", "acks=all"]
        t, c = time.perf_counter(), cpu_s()
        subprocess.run(
            [
                kcat,
                "-P",
                "-b",
                bootstrap,
                "-t",
                topic,
                *kcat_opts,
                "-X",
                "enable.idempotence=true",
                str(log),
            ],
            check=True,
            capture_output=True,
        )
        whole, cpu = time.perf_counter() - t, cpu_s() - c
        span, _ = topic_span(bootstrap, topic, decode=False)
        return whole, (n - 1) / span, cpu

    # Interleaved repeats: drift on a shared machine hits every contender alike.
    runs: dict[str, list[tuple[float, float, float]]] = {"kcat": []}
    for _ in range(repeats):
        runs["kcat"].append(reference())
        for p, b in settings:
            runs.setdefault(f"{p},{b}", []).append(ours(p, b))
    ref_whole = min(w for w, _, _ in runs["kcat"])
    ref_steady = max(r for _, r, _ in runs["kcat"])
    ref_cpu = min(c for _, _, c in runs["kcat"])
    size_mb = log.stat().st_size / 1e6
    for p, b in settings:
        mine = runs[f"{p},{b}"]
        what = f"{n:,} netfilter lines ({size_mb:.0f} MB), parse_processes={p}, batch_lines={b}"
        report(
            f"file -> Kafka, {what}, whole process",
            "lines",
            n,
            min(w for w, _, _ in mine),
            "kcat -P",
            ref_whole,
        )
        report(
            f"file -> Kafka, {what}, steady state (first to last record timestamp)",
            "lines",
            n,
            n / max(r for _, r, _ in mine),
            "kcat -P",
            n / ref_steady,
        )
        mine_cpu = min(c for _, _, c in mine)
        print(
            f"  CPU        fireplot {mine_cpu * 1e6 / n:.2f} us/line ({mine_cpu:.2f} s), "
            f"kcat {ref_cpu * 1e6 / n:.2f} us/line ({ref_cpu:.2f} s)"
        )


if __name__ == "__main__":
    main()
