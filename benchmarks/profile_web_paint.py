"""Where a day page's time goes, from the address (or the "next" click) to its dots on screen.

    python -m benchmarks.profile_web_paint [--events 0,30000,150000] [--repeats 2]

Not a benchmark with a reference (that is ``bench_web_paint``): a split of one page load into
its phases, so that work goes where the time is. The same store as ``bench_web_paint``. In the
browser, a script installed before the page's own (CDP ``addScriptToEvaluateOnNewDocument``)
wraps the WebSocket to time every message of the Bokeh protocol (type, bytes) and watches Bokeh
build the document, its views and the dots' paint; the server process gets a ``sitecustomize``
that logs how long building a session, serialising the document and reading a view take.

Phases of **open** (ms from navigation start):

* ``html``: the page's HTML arrived (the server built the session: ``build_document``);
* ``scripts``: BokehJS loaded and the DOM parsed;
* ``ws open``: the websocket is connected; ``doc msg``: the document's JSON arrived
  (``PULL-DOC-REPLY``: the server serialised it, it crossed the wire);
* ``models``: BokehJS built the document's models; ``views``: the plot's view exists;
* ``dots msg``: the message holding the view's dots arrived (``PATCH-DOC`` with buffers);
* ``dots in``: the plot's source holds them (unpacked); ``painted``: the plot repainted with them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_web_paint import CLICK_NEXT, FIRST, VISIBLE, day_of_events
from pipeline.store import OffsetRange, Store
from tests.support import browser

# Installed before the page's scripts: timestamps (performance.now()) of the protocol's messages
# and of Bokeh's progress, in window.__fp_marks.
PROBE = r"""
window.__fp_marks = [];
window.__fp_msgs = [];
const mark = (name) => window.__fp_marks.push([name, performance.now()]);
const Native = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new Native(...args);
  ws.addEventListener("open", () => mark("ws open"));
  ws.addEventListener("message", (e) => {
    const t = performance.now();
    let kind = "buffer", size = 0;
    if (typeof e.data === "string") {
      size = e.data.length;
      // What a small patch changes (a change after the dots repaints the plot again).
      if (size > 200 && size < 2000) window.__fp_msgs.push(["content", t, e.data.slice(0, 400)]);
      const m = /"msgtype"\s*:\s*"([A-Z-]+)"/.exec(e.data.slice(0, 300));
      kind = m ? m[1] : "text";
    } else {
      size = e.data.byteLength ?? e.data.size ?? 0;
    }
    window.__fp_msgs.push([kind, t, size]);
  });
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    if (typeof data === "string") {
      const m = /"msgtype"\s*:\s*"([A-Z-]+)"/.exec(data.slice(0, 300));
      if (m) window.__fp_msgs.push([">" + m[1], performance.now(), data.length]);
    }
    return send(data);
  };
  return ws;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
document.addEventListener("DOMContentLoaded", () => mark("scripts"));
let seen = {};
function poll() {
  const d = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
  if (d && !seen.models) { seen.models = 1; mark("models"); }
  const plot = d && d.get_model_by_name("day-plot");
  const pv = plot && Bokeh.index.find_one(plot);
  if (pv && !seen.views) {
    seen.views = 1; mark("views");
    pv.repainted.connect(() => mark("repainted"));
  }
  if (!seen.views) setTimeout(poll, 1);
}
poll();
"""

# After a page is up: the marks, the messages and the navigation timing.
COLLECT = """
const nav = performance.getEntriesByType("navigation")[0];
return {marks: window.__fp_marks, msgs: window.__fp_msgs,
        html: nav ? nav.responseEnd : null, request: nav ? nav.requestStart : null,
        models: (Bokeh.documents[0]._all_models || new Map()).size};
"""

# When the dots are in, painted and presented: as bench_web_paint measures them.
DOTS_IN = VISIBLE

# Logs (to the server's log) how long the server's steps take.
SITECUSTOMIZE = r"""
import time, logging, functools
log = logging.getLogger("fireplot.profile")

def timed(owner, name, label):
    fn = getattr(owner, name)
    @functools.wraps(fn)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            log.warning("PROFILE %s %.1f", label, (time.perf_counter() - t) * 1000)
    setattr(owner, name, wrapper)

