"""Dots visible after navigation in headless Chromium, busy days against an empty one, and hover cost.

    python -m benchmarks.bench_web_paint [--events 30000,150000] [--repeats 3]

A real ``fireplot`` web server process reads a real Parquet store holding, for each size in
``--events``, an empty day followed by a day of that many events (at most [web] max_points, so
every event is drawn as a dot). Two ways of getting to a day are timed:

* **open**: the browser loads the day's address (a link, a reload): from navigation start;
* **next day**: on the page of the day before, a click on "next ▶": from the click.

Both end when the dots are visible: the plot's source holds the day's events, the plot view
has repainted since (BokehJS's ``repainted`` signal, after its WebGL renderers drew the new
data) and one animation frame has passed (the frame holding them was presented). The empty day,
reached the same way, is the reference: the page's own fixed cost (Bokeh's scripts, the
websocket session, layout, a paint). Headless Chromium's WebGL is software (SwiftShader), so the
page draws its plot on canvas 2D there (``consumers/web/js/plot_backend.js``), on a shared 2-core
machine: absolute times follow the machine's load, the ratio is the number to compare between
runs. "next" watches the source and the paints from the click on (a page that updated before the
driver's next script ran is still seen to have painted).

Hover: on the biggest day, the real mouse is moved over the densest part of the plot; each
move's time from the browser's pointer event to the tooltip holding its new lines (the page's
hover callback finding the dots under the cursor) is read in the page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
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

FIRST = dt.date(2026, 11, 2)

# Resolves with [arrived, painted, visible] (performance.now()) once the plot's source holds
# `expected` rows and the summary names them (`arrived`: when a poll first saw it) and the plot has
# been painted since the source last changed (`painted`: the end of that paint, or `arrived` when the
# summary came after it), and one animation frame later (`visible`: the frame holding them was
# presented). The paint waited for is the one BokehJS made for the data: asking for another would
# count it too (at 150k dots in software WebGL one paint takes seconds).
VISIBLE = """
const [expected, done] = [arguments[0], arguments[arguments.length - 1]];
const label = expected.toLocaleString("en-US") + " events";
let arrived = null, hooked = null, finished = false, changed = 0, painted = null;
const holds = (d) => d.get_model_by_name("summary").text.startsWith(label)
  && d.get_model_by_name("events").get_length() === expected;
function finish(d) {
  if (finished || painted == null || painted < changed || !holds(d)) return;
  finished = true;
  const at = Math.max(painted, arrived ?? painted);
  requestAnimationFrame(() => done([arrived ?? at, at, performance.now()]));
}
function check() {
  const d = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
  const plot = d && d.get_model_by_name("day-plot");
  const pv = plot && Bokeh.index.find_one(plot);
  if (pv != null && hooked !== pv) {
    hooked = pv;
    // A new document: its source's first rows came with it, painted at its first paint.
    // (Hooks of earlier waits stay connected, each finished with its own wait.) The same
    // document after a click (CLICK_NEXT): what its watch saw since the click, which may
    // already be everything when this script starts after the page's own tasks.
    const w = window.__fp_watch;
    const watched = w != null && w.pv === pv;
    changed = watched ? (w.changed ?? w.clicked) : performance.now();
    painted = watched ? w.painted : null;
    d.get_model_by_name("events").change.connect(() => { changed = performance.now(); });
    pv.repainted.connect(() => { painted = performance.now(); finish(d); });
  }
  if (pv != null && arrived == null && holds(d)) arrived = performance.now();
  if (pv != null) finish(d);
  if (!finished) setTimeout(check, 2);
}
check();
"""

# Watches the source and the plot's paints from the click on (read by VISIBLE), so that a page
# that updates before the next script of the driver runs is still seen to have painted.
CLICK_NEXT = """
const d = Bokeh.documents[0];
const button = Bokeh.index.find_one(d.get_model_by_name("next-day")).button_el;
const pv = Bokeh.index.find_one(d.get_model_by_name("day-plot"));
const w = window.__fp_watch = {pv, changed: null, painted: null, clicked: null};
const mine = () => window.__fp_watch === w;
d.get_model_by_name("events").change.connect(() => { if (mine()) w.changed = performance.now(); });
pv.repainted.connect(() => { if (mine()) w.painted = performance.now(); });
const t = performance.now();
w.clicked = t;
button.click();
return t;
"""

# The page's own tooltip element: time from each pointer move to its new lines.
HOVER_PROBE = """
const box = document.querySelector(".fireplot-tooltip");
window.__fp_hover = [];
let t0 = null;
window.addEventListener("pointermove", () => { t0 = performance.now(); }, {capture: true});
new MutationObserver(() => {
  if (t0 != null) { window.__fp_hover.push(performance.now() - t0); t0 = null; }
}).observe(box, {childList: true});
"""

# Where the dots are densest: the screen position of the median dot of the busiest port.
DENSE_SPOT = """
const d = Bokeh.documents[0];
const pv = Bokeh.index.find_one(d.get_model_by_name("day-plot"));
const src = d.get_model_by_name("events");
const y = src.data.y, ts = src.data.ts, counts = new Map();
for (let i = 0; i < y.length; i++) counts.set(y[i], (counts.get(y[i]) ?? 0) + 1);
const busiest = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
const r = pv.canvas_view.el.getBoundingClientRect();
const f = pv.frame.bbox;
return [r.left + (f.left + f.right) / 2, r.top + pv.frame.y_scale.compute(busiest), f.width];
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
            "source_id": pa.array(np.full(n, f"alpha:{day}")),
            "source_offset": pa.array(np.arange(n, dtype=np.int64) * 100),
            "schema_version": pa.array(np.full(n, SCHEMA_VERSION, dtype=np.int8)),
        }
    )
    return conform(table)


