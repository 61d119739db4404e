"""Named networks and columnar CIDR matching: the one place addresses meet CIDRs.

The shipper's edge filter (``[shipper] exclude_networks``) and read-time
enrichment (``[enrich] networks`` labels) both ask "which configured network
holds this address?" of whole columns, so both use :class:`NetworkTable`.

Matching works on the distinct addresses of a column (a busy day has millions
of rows but far fewer sources): IPv4 and IPv6 text becomes integers with
pyarrow compute and numpy (only embedded-IPv4 spellings such as
``::ffff:192.0.2.1`` go through ``ipaddress``, once per distinct value);
every network is then one numpy comparison over all of them.
Earlier networks win when several hold an address, so an operator can list a
small DMZ before the site's whole range.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.parsers.address import IPV4

__all__ = ["LABEL", "NetworkTable", "parse_ipv6", "parse_named"]

# Labels end up in hover text and exports: keep them to a plain, inert alphabet.
LABEL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_U64: Final = (1 << 64) - 1


def parse_named(entries: Iterable[str]) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """``"label=cidr"`` strings as (label, network); ValueError naming the bad entry.

    A label may repeat: that is how one name covers several ranges
    (``"office=192.0.2.0/24", "office=2001:db8::/48"``). Host bits set in a CIDR
    are an error, not silently cleared: ``10.1.2.3/8`` is usually a typo.
    """
    out = []
    for entry in entries:
        label, sep, cidr = entry.partition("=")
        label, cidr = label.strip(), cidr.strip()
        if not sep or not LABEL.fullmatch(label):
            raise ValueError(f"{entry!r}: expected label=cidr with a label of letters, digits, '_', '.', '-'")
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ValueError(f"{entry!r}: {exc}") from None
        out.append((label, net))
    return out


@dataclass(frozen=True)
class _Family:
    """The networks of one IP family as numpy arrays, in configured order."""

    index: npt.NDArray[np.int32]  # position in the table
    net_hi: npt.NDArray[np.uint64]
    net_lo: npt.NDArray[np.uint64]
    mask_hi: npt.NDArray[np.uint64]
    mask_lo: npt.NDArray[np.uint64]


def _family(nets: Sequence[tuple[int, ipaddress.IPv4Network | ipaddress.IPv6Network]]) -> _Family:
    def split(values: list[int]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        return (
            np.array([v >> 64 for v in values], np.uint64),
            np.array([v & _U64 for v in values], np.uint64),
        )

    net_hi, net_lo = split([int(n.network_address) for _, n in nets])
    mask_hi, mask_lo = split([int(n.netmask) for _, n in nets])
    return _Family(np.array([i for i, _ in nets], np.int32), net_hi, net_lo, mask_hi, mask_lo)


class NetworkTable:
    """An ordered list of networks; :meth:`match` finds each address's first one."""

    def __init__(self, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self.networks = list(networks)
        numbered = list(enumerate(self.networks))
        self._v4 = _family([(i, n) for i, n in numbered if n.version == 4])
        self._v6 = _family([(i, n) for i, n in numbered if n.version == 6])

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> NetworkTable:
        """Networks from CIDR text; host bits are cleared (``[shipper] exclude_networks`` semantics)."""
        return cls([ipaddress.ip_network(c, strict=False) for c in cidrs])

    def __len__(self) -> int:
        return len(self.networks)

    def match(self, addresses: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Per address, the index of the first network holding it; null if none (or not an address)."""
        if isinstance(addresses, pa.ChunkedArray):
            addresses = addresses.combine_chunks()
        if not self.networks or len(addresses) == 0:
            return pa.nulls(len(addresses), pa.int32())
        encoded = pc.dictionary_encode(addresses)
        distinct = encoded.dictionary
        hit = np.full(len(distinct), -1, np.int32)
        is_v4 = pc.fill_null(pc.match_substring_regex(distinct, f"^{IPV4}$"), False)
        v4_rows = np.flatnonzero(is_v4.to_numpy(zero_copy_only=False))
        if len(v4_rows) and len(self._v4.index):
            octets = pc.cast(pc.list_flatten(pc.split_pattern(distinct.take(v4_rows), ".")), pa.uint64())
            quads = octets.to_numpy().reshape(-1, 4)
            value = (quads[:, 0] << 24) | (quads[:, 1] << 16) | (quads[:, 2] << 8) | quads[:, 3]
            self._first(hit, v4_rows, np.zeros_like(value), value, self._v4)
        if len(self._v6.index):
            maybe_v6 = pc.fill_null(pc.match_substring(distinct, ":"), False)
            v6_rows = np.flatnonzero(maybe_v6.to_numpy(zero_copy_only=False))
            text = distinct.take(v6_rows)
            hi, lo, ok = parse_ipv6(text)
            self._first(hit, v6_rows[ok], hi[ok], lo[ok], self._v6)
            # Embedded IPv4 (::ffff:192.0.2.1) is left to ipaddress: rare, and one call per distinct value.
            dotted = ~ok & pc.fill_null(pc.match_substring(text, "."), False).to_numpy(zero_copy_only=False)
            values = [_v6_int(a) for a in text.filter(pa.array(dotted)).to_pylist()]
            known = np.array([v is not None for v in values], bool)
            ints = [v for v in values if v is not None]
            self._first(
                hit,
                v6_rows[dotted][known],
                np.array([v >> 64 for v in ints], np.uint64),
                np.array([v & _U64 for v in ints], np.uint64),
                self._v6,
            )
        per_distinct = pa.array(hit, pa.int32(), mask=hit < 0)
        return per_distinct.take(encoded.indices)

    def contains(self, addresses: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Per address, whether any network holds it (false for nulls and non-addresses)."""
        return pc.is_valid(self.match(addresses))

    @staticmethod
    def _first(
        hit: npt.NDArray[np.int32],
        rows: npt.NDArray[np.intp],
        hi: npt.NDArray[np.uint64],
        lo: npt.NDArray[np.uint64],
        family: _Family,
    ) -> None:
        # Walked backwards so that the earliest configured network is written last and wins.
        for k in range(len(family.index) - 1, -1, -1):
            inside = ((hi & family.mask_hi[k]) == family.net_hi[k]) & (
                (lo & family.mask_lo[k]) == family.net_lo[k]
            )
            hit[rows[inside]] = family.index[k]


_NIBBLE: Final = np.full(256, 0, np.uint64)
_NIBBLE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint64)


def parse_ipv6(
    text: pa.Array,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """IPv6 text as 64-bit halves (hi, lo) and a mask of what parsed, column by column.

    Any spelling of plain hex groups parses (compressed or not, any case);
    embedded IPv4 and anything ``ipaddress`` would refuse come back not ok.
    The "::" splits each address into groups counted from the left and from
    the right; every group, padded to four hex digits, is read with a nibble
    table over the string buffer, and placed in an (n, 8) matrix.
    """
    n = len(text)
    lower = pc.utf8_lower(text)
    ok = pc.fill_null(pc.match_substring_regex(lower, r"^[0-9a-f:]+$"), False)
    halves = pc.list_value_length(pc.split_pattern(lower, "::"))
    compressed = pc.fill_null(pc.equal(halves, 2), False)
    ok = pc.fill_null(pc.and_(ok, pc.less_equal(halves, 2)), False)
    # No "::": all groups are on the left. Padding makes a right half exist where there is none.
    padded = pc.if_else(compressed, lower, pc.if_else(ok, pc.binary_join_element_wise(lower, "::", ""), "::"))
    parts = pc.split_pattern(padded, "::")
    groups_of = []
    for side in (pc.list_element(parts, 0), pc.list_element(parts, 1)):
        # An empty side has no groups, not one empty group.
        groups_of.append(pc.split_pattern(pc.if_else(pc.equal(side, ""), None, side), ":"))
    counts = [pc.fill_null(pc.list_value_length(g), 0).to_numpy().astype(np.int64) for g in groups_of]
    total = counts[0] + counts[1]
    ok_np = ok.to_numpy(zero_copy_only=False) & np.where(
        compressed.to_numpy(zero_copy_only=False), total <= 7, total == 8
    )
    matrix = np.zeros((n, 8), np.uint64)
    for side, (groups, count) in enumerate(zip(groups_of, counts, strict=True)):
        flat = pc.list_flatten(groups)
        if len(flat) == 0:
            continue
        parent = pc.list_parent_indices(groups).to_numpy()
        width = pc.utf8_length(flat).to_numpy()
        bad = (width < 1) | (width > 4)
        ok_np[parent[bad]] = False
        fixed = pc.if_else(pa.array(bad), "0000", pc.utf8_lpad(flat, width=4, padding="0"))
        offsets = np.frombuffer(fixed.buffers()[1], np.int32)[fixed.offset : fixed.offset + len(fixed) + 1]
        digits = np.frombuffer(fixed.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(-1, 4)
        nib = _NIBBLE[digits]
        value = (nib[:, 0] << 12) | (nib[:, 1] << 8) | (nib[:, 2] << 4) | nib[:, 3]
        starts = np.cumsum(count) - count
        index = np.arange(len(flat)) - starts[parent]
        column = index if side == 0 else 8 - count[parent] + index
        keep = ok_np[parent] & (column >= 0) & (column < 8)
        matrix[parent[keep], column[keep]] = value[keep]
    shifts = np.array([48, 32, 16, 0], np.uint64)
    hi = np.bitwise_or.reduce(matrix[:, :4] << shifts, axis=1)
    lo = np.bitwise_or.reduce(matrix[:, 4:] << shifts, axis=1)
    return hi, lo, ok_np


def _v6_int(text: str) -> int | None:
    try:
        return int(ipaddress.IPv6Address(text))
    except ValueError:
        return None
