"""Live detection latency: from a fast scan's 15th port being logged to the scan on the topic.

Real parts end to end: a local Kafka broker, ``fireplot ship --follow`` on a log
file, the ``fireplot worker`` writing Parquet and ``fireplot detect --follow``
publishing new scans to the scans topic. This process plays the firewall: it
appends kernel LOG lines stamped with the wall clock - background noise (many
sources, popular ports) at a steady rate, and now and then a vertical scan of
one source walking ports at a realistic rate - and watches, in the same run:

* ours: the time from the scan's 15th distinct port line being written until the
  scan arrives on the scans topic (a real consumer);
* reference: the time from that same line being written until the event itself
  is readable in the events store - the pipeline's own delivery latency, which
  detection cannot beat. The difference is what detection itself adds (its grid
  step, the watermark's lateness, the follow interval, one evaluation).

    python -m benchmarks.bench_detect_latency [--runs 8] [--scan-rate 10] [--background-rate 20]
        [--detect KEY=VALUE ...]   # e.g. --detect vertical_step_s=5 --detect lateness_s=2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from benchmarks.harness import broker, free_port
from pipeline.broker import ensure_topics
from pipeline.store import Store
from producers.demo import TCP_PORTS, Packet, format_line

TARGET = "192.0.2.10"


class Firewall:
    """Appends log lines to one file from several threads, stamped with the wall clock."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "a", encoding="ascii")  # noqa: SIM115 - closed in close()
        self.lock = threading.Lock()

    def log(self, src: str, dst: str, port: int) -> float:
        """Write one drop line now; return the wall-clock time it was complete in the file."""
        with self.lock:
            now = dt.datetime.now(dt.UTC)
            p = Packet(now, src, dst, "TCP", 40000 + port % 20000, port)
            self.fh.write(format_line(p, now.timestamp() % 10_000_000) + "\n")
            self.fh.flush()
            return time.time()

    def close(self) -> None:
        self.fh.close()


def background(fw: Firewall, rate: float, stop: threading.Event) -> None:
    """Internet noise: random sources on popular ports, Poisson arrivals at `rate` per second."""
    rng = random.Random(7)
    ports, weights = list(TCP_PORTS), list(TCP_PORTS.values())
    while not stop.wait(rng.expovariate(rate)):
        src = f"198.18.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        fw.log(src, f"192.0.2.{rng.randrange(1, 64)}", rng.choices(ports, weights)[0])


class Watch:
    """Polls the scans topic and the events store for one scan source at a time."""

    def __init__(self, bootstrap: str, topic: str, store: Store) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        tp = TopicPartition(topic, 0)
        self.consumer.assign([tp])
        self.consumer.seek_to_end(tp)
        self.store = store

    def scan_seen(self, src: str) -> dict[str, Any] | None:
        for records in self.consumer.poll(timeout_ms=50).values():
            for r in records:
                scan = json.loads(r.value)
                if scan["kind"] == "vertical" and src in scan["sources"]:
                    return dict(scan)
        return None

    def stored_ports(self, src: str, since: dt.datetime) -> int:
        t = self.store.read(since, since + dt.timedelta(minutes=10), columns=["src_ip", "dst_port"])
        mine = t.filter(pc.equal(t.column("src_ip"), src))
        return len(set(mine.column("dst_port").to_pylist()))


