"""Today's page follows the store: new dots and newly detected scans arrive without a reload.

One :class:`LiveFollow` per page. While the page shows today it reads what the store gained
(the day feed's :meth:`~consumers.web.feeds.day.DayFeed.poll`) and whether the detector wrote
scans, in a worker thread, every ``refresh_interval_ms``. The page says what to do with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bokeh.document import Document

from consumers.web import drill
from consumers.web.feeds.contract import Frame, site_scope
from consumers.web.feeds.day import DayFeed
from pipeline.store import Store

log = logging.getLogger(__name__)

# What a poll found: new dots (or None), the view's scans if they changed (or None).
Found = tuple[Frame | None, Any | None]


class ScanWatch:
    """The view's detected scans: read with the view, and by a live poll only when the detector
    rewrote their files since (``stamp``: the files the overlay was read from)."""

    def __init__(self, store: Store, scan_root: Path) -> None:
        self.store, self.scan_root = store, scan_root
        self.stamp: drill.ScanStamp = frozenset()

    def read(
        self, start: dt.datetime, end: dt.datetime, site: str | None
    ) -> tuple[drill.ScanStamp, dict[str, Any]]:
        # Stamped before reading: a file replaced in between is read again at the next poll.
        stamp = drill.scan_stamp(self.scan_root, start, end)
        scans = drill.read_scans(self.scan_root, start, end, site, site_scope(self.store))
        return stamp, drill.scan_data(scans)

    def changed(
        self, start: dt.datetime, end: dt.datetime, site: str | None
    ) -> tuple[drill.ScanStamp, dict[str, Any]] | None:
        """The view's scans if the detector wrote any since the last read, else None."""
        if drill.scan_stamp(self.scan_root, start, end) == self.stamp:
            return None
        return self.read(start, end, site)


class LiveFollow:
    """The chain of polls of one page.

    ``read_scans(feed)`` returns the view's scans if the detector wrote any since the last read
    (else None); ``current()`` is the page's generation and feed, so that a poll for a view the
    operator left is dropped; ``apply(frame, scans, feed)`` shows what a poll found;
    ``midnight()`` is called when the followed day is over.
    """

    def __init__(
        self,
        doc: Document,
        interval_ms: int,
        read_scans: Callable[[DayFeed], Any | None],
        current: Callable[[], tuple[int, Any]],
        apply: Callable[[Frame | None, Any | None, DayFeed], None],
        is_today: Callable[[DayFeed], bool],
        midnight: Callable[[], None],
    ) -> None:
        self.doc, self.interval_ms = doc, interval_ms
        self._read_scans, self._current, self._apply = read_scans, current, apply
        self._is_today, self._midnight = is_today, midnight
        self._callback: Any = None
        self._failing = False

    def schedule(self, generation: int) -> None:
        # A chain of timeouts rather than a periodic callback: the next poll is
        # only scheduled once this one is done, so slow reads never pile up.
        poll = partial(self._poll, generation)
        self._callback = self.doc.add_timeout_callback(
            poll,  # type: ignore[arg-type]  # Bokeh awaits coroutines
            self.interval_ms,
        )

    def stop(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            # If it fired already, its generation check stops it.
            with contextlib.suppress(ValueError):
                self.doc.remove_timeout_callback(callback)

    async def _poll(self, generation: int) -> None:
        self._callback = None
        current, feed = self._current()
        if generation != current or not isinstance(feed, DayFeed):
            return
        if not self._is_today(feed):
            # The page was following today and midnight (in its zone) passed.
            self._midnight()
            return

        def read() -> Found:
            # Scans the detector wrote since the page loaded join the overlay and table like new dots.
            return feed.poll(), self._read_scans(feed)

        try:
            frame, scans = await asyncio.get_running_loop().run_in_executor(None, read)
        except Exception:
            # Once per failure streak, not every refresh interval.
            if not self._failing:
                log.exception("reading new events from the store failed; retrying")
            self._failing, frame, scans = True, None, None
        else:
            if self._failing:
                log.info("reading new events from the store works again")
            self._failing = False
        if generation != self._current()[0]:
            return
        self._apply(frame, scans, feed)
        self.schedule(generation)
