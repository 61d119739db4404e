"""How a blocked packet looks: the plot's palette, axis and series, in one place.

Every consumer that draws events (the Bokeh app, PNG rendering) takes its
colours and port axis from here, so a dot means the same thing everywhere.
The mapping from events to dots is columnar (pyarrow compute): a busy day is
millions of rows and a Python loop per row would dominate the page load.
"""

from __future__ import annotations

import math
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

BACKGROUND: Final = "#000000"
FOREGROUND: Final = "#d0d0d0"
GRID: Final = "#262626"
MUTED: Final = "#808080"

# Ports an operator recognises at a glance; between them the log scale speaks.
PORT_TICKS: Final[tuple[int, ...]] = (
    1, 7, 22, 53, 80, 123, 161, 443, 587, 1024, 1433, 3306, 5000, 6881, 10000, 20000, 50000, 65535,
)  # fmt: skip
# Port-less packets (ICMP, ESP, fragments) get their own lane below port 1,
# because 0 has no place on a log axis and hiding them would hide real probes.
NO_PORT_Y: Final = 0.6
NO_PORT_LABEL: Final = "none"
# A little headroom each side so the dots at 65535 and in the "none" lane are
# whole, not cut in half by the frame.
Y_RANGE: Final = (0.45, 90_000.0)
Y_TICKS: Final[tuple[float, ...]] = (NO_PORT_Y, *map(float, PORT_TICKS))
Y_TICK_LABELS: Final[dict[float, str]] = {
    NO_PORT_Y: NO_PORT_LABEL,
    **{float(p): str(p) for p in PORT_TICKS},
}

DOT_SIZE: Final = 3
DOT_MARKER: Final = "square"


class Series:
    """Legend labels of the plot's series, one per protocol x IP family."""

    TCP4: Final = "TCP/IPv4"
    UDP4: Final = "UDP/IPv4"
    TCP6: Final = "TCP/IPv6"
    UDP6: Final = "UDP/IPv6"
    ICMP: Final = "ICMP"
    ICMP6: Final = "ICMPv6"
    OTHER: Final = "other"


# Insertion order is legend order: the four that carry most traffic first.
COLOURS: Final[dict[str, str]] = {
    Series.TCP4: "#00ff00",  # green
    Series.UDP4: "#b0b0ff",  # pale blue
    Series.TCP6: "#ff0000",  # red
    Series.UDP6: "#ffffff",  # white
    Series.ICMP: "#ffa500",  # orange: ICMP over IPv4
    Series.ICMP6: "#ff00ff",  # magenta: ICMPv6, and ICMP logged on an IPv6 packet
    Series.OTHER: "#ffff00",  # yellow: GRE, ESP, SCTP, numeric protocols, either family
}
SERIES: Final[tuple[str, ...]] = tuple(COLOURS)

# [web] palette: the original fireplot's colours (the default), or the Okabe-Ito set, which
# stays distinct under the common colour-vision deficiencies (and on black: Okabe-Ito's own
# black and dark blue are left out), with a marker shape per IP family so that the family
# does not rest on colour alone.
PALETTES: Final[tuple[str, ...]] = ("original", "colourblind")
COLOURBLIND: Final[dict[str, str]] = {
    Series.TCP4: "#009e73",  # bluish green
    Series.UDP4: "#56b4e9",  # sky blue
    Series.TCP6: "#e69f00",  # orange
    Series.UDP6: "#f0e442",  # yellow
    Series.ICMP: "#d55e00",  # vermillion
    Series.ICMP6: "#cc79a7",  # reddish purple
    Series.OTHER: "#ffffff",  # white
}
FAMILY_MARKERS: Final[dict[str, str]] = {
    Series.TCP4: "square",
    Series.UDP4: "square",
    Series.ICMP: "square",
    Series.TCP6: "triangle",
    Series.UDP6: "triangle",
    Series.ICMP6: "triangle",
    Series.OTHER: "diamond",
}


def colours(palette: str = "original") -> dict[str, str]:
    """Each series' colour in ``palette`` (one of PALETTES), in legend order."""
    if palette not in PALETTES:
        raise ValueError(f"unknown palette {palette!r}: one of {', '.join(PALETTES)}")
    return dict(COLOURBLIND if palette == "colourblind" else COLOURS)


def markers(palette: str = "original") -> dict[str, str]:
    """Each series' marker in ``palette``: all DOT_MARKER in the original, by family otherwise."""
    if palette == "colourblind":
        return dict(FAMILY_MARKERS)
    return dict.fromkeys(SERIES, DOT_MARKER)


def draw_order(counts: dict[str, int]) -> list[str]:
    """Series from bottom to top: the most common drawn first, the rarest last, on top.

    One rule for the page and the PNG, so the same day looks the same in both.
    Rarest on top because a firewall plot is read for the unusual: a lone
    IPv6 probe among thousands of IPv4 ones must not vanish under them. The
    cost, that a dense band is tinted by its rarer series, is answered by the
    legend, which gives every series its count. Ties keep legend order.
    """
    legend = {name: i for i, name in enumerate(SERIES)}
    return sorted(SERIES, key=lambda name: (-counts.get(name, 0), legend[name]))


