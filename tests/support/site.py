"""A web site for browser tests: a store written the way the worker writes it, scans found by the
real detector, ``fireplot``'s web server over it, and Chromium saving downloads where the test looks.

Each browser test module builds the events it is about; the set-up around
them is here, once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pytest

from pipeline.config import DetectConfig
from pipeline.detect.runner import Evaluator, replay, store_source
from pipeline.detect.scanstore import ScanStore
from pipeline.event import conform
from pipeline.store import OffsetRange, Store
from tests.support import browser

TOPIC: Final = "fireplot.events"


def start_of(day: dt.date, hour: int = 0) -> dt.datetime:
    """The start of ``hour`` of ``day``, UTC."""
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


@dataclass
class Site:
    """A running web server over a test store."""

    url: str
    root: Path  # the module's directory: store/, server logs, downloads/
    store: Store
    downloads: Path

    @property
    def scans(self) -> ScanStore:
        """The scan dataset ``detect_day`` wrote."""
        return ScanStore(self.store.root / "scans")


def new_store(tmp_path_factory: pytest.TempPathFactory, name: str) -> Store:
    """An empty store in a fresh directory for one module's site; skips when Chromium is missing."""
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    return Store(tmp_path_factory.mktemp(name) / "store")


def write_rows(store: Store, partition: int, rows: list[dict[str, Any]]) -> None:
    """Event rows as one flush of ``TOPIC``'s ``partition`` (offsets 0..n-1), as the worker writes one."""
    store.write_flush(OffsetRange(TOPIC, partition, 0, len(rows) - 1), conform(pa.Table.from_pylist(rows)))


def detect_day(store: Store, day: dt.date) -> ScanStore:
    """Scans of ``day`` found by the real detector (default thresholds), in the store's scan dataset."""
    scans = ScanStore(store.root / "scans")
    replay(
        Evaluator(DetectConfig(), store_source(store), scans), start_of(day), start_of(day + dt.timedelta(1))
    )
    return scans


@contextmanager
def serving(store: Store, env: dict[str, str] | None = None) -> Iterator[Site]:
    """``fireplot``'s web server over ``store`` (configured by ``env``), stopped on exit."""
    root = store.root.parent
    with browser.web_server(store.root, root / "server.log", env) as url:
        yield Site(url, root, store, root / "downloads")


def allow_downloads(driver: Any, directory: Path) -> None:
    """Let the page save files (PNG, CSV) into ``directory`` without asking."""
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(directory)}
    )
