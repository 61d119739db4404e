"""`fireplot up`: the README's first command brings the whole system up with demo data and down again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipeline.detect.scanstore import ScanStore
from pipeline.store import Store
from tests.support.system import free_port


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
        assert url == f"http://127.0.0.1:{web_port}/", "".join(output)
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
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
        output.append(rest)
    text = "".join(output)
    assert proc.returncode == 0, text
    assert "stopped." in text
    assert not (tmp_path / "var" / "kafka" / "broker.pid").exists()