# Loggers name protocols differently (netfilter "ICMPv6", pf "ipv6-icmp", some
# only the IANA number), so each series accepts every spelling we have seen.
_TCP: Final = pa.array(["TCP", "6"])
_UDP: Final = pa.array(["UDP", "17"])
_ICMP: Final = pa.array(["ICMP", "1"])
_ICMP6: Final = pa.array(["ICMPV6", "ICMP6", "IPV6-ICMP", "58"])


# Aggregated views bin ports into rows of the log axis, as a screen does: a row
# holds a single port at the low end and a few hundred near 65535. 400 rows is
# about one per pixel of a plot's height; finer would not be seen, coarser would.
PORT_ROWS: Final = 400
_LOG_TOP: Final = math.log(65536)


def port_row(ports: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The row of the log-port axis each destination port falls in (int16); no port (null, 0) stays null."""
    port = pc.cast(ports, pa.float64())
    valid = pc.fill_null(pc.greater(port, 0), False)
    safe = pc.if_else(valid, port, pa.scalar(1.0))
    row = pc.floor(pc.multiply(pc.divide(pc.ln(safe), _LOG_TOP), float(PORT_ROWS)))
    out = pc.if_else(valid, pc.cast(row, pa.int16()), pa.scalar(None, pa.int16()))
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def port_span_label(low: pa.Array | pa.ChunkedArray, high: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``"443"`` when a bin holds one port, ``"436-447"`` when several; null when it holds none."""
    lo, hi = pc.cast(low, pa.string()), pc.cast(high, pa.string())
    span = pc.binary_join_element_wise(lo, hi, "-")
    out = pc.if_else(pc.equal(low, high), lo, span)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def encode(table: pa.Table) -> pa.Table:
    """The events with ``y``, ``color`` and ``series`` columns appended.

    Needs ``dst_port``, ``proto`` and ``ip_version``. ``y`` is the destination
    port as a float, or ``NO_PORT_Y`` when the packet has none (null or 0).
    """
    if table.num_rows == 0:
        return (
            table.append_column("y", pa.array([], pa.float64()))
            .append_column("color", pa.array([], pa.string()))
            .append_column("series", pa.array([], pa.string()))
        )
    proto = pc.utf8_upper(table.column("proto").combine_chunks())
    v6 = pc.equal(table.column("ip_version").combine_chunks(), 6)
    tcp, udp = pc.is_in(proto, value_set=_TCP), pc.is_in(proto, value_set=_UDP)
    icmp6 = pc.or_(pc.is_in(proto, value_set=_ICMP6), pc.and_(pc.is_in(proto, value_set=_ICMP), v6))
    conditions = pc.make_struct(
        pc.and_(tcp, pc.invert(v6)),
        pc.and_(udp, pc.invert(v6)),
        pc.and_(tcp, v6),
        pc.and_(udp, v6),
        icmp6,
        pc.is_in(proto, value_set=_ICMP),
        field_names=["tcp4", "udp4", "tcp6", "udp6", "icmp6", "icmp"],
    )
    series = pc.case_when(
        conditions,
        *(pa.scalar(s) for s in (Series.TCP4, Series.UDP4, Series.TCP6, Series.UDP6)),
        pa.scalar(Series.ICMP6),
        pa.scalar(Series.ICMP),
        pa.scalar(Series.OTHER),
    )
    labels, colours = pa.array(SERIES), pa.array(list(COLOURS.values()))
    colour = pc.take(colours, pc.index_in(series, value_set=labels))
    port = table.column("dst_port").combine_chunks()
    has_port = pc.fill_null(pc.greater(port, 0), False)
    y = pc.if_else(has_port, pc.cast(port, pa.float64()), pa.scalar(NO_PORT_Y))
    return table.append_column("y", y).append_column("color", colour).append_column("series", series)


def theme_json() -> dict[str, Any]:
    """Bokeh theme: a black page where the dots are the only bright things."""
    text = {"text_color": FOREGROUND}
    axis = {
        "axis_line_color": MUTED,
        "major_tick_line_color": MUTED,
        "minor_tick_line_color": None,
        "major_label_text_color": FOREGROUND,
        "axis_label_text_color": FOREGROUND,
        "axis_label_text_font_style": "normal",
    }
    return {
        "attrs": {
            "Plot": {
                "background_fill_color": BACKGROUND,
                "border_fill_color": BACKGROUND,
                "outline_line_color": None,
            },
            "Title": text,
            "Axis": axis,
            "Grid": {"grid_line_color": GRID, "grid_line_alpha": 1.0},
            # Every widget (buttons, inputs, dropdowns, tables) in the plot's dark colours.
            "UIElement": {"stylesheets": [WIDGET_CSS]},
            "Legend": {
                "background_fill_color": BACKGROUND,
                "background_fill_alpha": 0.8,
                "border_line_color": MUTED,
                "label_text_color": FOREGROUND,
                "inactive_fill_color": BACKGROUND,
                "inactive_fill_alpha": 0.7,
            },
        }
    }


# Detected scans are outlined over the dots, one line style per kind, so a
# rectangle's meaning is readable without opening the table.
SCAN_STYLES: Final[dict[str, tuple[str, str]]] = {
    "vertical": ("#00ffff", "solid"),  # cyan: many ports of one target, fast
    "horizontal": ("#ff8c00", "solid"),  # dark orange: one port across many targets
    "slow": ("#00ffff", "dashed"),  # the vertical colour, dashed: the same walk, slowly
    "distributed": ("#ffd700", "dashed"),  # the coordinated colour, dashed: many sources, slowly
    "hammer": ("#ff69b4", "solid"),  # pink: one port, again and again
    "coordinated": ("#ffd700", "dotted"),  # gold: several sources sharing the work
    "cross_site": ("#ff4500", "dashdot"),  # red-orange: one source at several sites
}
SCAN_DEFAULT_STYLE: Final = ("#c0c0c0", "solid")

# Aggregated dots carry their count as opacity on a log scale: a bin with one
# event stays visible, a bin with thousands is full colour.
MIN_ALPHA: Final = 0.25


def intensity(events: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Opacity per aggregated dot from its event count, ``MIN_ALPHA`` .. 1 on a log scale."""
    if isinstance(events, pa.ChunkedArray):
        events = events.combine_chunks()
    if len(events) == 0:
        return pa.array([], pa.float64())
    logs = pc.ln(pc.add(pc.cast(events, pa.float64()), 1.0))
    top = pc.max(logs).as_py() or 1.0
    scaled = pc.multiply(pc.divide(logs, top), 1.0 - MIN_ALPHA)
    out: pa.Array = pc.add(scaled, MIN_ALPHA)
    return out


# Tables beside the plot keep its black ground; SlickGrid's own sheet is white.
TABLE_CSS: Final = f"""
.slick-header-column, .slick-cell {{ background: {BACKGROUND}; color: {FOREGROUND}; border-color: {GRID}; }}
.slick-row.odd .slick-cell {{ background: #0c0c0c; }}
.slick-row.selected .slick-cell, .slick-cell.selected {{ background: #303030; color: #ffffff; }}
.slick-viewport, .slick-header, .slick-pane {{ background: {BACKGROUND}; }}
"""

# Bokeh's widgets take their colours from CSS variables on each widget's :host; these are the
# dark values. Text stays at least 4.5:1 against its ground (WCAG AA): #e6e6e6 on #141414 is
# about 14:1, the muted #a6a6a6 (placeholders, disabled) about 7:1.
WIDGET_BACKGROUND: Final = "#141414"
WIDGET_TEXT: Final = "#e6e6e6"
WIDGET_MUTED: Final = "#a6a6a6"
WIDGET_CSS: Final = f"""
:host {{
  --color: {WIDGET_TEXT}; --background-color: {WIDGET_BACKGROUND}; --hover-color: #262626;
  --disabled-color: {WIDGET_MUTED}; --border-color: #5a5a5a; --divider-color: #3a3a3a;
  --shortcut-color: {WIDGET_MUTED}; --inactive-bg: #262626; --inactive-fg: {WIDGET_MUTED};
  --active-bg: #1f4466; --active-border: #65a2cb; --active-fg: #ffffff;
  --default: {WIDGET_BACKGROUND}; --default-border: #5a5a5a; --default-hover: #262626;
  --default-hover-border: #808080; --default-active: #1f4466; --default-active-border: #65a2cb;
  --default-disabled: #262626; --default-disabled-border: #5a5a5a;
  --tooltip-color: {WIDGET_BACKGROUND}; --tooltip-text: {WIDGET_TEXT}; --tooltip-border: #5a5a5a;
  color: {WIDGET_TEXT};
}}
.bk-input, select, option, input, .choices__inner, .choices__list, .choices__input,
.choices__list--dropdown .choices__item, .choices__list--dropdown, .flatpickr-input {{
  color: {WIDGET_TEXT}; background-color: {WIDGET_BACKGROUND};
}}
.choices__list--dropdown .choices__item--selectable.is-highlighted {{ background-color: #262626; }}
.choices__list--multiple .choices__item {{
  color: #ffffff; background-color: #1f4466; border-color: #65a2cb;
}}
::placeholder {{ color: {WIDGET_MUTED}; opacity: 1; }}
.bk-btn, .bk-btn-default {{ color: {WIDGET_TEXT}; }}
.bk-btn-default.bk-active {{ color: #ffffff; }}
label {{ color: {WIDGET_TEXT}; }}
"""
