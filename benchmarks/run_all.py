"""Run every benchmark, each printing fireplot against its reference side by side.

python benchmarks/run_all.py            # the sizes quoted in README's performance table
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = [
    ["-m", "benchmarks.bench_parse"],
    ["-m", "benchmarks.bench_parse_formats"],
    ["-m", "benchmarks.bench_cut"],
    ["-m", "benchmarks.bench_ship"],
    ["-m", "benchmarks.bench_ship_secure", "--lines", "300000"],
    ["-m", "benchmarks.bench_sink", "--events", "1000000"],
    ["-m", "benchmarks.bench_raw", "--lines", "200000"],
    ["-m", "benchmarks.bench_mirror", "--events", "1000000"],
    ["-m", "benchmarks.bench_replay", "--events", "1000000"],
    ["-m", "benchmarks.bench_backfill", "--lines", "500000"],
    ["-m", "benchmarks.bench_latency", "--probes", "60"],
    ["-m", "benchmarks.bench_health", "--sites", "20", "--events", "1000000"],
    ["-m", "benchmarks.bench_render"],
    ["-m", "benchmarks.bench_enrich"],
    ["-m", "benchmarks.bench_geo"],
    ["-m", "benchmarks.bench_top"],
    ["benchmarks/eval_detect.py"],
    ["-m", "benchmarks.bench_detect_latency"],
    ["-m", "benchmarks.bench_web_paint", "--events", "150000"],
    ["-m", "benchmarks.bench_web_view"],
    ["-m", "benchmarks.bench_archive"],
]


def main() -> int:
    failed = 0
    for args in RUNS:
        print(f"\n=== python {' '.join(args)}", flush=True)
        failed += subprocess.run([sys.executable, *args], cwd=REPO, check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
