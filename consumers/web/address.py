"""The page's address: what ``?date=``, ``?days=``, ``?tz=``, ``?dataset=`` and ``?site=`` ask
for, and the address bar kept in step with the controls, so that any view can be bookmarked.

The arguments are typed by whoever sent the link: a value that is not a day, a zone, a dataset
or a site of the store is ignored with a notice on the page saying so, never an error page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from bokeh.document import Document
from bokeh.models import CustomJS
from bokeh.server.contexts import BokehSessionContext

from consumers.web.feeds.days import parse_day, parse_zone, today_in
from consumers.web.resources import script
from pipeline import datasets

MAX_SPAN_DAYS: Final = 366


@dataclass
class PageRequest:
    """What a page's address asks for, once checked; ``notices`` say what was ignored and why."""

    zone: str = "UTC"
    date: dt.date = field(default_factory=lambda: today_in(dt.UTC))
    days: int = 1
    dataset: str = datasets.MAIN
    site: str | None = None
    notices: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, doc: Document, default_date: dt.date | None, dataset_names: list[str]) -> PageRequest:
        """The session's request; ``default_date`` is the day without ``?date=`` (None: today)."""
        args = _arguments(doc)
        request = cls()
        if "tz" in args:
            if parse_zone(args["tz"]) is None:
                request.notices.append(f"ignored ?tz={args['tz']!r}: not a time zone (like Europe/Zurich)")
            else:
                request.zone = args["tz"]
        request.date = default_date or today_in(parse_zone(request.zone) or dt.UTC)
        if "date" in args:
            parsed = parse_day(args["date"])
            if parsed is None:
                request.notices.append(f"ignored ?date={args['date']!r}: not a YYYY-MM-DD date")
            request.date = parsed or request.date
        if "days" in args:
            try:
                days = int(args["days"])
            except ValueError:
                days = 0
            if 1 <= days <= MAX_SPAN_DAYS:
                request.days = days
            else:
                request.notices.append(
                    f"ignored ?days={args['days']!r}: not a number of days from 1 to {MAX_SPAN_DAYS}"
                )
        request.dataset = args.get("dataset") or datasets.MAIN
        if request.dataset not in dataset_names:
            request.notices.append(f"ignored ?dataset={request.dataset!r}: no such dataset")
            request.dataset = datasets.MAIN
        request.site = args.get("site") or None
        return request

    def check_site(self, sites: list[str]) -> None:
        """Drop ``?site=`` unless it names one of ``sites`` (the dataset's, as far as the user may see)."""
        if self.site is not None and self.site not in sites:
            self.notices.append(f"ignored ?site={self.site!r}: no such site in the store")
            self.site = None


def _arguments(doc: Document) -> dict[str, str]:
    context = doc.session_context
    if not isinstance(context, BokehSessionContext) or context.request is None:
        return {}
    request = context.request
    raw: dict[str, list[bytes]] = request.arguments
    return {k: v[-1].decode("utf-8", "replace") for k, v in raw.items() if v}


def keep_in_address(widget: Any, key: str, fallback: str) -> None:
    """Write the widget's value into the address as ``?key=``, left out while it is ``fallback``."""
    widget.js_on_change("value", CustomJS(args={"key": key, "fallback": fallback}, code=script("sync_url")))


def load_on_change(widget: Any) -> None:
    """Load the page of another dataset when the widget's value changes (``?dataset=``)."""
    widget.js_on_change("value", CustomJS(code=script("switch_dataset")))
