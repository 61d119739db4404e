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
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

T = TypeVar("T")
# What the ``chromium`` fixture hands out: ``with chromium() as driver: ...``
Chromium = Callable[..., AbstractContextManager[Any]]


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
        # Each request builds a whole page session: on a loaded machine one takes seconds,
        # so a short per-request timeout would never see the server ready.
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"web server exited {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + ready_path, timeout=60) as resp:  # noqa: S310  # loopback
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
            'return s && s.text.includes(" event")'  # "1 event" or "N events"
        ),
        timeout=60,  # a loaded machine renders slowly; nothing here measures speed
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


def model_data(driver: Any, name: str) -> dict[str, list[Any]]:
    data: dict[str, list[Any]] = driver.execute_script(
        "const m = Bokeh.documents[0].get_model_by_name(arguments[0]); const out = {};"
        "for (const [k, v] of Object.entries(m.data)) out[k] = Array.from(v); return out",
        name,
    )
    return data


def set_value(driver: Any, name: str, value: Any) -> None:
    driver.execute_script(
        "Bokeh.documents[0].get_model_by_name(arguments[0]).value = arguments[1]", name, value
    )


def table_text(driver: Any, name: str) -> str:
    """The text a DataTable renders, read from its cells in the shadow DOM."""
    text: str = driver.execute_script(
        "const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name(arguments[0]));"
        # The drawer's tables have views once the drawer first opened (drawer.Drawer).
        "if (v == null) return '';"
        "const cells = Array.from(v.shadow_el.querySelectorAll('.slick-cell'));"
        "return cells.map((c) => c.textContent).join('\\n')",
        name,
    )
    return text


def tap_dot(driver: Any, src_ip: str, port: str) -> None:
    """A real mouse click on the dot of src_ip at port."""
    from selenium.webdriver.common.action_chains import ActionChains

    x, y = driver.execute_script(
        "const d = Bokeh.documents[0];"
        "const pv = Bokeh.index.find_one(d.get_model_by_name('day-plot'));"
        "const src = d.get_model_by_name('events');"
        "const ips = Array.from(src.data.src_ip), ports = Array.from(src.data.port);"
        "const i = ips.findIndex((s, j) => s === arguments[0] && ports[j] === arguments[1]);"
        "const sx = pv.frame.x_scale.compute(src.data.ts[i]);"
        "const sy = pv.frame.y_scale.compute(src.data.y[i]);"
        "const r = pv.canvas_view.el.getBoundingClientRect();"
        "return [r.left + sx, r.top + sy]",
        src_ip,
        port,
    )
    actions = ActionChains(driver)
    actions.w3c_actions.pointer_action.move_to_location(round(x), round(y))
    actions.w3c_actions.pointer_action.click()
    actions.perform()


def panel_for(driver: Any, src_ip: str) -> None:
    wait_for(
        "the source panel",
        lambda: driver.execute_script(
            "const d = Bokeh.documents[0];"
            "return d.get_model_by_name('source-panel').visible"
            " && d.get_model_by_name('source-summary').text.includes(arguments[0])",
            src_ip,
        ),
    )


def point_of(driver: Any, **match: Any) -> tuple[int, int]:
    """Where on screen the first dot of the ``events`` source whose columns equal ``match`` is drawn."""
    x, y = driver.execute_script(
        "const d = Bokeh.documents[0];"
        "const pv = Bokeh.index.find_one(d.get_model_by_name('day-plot'));"
        "const src = d.get_model_by_name('events');"
        "const cols = Object.entries(arguments[0]).map(([k, v]) => [Array.from(src.data[k]), v]);"
        "const i = src.data.ts.findIndex((_, j) => cols.every(([c, v]) => c[j] === v));"
        "if (i < 0) return [null, null];"
        # Bring the dot to the middle of the window first: a tall page puts low rows below the fold.
        "const y0 = pv.canvas_view.el.getBoundingClientRect().top + pv.frame.y_scale.compute(src.data.y[i]);"
        "window.scrollBy(0, y0 - window.innerHeight / 2);"
        "const r = pv.canvas_view.el.getBoundingClientRect();"
        "return [r.left + pv.frame.x_scale.compute(src.data.ts[i]),"
        "        r.top + pv.frame.y_scale.compute(src.data.y[i])]",
        match,
    )
    assert x is not None, f"no dot with {match}"
    return round(x), round(y)


def hover(driver: Any, x: int, y: int) -> str:
    """Move the real mouse onto (x, y), coming from elsewhere; the hover tooltip's text."""
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver)
    actions.w3c_actions.pointer_action.move_to_location(max(0, x - 30), max(0, y - 30))  # in the window
    actions.w3c_actions.pointer_action.move_to_location(x, y)
    actions.perform()
    text: str = wait_for(
        "the hover tooltip",
        lambda: driver.execute_script(
            # the page's own one-line-per-dot tooltip (consumers/web/tooltip.py)
            "const el = document.querySelector('.fireplot-tooltip');"
            "return el && el.style.display !== 'none' && el.textContent ? el.textContent : null"
        ),
        timeout=5,
    )
    return text


def injected(driver: Any) -> list[str]:
    """Elements and attributes text could only have become by being parsed as markup: images, inline
    event handlers, scripts naming the test's flag, javascript: links (shadow roots included)."""
    found: list[str] = driver.execute_script(
        JS_DEEP + "const bad = [];"
        "for (const el of walk(document)) {"
        "  const tag = el.tagName.toLowerCase();"
        "  if (tag === 'img') bad.push('img');"
        "  if (tag === 'script' && el.textContent.includes('__pwned')) bad.push('script');"
        "  for (const a of Array.from(el.attributes || []))"
        "    if (a.name.startsWith('on') || /^\\s*javascript:/i.test(a.value)) bad.push(tag + ' ' + a.name);"
        "}"
        "return bad"
    )
    return found


def shown_text(driver: Any, name: str) -> str:
    """The text the view of model ``name`` puts on screen (what the DOM shows, not the model's value)."""
    text: str = driver.execute_script(
        "const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name(arguments[0]));"
        "return (v.shadow_el || v.el).textContent",
        name,
    )
    return text
