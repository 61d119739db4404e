"""The widgets above the plot: which day, span, site, zone and dataset; the filters; exports.

They are built and connected to the browser here (the address bar, the CSV download, the PNG
save), so that the page (:mod:`consumers.web.page`) only reacts to their values. Widgets are
named: tests and operators' scripts find them by name.
"""

from __future__ import annotations

from typing import Any, Final

from bokeh.layouts import row
from bokeh.models import ColumnDataSource, CustomJS, SaveTool
from bokeh.models.layouts import Row
from bokeh.models.widgets.buttons import Button
from bokeh.models.widgets.inputs import MultiChoice, Select, TextInput
from bokeh.models.widgets.pickers import DatePicker

from consumers import style
from consumers.web import address
from consumers.web.feeds.filters import Filters
from consumers.web.resources import script
from pipeline import datasets

ALL_SITES: Final = ""
ANY_ACTION: Final = ""
# Spans the page offers, in days; 1 is the day view (live for today), longer ones come from rollups.
SPANS: Final = (1, 7, 30, 90)
ACTIONS: Final = ("drop", "reject", "accept")
# Zones offered besides UTC and whatever ?tz= names (any IANA zone works there).
ZONES: Final = (
    "UTC",
    "Europe/London",
    "Europe/Zurich",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
)

Options = list[str | tuple[Any, str]]


class Controls:
    """The page's controls, in two rows: what to show (:meth:`navigation`) and :meth:`filter_row`."""

    def __init__(
        self, sites: list[str], dataset_names: list[str] | None, dataset: str, save_tool: SaveTool
    ) -> None:
        self.prev_button = Button(label="\u25c0 previous", name="prev-day")
        self.today_button = Button(label="today", name="today")
        self.next_button = Button(label="next \u25b6", name="next-day")
        self.picker = DatePicker(name="date-picker", width=140)
        span_options: Options = [(str(d), "day" if d == 1 else f"{d} days") for d in SPANS]
        self.span_select = Select(options=span_options, value="1", name="span", width=100)
        site_options: Options = [(ALL_SITES, "all sites"), *((s, s) for s in sites)]
        self.site_select = Select(options=site_options, value=ALL_SITES, name="site", width=160)
        zone_options: Options = [*ZONES]
        self.zone_select = Select(options=zone_options, value="UTC", name="tz", width=160)
        # Replays and rebuilds live in their own datasets (pipeline.datasets); switching
        # is a new page, since every query of the session then reads another store.
        dataset_options: Options = [*(dataset_names or [datasets.MAIN])]
        self.dataset_select = Select(
            options=dataset_options,
            value=dataset,
            name="dataset",
            width=160,
            visible=bool(dataset_names and len(dataset_names) > 1),
        )
        address.load_on_change(self.dataset_select)
        self.csv_button = Button(label="CSV of visible events", name="export-csv", width=170)
        # The server fills this source with one CSV; the browser saves it as a file.
        self.csv = ColumnDataSource(data={"csv": [""], "name": [""]}, name="csv")
        self.csv.js_on_change("data", CustomJS(code=script("download_csv")))
        self.png_button = Button(label="PNG of this view", name="export-png", width=150)
        self.png_button.js_on_click(CustomJS(args={"tool": save_tool}, code=script("save_png")))

        self.protocols = MultiChoice(
            options=list(style.SERIES), value=[], name="protocols", placeholder="all protocols", width=260
        )
        self.networks = TextInput(
            value="", name="networks", placeholder="source address or CIDR, …", width=240
        )
        self.ports = TextInput(value="", name="ports", placeholder="ports, e.g. 1-1024", width=130)
        action_options: Options = [(ANY_ACTION, "any action"), *((a, a) for a in ACTIONS)]
        self.action = Select(options=action_options, value=ANY_ACTION, name="action", width=110)

        address.keep_in_address(self.zone_select, "tz", "UTC")
        address.keep_in_address(self.picker, "date", "")
        address.keep_in_address(self.span_select, "days", "1")
        address.keep_in_address(self.site_select, "site", "")

    @property
    def filter_widgets(self) -> tuple[Any, ...]:
        return (self.protocols, self.networks, self.ports, self.action)

    def filters(self) -> Filters:
        """The filters as typed; raises FilterError saying what cannot be understood."""
        return Filters.parse(
            series=list(self.protocols.value),
            networks=self.networks.value,
            ports=self.ports.value,
            action=self.action.value,
        )

    def offer_span(self, days: int) -> None:
        """Add ``days`` to the span choices if it is not one of them (a ``?days=`` of the address)."""
        if str(days) not in {str(d) for d in SPANS}:
            self.span_select.options = [*self.span_select.options, (str(days), f"{days} days")]

    def offer_zone(self, name: str) -> None:
        """Add ``name`` to the zone choices if it is not one of them (a ``?tz=`` of the address)."""
        if name not in self.zone_select.options:
            self.zone_select.options = [*self.zone_select.options, name]

    def navigation(self) -> Row:
        return row(
            self.prev_button,
            self.today_button,
            self.next_button,
            self.picker,
            self.span_select,
            self.site_select,
            self.zone_select,
            self.dataset_select,
            self.csv_button,
            self.png_button,
        )

    def filter_row(self) -> Row:
        return row(*self.filter_widgets)
