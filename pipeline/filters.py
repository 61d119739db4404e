"""Edge filtering, as the original fireplot script did it — but counted, never silent.

Three rules, each switchable in ``[shipper]``:
- sources inside ``exclude_networks`` are ours, not attackers;
- late TCP packets of connections the firewall already forgot (ACK+FIN, RST)
  are conntrack noise, not probes (psad ignores them too);
- destination port 0 is malformed or fingerprinting noise and cannot be drawn
  on a log axis.
The rules run on whole columns; networks are matched by
:class:`pipeline.networks.NetworkTable`, the one place addresses meet CIDRs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import ShipperConfig
from pipeline.networks import NetworkTable

DROP_INSIDE = "inside_network"
DROP_LATE_TCP = "late_tcp"
DROP_PORT_ZERO = "dst_port_zero"
REASONS = (DROP_INSIDE, DROP_LATE_TCP, DROP_PORT_ZERO)


@dataclass(frozen=True)
class FilterResult:
    kept: pa.Table
    dropped: dict[str, int]


class EdgeFilter:
    def __init__(self, cfg: ShipperConfig) -> None:
        self.networks = NetworkTable.from_cidrs(cfg.exclude_networks)
        self.drop_late_tcp = cfg.drop_late_tcp
        self.drop_port_zero = cfg.drop_port_zero

    def _inside(self, src: pa.ChunkedArray) -> pa.ChunkedArray | None:
        if not self.networks:
            return None
        return pa.chunked_array([self.networks.contains(src)])

    def __call__(self, table: pa.Table) -> FilterResult:
        dropped = dict.fromkeys(REASONS, 0)
        if table.num_rows == 0:
            return FilterResult(table, dropped)
        masks: list[tuple[str, pa.Array | pa.ChunkedArray]] = []
        inside = self._inside(table.column("src_ip"))
        if inside is not None:
            masks.append((DROP_INSIDE, inside))
        if self.drop_late_tcp:
            late = pc.and_(pc.equal(table.column("proto"), "TCP"), _late_flags(table.column("tcp_flags")))
            masks.append((DROP_LATE_TCP, late))
        if self.drop_port_zero:
            masks.append((DROP_PORT_ZERO, pc.fill_null(pc.equal(table.column("dst_port"), 0), False)))
        drop: pa.Array | pa.ChunkedArray | None = None
        for reason, mask in masks:
            # Each event is counted under the first rule that drops it.
            new = mask if drop is None else pc.and_(mask, pc.invert(drop))
            dropped[reason] = pc.sum(new).as_py() or 0
            drop = mask if drop is None else pc.or_(drop, mask)
        if drop is None or not any(dropped.values()):
            return FilterResult(table, dropped)
        return FilterResult(table.filter(pc.invert(drop)), dropped)


def _late_flags(flags: pa.ChunkedArray) -> pa.ChunkedArray:
    """Whether each packet's flags are a closed connection's leftovers: RST, or ACK with FIN.

    A batch holds a handful of distinct flag strings, so the word matches run
    on those and the answer is spread back by dictionary index.
    """
    coded = pc.dictionary_encode(flags.combine_chunks() if isinstance(flags, pa.ChunkedArray) else flags)
    words = pc.fill_null(coded.dictionary, "")
    late = pc.or_(
        pc.match_substring_regex(words, r"\bRST\b"),
        pc.and_(pc.match_substring_regex(words, r"\bACK\b"), pc.match_substring_regex(words, r"\bFIN\b")),
    )
    # A null flag field (no flags logged) is not late; dictionary_encode leaves it a null index.
    return pa.chunked_array([pc.fill_null(pc.take(late, coded.indices), False)])
