"""The page's address: the whole view as URL arguments, and the browser's history kept in step.

``?date=``, ``?days=``, ``?tz=``, ``?dataset=``, ``?site=`` say what is shown; ``?proto=``,
``?net=``, ``?ports=``, ``?action=``, ``?who=`` the filters; ``?x0=&x1=`` (UTC ms) and ``?y0=&y1=`` (the port
axis) the zoom; ``?src=`` the source whose panel is open and ``?scan=`` the selected scan. The
server writes the address after every change (:class:`History`): a new view (a day, a filter, a
settled zoom) is a new history entry, so Back and Forward step through them, and the browser hands
an entry it returns to back to the server, which shows it exactly as a copied link would.

The arguments are typed by whoever sent the link: a value that is not a day, a zone, a dataset
or a site of the store is ignored with a notice on the page saying so, never an error page.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from bokeh.document import Document
from bokeh.models import ColumnDataSource, CustomJS
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
    # The filters as typed (checked by the page, which says what it cannot apply).
    filters: dict[str, str] = field(default_factory=dict)
    x: tuple[float, float] | None = None
    y: tuple[float, float] | None = None
    src: str | None = None
    scan: str | None = None
    notices: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, doc: Document, default_date: dt.date | None, dataset_names: list[str]) -> PageRequest:
        """The session's request; ``default_date`` is the day without ``?date=`` (None: today)."""
        return cls.parse(_arguments(doc), default_date, dataset_names)

    @classmethod
    def parse(
        cls, args: dict[str, str], default_date: dt.date | None, dataset_names: list[str]
    ) -> PageRequest:
        """What ``args`` (one value per URL argument) ask for, the ignored ones named in ``notices``."""
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
        request.filters = {k: args[k] for k in FILTER_KEYS if args.get(k)}
        request.x = _pair(args, "x0", "x1", request.notices)
        request.y = _pair(args, "y0", "y1", request.notices)
        request.src = args.get("src") or None
        request.scan = args.get("scan") or None
        return request

    def check_site(self, sites: list[str]) -> None:
        """Drop ``?site=`` unless it names one of ``sites`` (the dataset's, as far as the user may see)."""
        if self.site is not None and self.site not in sites:
            self.notices.append(f"ignored ?site={self.site!r}: no such site in the store")
            self.site = None


FILTER_KEYS: Final = ("proto", "net", "ports", "action", "who")


def _pair(args: dict[str, str], low: str, high: str, notices: list[str]) -> tuple[float, float] | None:
    if low not in args and high not in args:
        return None
    try:
        pair = float(args[low]), float(args[high])
    except (KeyError, ValueError):
        pair = (math.nan, math.nan)
    if not all(math.isfinite(v) for v in pair) or pair[0] >= pair[1]:
        notices.append(f"ignored ?{low}=&{high}=: not two increasing numbers")
        return None
    return pair


def query(
    *,
    date: dt.date,
    days: int,
    zone: str,
    dataset: str,
    site: str | None,
    filters: dict[str, str],
    x: tuple[float, float] | None,
    y: tuple[float, float] | None,
    src: str | None,
    scan: str | None,
) -> str:
    """The address arguments of a view (``?...``), defaults left out, in :meth:`PageRequest.parse`'s terms."""
    args: list[tuple[str, str]] = [("date", date.isoformat())]
    if days != 1:
        args.append(("days", str(days)))
    if zone != "UTC":
        args.append(("tz", zone))
    if dataset != datasets.MAIN:
        args.append(("dataset", dataset))
    if site:
        args.append(("site", site))
    args.extend((k, filters[k]) for k in FILTER_KEYS if filters.get(k))
    if x is not None:
        args += [("x0", _number(x[0], 0)), ("x1", _number(x[1], 0))]
    if y is not None:
        args += [("y0", _number(y[0], 4)), ("y1", _number(y[1], 4))]
    if src:
        args.append(("src", src))
    if scan:
        args.append(("scan", scan))
    return "?" + urlencode(args)


def _number(value: float, digits: int) -> str:
    # Rounded so that an address read back and written again is the same text (no new history entry).
    return str(round(value)) if digits == 0 else repr(round(value, digits))


def arguments_of(search: str) -> dict[str, str]:
    """One value per argument of a ``?a=b&...`` string, the last one winning as on first load."""
    return dict(parse_qsl(search.lstrip("?"), keep_blank_values=False))


class History:
    """The browser's address and history, kept by the server.

    :meth:`write` sets the address of the view on screen: ``push`` makes a new history entry,
    otherwise the current one is replaced (a browser already there changes nothing). When the
    operator goes Back or Forward, the browser sends the entry's arguments and ``on_return`` gets
    them; the page shows that view and writes it again, which the browser finds already there.
    """

    def __init__(self, on_return: Callable[[str], None]) -> None:
        self.address = ColumnDataSource(data={"query": [""], "push": [False]}, name="address")
        self.address.js_on_change("data", CustomJS(code=script("write_address")))
        # Filled by the browser (popstate) with the arguments of the entry it returned to.
        self.returned = ColumnDataSource(data={"query": [""], "n": [0]}, name="address-returned")
        self.returned.on_change("data", lambda _a, _o, new: on_return(str(new["query"][0])))
        self._last = ""

    def write(self, search: str, push: bool) -> None:
        if search != self._last:
            self._last = search
            self.address.data = {"query": [search], "push": [push]}

    def returned_to(self, search: str) -> None:
        """The browser is at ``search`` already: writing it again is no news."""
        self._last = search


def _arguments(doc: Document) -> dict[str, str]:
    context = doc.session_context
    if not isinstance(context, BokehSessionContext) or context.request is None:
        return {}
    request = context.request
    raw: dict[str, list[bytes]] = request.arguments
    return {k: v[-1].decode("utf-8", "replace") for k, v in raw.items() if v}


def load_on_change(widget: Any) -> None:
    """Load the page of another dataset when the widget's value changes (``?dataset=``)."""
    widget.js_on_change("value", CustomJS(code=script("switch_dataset")))
