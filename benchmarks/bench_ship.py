"""File → Kafka: `fireplot ship` against `kcat -P` shipping the same file raw to the same broker.

kcat (librdkafka) sending each line as a raw message is the practical upper
bound for moving a log file into Kafka; fireplot additionally parses,
filters and encodes every line. Both runs are whole processes, start-up
included, on the same broker in the same run.

    python benchmarks/bench_ship.py [--lines 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.harness import best_of, broker, report
from pipeline import wire
from pipeline.broker import ensure_topics
from producers.demo import Demo, write_lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if not kcat:
        sys.exit("kcat not found (Debian: apt-get install kcat)")
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        log = Path(tmp) / "fw.log"
        end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
        packets = Demo(5).history(end, hours=24, per_hour=args.lines / 24 * 0.98)[: args.lines]
        write_lines(packets, log)
        n = len(packets)
        cfg = Path(tmp) / "fireplot.toml"

        def ours() -> None:
            topic = f"bench-ship-{uuid.uuid4().hex[:8]}"
            ensure_topics(bootstrap, {topic: 4}, wire.TOPIC_CONFIGS)
            cfg.write_text(
                f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{topic}"\n'
                f'[shipper]\ndead_letter_dir = "{tmp}/dead"\n'
                # A fresh registry per run: with a shared one, a repeat would resume at the end.
                f'registry_path = "{tmp}/{topic}/registry.json"\nspool_dir = "{tmp}/{topic}/spool"\n'
            )
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "fireplot",
                    "-c",
                    str(cfg),
                    "--log-level",
                    "warning",
                    "ship",
                    str(log),
                    "--site",
                    "bench",
                ],
                check=True,
                capture_output=True,
            )

        def reference() -> None:
            topic = f"bench-kcat-{uuid.uuid4().hex[:8]}"
            ensure_topics(bootstrap, {topic: 4}, wire.TOPIC_CONFIGS)
            subprocess.run(
                [
                    kcat,
                    "-P",
                    "-b",
                    bootstrap,
                    "-t",
                    topic,
                    "-l",
                    "-z",
                    "zstd",
                    "-X",
                    "linger.ms=20",
                    "-X",
                    "acks=all",
                    "-X",
                    "enable.idempotence=true",
                    str(log),
                ],
                check=True,
                capture_output=True,
            )

        ours_s = best_of(args.repeats, ours)
        ref_s = best_of(args.repeats, reference)
        report(
            f"file -> Kafka, {n:,} netfilter lines ({log.stat().st_size / 1e6:.0f} MB), whole process",
            "lines",
            n,
            ours_s,
            "kcat -P",
            ref_s,
        )


if __name__ == "__main__":
    main()