def one_scan(
    fw: Firewall, watch: Watch, src: str, ports: int, rate: float, timeout_s: float
) -> tuple[float, float]:
    """Scan ports 1..ports of TARGET at `rate`; return (store, topic) latency after the 15th port."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    rng = random.Random(src)
    order = rng.sample(range(1, 1025), ports)
    t15 = 0.0
    store_at: float | None = None
    topic_at: float | None = None
    start = time.monotonic()
    i = 0
    # The scanner keeps going after its 15th port while both watches run, as real ones do.
    while time.monotonic() - start < timeout_s and (store_at is None or topic_at is None):
        due = start + i / rate
        if i < ports and time.monotonic() >= due:
            t = fw.log(src, TARGET, order[i])
            i += 1
            if i == 15:
                t15 = t
            continue
        if t15 and topic_at is None and watch.scan_seen(src) is not None:
            topic_at = time.time()
        if t15 and store_at is None and watch.stored_ports(src, since) >= 15:
            store_at = time.time()
        time.sleep(0.02)
    if store_at is None or topic_at is None:
        raise SystemExit(f"scan {src}: not seen within {timeout_s} s (store {store_at}, topic {topic_at})")
    while i < ports:  # finish the scan so that the next one starts clean
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        fw.log(src, TARGET, order[i])
        i += 1
    return store_at - t15, topic_at - t15


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--ports", type=int, default=40, help="ports per scan")
    ap.add_argument("--scan-rate", type=float, default=10.0, help="scan probes per second")
    ap.add_argument("--background-rate", type=float, default=20.0, help="noise lines per second")
    ap.add_argument("--timeout", type=float, default=60.0, help="per scan")
    ap.add_argument(
        "--detect",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="[detect] override (TOML value), e.g. follow_interval_s=0.5",
    )
    args = ap.parse_args()

    with broker() as bootstrap, tempfile.TemporaryDirectory(prefix="fp-bench-latency-") as tmp:
        root = Path(tmp)
        run_id = uuid.uuid4().hex[:8]
        events, scans = f"bench-lat-{run_id}", f"bench-lat-{run_id}-scans"
        extra = "".join(f"{kv.split('=', 1)[0]} = {kv.split('=', 1)[1]}\n" for kv in args.detect)
        cfg = root / "fireplot.toml"
        cfg.write_text(
            f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{events}"\nvar_dir = "{root / "var"}"\n'
            f'[worker]\nstore_dir = "{root / "store"}"\napp_id = "bench-lat-{run_id}"\n'
            f"web_port = {free_port()}\n"
            f'[shipper]\ndead_letter_dir = "{root / "dead"}"\nsite = "bench"\n'
            f'registry_path = "{root / "registry.json"}"\nspool_dir = "{root / "spool"}"\n'
            f'[detect]\npublish = true\nkafka_topic = "{scans}"\n{extra}'
        )
        ensure_topics(bootstrap, {events: 4, scans: 1})
        log = root / "fw.log"
        log.touch()
        procs = []
        for name, argv in (
            ("worker", ["worker"]),
            ("ship", ["ship", "--follow", str(log)]),
            ("detect", ["detect", "--follow"]),
        ):
            out = open(root / f"{name}.out", "ab")  # noqa: SIM115 - owned by the child
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "fireplot", "-c", str(cfg), *argv],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
            out.close()
        fw = Firewall(log)
        stop = threading.Event()
        noise = threading.Thread(target=background, args=(fw, args.background_rate, stop), daemon=True)
        noise.start()
        store = Store(root / "store")
        try:
            deadline = time.monotonic() + 120
            while store.count() == 0:  # the worker and shipper are up and the noise flows
                if time.monotonic() > deadline:
                    raise SystemExit(
                        "no event reached the store in 120 s:\n" + (root / "worker.out").read_text()[-3000:]
                    )
                time.sleep(0.5)
            time.sleep(5)  # the detector's first evaluation (8 h look-back) is behind us
            watch = Watch(bootstrap, scans, store)
            store_lat: list[float] = []
            topic_lat: list[float] = []
            for r in range(args.runs):
                s, t = one_scan(fw, watch, f"203.0.113.{10 + r}", args.ports, args.scan_rate, args.timeout)
                store_lat.append(s)
                topic_lat.append(t)
                print(
                    f"  run {r + 1}: 15th event in store after {s:5.2f} s, scan on topic after {t:5.2f} s",
                    flush=True,
                )
                time.sleep(2)
        finally:
            stop.set()
            noise.join()
            fw.close()
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        stats: dict[str, Any] = {}
        for line in reversed((root / "detect.out").read_text(errors="replace").splitlines()):
            if line.startswith("{") and '"evaluations"' in line:
                stats = json.loads(line)
                break
        added = [t - s for s, t in zip(store_lat, topic_lat, strict=True)]
        print(
            f"\nlive detection latency after the 15th port ({args.runs} scans at {args.scan_rate:g} "
            f"ports/s, noise {args.background_rate:g} lines/s, [detect] "
            f"{' '.join(args.detect) or 'defaults'})"
        )
        print(f"  {'':<34} {'p50':>7} {'p95':>7} {'max':>7}")
        for name, xs in (
            ("scan on the scans topic (ours)", topic_lat),
            ("15th event in the store (ref)", store_lat),
            ("added by detection", added),
        ):
            print(f"  {name:<34} {pct(xs, 0.5):>6.2f}s {pct(xs, 0.95):>6.2f}s {max(xs):>6.2f}s")
        print(f"  ratio p50 ours/ref {statistics.median(topic_lat) / statistics.median(store_lat):.2f}x")
        if stats.get("evaluations"):
            mean = stats["eval_s_total"] / stats["evaluations"]
            print(
                f"  detector: {stats['evaluations']} evaluations, mean {mean:.3f} s, "
                f"max {stats['eval_s_max']:.3f} s; alerts failed {stats['alerts_failed']}"
            )


if __name__ == "__main__":
    main()
