"""What the page asks of a feed, whichever span it reads: the :class:`Feed` protocol.

The page holds one feed at a time, a day (:class:`~consumers.web.feeds.day.DayFeed`) or a range
(:class:`~consumers.web.feeds.range.RangeFeed`); it loads it in a worker thread, polls it while it
is live and asks it for the line above the plot. It needs to know which kind it holds only for
what is specific to a day (live polling, the day's date), not to load, zoom or summarise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from consumers.web.feeds.columns import SourceData
from pipeline.store import Store


@dataclass(frozen=True)
class Frame:
    """Columns for the plot's source, replacing what it holds or to be streamed onto it."""

    data: SourceData
    replace: bool


class Feed(Protocol):
    """One view of the store, ``[start, end)`` as UTC instants, optionally of one site.

    Not thread-safe: the page runs at most one :meth:`load` or :meth:`poll` of a feed at a time.
    """

    @property
    def start(self) -> dt.datetime: ...

    @property
    def end(self) -> dt.datetime: ...

    @property
    def site(self) -> str | None: ...

    @property
    def aggregated(self) -> bool:
        """Whether the last load drew bins rather than one dot per event (then zooming reads again)."""
        ...

    def load(self) -> Frame:
        """The whole view, replacing what the plot holds."""
        ...

    def poll(self) -> Frame | None:
        """What is new since the last load or poll; None if nothing is (or the view is not live)."""
        ...

    def summary(self) -> str:
        """One line about the view, plain text (the page renders it as text, not HTML)."""
        ...


def site_scope(store: Store) -> frozenset[str] | None:
    """The sites a store is limited to (a signed-in user's allow-list), None for all.

    Reads through the store are filtered by the store itself; this is for the
    files the page opens beside it (rollups, scans).
    """
    allowed: frozenset[str] | None = getattr(store, "allowed_sites", None)
    return allowed
