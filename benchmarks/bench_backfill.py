"""Backfill end to end (file → Kafka → Parquet store) against the shipper alone publishing the same file.

The issue's goal: a backfill, from reading the file to every event durable in
the store, within 2x the time `fireplot ship` alone needs to publish it. Both
are whole processes on the same broker in the same run; the worker runs
while the backfill ships, as it would in production.

    python -m benchmarks.bench_backfill [--lines 10000000]   # the issue's size
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.dataset as ds

from benchmarks.harness import broker, free_port
from producers.demo import Demo, write_lines

BASE_DAY_LINES = 500_000


def _config(root: Path, bootstrap: str, name: str) -> Path:
    cfg = root / f"{name}.toml"
    topic = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    cfg.write_text(
        f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{topic}"\nvar_dir = "{root / name}"\n'
        f'[shipper]\ndead_letter_dir = "{root / name / "dead"}"\n'
        f'registry_path = "{root / name / "reg.json"}"\n'
        f'spool_dir = "{root / name / "spool"}"\ndrop_late_tcp = false\n'
        f'[worker]\nstore_dir = "{root / name / "store"}"\napp_id = "{topic}"\nweb_port = {free_port()}\n'
    )
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    fireplot = [sys.executable, "-m", "fireplot", "--log-level", "warning"]
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        root = Path(tmp)
        log = root / "fw.log"
        end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
        # Years of logs are many similar days: one generated day, written again
        # a day earlier each time, until the file has the lines asked for.
        day = Demo(9).history(end, hours=24, per_hour=min(args.lines, BASE_DAY_LINES) / 24 * 0.98)
        n, k = 0, 0
        while n < args.lines:
            shift = dt.timedelta(days=k)
            take = day[: args.lines - n]
            n += write_lines([dataclasses.replace(p, ts=p.ts - shift) for p in take], log, append=k > 0)
            k += 1

        ship_cfg = _config(root, bootstrap, "ship")
        t = time.perf_counter()
        subprocess.run(
            [*fireplot, "-c", str(ship_cfg), "ship", str(log), "--site", "b"], check=True, capture_output=True
        )
        ship_s = time.perf_counter() - t

        e2e_cfg = _config(root, bootstrap, "e2e")
        t = time.perf_counter()
        worker = subprocess.Popen(
            [*fireplot, "-c", str(e2e_cfg), "worker"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        subprocess.run(
            [*fireplot, "-c", str(e2e_cfg), "backfill", str(log), "--site", "b"],
            check=True,
            capture_output=True,
        )
        events = root / "e2e" / "store" / "events"
        while True:
            have = (
                ds.dataset(events, format="parquet", ignore_prefixes=[".", "_"]).count_rows()
                if events.exists()
                else 0
            )
            if have >= n:
                break
            if worker.poll() is not None:
                raise SystemExit(f"worker exited with {worker.returncode}")
            time.sleep(0.1)
        e2e_s = time.perf_counter() - t
        worker.terminate()
        worker.wait()
        print(
            f"\nbackfill end to end vs shipper alone, {n:,} netfilter lines "
            f"({log.stat().st_size / 1e6:.0f} MB)"
        )
        print(f"  shipper alone (file -> Kafka)        {ship_s:8.2f} s  {n / ship_s:>12,.0f} lines/s")
        print(f"  backfill (file -> Kafka -> store)    {e2e_s:8.2f} s  {n / e2e_s:>12,.0f} lines/s")
        print(
            f"  ratio                                {e2e_s / ship_s:8.2f}x the shipper's time (goal <= 2x)"
        )


if __name__ == "__main__":
    main()
