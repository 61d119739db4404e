"""The page's behaviour: which view it shows, reading it off the event loop, zoom, the address
and the source panel.

One :class:`DayPage` per browser session. Its models come from :mod:`.layout` and
:mod:`.controls`, its data from a feed (:mod:`.feeds`), its dots reach the browser through
:mod:`.transfer`; today's page follows the store through :mod:`.live`, the CSV button is
:mod:`.download`'s. Reading the store runs in a worker thread so that one page loading a busy day
does not stall every other page on the server; every read is tagged with the view it was started
for, and a result that arrives after the operator moved on is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from functools import partial
from pathlib import Path
from typing import Any, Final

from bokeh.document import Document, without_document_lock
from bokeh.layouts import row
from bokeh.models import ColumnDataSource, SaveTool, TapTool

from consumers import style
from consumers.web import drawer, drill, layout, navigation, talkers, tooltip, whois
from consumers.web.address import History, PageRequest, arguments_of, query
from consumers.web.controls import ALL_SITES, Controls
from consumers.web.download import CsvDownload
from consumers.web.feeds.columns import empty_data
from consumers.web.feeds.contract import Feed, Frame
from consumers.web.feeds.day import DayFeed
from consumers.web.feeds.days import (
    day_bounds,
    epoch_ms,
    from_epoch_ms,
    parse_day,
    parse_zone,
    shift_day,
    today_in,
)
from consumers.web.feeds.filters import Filters, file_safe
from consumers.web.feeds.range import RangeFeed
from consumers.web.live import LiveFollow, ScanWatch
from consumers.web.pick import SourcePick
from consumers.web.transfer import DotTransfer, series_counts
from pipeline import datasets
from pipeline.config import EnrichConfig, WebConfig
from pipeline.enrich import Enricher, shared_enricher
from pipeline.store import Store

log = logging.getLogger(__name__)

# A pan or zoom of a range view is read once it has settled this long.
ZOOM_SETTLE_MS: Final = 400


class DayPage:
    """One browser session's page: the plot of a day or a range, and the controls around it."""

    def __init__(
        self,
        doc: Document,
        store: Store,
        web: WebConfig,
        sites: list[str],
        dataset_names: list[str] | None = None,
        dataset: str = datasets.MAIN,
        scan_root: Path | None = None,
        enricher: Enricher | None = None,
    ) -> None:
        self.doc = doc
        self.enricher = enricher or shared_enricher(EnrichConfig())
        self.store = store
        self.web = web
        self.scan_root = scan_root or store.root / "scans"
        self.zone_name = "UTC"
        self.zone: dt.tzinfo = dt.UTC
        self.date = today_in(self.zone)
        self.days = 1
        self.site: str | None = None
        self.filters = Filters()
        self.feed: Feed | None = None
        # Bumped whenever the page switches day, span, site or filters; work started
        # for an older generation finds out when it resumes and drops its result.
        self._generation = 0
        self._zoom_callback: Any = None
        self.scan_watch = ScanWatch(store, self.scan_root)

        self.source = ColumnDataSource(
            data=whois.dot_columns(self.enricher, empty_data()), name=layout.SOURCE_NAME
        )
        # Whole views arrive packed beside it; live additions stream into source.
        self.transfer = DotTransfer(doc, self.source)
        self.scans = ColumnDataSource(data=drill.empty_scans(), name="scans")
        self.save_tool = SaveTool(filename="fireplot")
        self.tick_time = layout.tick_time(self.zone_name)
        start, end = day_bounds(self.date, self.zone)
        self.plot, renderers = layout.day_figure(
            self.source,
            self.scans,
            self.save_tool,
            self.tick_time,
            (epoch_ms(start), epoch_ms(end)),
            web.palette,
        )
        self.hover = tooltip.attach(self.plot, renderers, self.source, self.scans, self.zone_name)
        self.plot.add_tools(TapTool(renderers=renderers))
        self.controls = Controls(sites, dataset_names, dataset, self.save_tool, self.enricher)
        self.dataset = dataset
        # The whole view is in the address; Back and Forward return to earlier views.
        self.history = History(self._on_return)
        # While an address is being shown (first load, Back/Forward) the controls' own
        # callbacks stay quiet and the address is not pushed as a new entry.
        self._quiet = False
        # Until an address's zoom, panel and scan are shown, its writes replace the entry.
        self._replacing = False
        self._pending: PageRequest | None = None
        self._address_callback: Any = None
        self.sites = sites
        self.summary = layout.message("summary")
        # Takes what the filter row leaves and wraps there, rather than running off the window.
        self.summary.sizing_mode = "stretch_width"
        self.notice = layout.message("notice", visible=False)
        self.panel = drawer.SourcePanel(self.plot, self.tick_time)
        self.drawer = drawer.Drawer(doc, self.scans, self.plot, self.panel, self.scan_root)
        self.pick = SourcePick(
            doc, store, self.scan_root, self.enricher, self.panel, self.controls.networks,
            lambda: (self._generation, *self._visible(), self.site), self._write_address, self._tell,
        )  # fmt: skip
        # Top sources, ASNs and countries of the view, under the scans list (consumers.web.talkers).
        self.top = talkers.TopTalkers(
            doc, store, self.enricher, self.drawer, lambda: (self._generation, *self._visible(), self.site)
        )
        # Rows shown by series in the browser: the dots' drawing order follows them (transfer.py).
        self._series_counts: dict[str, int] = {}
        self._connect()
        self.live = LiveFollow(
            doc,
            web.refresh_interval_ms,
            read_scans=lambda feed: self.scan_watch.changed(*self.view_bounds(), feed.site),
            current=lambda: (self._generation, self.feed),
            apply=self._on_poll,
            is_today=lambda feed: feed.date == today_in(self.zone),
            midnight=lambda: self.show(today_in(self.zone), self.site),
        )
        self.download = CsvDownload(doc, store, self.controls, self._export_view, self._tell, self.enricher)
        layout.arrange(
            doc,
            self.controls.navigation(),
            row(self.controls.filter_row(), self.drawer.button, self.summary, self.notice),
            plot=self.plot,
            drawer=self.drawer.layout,
        )
        # Nothing on screen refers to the CSV carrier or the packed dots: as roots they reach the browser.
        doc.add_root(self.controls.csv)
        doc.add_root(self.transfer.packed)
        doc.add_root(self.history.address)
        doc.add_root(self.history.returned)
        navigation.attach(doc, self.controls, self.plot, self.history.returned)

    def _connect(self) -> None:
        """The server side of the controls: each change shows another view."""
        c = self.controls
        self.source.selected.on_change("indices", self.pick.on_tap)
        self.plot.x_range.on_change("start", self._on_zoom)
        self.plot.x_range.on_change("end", self._on_zoom)
        for rng in (self.plot.x_range, self.plot.y_range):
            for attr in ("start", "end"):
                rng.on_change(attr, self._address_later)
        self.scans.selected.on_change("indices", self._address_later)
        c.prev_button.on_click(lambda: self.show(shift_day(self.date, -self.days), self.site))
        c.today_button.on_click(lambda: self.show(today_in(self.zone), self.site))
        c.next_button.on_click(lambda: self.show(shift_day(self.date, self.days), self.site))
        c.picker.on_change("value", self._on_pick)
        c.span_select.on_change("value", self._on_span)
        c.site_select.on_change("value", self._on_site)
        c.zone_select.on_change("value", self._on_zone)
        for widget in c.filter_widgets:
            widget.on_change("value", self._on_filter)

    # ---- switching day, span, site or filters -----------------------------------

    def open(self, request: PageRequest) -> None:
        """Show everything ``request`` (an address) asks for: view, filters, zoom, source panel, scan."""
        self._replacing, self._quiet = True, True
        try:
            self._set_zone(request.zone)
            self.notice.visible = False
            if request.notices:
                self._tell(" ".join(request.notices))
            self.days = request.days
            self.controls.offer_span(request.days)
            self.controls.show_filters(request.filters)
            self.filters = self.controls.check_filters() or Filters()
            self._pending = request
            self.pick.close()
            self.scans.selected.indices = []
            self.show(request.date, request.site)
        finally:
            self._quiet = False

    def _on_return(self, search: str) -> None:
        """The browser went Back or Forward to the entry ``search``: show it as a link would."""
        request = PageRequest.parse(arguments_of(search), self.date, [self.dataset, datasets.MAIN])
        request.check_site(self.sites)
        self.history.returned_to(search)
        self.open(request)

    # ---- the address -------------------------------------------------------------

    def _address_later(self, _attr: str, _old: Any, _new: Any) -> None:
        # A zoom or pan is one history entry once it settles, not one per wheel step.
        if self._quiet:
            return
        if self._address_callback is not None:
            with contextlib.suppress(ValueError):
                self.doc.remove_timeout_callback(self._address_callback)
        self._address_callback = self.doc.add_timeout_callback(self._write_address, ZOOM_SETTLE_MS)

    def _write_address(self) -> None:
        self._address_callback = None
        start, end = (epoch_ms(t) for t in self.view_bounds())
        x0, x1 = self.plot.x_range.start, self.plot.x_range.end
        y0, y1 = self.plot.y_range.start, self.plot.y_range.end
        x_zoomed = abs(x0 - start) >= 1 or abs(x1 - end) >= 1
        y_zoomed = (y0, y1) != style.Y_RANGE
        picked = self.scans.selected.indices
        scan_ids = self.scans.data.get("scan_id", [])
        search = query(
            date=self.date,
            days=self.days,
            zone=self.zone_name,
            dataset=self.dataset,
            site=self.site,
            filters=self.filters.texts(),
            x=(x0, x1) if x_zoomed else None,
            y=(y0, y1) if y_zoomed else None,
            src=self.pick.shown,
            scan=str(scan_ids[picked[0]]) if picked and picked[0] < len(scan_ids) else None,
        )
        self.history.write(search, push=not self._replacing)

    def _show_pending(self) -> None:
        """After an address's view loaded: its zoom, selected scan and source panel."""
        request, self._pending = self._pending, None
        if request is not None:
            if request.scan is not None:
                ids = [str(i) for i in self.scans.data.get("scan_id", [])]
                if request.scan in ids:
                    self.scans.selected.indices = [ids.index(request.scan)]
            if request.x is not None:
                self.plot.x_range.update(start=request.x[0], end=request.x[1])
            if request.y is not None:
                self.plot.y_range.update(start=request.y[0], end=request.y[1])
            if request.src is not None:
                self.pick.open(request.src)
        self._write_address()
        self._replacing = False

    def view_bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """The shown span: the ``days`` days ending with ``date``, midnight to midnight in the zone."""
        first = shift_day(self.date, 1 - self.days)
        return day_bounds(first, self.zone)[0], day_bounds(self.date, self.zone)[1]

    def _set_zone(self, name: str) -> None:
        zone = parse_zone(name)
        if zone is None:
            return
        self.zone_name, self.zone = name, zone
        self.controls.offer_zone(name)
        self.controls.zone_select.value = name
        tooltip.set_zone(self.hover, name)
        self.tick_time.args = {"zone": name}
        self.plot.xaxis.axis_label = f"time ({name})"

    def _on_zone(self, _attr: str, _old: Any, new: Any) -> None:
        if not self._quiet and new != self.zone_name:
            self._set_zone(str(new))
            self.show(self.date, self.site)

    def show(self, date: dt.date, site: str | None) -> None:
        """Switch the page to a day (or span ending that day) and site, in place; data follows."""
        self._generation += 1
        self.live.stop()
        self.date, self.site, self.feed = date, site, None
        start, end = self.view_bounds()
        first = shift_day(date, 1 - self.days)
        shown = date.isoformat() if self.days == 1 else f"{first.isoformat()} \u2026 {date.isoformat()}"
        title = f"fireplot \u2014 {shown}" + (f" \u2014 {site}" if site else "")
        if self.filters:
            # An export says what it leaves out, in its title and its file name.
            title += f" \u2014 {self.filters.describe()}"
        self.doc.title = title
        self.plot.title.text = title
        # Named like the CSV, so a folder of exports sorts by day; without a name Bokeh would prompt.
        self.save_tool.filename = f"fireplot-{self._file_part(site)}-{first.isoformat()}-{self.days}d"
        self.save_tool.filename += f"-{self.filters.slug()}" if self.filters else ""
        self.controls.picker.value = date
        self.controls.span_select.value = str(self.days)
        self.controls.site_select.value = site or ALL_SITES
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        self.plot.x_range.update(start=start_ms, end=end_ms, reset_start=start_ms, reset_end=end_ms)
        self.summary.text = "loading\u2026"
        layout.plot_note(self.plot, "", start_ms)
        feed: Feed
        if self.days == 1:
            feed = DayFeed(self.store, date, site, self.web.max_points, self.filters, self.zone)
        else:
            feed = RangeFeed(self.store, start, end, site, self.web.max_points, self.filters)
        self._start_load(feed, start, end)
        self._write_address()

    def _file_part(self, site: str | None) -> str:
        return file_safe(site or "all") or "site"

    def _start_load(self, feed: Feed, start: dt.datetime, end: dt.datetime) -> None:
        load = without_document_lock(partial(self._load, self._generation, feed, start, end))
        self.doc.add_next_tick_callback(load)  # type: ignore[arg-type]  # Bokeh awaits coroutines

    def _on_pick(self, _attr: str, _old: Any, new: Any) -> None:
        date = new if isinstance(new, dt.date) else parse_day(str(new))
        if not self._quiet and date is not None and date != self.date:
            self.show(date, self.site)

    def _on_span(self, _attr: str, _old: Any, new: Any) -> None:
        days = int(new)
        if not self._quiet and days != self.days:
            self.days = days
            self.show(self.date, self.site)

    def _on_site(self, _attr: str, _old: Any, new: Any) -> None:
        site = new or None
        if not self._quiet and site != self.site:
            self.show(self.date, site)

    def _on_filter(self, _attr: str, _old: Any, _new: Any) -> None:
        if self._quiet:
            return
        # A box that cannot be understood is marked and its reason shown; the view keeps the
        # filters it had until the text is corrected (the summary still says "(filtered)").
        filters = self.controls.check_filters()
        if filters is None:
            return
        if filters != self.filters:
            self.filters = filters
            self.show(self.date, self.site)

    def _tell(self, text: str) -> None:
        self.notice.text = text
        self.notice.visible = True

    def _on_zoom(self, _attr: str, _old: Any, _new: Any) -> None:
        # Views holding every event already (a raw day) need nothing on zoom; the
        # others are read again once the zoom settles, not at every wheel step.
        feed = self.feed
        if feed is None or not (isinstance(feed, RangeFeed) or feed.aggregated):
            return
        if self._zoom_callback is not None:
            with contextlib.suppress(ValueError):
                self.doc.remove_timeout_callback(self._zoom_callback)
        self._zoom_callback = self.doc.add_timeout_callback(self._zoomed, ZOOM_SETTLE_MS)

    def _zoomed(self) -> None:
        """Read the zoomed window: raw dots when they fit max_points, else finer bins."""
        self._zoom_callback = None
        feed = self.feed
        if feed is None:
            return
        view_start, view_end = self.view_bounds()
        start, end = self._visible()
        if abs(epoch_ms(start) - epoch_ms(feed.start)) < 1 and abs(epoch_ms(end) - epoch_ms(feed.end)) < 1:
            return
        if self.days == 1 and (start, end) == (view_start, view_end):
            # Zoomed back out to the whole day: the day's own feed, live again if today.
            self.show(self.date, self.site)
            return
        self._generation += 1
        self.live.stop()
        self.summary.text = "loading\u2026"
        zoomed = RangeFeed(self.store, start, end, self.site, self.web.max_points, self.filters)
        self._start_load(zoomed, start, end)

    def _visible(self) -> tuple[dt.datetime, dt.datetime]:
        """The time range on screen, within the shown span."""
        view_start, view_end = self.view_bounds()
        x0, x1 = self.plot.x_range.start, self.plot.x_range.end
        start = max(view_start, from_epoch_ms(min(x0, x1)))
        end = min(view_end, from_epoch_ms(max(x0, x1)))
        return (start, end) if start < end else (view_start, view_end)

    def _export_view(
        self,
    ) -> tuple[dt.datetime, dt.datetime, float, float, str | None, Filters, str]:
        """What a CSV export takes: the visible time and ports, the site and filters."""
        start, end = self._visible()
        y0, y1 = sorted((self.plot.y_range.start, self.plot.y_range.end))
        return start, end, y0, y1, self.site, self.filters, self._file_part(self.site)

    # ---- loading and live updates ------------------------------------------

    async def _load(self, generation: int, feed: Feed, start: dt.datetime, end: dt.datetime) -> None:
        # Without the document's lock while the read runs, so a new page's document is sent
        # meanwhile (it waited for the read, and the browser built its views after it, not during
        # it). What was read is shown under the lock, unless the operator moved on (_loaded).
        def read() -> tuple[Frame, dict[str, Any], drill.ScanStamp]:
            frame = feed.load()
            stamp, scans = self.scan_watch.read(start, end, feed.site)
            return frame, scans, stamp

        try:
            frame, scans, stamp = await asyncio.get_running_loop().run_in_executor(None, read)
        except Exception:
            log.exception("reading %s .. %s from the store failed", start, end)
            self.doc.add_next_tick_callback(partial(self._load_failed, generation))
            return
        self.doc.add_next_tick_callback(partial(self._loaded, generation, feed, frame, scans, stamp))

    def _load_failed(self, generation: int) -> None:
        if generation == self._generation:
            self.summary.text = "could not read the store (details in the server log)"

    def _loaded(
        self, generation: int, feed: Feed, frame: Frame, scans: dict[str, Any], stamp: drill.ScanStamp
    ) -> None:
        if generation != self._generation:
            return
        self.feed = feed
        self.scans.data = scans
        self.scan_watch.stamp = stamp
        self._apply(frame, feed)
        if self._pending is not None or self._replacing:
            self._show_pending()
        if isinstance(feed, DayFeed) and feed.date == today_in(self.zone):
            self.live.schedule(self._generation)

    def _on_poll(self, frame: Frame | None, scans: Any | None, feed: DayFeed) -> None:
        """What a live poll found: new dots, the view's scans anew."""
        if frame is not None:
            self._apply(frame, feed)
        if scans is not None:
            self.scan_watch.stamp, self.scans.data = scans

    def _apply(self, frame: Frame, feed: Feed) -> None:
        new: dict[str, Any] = whois.dot_columns(self.enricher, frame.data)
        if frame.replace:
            self.source.selected.indices = []
            self._series_counts = {}
        for name, n in series_counts(new["series"]).items():
            self._series_counts[name] = self._series_counts.get(name, 0) + n
        start, end = self.view_bounds()
        layout.plot_note(self.plot, self._why_empty(), (epoch_ms(start) + epoch_ms(end)) / 2)
        layout.show_series(self.plot, self._series_counts)
        text = feed.summary()
        if self.filters:
            text += " (filtered)"
        self.summary.text = text
        # The dots last: the browser lays out the texts above (each change of layout repaints the
        # plot, which at 150k dots in software WebGL takes seconds) before it draws them once.
        if frame.replace:
            self.transfer.send(new)
            self.top.view_changed()
        else:
            # The dots in the browser, the new ones merged in draw order of all of them.
            self.transfer.append(new, self._series_counts)
        src_ip = self.transfer.src_ip
        self.pick.shown_ips = [src_ip] if src_ip is not None else []

    def _why_empty(self) -> str:
        """Why the plot holds no dot ("" when it holds some)."""
        if any(self._series_counts.values()):
            return ""
        if shift_day(self.date, 1 - self.days) > today_in(self.zone):
            return "this day is in the future" if self.days == 1 else "these days are in the future"
        what = "no events on this day" if self.days == 1 else "no events in these days"
        return what + " (matching the filters)" if self.filters else what
