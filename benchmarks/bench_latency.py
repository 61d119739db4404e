"""Live latency: a line written to a followed firewall log → visible in the Parquet store.

Issue 4's goal: produce → visible in the store ≤ 2 s p95 in live mode. Here the
clock starts earlier, when the line is written to the log file, so the figure
includes the shipper's follow poll as well (what an operator experiences).

The whole live path runs as it does in production, with default settings: a
real broker, `fireplot worker`, and `fireplot ship --follow` on a file that
gets background traffic plus a probe line every ~0.5 s (each probe has its own
source address). The reference, in the same run on the same broker, is a plain
kafka-python consumer on the events topic: the time until the probe is
readable from Kafka at all. Ours minus the reference is what the worker's
batching, durable flush and manifest cost.

    python -m benchmarks.bench_latency [--probes 60] [--background-lines-per-s 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
from kafka import KafkaConsumer

from benchmarks.harness import REPO, broker, free_port
from pipeline import wire
from pipeline.store import Store
from producers.demo import Packet, format_line

PROBE_NET = ipaddress.ip_network("198.18.0.0/16")  # benchmarking range (RFC 2544): never noise


def probe_ip(i: int) -> str:
    return str(PROBE_NET.network_address + 1 + i)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class KafkaWatcher(threading.Thread):
    """The reference: when does each probe become readable from the events topic?"""

    def __init__(self, bootstrap: str, topic: str, seen: dict[str, float]) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=f"lat-{uuid.uuid4()}"
        )
        self.seen = seen
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for msgs in self.consumer.poll(timeout_ms=50).values():
                now = time.monotonic()
                for m in msgs:
                    for ip in wire.decode(m.value).column("src_ip").to_pylist():
                        if ip is not None and ipaddress.ip_address(ip) in PROBE_NET:
                            self.seen.setdefault(ip, now)
        self.consumer.close()


def store_probes(store: Store, pending: set[str]) -> set[str]:
    """Which pending probes the store holds (today's partition, one column, filtered)."""
    flt = (ds.field("date") >= dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)) & ds.field(
        "src_ip"
    ).isin(sorted(pending))
    empty = pa.table({"src_ip": pa.array([], pa.string())})
    table = store.scan(lambda d: d.to_table(columns=["src_ip"], filter=flt), empty)
    return set(table.column("src_ip").to_pylist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probes", type=int, default=60)
    ap.add_argument("--background-lines-per-s", type=int, default=2000)
    args = ap.parse_args()
    fireplot = [sys.executable, "-m", "fireplot", "--log-level", "warning"]
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        root = Path(tmp)
        topic = f"bench-lat-{uuid.uuid4().hex[:8]}"
        web_port = free_port()
        cfg = root / "fireplot.toml"
        cfg.write_text(
            f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{topic}"\nvar_dir = "{root}"\n'
            f'[shipper]\ndead_letter_dir = "{root / "dead"}"\nregistry_path = "{root / "reg.json"}"\n'
            f'spool_dir = "{root / "spool"}"\n'
            f'[worker]\nstore_dir = "{root / "store"}"\napp_id = "{topic}"\nweb_port = {web_port}\n'
        )
        log = root / "fw.log"
        log.write_text("")
        procs = [
            subprocess.Popen(
                [*fireplot, "-c", str(cfg), "worker"],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [*fireplot, "-c", str(cfg), "ship", "--follow", str(log), "--site", "lat"],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        store = Store(root / "store")
        kafka_seen: dict[str, float] = {}
        watcher: KafkaWatcher | None = None
        try:
            # Warm-up: wait until a first line has gone all the way through, so
            # group joins and topic creation are not counted as latency.
            with log.open("a") as fh:
                now = dt.datetime.now(dt.UTC)
                fh.write(format_line(Packet(now, "203.0.113.9", "192.0.2.1", "TCP", 40000, 22), 1.0) + "\n")
            deadline = time.monotonic() + 120
            while store.count() == 0:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit("the live path did not start (worker or shipper exited)")
                time.sleep(0.2)
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/ready", timeout=5) as r:
                r.read()
            watcher = KafkaWatcher(bootstrap, topic, kafka_seen)
            watcher.start()

            written: dict[str, float] = {}
            store_seen: dict[str, float] = {}
            stop = threading.Event()

            def poll_store() -> None:
                while not stop.is_set():
                    pending = set(written) - set(store_seen)
                    if pending:
                        now = time.monotonic()
                        for ip in store_probes(store, pending):
                            store_seen[ip] = now
                    time.sleep(0.05)

            poller = threading.Thread(target=poll_store, daemon=True)
            poller.start()
            tick_s = 0.1
            per_tick = max(1, args.background_lines_per_s // 10)
            next_probe = time.monotonic() + 0.5
            i = 0
            with log.open("a") as fh:
                while i < args.probes:
                    now = dt.datetime.now(dt.UTC)
                    lines = [
                        format_line(
                            Packet(
                                now,
                                f"203.0.{rng.randint(0, 113)}.{rng.randint(1, 254)}",
                                "192.0.2.1",
                                rng.choice(("TCP", "UDP")),
                                rng.randint(1024, 65535),
                                rng.choice((22, 23, 80, 443, 445, 3389, 8080)),
                            ),
                            1.0,
                        )
                        for _ in range(per_tick)
                    ]
                    probe: str | None = None
                    if time.monotonic() >= next_probe:
                        probe = probe_ip(i)
                        lines.append(format_line(Packet(now, probe, "192.0.2.1", "TCP", 40000, 443), 1.0))
                        next_probe = time.monotonic() + rng.uniform(0.3, 0.7)
                        i += 1
                    fh.write("".join(line + "\n" for line in lines))
                    fh.flush()
                    if probe is not None:
                        written[probe] = time.monotonic()
                    time.sleep(tick_s)
            deadline = time.monotonic() + 60
            while len(store_seen) < len(written) and time.monotonic() < deadline:
                time.sleep(0.1)
            stop.set()
            poller.join()
        finally:
            if watcher is not None:
                watcher.stop.set()
                watcher.join(timeout=10)
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)

        missing = set(written) - set(store_seen)
        if missing:
            raise SystemExit(f"{len(missing)} probes never reached the store")
        ours = [store_seen[ip] - written[ip] for ip in written]
        ref = [kafka_seen[ip] - written[ip] for ip in written if ip in kafka_seen]
        print(
            f"\nlive latency, log line written -> visible, {len(ours)} probes "
            f"amid {args.background_lines_per_s:,} background lines/s (default settings)"
        )
        for name, values in (("store (fireplot)", ours), ("kafka (reference)", ref)):
            print(
                f"  {name:<18} p50 {statistics.median(values):6.3f} s   p95 {percentile(values, 0.95):6.3f} s"
                f"   max {max(values):6.3f} s"
            )
        print(
            f"  ratio p95          {percentile(ours, 0.95) / percentile(ref, 0.95):6.2f}x  "
            f"(store / kafka; goal: store p95 <= 2 s)"
        )


if __name__ == "__main__":
    main()
