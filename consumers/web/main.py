"""The day page: widgets, the figure and their callbacks.

Data comes from :mod:`consumers.web.view`; looks come from
:mod:`consumers.style`. Reading the store runs in a worker thread so that one
page loading a busy day does not stall every other page on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from functools import partial
from pathlib import Path
from typing import Any, Final

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    CustomJS,
    FixedTicker,
    GroupFilter,
    HoverTool,
    Range1d,
)
from bokeh.models.annotations.legends import Legend, LegendItem
from bokeh.models.renderers import GlyphRenderer
from bokeh.models.widgets.buttons import Button
from bokeh.models.widgets.inputs import Select
from bokeh.models.widgets.markups import Div
from bokeh.models.widgets.pickers import DatePicker
from bokeh.plotting import figure
from bokeh.server.contexts import BokehSessionContext
from bokeh.themes import Theme
from jinja2 import Template

from consumers import style
from consumers.web.view import (
    DayFeed,
    Frame,
    day_bounds,
    empty_data,
    parse_day,
    shift_day,
    utc_today,
)
from pipeline import datasets
from pipeline.config import WebConfig
from pipeline.store import Store

log = logging.getLogger(__name__)

SOURCE_NAME: Final = "events"
ALL_SITES: Final = ""
TEMPLATE: Final = Path(__file__).with_name("templates") / "index.html"

RAW_TOOLTIPS: Final = [
    ("time", "@ts{%Y-%m-%d %H:%M:%S.%3N} UTC"),
    ("source", "@src_ip"),
    ("port", "@port"),
    ("protocol", "@proto/IPv@ip_version"),
    ("packets", "@count"),
    ("site", "@site"),
    ("sensor", "@host"),
    ("prefix", "@prefix"),
]
AGGREGATED_TOOLTIPS: Final = [
    ("from", "@ts{%Y-%m-%d %H:%M} UTC"),
    ("port", "@port"),
    ("protocol", "@proto/IPv@ip_version"),
    ("events", "@events"),
    ("sources", "@sources"),
]
# Written into the page's address bar so that a shown day can be bookmarked.
_SWITCH_DATASET: Final = """
const url = new URL(window.location.href);
url.searchParams.set("dataset", cb_obj.value);
url.searchParams.delete("site");
window.location.assign(url.toString());
"""

_SYNC_URL: Final = """
const url = new URL(window.location.href)
if (cb_obj.value) { url.searchParams.set(key, cb_obj.value) } else { url.searchParams.delete(key) }
window.history.replaceState(null, "", url)
"""


def build_document(doc: Document, *, store: Store, web: WebConfig, default_date: dt.date | None) -> None:
    """Bokeh FunctionHandler entry: lay out one session's page from its URL arguments."""
    args = _arguments(doc)
    notices: list[str] = []
    date = default_date or utc_today()
    if "date" in args:
        parsed = parse_day(args["date"])
        if parsed is None:
            notices.append(f"ignored ?date={args['date']!r}: not a YYYY-MM-DD date")
        date = parsed or date
    names = datasets.names(store.root)
    dataset = args.get("dataset") or datasets.MAIN
    if dataset not in names:
        notices.append(f"ignored ?dataset={dataset!r}: no such dataset")
        dataset = datasets.MAIN
    if dataset != datasets.MAIN:
        store = Store(datasets.root(store.root, dataset))
    sites = store.sites()
    site = args.get("site") or None
    if site is not None and site not in sites:
        notices.append(f"ignored ?site={site!r}: no such site in the store")
        site = None
    DayPage(doc, store, web, sites, names, dataset).start(date, site, " ".join(notices))


def _arguments(doc: Document) -> dict[str, str]:
    context = doc.session_context
    if not isinstance(context, BokehSessionContext) or context.request is None:
        return {}
    request = context.request
    raw: dict[str, list[bytes]] = request.arguments
    return {k: v[-1].decode("utf-8", "replace") for k, v in raw.items() if v}


