"""The widgets above the plot: which day, span, site, zone and dataset; the filters; exports.

They are built and connected to the browser here (the address bar, the CSV download, the PNG
save), so that the page (:mod:`consumers.web.page`) only reacts to their values. Widgets are
named: tests and operators' scripts find them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bokeh.layouts import row
from bokeh.models import ColumnDataSource, CustomJS, SaveTool
from bokeh.models.css import InlineStyleSheet
from bokeh.models.layouts import Row
from bokeh.models.widgets.buttons import Button
from bokeh.models.widgets.inputs import MultiChoice, Select, TextInput
from bokeh.models.widgets.markups import Div
from bokeh.models.widgets.pickers import DatePicker

from consumers import style
from consumers.web import address
from consumers.web.feeds.filters import FilterError, Filters, parse_ports
from consumers.web.resources import script
from pipeline import datasets
from pipeline.enrich import Enricher

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

# Readable on the page's black (contrast 5.6:1), the colour of a refused filter.
INVALID_COLOUR: Final = "#ff6b6b"
# Accessible names of the controls (screen readers; the keyboard's "/" focuses "networks").
LABELS: Final = {
    "prev-day": "previous day (Left arrow)",
    "today": "today",
    "next-day": "next day (Right arrow)",
    "date-picker": "day",
    "span": "span",
    "site": "site",
    "tz": "time zone",
    "dataset": "dataset",
    "export-csv": "CSV of the visible events",
    "export-png": "PNG of this view",
    "protocols": "protocol filter",
    "networks": "source address filter (/)",
    "ports": "destination port filter",
    "action": "action filter",
    "who": "source ASN, country or scanner label filter",
    # Focusable parts of the plots and tables (keyboard scrolling of a table, the plot's tools).
    "day-plot": "plot of blocked packets: time across, destination port up",
    "scans-table": "detected scans",
    "site-health-table": "site health",
    "source-timeline-plot": "the source's events over time",
    "source-ports-table": "the source's ports",
    "source-scans-table": "the source's scans",
    "source-events-table": "the source's newest events",
}

Options = list[str | tuple[Any, str]]


class Controls:
    """The page's controls, in two rows: what to show (:meth:`navigation`) and :meth:`filter_row`."""

    def __init__(
        self,
        sites: list[str],
        dataset_names: list[str] | None,
        dataset: str,
        save_tool: SaveTool,
        enricher: Enricher | None = None,
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
        self.ports = TextInput(value="", name="ports", placeholder="ports, e.g. 1-1024", width=150)
        # Sources by ASN, country, scanner label ([enrich]); the placeholder says when they are off (the
        # drawer says why: no [enrich] databases); a longer text is cut at this width.
        self.enricher = enricher
        on = enricher is not None and (enricher.has_geo or enricher.has_scanners)
        self.who = TextInput(
            value="",
            name="who",
            placeholder="AS64500, DE, scanner, !label" if on else "ASN/country: off",
            width=200,
        )
        action_options: Options = [(ANY_ACTION, "any action"), *((a, a) for a in ACTIONS)]
        self.action = Select(options=action_options, value=ANY_ACTION, name="action", width=110)

        # What a filter box cannot understand, beside the boxes; the box itself is marked invalid.
        self.filter_error = Div(
            name="filter-error", render_as_text=True, disable_math=True, visible=False,
            styles={"color": INVALID_COLOUR, "font-weight": "bold"},
        )  # fmt: skip
        invalid = InlineStyleSheet(css=f":host(.invalid) input {{ border: 2px solid {INVALID_COLOUR}; }}")
        mark = CustomJS(code=script("mark_invalid"))
        for widget in (self.networks, self.ports, self.who):
            # Set here, the list replaces the theme's: the dark widget sheet must be named too.
            widget.stylesheets = [style.WIDGET_CSS, invalid]
            widget.js_on_change("css_classes", mark)

    @property
    def filter_widgets(self) -> tuple[Any, ...]:
        return (self.protocols, self.networks, self.ports, self.action, self.who)

    def filters(self) -> Filters:
        """The filters as typed; raises FilterError saying what cannot be understood."""
        return Filters.parse(
            series=list(self.protocols.value),
            networks=self.networks.value,
            ports=self.ports.value,
            action=self.action.value,
            who=self.who.value,
            enricher=self.enricher,
        )

    def check_filters(self) -> Filters | None:
        """The filters as typed, or None with each box that cannot be understood marked and the reasons shown.

        Every box is checked on its own, so a valid one is never marked for another's mistake
        and an error goes away as soon as its box is corrected.
        """
        errors = []
        checks = (
            (self.networks, _networks),
            (self.ports, parse_ports),
            (self.who, _who_filter_of(self.enricher)),
        )
        for widget, check in checks:
            try:
                check(widget.value)
            except FilterError as exc:
                errors.append(str(exc))
                widget.css_classes = ["invalid"]
            else:
                widget.css_classes = []
        try:
            filters = self.filters()
        except FilterError as exc:
            if not errors:
                errors.append(str(exc))
        self.filter_error.text = "; ".join(errors)
        self.filter_error.visible = bool(errors)
        return None if errors else filters

    def show_filters(self, texts: dict[str, str]) -> None:
        """Fill the boxes from the address's ``proto``, ``net``, ``ports`` and ``action``."""
        self.protocols.value = [p for p in texts.get("proto", "").split(",") if p]
        self.networks.value = texts.get("net", "")
        self.ports.value = texts.get("ports", "")
        self.action.value = texts.get("action", ANY_ACTION)
        self.who.value = texts.get("who", "")

    def filter_texts(self) -> dict[str, str]:
        """The boxes' contents in the address's terms."""
        return {
            "proto": ",".join(self.protocols.value),
            "net": self.networks.value.strip(),
            "ports": self.ports.value.strip(),
            "action": self.action.value,
            "who": self.who.value.strip(),
        }

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
        return row(*self.filter_widgets, self.filter_error)


def _who_filter_of(enricher: Enricher | None) -> Callable[[str], Filters]:
    return lambda text: Filters.parse(who=text, enricher=enricher)


def _networks(text: str) -> Filters:
    return Filters.parse(networks=text)
