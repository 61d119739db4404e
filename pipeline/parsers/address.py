"""IP addresses as the event model keeps them, a whole column at a time.

Every format writes addresses its own way: the kernel's LOG target fully
expanded (``2001:0db8:0000:...``), ulogd2, pf, ASA and Windows compressed,
some upper case. Events hold one spelling, ``ipaddress``'s ``compressed``,
so the same address from two firewalls is the same string in the store.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["IPV4", "compress_ipv6", "normalise_addresses"]

IPV4: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
# How the kernel prints every IPv6 address (%pI6): eight groups of four.
_IPV6_EXPANDED: Final = r"[0-9a-f]{4}(?::[0-9a-f]{4}){7}"
# IPv4-mapped addresses print differently across Python versions; leave them
# to the ipaddress module so we always agree with it.
_IPV4_MAPPED: Final = "0000:0000:0000:0000:0000:ffff:"
_IPV6_CHARACTERS: Final = re.compile(r"[0-9A-Fa-f:.]+", re.ASCII)
_NULL_STRING: Final = pa.scalar(None, pa.string())


def normalise_addresses(text: pa.Array) -> pa.Array:
    """IP addresses as the event model keeps them; null where not an address.

    IPv4 must be a plain dotted quad. IPv6 comes out exactly as
    ``ipaddress.ip_address(x).compressed``: the kernel's fully expanded form
    (``2001:0db8:0000:...``) is compressed with regex replacements, column by
    column; any other IPv6 spelling (ulogd2 prints compressed addresses) goes
    through the ipaddress module once per distinct value.
    """
    # A batch holds few distinct addresses (the same scanners, the same
    # targets), so each spelling is worked out once and the answers spread
    # back by index: a hash pass instead of several regex passes per line.
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    encoded = pc.dictionary_encode(text)
    return pc.take(_normalise_distinct(encoded.dictionary), encoded.indices)


def _normalise_distinct(text: pa.Array) -> pa.Array:
    is_ipv4 = pc.fill_null(pc.match_substring_regex(text, f"^{IPV4}$"), False)
    if pc.all(is_ipv4).as_py() is not False:
        return text
    out = pc.if_else(is_ipv4, text, _NULL_STRING)
    # Compressed spellings (ulogd2, pf, ASA, Windows) are expanded column by
    # column first, so they take the kernel form's path; what that cannot
    # expand (embedded IPv4, odd input) is left to the ipaddress module.
    hex_colon = pc.fill_null(pc.match_substring_regex(text, r"^[0-9A-Fa-f:]*::[0-9A-Fa-f:]*$"), False)
    if pc.any(hex_colon).as_py():
        spelled = _expand(text.filter(hex_colon))
        text = pc.replace_with_mask(text, hex_colon, pc.coalesce(spelled, text.filter(hex_colon)))
    expanded = pc.and_(
        pc.fill_null(pc.match_substring_regex(text, f"^{_IPV6_EXPANDED}$"), False),
        pc.invert(pc.fill_null(pc.starts_with(text, _IPV4_MAPPED), False)),
    )
    if pc.any(expanded).as_py():
        out = pc.replace_with_mask(out, expanded, _compress_expanded(text.filter(expanded)))
    other = pc.and_(
        pc.invert(pc.or_(is_ipv4, expanded)),
        pc.fill_null(pc.match_substring(text, ":"), False),
    )
    if pc.any(other).as_py():
        values = text.filter(other)
        distinct = pc.unique(values)
        compressed = pa.array([compress_ipv6(v) for v in distinct.to_pylist()], pa.string())
        out = pc.replace_with_mask(out, other, pc.take(compressed, pc.index_in(values, distinct)))
    return out


def _expand(text: pa.Array) -> pa.Array:
    """IPv6 text holding one "::" in the kernel's fully expanded form; null where it cannot be."""
    lower = pc.utf8_lower(text)
    halves = pc.split_pattern(lower, "::")
    ok = pc.equal(pc.list_value_length(halves), 2)
    # Padding makes a second half exist on rows that are rejected anyway.
    halves = pc.split_pattern(pc.if_else(ok, lower, "::"), "::")
    left, right = pc.list_element(halves, 0), pc.list_element(halves, 1)

    def groups(part: pa.Array) -> pa.Array:
        return pc.if_else(pc.equal(part, ""), 0, pc.add(pc.count_substring(part, ":"), 1))

    missing = pc.subtract(8, pc.add(groups(left), groups(right)))
    out = pa.nulls(len(text), pa.string())
    for count in range(1, 9):
        rows = pc.fill_null(pc.and_(ok, pc.equal(missing, count)), False)
        if not pc.any(rows).as_py():
            continue
        zeros = ":".join(["0"] * count)
        head, tail = left.filter(rows), right.filter(rows)
        middle = pc.binary_join_element_wise(
            pc.if_else(pc.equal(head, ""), "", pc.binary_join_element_wise(head, ":", "")),
            zeros,
            pc.if_else(pc.equal(tail, ""), "", pc.binary_join_element_wise(":", tail, "")),
            "",
        )
        out = pc.replace_with_mask(out, rows, middle)
    parts = pc.split_pattern(pc.fill_null(out, ""), ":")
    flat = pc.list_flatten(parts)
    padded = pa.ListArray.from_arrays(parts.offsets, pc.utf8_lpad(flat, width=4, padding="0"))
    spelled = pc.binary_join(padded, ":")
    # Checked before padding: an empty group ("1:::2") must not pad into "0000".
    fits = pc.fill_null(pc.match_substring_regex(out, r"^[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){7}$"), False)
    return pc.if_else(fits, spelled, _NULL_STRING)


def _compress_expanded(text: pa.Array) -> pa.Array:
    """Compress fully expanded IPv6 addresses the way ``ipaddress`` does (RFC 5952)."""
    # Scans hit few distinct addresses many times over: work on those.
    distinct = pc.unique(text)
    short = pc.replace_substring_regex(distinct, "^0{1,3}", "")
    short = pc.replace_substring_regex(short, ":0{1,3}", ":")
    # The longest run of two or more zero groups becomes "::", the first one
    # if there is a tie: try the longest runs first, each address only once.
    everything = pc.indices_nonzero(pa.repeat(pa.scalar(True), len(short)))
    pending = everything
    for run in range(8, 1, -1):
        pattern = "(?:^|:)0" + "(?::0)" * (run - 1) + "(?::|$)"
        candidates = pc.take(short, pending)
        hit = pc.match_substring_regex(candidates, pattern)
        if not pc.any(hit).as_py():
            continue
        compressed = pc.replace_substring_regex(pc.filter(candidates, hit), pattern, "::", max_replacements=1)
        changed = pc.filter(pending, hit)
        short = pc.replace_with_mask(short, pc.is_in(everything, value_set=changed), compressed)
        pending = pc.filter(pending, pc.invert(hit))
    return pc.take(short, pc.index_in(text, distinct))


def compress_ipv6(text: str) -> str | None:
    if not _IPV6_CHARACTERS.fullmatch(text):
        return None
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        return None
