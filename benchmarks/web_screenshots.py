"""Screenshots of the demo day's page, for a person to look at: three window sizes, drawer closed
and open (the scans list, and a clicked dot's source panel).

    python -m benchmarks.web_screenshots [--out DIR]

Not a test and not a benchmark: the demo's day (``producers.demo``, as ``fireplot demo`` writes it)
is parsed into a fresh store, the scan detector is run over it (``fireplot detect``), a real
``fireplot`` web server serves it and headless Chromium saves a PNG per view. Each PNG's path is
printed with the plot's share of the window, for the image viewer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.parsers import ParseContext, netfilter
from pipeline.store import OffsetRange, Store
from producers.demo import Demo, format_line
from tests.support import browser

SIZES = ((1280, 800), (1600, 1200), (1920, 1080))
# After noon, so that the demo plants its scans on this day (Demo.last_day).
END = dt.datetime(2026, 12, 7, 23, 0, tzinfo=dt.UTC)

SHARE = """
const m = Bokeh.documents[0].get_model_by_name(arguments[0]);
const r = Bokeh.index.find_one(m).el.getBoundingClientRect();
return [r.width / innerWidth, r.height / innerHeight];
"""


def demo_store(root: Path) -> dt.date:
    """The demo's last day parsed into a store at ``root``, its scans detected; that day."""
    packets, day = Demo(seed=1).last_day(END)
    lines = [format_line(p, p.ts.timestamp() % 10_000_000) for p in packets]
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    ctx = ParseContext(site="demo", source_id="demo:screenshots", reference_time=END)
    result = netfilter.parse(pa.array(lines), pa.array(offsets, pa.int64()), ctx)
    store = Store(root)
    store.write_flush(OffsetRange("fireplot.events", 0, 0, result.events.num_rows - 1), result.events)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREPLOT_")}
    subprocess.run(
        [sys.executable, "-m", "fireplot", "detect", "--store", str(root),
         "--since", f"{day}T00:00:00+00:00", "--until", f"{day + dt.timedelta(days=1)}T00:00:00+00:00"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return day


def shoot(driver: Any, path: Path) -> str:
    time.sleep(0.8)  # WebGL finishes its frame, the layout settles
    driver.save_screenshot(str(path))
    w, h = driver.execute_script(SHARE, "day-plot")
    return f"{path}  (plot {w:.0%} of the width, {h:.0%} of the height)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("var/screenshots"))
    args = parser.parse_args(argv)
    reason = browser.missing()
    if reason:
        print(f"skipped: {reason}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fireplot-shots-") as tmp:
        root = Path(tmp) / "store"
        day = demo_store(root)
        with browser.web_server(root, Path(tmp) / "server.log") as url:
            for width, height in SIZES:
                with browser.chromium(width, height) as driver:
                    driver.set_window_size(width, height)
                    browser.open_page(driver, f"{url}?date={day}")
                    name = f"{width}x{height}"
                    print(shoot(driver, args.out / f"{name}-closed.png"))
                    browser.click(driver, "scans-button")
                    browser.wait_for("the scans", lambda: browser.model_data(driver, "top-talkers"), 30)
                    print(shoot(driver, args.out / f"{name}-scans.png"))
                    ip = driver.execute_script(
                        "const d = Bokeh.documents[0].get_model_by_name('events').data;"
                        "return d.src_ip[d.port.indexOf('22')]"
                    )
                    browser.tap_dot(driver, ip, "22")
                    browser.panel_for(driver, ip)
                    print(shoot(driver, args.out / f"{name}-source.png"))
            with browser.chromium(1280, 800) as driver:
                driver.set_window_size(1280, 800)
                browser.open_page(driver, f"{url}?date={day - dt.timedelta(days=3)}")
                print(shoot(driver, args.out / "1280x800-empty-day.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
