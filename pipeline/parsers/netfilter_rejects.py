"""Why a line makes no netfilter event: the per-line path, taken only by rejects.

The columnar paths decide which lines fit; the lines that do not are few, and
each is explained here in plain Python with the same grammar
(`netfilter_grammar`), naming the first thing found wrong with it.
"""

from __future__ import annotations

import re
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.parsers import ParseContext, Reject, syslog
from pipeline.parsers.address import IPV4 as _IPV4
from pipeline.parsers.address import compress_ipv6 as _compress
from pipeline.parsers.netfilter_grammar import (
    HEAD,
    INCOMPLETE,
    INTERFACES,
    IP_HEADER,
    MAX_PORT,
    NAMED_PROTOCOLS,
    NON_FIRST_FRAGMENT,
    PORT_PROTOCOLS,
    TRANSPORT,
)

_QUOTE_LIMIT: Final = 80


def _python(pattern: str) -> re.Pattern[str]:
    """An RE2 pattern of the grammar for Python's re, meaning the same.

    Python's ``$`` also matches before a final newline and its classes are
    Unicode-aware; RE2's are not.
    """
    return re.compile(pattern.replace("$", r"\Z"), re.ASCII)


_PY_IPV4: Final = _python(_IPV4)
_PY_INTERFACES: Final = _python(INTERFACES)
_PY_IP_HEADER: Final = _python(IP_HEADER)
_PY_TRANSPORT: Final = _python(TRANSPORT)
_PY_PORTS: Final = _python(r"[A-Za-z0-9]+ SPT=(\d+) DPT=(\d+)(?: |$)")
_PY_NON_FIRST_FRAGMENT: Final = _python(NON_FIRST_FRAGMENT)
_PY_INCOMPLETE: Final = _python(INCOMPLETE)


def explain_rejects(
    lines: pa.Array, offsets: pa.Array, positions: pa.Array, ctx: ParseContext
) -> list[Reject]:
    if len(positions) == 0:
        return []
    text = pc.take(lines, positions)
    header = syslog.header(text)
    ts = syslog.timestamps(header.ts_text, ctx)
    message = pc.replace_substring_regex(text, HEAD, "")
    return [
        Reject(ctx.source_id, offset, line, _reason(line, ts_text, has_ts, body))
        for line, offset, ts_text, has_ts, body in zip(
            text.to_pylist(),
            pc.take(offsets, positions).to_pylist(),
            header.ts_text.to_pylist(),
            pc.is_valid(ts).to_pylist(),
            message.to_pylist(),
            strict=True,
        )
    ]


def _reason(line: str, ts_text: str | None, has_ts: bool, message: str) -> str:
    """Why a line makes no event: the first thing found wrong with it."""
    if not line.strip():
        return "empty line"
    if ts_text is None:
        return "timestamp not recognised"
    if not has_ts:
        return f"bad timestamp {_quote(ts_text)}"
    return _body_reason(message)


def _body_reason(message: str) -> str:
    start = message.find("IN=")
    if start < 0:
        return "no IN= field"
    body = message[start + len("IN=") :]
    at = body.find(" SRC=")
    if at < 0:
        if "ARP HTYPE=" in body or "PROTO=ARP" in body:
            return "ARP packet: no IP addresses"
        if "TRUNCATED" in body:
            return "no SRC= field (the kernel marked the packet TRUNCATED)"
        return "no SRC= field"
    interfaces, body = body[:at], body[at + len(" SRC=") :]
    at = body.find(" PROTO=")
    ip, transport = (body, None) if at < 0 else (body[:at], body[at + len(" PROTO=") :])

    src, _, rest = ip.partition(" ")
    if not _is_address(src):
        return f"bad SRC address {_quote(src)}"
    if not rest.startswith("DST="):
        return "no DST= field after SRC="
    dst = rest[len("DST=") :].partition(" ")[0]
    if not _is_address(dst):
        return f"bad DST address {_quote(dst)}"
    if (":" in src) != (":" in dst):
        return f"SRC {_quote(src)} and DST {_quote(dst)} are of different IP versions"

    if transport is None:
        if "TRUNCATED" in ip:
            return "no PROTO= field (the kernel marked the packet TRUNCATED)"
        if ":" in src:
            # nf_log_syslog.c stops before PROTO= for ESP, for non-first
            # fragments of extension headers and for unknown ones.
            return "no PROTO= field (the kernel writes none for IPv6 ESP and some extension headers)"
        return "no PROTO= field"
    proto = transport.partition(" ")[0]
    if not _is_protocol(proto):
        return f"unknown protocol {_quote(proto)}"
    ports = _PY_PORTS.match(transport)
    if ports:
        for port in ports.groups():
            if len(port) > len(str(MAX_PORT)) or int(port) > MAX_PORT:
                return f"port out of range {_quote(port, marks='')}"
        if proto not in PORT_PROTOCOLS:
            return f"ports on a PROTO={proto} packet"
    elif proto in PORT_PROTOCOLS and not (
        _PY_NON_FIRST_FRAGMENT.search(ip) or _PY_INCOMPLETE.match(transport)
    ):
        return f"PROTO={proto} without SPT/DPT, and not a later fragment (line cut short?)"

    if not _PY_INTERFACES.fullmatch(interfaces):
        return f"unexpected interface fields {_quote('IN=' + interfaces)}"
    if not _PY_IP_HEADER.fullmatch(ip):
        return f"unexpected IP header fields {_quote('SRC=' + ip)}"
    if not _PY_TRANSPORT.match(transport):
        return f"unexpected fields after PROTO= {_quote(transport)}"
    return "not a netfilter LOG line"


def _is_address(text: str) -> bool:
    if ":" in text:
        return _compress(text) is not None
    return _PY_IPV4.fullmatch(text) is not None


def _is_protocol(text: str) -> bool:
    if text in NAMED_PROTOCOLS:
        return True
    return text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 255


def _quote(text: str, *, marks: str = "'") -> str:
    """Line text for a reason: bounded in length, the way it was written."""
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT] + "..."
    return f"{marks}{text}{marks}"
