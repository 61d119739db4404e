"""`fireplot up`: the README's first command brings the whole system up with demo data and down again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from pipeline.detect.scanstore import ScanStore
from pipeline.store import Store
from tests.support import browser
from tests.support.system import free_port

# What the page holds of the demo's scans: the scans table's kinds, the kinds outlined on the plot,
# the rows the table draws once its drawer is open.
JS_SCANS = """
const d = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
const s = d && d.get_model_by_name("scans");
if (!s) return null;
const outlined = ["vertical", "slow"].filter((k) => {
  const ix = d.get_model_by_name("scans:" + k).view.indices;
  return ix && (ix.count !== undefined ? ix.count : ix.length) > 0;
});
const table = Bokeh.index.find_one(d.get_model_by_name("scans-table"));
const rows = table && table.shadow_el ? table.shadow_el.querySelectorAll(".slick-row").length : 0;
return {kinds: Array.from(s.data.kind || []), outlined: outlined, rows: rows};
"""


def page_shows_the_scans(url: str) -> None:
    """In Chromium, the page lists the demo's scans in its table and outlines them on the plot."""
    from selenium.common.exceptions import TimeoutException

    with browser.chromium(1280, 800) as driver:
        # A demo day is tens of thousands of dots drawn by software WebGL on a shared machine.
        driver.set_script_timeout(120)
        driver.get(url)

        def listed() -> dict[str, Any] | None:
            try:
                found: dict[str, Any] | None = driver.execute_script(JS_SCANS)
            except TimeoutException:
                return None  # the page is still busy drawing: ask again
            ok = found and {"vertical", "slow"} <= set(found["kinds"]) and len(found["outlined"]) == 2
            return found if ok else None

        browser.wait_for("the demo's scans on the page", listed, timeout=90)
        browser.click(driver, "scans-button")
        rows = browser.wait_for("the scans table's rows", lambda: (listed() or {}).get("rows"), timeout=30)
        assert rows >= 2


def test_up_runs_everything_with_demo_data_prints_the_url_and_stops_cleanly(
    tmp_path: Path, kafka_jars: Path
) -> None:
    """The README's `make up` runs the whole system: archive, detection (the demo's scans are listed
    within a minute of the data arriving, with no other command), and the web page."""
    web_port = free_port()
    env = {
        **os.environ,
        "FIREPLOT_KAFKA__VAR_DIR": str(tmp_path / "var"),
        "FIREPLOT_KAFKA__LOCAL_PORT": str(free_port()),
        "FIREPLOT_KAFKA__LOCAL_CONTROLLER_PORT": str(free_port()),
        "FIREPLOT_WEB__PORT": str(web_port),
        "FIREPLOT_WORKER__WEB_PORT": str(free_port()),
        "FIREPLOT_WORKER__STORE_DIR": str(tmp_path / "store"),
        "FIREPLOT_SHIPPER__DEAD_LETTER_DIR": str(tmp_path / "dead"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "fireplot", "--plain-logs", "up"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 240
        assert proc.stdout is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith("fireplot is running: "):
                url = line.split(": ", 1)[1].strip()
        # Early in a UTC day the demo's scans are on yesterday's page, and the URL says so.
        root = f"http://127.0.0.1:{web_port}/"
        assert url is not None and (url == root or url.startswith(root + "?date=")), "".join(output)
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - our own loopback server
            page = resp.read().decode()
        assert resp.status == 200 and "Bokeh" in page
        store = Store(tmp_path / "store")
        rows = 0
        while time.monotonic() < deadline:
            rows = store.count()
            if rows > 20_000:  # most of a demo day (~36k packets) has been archived
                break
            time.sleep(1)
        assert rows > 20_000, "".join(output) + (tmp_path / "var" / "logs" / "worker.log").read_text()[-3000:]
        assert store.sites() == ["demo"]
        # The demo plants a fast vertical scan and a slow descending diagonal: the detector
        # that `up` runs finds both with no other command.
        scans = ScanStore(tmp_path / "store" / "scans")
        kinds: set[str] = set()
        scans_deadline = time.monotonic() + 90
        while time.monotonic() < scans_deadline:
            kinds = set(scans.read()["kind"].to_pylist())
            if {"vertical", "slow"} <= kinds:
                break
            time.sleep(1)
        assert {"vertical", "slow"} <= kinds, (
            kinds,
            (tmp_path / "var" / "logs" / "detector.log").read_text()[-3000:],
        )
        if browser.missing() is None:
            page_shows_the_scans(url)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
        output.append(rest)
    text = "".join(output)
    assert proc.returncode == 0, text
    assert "stopped." in text
    assert not (tmp_path / "var" / "kafka" / "broker.pid").exists()