import consumers.web.main as main
timed(main, "build_document", "build_document")
import consumers.web.feeds.day as day
timed(day.DayFeed, "load", "feed.load")
import consumers.web.transfer as transfer
timed(transfer, "pack_columns", "pack_columns")
import bokeh.document.document as document
timed(document.Document, "to_json", "doc.to_json")
import bokeh.protocol.messages.patch_doc as patch_doc
timed(patch_doc.patch_doc, "create", "patch_doc.create")
import bokeh.protocol.message as message
timed(message.Message, "send", "message.send")
import consumers.web.page as page
timed(page.DayPage, "show", "page.show")
timed(page.DayPage, "_apply", "page._apply")
"""


def phases(info: dict[str, Any], dots: list[float], t0: float) -> dict[str, float]:
    """Named times (ms from t0) of one load, from the probe's marks and messages."""
    out: dict[str, float] = {}
    for name, t in info["marks"]:
        if t >= t0 and name not in out and name != "repainted":
            out[name] = t - t0
    big = [(kind, t, size) for kind, t, size in info["msgs"] if t >= t0]
    for kind, t, size in big:
        if kind == "PULL-DOC-REPLY" and "doc msg" not in out:
            out["doc msg"] = t - t0
            out["doc KB"] = size / 1024
    # The dots' message: the last binary buffer before the dots were in.
    buffers = [(t, size) for kind, t, size in big if kind == "buffer" and t <= dots[0]]
    if buffers:
        out["dots msg"] = buffers[-1][0] - t0
        out["dots KB"] = sum(s for t, s in buffers) / 1024
    patches = [(t, size) for kind, t, size in big if kind == "PATCH-DOC" and t <= dots[0]]
    out["patches"] = len(patches)
    out["patch KB"] = sum(s for _, s in patches) / 1024
    out["dots in"] = dots[0] - t0
    out["painted"] = dots[1] - t0
    out["visible"] = dots[2] - t0
    return out


def server_times(log: Path, since: int) -> tuple[dict[str, list[float]], int]:
    text = log.read_text(errors="replace")
    out: dict[str, list[float]] = {}
    for m in re.finditer(r"PROFILE (\S+) ([\d.]+)", text[since:]):
        out.setdefault(m.group(1), []).append(float(m.group(2)))
    return out, len(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", default="0,30000,150000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", default="1600x1000")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.events.split(",")]
    width, height = (int(v) for v in args.size.split("x"))
    reason = browser.missing()
    if reason:
        print(f"skipped: {reason}")
        return 0
    days = {n: FIRST + dt.timedelta(days=2 * k + 1) for k, n in enumerate(sizes)}
    rows: dict[str, list[dict[str, float]]] = {}
    server: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="fireplot-profile-web-") as tmp:
        store = Store(Path(tmp) / "store")
        offset = 0
        for n, day in days.items():
            if n:
                store.write_flush(
                    OffsetRange("fireplot.events", 0, offset, offset + n - 1), day_of_events(day, n)
                )
                offset += n
        hook = Path(tmp) / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
        repo = str(Path(__file__).resolve().parents[1])
        env = {"FIREPLOT_WEB__MAX_POINTS": str(max(*sizes, 150_000)), "PYTHONPATH": f"{hook}:{repo}"}
        log = Path(tmp) / "server.log"
        with browser.web_server(store.root, log, env) as url, browser.chromium(width, height) as driver:
            driver.set_script_timeout(120)
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE})
            driver.get(f"{url}?date={days[sizes[0]]}")  # warm
            driver.execute_async_script(DOTS_IN, sizes[0])
            _, pos = server_times(log, 0)
            for _ in range(args.repeats):
                for n, day in days.items():
                    driver.get(f"{url}?date={day}")
                    dots = driver.execute_async_script(DOTS_IN, n)
                    info = driver.execute_script(COLLECT)
                    row = phases(info, dots, 0.0)
                    row["html"] = info["html"]
                    row["models n"] = info["models"]
                    rows.setdefault(f"open {n}", []).append(row)
                    times, pos = server_times(log, pos)
                    server.setdefault(f"open {n}", {}).update({k: v for k, v in times.items()})
                    # "next" to this day from the day before it (empty or not, as it comes)
                    before = day - dt.timedelta(days=1)
                    driver.get(f"{url}?date={before}")
                    driver.execute_async_script(DOTS_IN, 0)
                    _, pos = server_times(log, pos)
                    clicked = float(driver.execute_script(CLICK_NEXT))
                    dots = driver.execute_async_script(DOTS_IN, n)
                    info = driver.execute_script(COLLECT)
                    rows.setdefault(f"next {n}", []).append(phases(info, dots, clicked))
                    times, pos = server_times(log, pos)
                    server.setdefault(f"next {n}", {}).update({k: v for k, v in times.items()})
    keys = [
        "html",
        "scripts",
        "ws open",
        "doc msg",
        "models",
        "views",
        "dots msg",
        "dots in",
        "painted",
        "visible",
    ]
    extra = ["doc KB", "patches", "patch KB", "dots KB", "models n"]
    for name, runs in rows.items():
        print(
            f"\n{name} (median of {len(runs)}; ms from "
            f"{'navigation' if name.startswith('open') else 'the click'})"
        )
        for k in keys + extra:
            vals = [r[k] for r in runs if k in r and r[k] is not None]
            if vals:
                print(f"  {k:<9} {statistics.median(vals):>9.1f}   ({', '.join(f'{v:.0f}' for v in vals)})")
        print(
            "  server (last run): " + json.dumps({k: [round(x) for x in v] for k, v in server[name].items()})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
