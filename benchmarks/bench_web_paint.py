"""Time to first paint of the web UI in headless Chromium: a busy day against an empty one.

    python -m benchmarks.bench_web_paint [--events 150000] [--repeats 3]

One web server process reads a store holding one day of ``--events`` events
(at most [web] max_points, so every one is drawn as a dot) and one empty day.
For each, a fresh page load is timed from navigation start until the plot's
source holds the day's events and two animation frames have passed (the
frame that draws them has been painted), read from ``performance.now()`` in
the page. The empty day is the reference: the page's own fixed cost (Bokeh
scripts, the websocket session, layout). Software WebGL (SwiftShader) on a
shared 2-core machine: the ratio is the number to compare between runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from consumers import style
from pipeline.event import SCHEMA_VERSION, conform
from pipeline.store import OffsetRange, Store
from tests.support import browser

BUSY = dt.date(2026, 11, 2)
EMPTY = dt.date(2026, 11, 3)

# Resolves with performance.now() when the plot's source first holds `expected`
# rows (the data arrived) and after two frames have been drawn since (painted).
PROBE = """
const [expected, done] = [arguments[0], arguments[arguments.length - 1]];
function check() {
  const d = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
  const s = d && d.get_model_by_name("summary");
  const src = d && d.get_model_by_name("events");
  if (s && s.text.includes(" events") && src.get_length() === expected) {
    const arrived = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => done([arrived, performance.now()])));
  } else {
    setTimeout(check, 5);
  }
}
check();
"""


def day_of_events(day: dt.date, n: int) -> pa.Table:
    """A day shaped like a real one: most packets on well-known ports, the rest anywhere."""
    rng = np.random.default_rng(7)
    start_us = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1_000_000)
    ts = np.sort(rng.integers(start_us, start_us + 86_400_000_000, n))
    known = np.array(style.PORT_TICKS, dtype=np.int32)
    port = np.where(rng.random(n) < 0.6, rng.choice(known, n), rng.integers(1, 65536, n)).astype(np.int32)
    v6 = rng.random(n) < 0.2
    tcp = rng.random(n) < 0.7
    src = np.where(
        v6,
        np.char.add("2001:db8::", rng.integers(1, 5000, n).astype(str)),
        np.char.add("198.51.100.", rng.integers(1, 255, n).astype(str)),
    )
    table = pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "site": pa.array(np.full(n, "alpha")),
            "host": pa.array(np.full(n, "fw1")),
            "src_ip": pa.array(src),
            "dst_ip": pa.array(np.where(v6, "2001:db8:ffff::1", "192.0.2.1")),
            "src_port": pa.array(rng.integers(1024, 65536, n).astype(np.int32)),
            "dst_port": pa.array(port),
            "proto": pa.array(np.where(tcp, "TCP", "UDP")),
            "ip_version": pa.array(np.where(v6, 6, 4).astype(np.int8)),
            "action": pa.array(np.full(n, "drop")),
            "in_if": pa.array(np.full(n, "eth0")),
            "out_if": pa.nulls(n, pa.string()),
            "tcp_flags": pa.array(np.where(tcp, "SYN", None)),
            "prefix": pa.array(np.full(n, "fw-drop")),
            "count": pa.array(np.ones(n, dtype=np.int32)),
            "source_id": pa.array(np.full(n, "alpha:log")),
            "source_offset": pa.array(np.arange(n, dtype=np.int64) * 100),
            "schema_version": pa.array(np.full(n, SCHEMA_VERSION, dtype=np.int8)),
        }
    )
    return conform(table)


def first_paint_ms(driver: Any, url: str, expected: int) -> tuple[float, float]:
    """(data arrived, painted), in ms since navigation start."""
    driver.get(url)
    arrived, painted = driver.execute_async_script(PROBE, expected)
    return float(arrived), float(painted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    reason = browser.missing()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-web-") as tmp:
        store = Store(Path(tmp) / "store")
        store.write_flush(
            OffsetRange("fireplot.events", 0, 0, args.events - 1), day_of_events(BUSY, args.events)
        )
        env = {"FIREPLOT_WEB__MAX_POINTS": str(max(args.events, 150_000))}
        with (
            browser.web_server(store.root, Path(tmp) / "server.log", env) as url,
            browser.chromium() as driver,
        ):
            driver.set_script_timeout(120)
            busy, empty = [], []
            # Interleaved, so a burst of load on the shared machine hits both sides alike.
            for _ in range(args.repeats):
                empty.append(first_paint_ms(driver, f"{url}?date={EMPTY.isoformat()}", 0))
                busy.append(first_paint_ms(driver, f"{url}?date={BUSY.isoformat()}", args.events))
    ours, ref = min(p for _, p in busy), min(p for _, p in empty)

    def runs(times: list[tuple[float, float]]) -> str:
        return ", ".join(f"{a:.0f}/{p:.0f}" for a, p in times)

    print(f"\nweb UI first paint in headless Chromium (best of {args.repeats}, software WebGL)")
    print(f"  day of {args.events:,} events   {ours:>8.0f} ms   (data/painted: {runs(busy)})")
    print(f"  empty day (reference) {ref:>8.0f} ms   (data/painted: {runs(empty)})")
    print(f"  ratio                 {ours / ref:>8.2f}x  (busy / empty)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
