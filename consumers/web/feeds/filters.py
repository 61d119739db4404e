"""The operator's filters (protocol, source networks, port range, action), applied to every read.

One :class:`Filters` value describes what a page is narrowed to; every feed applies it to the
table it read, events or rollup rows alike, so a filtered view is the same on a day and a range.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumers import style
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
    port_min: int | None = None
    port_max: int | None = None
    actions: tuple[str, ...] = ()
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
        unknown = [s for s in self.series if s not in style.SERIES]
        if unknown:
            raise FilterError(f"unknown protocol series: {unknown!r}")
        for bound in (self.port_min, self.port_max):
            if bound is not None and not 0 <= bound <= 65535:
                raise FilterError(f"port {bound} is outside 0..65535")
        if self.port_min is not None and self.port_max is not None and self.port_min > self.port_max:
            raise FilterError(f"port range {self.port_min}-{self.port_max} is empty")

    @classmethod
    def parse(
        cls, *, series: list[str] | None = None, networks: str = "", ports: str = "", action: str = ""
    ) -> Filters:
        """Filters from the page's inputs: comma-separated networks, ``lo-hi`` or one port, one action."""
        nets = tuple(n.strip() for n in networks.split(",") if n.strip())
        lo: int | None = None
        hi: int | None = None
        text = ports.strip()
        if text:
            parts = text.split("-", 1)
            try:
                lo = int(parts[0]) if parts[0].strip() else None
                if len(parts) == 1:
                    hi = lo
                elif parts[1].strip():
                    hi = int(parts[1])
            except ValueError:
                raise FilterError(f"not a port or port range (like 1-1024): {text!r}") from None
        actions = (action.strip().lower(),) if action.strip() else ()
        return cls(tuple(series or ()), nets, lo, hi, actions)

    @property
    def columns(self) -> list[str]:
        """Event columns :meth:`apply` needs beyond BIN_COLUMNS."""
        return ["action"] if self.actions else []

    @property
    def by_event(self) -> bool:
        """Whether these filters need each event's source or action (rollups do not keep them)."""
        return bool(self.networks or self.actions)

    def __bool__(self) -> bool:
        return bool(self.series or self.networks or self.actions) or (
            self.port_min is not None or self.port_max is not None
        )

    def apply(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` (events, or rollup rows without src_ip/action) that pass."""
        if not self or table.num_rows == 0:
            return table
        mask = pa.array(np.ones(table.num_rows, dtype=bool))
        if self.series:
            series = style.encode(table.select(["dst_port", "proto", "ip_version"])).column("series")
            mask = pc.and_(mask, pc.is_in(series, value_set=pa.array(self.series)))
        if self.port_min is not None or self.port_max is not None:
            port = table.column("dst_port")
            lo, hi = self.port_min or 0, 65535 if self.port_max is None else self.port_max
            inside = pc.and_(pc.greater_equal(port, lo), pc.less_equal(port, hi))
            # A range that starts at 0 includes the port-less lane, which is drawn below port 1.
            mask = pc.and_(mask, pc.fill_null(inside, lo == 0))
        if self.actions:
            action = pc.utf8_lower(table.column("action"))
            mask = pc.and_(mask, pc.is_in(action, value_set=pa.array(self.actions)))
        if self._nets:
            # The one CIDR matcher (pipeline.networks): columnar, once per distinct address.
            mask = pc.and_(mask, NetworkTable(self._nets).contains(table.column("src_ip")))
        return table.filter(mask)
