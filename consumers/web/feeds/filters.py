"""The operator's filters (protocol, source networks, ports, action, who), applied to every read.

One :class:`Filters` value describes what a page is narrowed to; every feed applies it to the
table it read, events or rollup rows alike, so a filtered view is the same on a day and a range.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumers import style
from consumers.web.whois import WhoFilter
from pipeline.enrich import Enricher
from pipeline.networks import NetworkTable


class FilterError(ValueError):
    """A filter the operator typed that cannot be understood; the message says why."""


@dataclass(frozen=True)
class Filters:
    """What the operator narrowed the view to, applied to every read of the page.

    Empty fields filter nothing. ``networks`` are source networks (a single
    address is a /32 or /128); ``series`` are legend labels of style.SERIES.
    """

    series: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    # Inclusive (low, high) port ranges; one port is (p, p). Empty: every port.
    ports: tuple[tuple[int, int], ...] = ()
    actions: tuple[str, ...] = ()
    # Sources by ASN, country, scanner label, as typed (consumers.web.whois.WhoFilter); needs the enricher.
    who: str = ""
    enricher: Enricher | None = field(default=None, compare=False, repr=False)
    _who: WhoFilter = field(default=WhoFilter(), init=False, repr=False, compare=False)
    _nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        nets = []
        for text in self.networks:
            try:
                nets.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise FilterError(f"not an address or network: {text!r}") from None
        object.__setattr__(self, "_nets", tuple(nets))
        if self.who.strip():
            if self.enricher is None:
                raise FilterError("source ASN, country and label filters are off here")
            try:
                object.__setattr__(self, "_who", WhoFilter.parse(self.who, self.enricher))
            except ValueError as exc:
                raise FilterError(str(exc)) from None
        unknown = [s for s in self.series if s not in style.SERIES]
        if unknown:
            raise FilterError(f"unknown protocol series: {unknown!r}")
        for lo, hi in self.ports:
            for bound in (lo, hi):
                if not 0 <= bound <= 65535:
                    raise FilterError(f"port {bound} is outside 0..65535")
            if lo > hi:
                raise FilterError(f"port range {lo}-{hi} is empty")

    @classmethod
    def parse(
        cls,
        *,
        series: list[str] | None = None,
        networks: str = "",
        ports: str = "",
        action: str = "",
        who: str = "",
        enricher: Enricher | None = None,
    ) -> Filters:
        """Filters from the page's inputs: comma-separated networks, comma-separated ports and
        ``lo-hi`` ranges (``22,80,443``, ``1-1024,3389``; ``-1024`` and ``1024-`` are open), one action."""
        nets = tuple(n.strip() for n in networks.split(",") if n.strip())
        actions = (action.strip().lower(),) if action.strip() else ()
        return cls(tuple(series or ()), nets, parse_ports(ports), actions, who.strip(), enricher)

    @property
    def port_min(self) -> int | None:
        """The lowest port any range lets through (None: no port filter)."""
        return min(lo for lo, _ in self.ports) if self.ports else None

    @property
    def port_max(self) -> int | None:
        """The highest port any range lets through (None: no port filter)."""
        return max(hi for _, hi in self.ports) if self.ports else None

    def texts(self) -> dict[str, str]:
        """The filters as the page's inputs (and the address) write them, empty ones left out."""
        out = {
            "proto": ",".join(self.series),
            "net": ",".join(self.networks),
            "ports": ports_text(self.ports),
            "action": ",".join(self.actions),
            "who": self.who,
        }
        return {k: v for k, v in out.items() if v}

    def describe(self) -> str:
        """The filters for a title, like ``ports 1-1024, TCP/IPv4, from 10.0.0.0/8``; "" when none."""
        parts = []
        if self.ports:
            parts.append(f"ports {ports_text(self.ports)}")
        parts.extend(self.series)
        if self.networks:
            parts.append("from " + ", ".join(self.networks))
        if self.actions:
            parts.append("action " + ", ".join(self.actions))
        if self.who:
            parts.append("sources " + self.who)
        return ", ".join(parts)

    def slug(self, limit: int = 80) -> str:
        """The filters for a file name: ``ports-1-1024-tcp-ipv4``; only ``[a-z0-9.-]`` whatever was typed."""
        parts = []
        if self.ports:
            parts.append("ports-" + ports_text(self.ports))
        parts.extend(self.series)
        parts.extend(f"from-{n}" for n in self.networks)
        parts.extend(f"action-{a}" for a in self.actions)
        if self.who:
            parts.append("who-" + self.who)
        return file_safe("-".join(parts), limit)

    @property
    def columns(self) -> list[str]:
        """Event columns :meth:`apply` needs beyond BIN_COLUMNS."""
        return ["action"] if self.actions else []

    @property
    def by_event(self) -> bool:
        """Whether these filters need each event's source or action (rollups do not keep them)."""
        return bool(self.networks or self.actions or self.who)

    def __bool__(self) -> bool:
        return bool(self.series or self.networks or self.actions or self.ports or self.who)

    def apply(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` (events, or rollup rows without src_ip/action) that pass."""
        if not self or table.num_rows == 0:
            return table
        mask = pa.array(np.ones(table.num_rows, dtype=bool))
        if self.series:
            series = style.encode(table.select(["dst_port", "proto", "ip_version"])).column("series")
            mask = pc.and_(mask, pc.is_in(series, value_set=pa.array(self.series)))
        if self.ports:
            port = table.column("dst_port")
            inside = pa.array(np.zeros(table.num_rows, dtype=bool))
            for lo, hi in self.ports:
                within = pc.and_(pc.greater_equal(port, lo), pc.less_equal(port, hi))
                # A range that starts at 0 includes the port-less lane, which is drawn below port 1.
                inside = pc.or_(inside, pc.fill_null(within, lo == 0))
            mask = pc.and_(mask, inside)
        if self.actions:
            action = pc.utf8_lower(table.column("action"))
            mask = pc.and_(mask, pc.is_in(action, value_set=pa.array(self.actions)))
        if self._nets:
            # The one CIDR matcher (pipeline.networks): columnar, once per distinct address.
            mask = pc.and_(mask, NetworkTable(self._nets).contains(table.column("src_ip")))
        if self._who and self.enricher is not None:
            mask = pc.and_(mask, self._who.mask(self.enricher, table.column("src_ip")))
        return table.filter(mask)


def parse_ports(text: str) -> tuple[tuple[int, int], ...]:
    """``22,80,443`` or ``1-1024,3389`` as inclusive ranges; raises FilterError naming the bad part."""
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            lo = int(low) if low.strip() else 0
            hi = (int(high) if high.strip() else 65535) if dash else lo
        except ValueError:
            raise FilterError(
                f"not a port, range or list (like 22,80,443 or 1-1024,3389): {part!r}"
            ) from None
        ranges.append((lo, hi))
    return tuple(ranges)


def ports_text(ranges: tuple[tuple[int, int], ...]) -> str:
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


def file_safe(text: str, limit: int = 80) -> str:
    """``text`` reduced to ``[a-z0-9.-]`` (runs of anything else become one ``-``), at most ``limit`` long.

    Filters hold what an operator typed or a link carried (and that may be an attacker's text):
    no path separator, control character or shell-significant character reaches a file name.
    """
    safe = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return safe[:limit].rstrip("-.")
