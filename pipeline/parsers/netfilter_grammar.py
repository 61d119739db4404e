"""The grammar of netfilter ``LOG`` lines: RE2 patterns, protocol and action words.

One place for what a LOG line looks like, shared by the pyarrow path
(`netfilter_arrow`), the per-line explanation of rejects (`netfilter_rejects`)
and the formats that carry the same prefixes (ulogd2 JSON, MikroTik). The
native scanner (`native/src`) implements the same grammar and is held to it
by differential tests.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.parsers import syslog
from pipeline.parsers.assemble import non_empty

PORT_PROTOCOLS: Final = ("TCP", "UDP", "UDPLITE", "SCTP")
NAMED_PROTOCOLS: Final = (*PORT_PROTOCOLS, "ICMP", "ICMPv6", "ESP", "AH")
MAX_PORT: Final = 65_535

# Prefix keywords and the action each one means; the first one in the prefix wins.
ACTION_WORDS: Final = {
    "drop": "drop",
    "reject": "reject",
    "accept": "accept",
    "allow": "accept",
    "block": "drop",
    "deny": "drop",
}
DEFAULT_ACTION: Final = "drop"

# The syslog tag, the printk uptime stamp and the printk caller id
# (CONFIG_PRINTK_CALLER), each optional, between the header and the prefix.
_TAG: Final = r"(?:(?:kernel|ulogd)(?:\[\d+\])?: )?(?:\[ *\d+\.\d+\])?(?:\[ *[CT]\d+\])? ?"
_IFNAME: Final = r"[^\s=]*"
_ADDRESS: Final = r"[^\s=]+"

# Between "IN=" and " SRC=". OUT= is missing on some builds; MAC= is missing
# for locally generated packets, empty in ulogd2's output, and may carry a
# SIT tunnel's endpoints.
INTERFACES: Final = (
    rf"(?P<in>{_IFNAME})(?: OUT=(?P<out>{_IFNAME}))?(?: PHYSIN={_IFNAME})?(?: PHYSOUT={_IFNAME})?"
    r"(?: MAC=\S*(?: TUNNEL=\S*)?| MACSRC=\S+ MACDST=\S+(?: VPROTO=\S+ VID=\d+)? MACPROTO=\S+)?"
)
# Between " SRC=" and " PROTO=". TOS is printed without "0x" by ulogd2;
# ulogd2 spells an IPv6 fragment header "FRAG: n ID: x" where the kernel
# writes "FRAG:n ID:x", and --log-ip-options wraps IPv6 extension headers in
# "OPT ( ... )".
_IPV4_HEADER: Final = (
    r" TOS=(?:0x)?[0-9A-Fa-f]{2} PREC=0x[0-9A-Fa-f]{2} TTL=\d+ ID=\d+"
    r"(?: CE)?(?: DF)?(?: MF)?(?: FRAG:\d+)?(?: OPT \([0-9A-F]*\))?"
)
_IPV6_HEADER: Final = (
    r"(?: TC=\d+)?(?: HOPLIMIT=\d+)?(?: FLOWLBL=\d+)?"
    r"(?: OPT \(| \)| FRAG: ?\d+(?: INCOMPLETE)? ID: ?[0-9a-f]{8}| AH| ESP| SPI=0x[0-9a-f]+)*"
)
IP_HEADER: Final = (
    rf"(?P<src>{_ADDRESS}) DST=(?P<dst>{_ADDRESS})(?: LEN=\d+)?(?:{_IPV4_HEADER}|{_IPV6_HEADER})"
)
# After " PROTO=": the rest of the line is the protocol's own business (ICMP
# type and inner packet, TCP options, UID=, MARK=, ...).
TRANSPORT: Final = r"(?P<proto>[A-Za-z0-9]+)(?: SPT=(?P<spt>\d{1,9}) DPT=(?P<dpt>\d{1,9}))?(?: |$)"
# The TCP header up to its window, then from the window on: the second part
# repeats across lines (no ports in it), so it is read once per distinct value.
TCP_TO_WINDOW: Final = r"^TCP SPT=\d+ DPT=\d+ (?:SEQ=\d+ ACK=\d+ )?WINDOW="
TCP_FLAGS: Final = (
    r"^\d+ (?:RES=0x[0-9a-f]{2} )?(?:AE )?"
    r"(?P<flags>(?:CWR )?(?:ECE )?(?:URG )?(?:ACK )?(?:PSH )?(?:RST )?(?:SYN )?(?:FIN )?)URGP="
)
NON_FIRST_FRAGMENT: Final = r" FRAG: ?0*[1-9]"
INCOMPLETE: Final = r"^\S+ INCOMPLETE"

HEAD: Final = rf"^(?:{syslog.HEADER}){_TAG}"
AFTER_IN: Final = rf"^{INTERFACES} SRC={IP_HEADER} PROTO={TRANSPORT}"
# (?s): a stray newline inside a line is just another character, on both paths.
LINE: Final = (
    rf"(?s){HEAD}(?P<prefix>.*?)IN={INTERFACES}"
    rf" SRC=(?P<packet>{IP_HEADER} PROTO=(?P<transport>{TRANSPORT}.*))$"
)
# Captures cost far more than matching in RE2: once a line is known to fit,
# these read its fields with as few groups as possible.
READ_INTERFACES: Final = rf"^(?P<in>{_IFNAME})(?: OUT=(?P<out>{_IFNAME}))?"
READ_ADDRESSES: Final = rf"^(?P<src>{_ADDRESS}) DST=(?P<dst>{_ADDRESS})"
# Ports count only when followed by a space or the end, as in TRANSPORT.
READ_TRANSPORT: Final = r"^(?P<proto>[A-Za-z0-9]+)(?: SPT=(?P<spt>\d{1,9}) DPT=(?P<dpt>\d{1,9})(?: |$))?"


def prefix_and_action(raw: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Clean prefixes and the action each one names, worked out once per distinct prefix."""
    encoded = pc.dictionary_encode(raw)
    prefixes = pc.utf8_trim_whitespace(encoded.dictionary)
    # firewalld (some versions) quotes its prefixes: "filter_IN_public_REJECT: "IN=...
    prefixes = pc.utf8_trim_whitespace(pc.replace_substring_regex(prefixes, r'^"(.*)"$', r"\1"))
    prefixes = non_empty(prefixes)
    words = pc.utf8_lower(pc.extract_regex(prefixes, f"(?i)(?P<word>{'|'.join(ACTION_WORDS)})").field("word"))
    actions = pc.take(
        pa.array(list(ACTION_WORDS.values())),
        pc.index_in(words, value_set=pa.array(list(ACTION_WORDS))),
    )
    actions = pc.fill_null(actions, DEFAULT_ACTION)
    return pc.take(prefixes, encoded.indices), pc.take(actions, encoded.indices)