class DayPage:
    """One browser session's page: the plot of one UTC day and the controls around it."""

    def __init__(
        self,
        doc: Document,
        store: Store,
        web: WebConfig,
        sites: list[str],
        dataset_names: list[str] | None = None,
        dataset: str = datasets.MAIN,
    ) -> None:
        self.doc = doc
        self.store = store
        self.web = web
        self.date = utc_today()
        self.site: str | None = None
        self.feed: DayFeed | None = None
        # Bumped whenever the page switches day or site; work started for an
        # older generation finds out when it resumes and drops its result.
        self._generation = 0
        self._poll_callback: Any = None
        self._poll_failing = False

        self.source = ColumnDataSource(data=empty_data(), name=SOURCE_NAME)
        self.plot, renderers = self._figure()
        self.hover = HoverTool(
            renderers=renderers,
            tooltips=RAW_TOOLTIPS,
            formatters={"@ts": "datetime"},
        )
        self.plot.add_tools(self.hover)

        self.prev_button = Button(label="\u25c0 previous day", name="prev-day")
        self.today_button = Button(label="today", name="today")
        self.next_button = Button(label="next day \u25b6", name="next-day")
        self.picker = DatePicker(name="date-picker", width=140)
        options: list[str | tuple[Any, str]] = [(ALL_SITES, "all sites"), *((s, s) for s in sites)]
        self.site_select = Select(options=options, value=ALL_SITES, name="site", width=160)
        # Replays and rebuilds live in their own datasets (pipeline.datasets); switching
        # is a new page, since every query of the session then reads another store.
        dataset_options: list[str | tuple[Any, str]] = [*(dataset_names or [datasets.MAIN])]
        self.dataset_select = Select(
            options=dataset_options,
            value=dataset,
            name="dataset",
            width=160,
            visible=bool(dataset_names and len(dataset_names) > 1),
        )
        self.dataset_select.js_on_change("value", CustomJS(code=_SWITCH_DATASET))
        # Both lines show text that may come from the store or the URL: as text, never markup.
        self.summary = Div(name="summary", render_as_text=True, disable_math=True)
        self.notice = Div(name="notice", render_as_text=True, disable_math=True, visible=False)

        self.prev_button.on_click(lambda: self.show(shift_day(self.date, -1), self.site))
        self.today_button.on_click(lambda: self.show(utc_today(), self.site))
        self.next_button.on_click(lambda: self.show(shift_day(self.date, 1), self.site))
        self.picker.on_change("value", self._on_pick)
        self.site_select.on_change("value", self._on_site)
        self.picker.js_on_change("value", CustomJS(args={"key": "date"}, code=_SYNC_URL))
        self.site_select.js_on_change("value", CustomJS(args={"key": "site"}, code=_SYNC_URL))

        controls = row(
            self.prev_button,
            self.today_button,
            self.next_button,
            self.picker,
            self.site_select,
            self.dataset_select,
        )
        doc.add_root(column(controls, self.summary, self.notice, self.plot, sizing_mode="stretch_width"))
        doc.theme = Theme(json=style.theme_json())
        doc.template = Template(TEMPLATE.read_text(encoding="utf-8"))
        doc.template_variables.update(background=style.BACKGROUND, foreground=style.FOREGROUND)

    def _figure(self) -> tuple[Any, list[Any]]:
        start, end = day_bounds(self.date)
        plot = figure(
            name="day-plot",
            x_axis_type="datetime",
            y_axis_type="log",
            x_range=Range1d(start=_ms(start), end=_ms(end)),
            y_range=Range1d(start=style.Y_RANGE[0], end=style.Y_RANGE[1], bounds=style.Y_RANGE),
            # Stack notes section 5: WebGL draws log-axis scatters in Bokeh 3.9.
            output_backend="webgl",
            tools="xpan,xwheel_zoom,box_zoom,reset,save",
            active_scroll="xwheel_zoom",
            height=640,
            sizing_mode="stretch_width",
        )
        plot.xaxis.axis_label = "time (UTC)"
        plot.yaxis.axis_label = "destination port"
        plot.yaxis.ticker = FixedTicker(ticks=list(style.Y_TICKS), minor_ticks=[])
        labels: dict[Any, Any] = dict(style.Y_TICK_LABELS)
        plot.yaxis.major_label_overrides = labels
        plot.toolbar.logo = None
        renderers, items = [], []
        for series, colour in style.COLOURS.items():
            renderer: GlyphRenderer[Any] = plot.scatter(
                "ts",
                "y",
                source=self.source,
                view=CDSView(filter=GroupFilter(column_name="series", group=series)),
                marker=style.DOT_MARKER,
                size=style.DOT_SIZE,
                fill_color=colour,
                line_color=None,
                name=f"series:{series}",
            )
            renderers.append(renderer)
            items.append(LegendItem(label=series, renderers=[renderer]))
        legend = Legend(items=items, click_policy="hide", location="top_left")
        plot.add_layout(legend, "right")
        return plot, renderers

    # ---- switching day or site -------------------------------------------

    def start(self, date: dt.date, site: str | None, notice: str) -> None:
        if notice:
            self.notice.text = notice
            self.notice.visible = True
        self.show(date, site)

    def show(self, date: dt.date, site: str | None) -> None:
        """Switch the page to a day and site, in place; the data arrives on a later tick."""
        self._generation += 1
        self._stop_polling()
        self.date, self.site, self.feed = date, site, None
        title = f"fireplot \u2014 {date.isoformat()}" + (f" \u2014 {site}" if site else "")
        self.doc.title = title
        self.plot.title.text = title
        self.picker.value = date
        self.site_select.value = site or ALL_SITES
        start, end = (_ms(t) for t in day_bounds(date))
        self.plot.x_range.update(start=start, end=end, reset_start=start, reset_end=end)
        self.summary.text = "loading\u2026"
        feed = DayFeed(self.store, date, site, self.web.max_points)
        load = partial(self._load, self._generation, feed)
        self.doc.add_next_tick_callback(load)  # type: ignore[arg-type]  # Bokeh awaits coroutines

    def _on_pick(self, _attr: str, _old: Any, new: Any) -> None:
        date = new if isinstance(new, dt.date) else parse_day(str(new))
        if date is not None and date != self.date:
            self.show(date, self.site)

    def _on_site(self, _attr: str, _old: Any, new: Any) -> None:
        site = new or None
        if site != self.site:
            self.show(self.date, site)

    # ---- loading and live updates ------------------------------------------

    async def _load(self, generation: int, feed: DayFeed) -> None:
        # The document stays locked while the read runs in a thread: only this
        # session waits for it, and its own clicks queue behind the load.
        try:
            frame = await asyncio.get_running_loop().run_in_executor(None, feed.load)
        except Exception:
            log.exception("reading %s from the store failed", feed.date)
            if generation == self._generation:
                self.summary.text = "could not read the store (details in the server log)"
            return
        if generation != self._generation:
            return
        self.feed = feed
        self._apply(frame, feed)
        if feed.date == utc_today():
            self._schedule_poll()

    def _schedule_poll(self) -> None:
        # A chain of timeouts rather than a periodic callback: the next poll is
        # only scheduled once this one is done, so slow reads never pile up.
        poll = partial(self._poll, self._generation)
        self._poll_callback = self.doc.add_timeout_callback(
            poll,  # type: ignore[arg-type]  # Bokeh awaits coroutines
            self.web.refresh_interval_ms,
        )

    def _stop_polling(self) -> None:
        callback, self._poll_callback = self._poll_callback, None
        if callback is not None:
            # If it fired already, its generation check stops it.
            with contextlib.suppress(ValueError):
                self.doc.remove_timeout_callback(callback)

    async def _poll(self, generation: int) -> None:
        self._poll_callback = None
        feed = self.feed
        if generation != self._generation or feed is None:
            return
        if feed.date != utc_today():
            # The page was following today and midnight (UTC) passed.
            self.show(utc_today(), self.site)
            return
        try:
            frame = await asyncio.get_running_loop().run_in_executor(None, feed.poll)
        except Exception:
            # Once per failure streak, not every refresh interval.
            if not self._poll_failing:
                log.exception("reading new events from the store failed; retrying")
            self._poll_failing, frame = True, None
        else:
            if self._poll_failing:
                log.info("reading new events from the store works again")
            self._poll_failing = False
        if generation != self._generation:
            return
        if frame is not None:
            self._apply(frame, feed)
        self._schedule_poll()

    def _apply(self, frame: Frame, feed: DayFeed) -> None:
        if frame.replace:
            self.hover.tooltips = AGGREGATED_TOOLTIPS if feed.aggregated else RAW_TOOLTIPS
            self.source.data = frame.data
        else:
            new: dict[str, Any] = dict(frame.data)
            self.source.stream(new)
        self.summary.text = feed.summary()


def _ms(t: dt.datetime) -> float:
    return t.timestamp() * 1000.0