def open_ms(driver: Any, url: str, day: dt.date, expected: int) -> float:
    """Load the day's address; ms from navigation start until its dots are visible."""
    driver.get(f"{url}?date={day.isoformat()}")
    _, _, visible = driver.execute_async_script(VISIBLE, expected)
    return float(visible)


def next_day_ms(driver: Any, url: str, day: dt.date, expected: int, before: int) -> float:
    """On the page of the day before ``day`` (holding ``before`` events), click "next"; ms from
    the click until ``day``'s dots are visible."""
    open_ms(driver, url, day - dt.timedelta(days=1), before)
    clicked = float(driver.execute_script(CLICK_NEXT))
    _, _, visible = driver.execute_async_script(VISIBLE, expected)
    return float(visible) - clicked


def hover_ms(driver: Any, url: str, day: dt.date, expected: int, moves: int = 40) -> list[float]:
    """Per-move times of the tooltip over the densest spot of ``day``."""
    from selenium.webdriver.common.action_chains import ActionChains

    open_ms(driver, url, day, expected)
    x, y, width = driver.execute_script(DENSE_SPOT)
    browser.hover(driver, round(x), round(y))  # the page makes its tooltip element on the first hover
    driver.execute_script(HOVER_PROBE)
    for i in range(moves):
        actions = ActionChains(driver, duration=0)
        # Along the busy row, a few pixels a step: every move has dots under it.
        actions.w3c_actions.pointer_action.move_to_location(
            round(x - width / 4 + i * width / 2 / moves), round(y)
        )
        actions.perform()
    browser.wait_for(
        "the hover timings", lambda: driver.execute_script("return window.__fp_hover.length") >= moves // 2
    )
    times: list[float] = driver.execute_script("return window.__fp_hover")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", default="30000,150000", help="comma-separated day sizes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.events.split(",")]
    reason = browser.missing()
    if reason:
        print(f"skipped: {reason}")
        return 0
    # Day 2k is empty, day 2k+1 holds sizes[k] events.
    busy = {n: FIRST + dt.timedelta(days=2 * k + 1) for k, n in enumerate(sizes)}
    empty = FIRST + dt.timedelta(days=2 * len(sizes))  # preceded by the last busy day
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-web-") as tmp:
        store = Store(Path(tmp) / "store")
        offset = 0
        for n, day in busy.items():
            store.write_flush(
                OffsetRange("fireplot.events", 0, offset, offset + n - 1), day_of_events(day, n)
            )
            offset += n
        env = {"FIREPLOT_WEB__MAX_POINTS": str(max(*sizes, 150_000))}
        with (
            browser.web_server(store.root, Path(tmp) / "server.log", env) as url,
            browser.chromium(1600, 1000) as driver,
        ):
            driver.set_script_timeout(120)
            open_ms(driver, url, empty, 0)  # warm: the server's first session, the browser's cache
            # Interleaved, so a burst of load on the shared machine hits every side alike.
            for _ in range(args.repeats):
                results.setdefault("open empty", []).append(open_ms(driver, url, empty, 0))
                results.setdefault("next empty", []).append(next_day_ms(driver, url, empty, 0, sizes[-1]))
                for n, day in busy.items():
                    results.setdefault(f"open {n}", []).append(open_ms(driver, url, day, n))
                    results.setdefault(f"next {n}", []).append(next_day_ms(driver, url, day, n, 0))
            hover = hover_ms(driver, url, busy[sizes[-1]], sizes[-1])

    def line(name: str, ref: str | None) -> str:
        times = results[name]
        best = min(times)
        runs = ", ".join(f"{t:.0f}" for t in times)
        ratio = f"{best / min(results[ref]):6.2f}x" if ref else "   ref "
        return f"  {name:<14} {best:>7.0f} ms  {ratio}  (runs: {runs})"

    print(
        f"\ndots visible in headless Chromium (best of {args.repeats}, software WebGL so the plot on"
        " canvas, 1600x1000)"
    )
    print("  ratio: against the empty day reached the same way")
    for how in ("open", "next"):
        print(line(f"{how} empty", None))
        for n in sizes:
            print(line(f"{how} {n}", f"{how} empty"))
    print(
        f"\nhover over the densest spot of the {sizes[-1]:,}-event day ({len(hover)} moves): "
        f"median {statistics.median(hover):.1f} ms, worst {max(hover):.1f} ms "
        "(pointer event to tooltip lines)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
