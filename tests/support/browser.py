"""Headless Chromium for browser tests: Debian's chromium and chromedriver, driven by selenium.

Tests import :func:`chromium` and skip with :data:`MISSING` as the reason when
the browser is not installed. The flags keep Chromium from reaching the
network on its own (updates, sync, field trials) so that the only traffic is
the page under test, and the console log is kept for assertions.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

T = TypeVar("T")


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll ``fn`` until it returns something truthy (a page is asynchronous); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMEDRIVER: Final = Path("/usr/bin/chromedriver")

FLAGS: Final = (
    "--headless=new",
    "--no-sandbox",  # tests run as root in a container, where the sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Software WebGL (SwiftShader) without the deprecation warning in the console.
    "--enable-unsafe-swiftshader",
    # Screenshots in exact sRGB at 1 px per CSS px, so tests can look for exact colours.
    "--force-device-scale-factor=1",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
)


def missing() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is not installed (Debian packages chromium, chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install fireplot[web])"
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A selenium Chrome WebDriver on a fresh profile, quit and cleaned up on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="fireplot-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console(driver: Any) -> list[dict[str, Any]]:
    """Browser console entries since the last call (the log is drained on read)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return entries


def severe(entries: list[dict[str, Any]]) -> list[str]:
    return [e["message"] for e in entries if e.get("level") == "SEVERE"]


@contextmanager
def web_server(
    store_root: Path, log: Path, env: dict[str, str] | None = None, ready_path: str = ""
) -> Iterator[str]:
    """``fireplot``'s web server in its own process on a free loopback port, reading store_root.

    Configured through FIREPLOT_* variables as an operator would; yields the
    page's URL once ``ready_path`` (the page itself, or ``login`` when sign-in
    guards it) answers 200, stops the process on exit.
    """
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.support.system import free_port

    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("FIREPLOT_")}
    full |= {"FIREPLOT_WORKER__STORE_DIR": str(store_root), "FIREPLOT_WEB__PORT": str(port)}
    full |= env or {}
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from pipeline.config import load\n"
        "from consumers.web.server import serve\n"
        "serve(load(), None)\n"
    )
    with open(log, "wb") as out:
        # cwd is the log's directory so no stray ./fireplot.toml is picked up.
        proc = subprocess.Popen(
            [sys.executable, "-c", code], cwd=log.parent, env=full, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"web server exited {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + ready_path, timeout=30) as resp:  # noqa: S310  # loopback
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"web server did not answer on {url}:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Bokeh 3.9: documents live in Bokeh.documents; views are found by model through Bokeh.index.
JS_SOURCE = """
const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
const src = doc && doc.get_model_by_name("events");
if (!src) return null;
const out = {};
for (const [k, v] of Object.entries(src.data)) out[k] = Array.from(v);
return out;
"""
# Every element below the document, including inside Bokeh's shadow roots.
JS_DEEP = """
function* walk(root) {
  for (const el of root.querySelectorAll("*")) {
    yield el;
    if (el.shadowRoot) yield* walk(el.shadowRoot);
  }
}
"""


def source(driver: Any) -> dict[str, list[Any]] | None:
    data: dict[str, list[Any]] | None = driver.execute_script(JS_SOURCE)
    return data


def wait_for_source(
    driver: Any, what: str, ready: Callable[[dict[str, list[Any]]], bool], timeout: float = 15.0
) -> dict[str, list[Any]]:
    def check() -> dict[str, list[Any]] | None:
        data = source(driver)
        return data if data is not None and ready(data) else None

    return wait_for(what, check, timeout)


def summary(driver: Any) -> str:
    text: str = driver.execute_script('return Bokeh.documents[0].get_model_by_name("summary").text')
    return text


def open_page(driver: Any, url: str) -> dict[str, list[Any]]:
    """Load the page and wait until its data has arrived (the summary leaves "loading")."""
    driver.get(url)
    wait_for(
        "the page's data",
        lambda: driver.execute_script(
            "const d = window.Bokeh && Bokeh.documents && Bokeh.documents[0];"
            'const s = d && d.get_model_by_name("summary");'
            'return s && s.text.includes(" events")'
        ),
    )
    data = source(driver)
    assert data is not None
    return data


def click(driver: Any, model_name: str) -> None:
    """A real mouse click on a Bokeh button, found through its view (it lives in a shadow root)."""
    button = driver.execute_script(
        "const m = Bokeh.documents[0].get_model_by_name(arguments[0]);"
        "return Bokeh.index.find_one(m).button_el",
        model_name,
    )
    button.click()
