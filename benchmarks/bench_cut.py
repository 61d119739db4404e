"""Cutting a log file into Arrow line batches: the native cutter next to the numpy path.

    python -m benchmarks.bench_cut [--lines 1000000] [--repeat 5]

Both read the same demo netfilter log with `producers.lines.read_batches`, as
the shipper does (4 MiB reads, 16k-line batches). Ours cuts with
``netfilter_native.cut_lines`` (one UTF-8 check and one copy per read); the
reference is the same reader with the cutter switched off, i.e. the numpy
newline search, pyarrow's UTF-8 validation, trim and cast that every read
went through before, and that still reads invalid UTF-8 and over-long lines.
Both must yield identical lines and offsets, or the numbers mean nothing; the
script checks. Reports lines per second of CPU time (best and median of the
repetitions): on a shared machine wall time moves with the neighbours' load,
CPU time much less.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import pyarrow as pa

from pipeline.parsers import netfilter_native
from producers.demo import Demo, write_lines
from producers.lines import read_batches

BATCH_LINES = 16384


def cut_all(path: Path) -> tuple[int, list[pa.Array]]:
    """Lines read, and the batches' columns (kept only to compare the two readers)."""
    columns: list[pa.Array] = []
    n = 0
    with path.open("rb") as fh:
        for batch in read_batches(fh, 0, max_lines=BATCH_LINES):
            n += len(batch)
            columns += [batch.lines, batch.offsets]
    return n, columns


def cpu_seconds(path: Path, native: bool) -> tuple[float, int]:
    # A cutter that declines every read sends to_batch down its own (numpy) path.
    with mock.patch.object(netfilter_native, "cut_lines", netfilter_native.cut_lines if native else _decline):
        t = time.process_time()
        n, _ = cut_all(path)
        return time.process_time() - t, n


def _decline(*_: object) -> None:
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not netfilter_native.available():
        sys.exit(f"the native library is not built: {netfilter_native.why_unavailable()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fw.log"
        end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
        write_lines(Demo(5).history(end, hours=24, per_hour=args.lines / 24 * 0.98)[: args.lines], path)
        _, native_columns = cut_all(path)
        with mock.patch.object(netfilter_native, "cut_lines", _decline):
            _, numpy_columns = cut_all(path)
        if len(native_columns) != len(numpy_columns) or not all(
            a.equals(b) for a, b in zip(native_columns, numpy_columns, strict=True)
        ):
            sys.exit("the native cutter and the numpy path disagree: no numbers")
        del native_columns, numpy_columns
        # Interleaved repetitions: drift on a shared machine hits both alike.
        runs: dict[bool, list[float]] = {True: [], False: []}
        n = 0
        for _ in range(args.repeat):
            for native in (True, False):
                seconds, n = cpu_seconds(path, native)
                runs[native].append(seconds)
        size_mb = path.stat().st_size / 1e6
    for label, pick in (("best", min), ("median", statistics.median)):
        ours, ref = pick(runs[True]), pick(runs[False])
        print(f"\ncut {n:,} demo netfilter lines ({size_mb:.0f} MB) into Arrow batches, CPU time, {label}")
        print(f"  native cutter  {n / ours:>14,.0f} lines/s  ({ours * 1e6 / n:.3f} us/line)")
        print(f"  numpy path     {n / ref:>14,.0f} lines/s  ({ref * 1e6 / n:.3f} us/line)")
        print(f"  ratio          {ref / ours:>14.2f}x")


if __name__ == "__main__":
    main()
