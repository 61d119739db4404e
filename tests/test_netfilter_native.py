"""The native netfilter scanner against the pyarrow reference: any disagreement is a bug.

``netfilter.parse`` hands the lines its native (Rust) scanner is sure of to that
scanner and every other line to ``netfilter.parse_arrow``. For any batch the two
must give the same events table and the same rejects in the same order, so
every test here parses one batch both ways and compares. The scanner's risks
sit in what it reads by hand (syslog header, tag, uptime, caller id, prefix,
the fields up to the TCP flags) and works out itself (the instant of a stamp,
the year of an RFC 3164 one, the compressed spelling of a kernel IPv6
address), so the inputs are those tokens slightly wrong, and batches that mix
lines it claims with lines it passes on. ``pipeline.parsers.auto`` runs the
scanner first too, and is held to the same.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmarks.bench_parse import generate
from pipeline.parsers import (
    ParseContext,
    ParseResult,
    auto,
    netfilter,
    netfilter_arrow,
    netfilter_native,
    syslog,
)
from pipeline.parsers.syslog import MONTHS
from tests.support.golden import NETFILTER_FIXTURES as FIXTURES
from tests.support.golden import NETFILTER_SCENARIOS as SCENARIOS
from tests.support.golden import mutations, outcome, read_lines
from tests.support.golden import netfilter_context as context

OSLO = ZoneInfo("Europe/Oslo")

# Contexts whose edges the scanner's header reading could get wrong: the year
# of an RFC 3164 stamp (new year, leap day), and offset-less stamps in a zone
# around its DST gap (2024-03-31 02:00-03:00 in Oslo) and overlap (2024-10-27
# 02:00-03:00).
CONTEXTS: dict[str, ParseContext] = {
    "utc": context("native"),
    "oslo_spring": ParseContext(
        site="lab",
        source_id="oslo.log",
        tz=OSLO,
        reference_time=dt.datetime(2024, 3, 31, 0, 30, tzinfo=dt.UTC),
    ),
    "oslo_autumn": ParseContext(
        site="lab",
        source_id="oslo.log",
        tz=OSLO,
        reference_time=dt.datetime(2024, 10, 27, 0, 30, tzinfo=dt.UTC),
    ),
    "new_year": ParseContext(
        site="lab", source_id="ny.log", reference_time=dt.datetime(2025, 1, 1, 0, 30, tzinfo=dt.UTC)
    ),
    "kolkata_non_leap": ParseContext(
        site="lab",
        source_id="in.log",
        host="fw-lab-9",
        tz=ZoneInfo("Asia/Kolkata"),
        reference_time=dt.datetime(2023, 2, 28, 20, 0, tzinfo=dt.UTC),
    ),
}

# The LOG format's syntax, header tokens, and values just outside what each
# field allows: replacing a span with one of these reaches the scanner's edges.
PATCHES: tuple[str, ...] = (
    "=", " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "é", "\u2028", "\x00", ":", ".", ",", "0", "9",
    "999999999", "1234567890", "-", "<13>", "<13>1 ", "kernel: ", "kernel[7]: ", "ulogd: ", "[ 12.5]",
    "[C3]", "[T1]", "IN=", " OUT=", " MAC=", " TUNNEL=", " PHYSIN=x", " SRC=", " DST=", " LEN=",
    " TOS=0x00", "PREC=0x00", " TTL=", " ID=", " DF", " CE", " MF", " FRAG:", " FRAG:0", " OPT (", ")",
    " TC=", " HOPLIMIT=", " FLOWLBL=", " PROTO=", "TCP", "UDP", "ICMP", "SCTP", " SPT=", " DPT=", "SEQ=",
    " ACK=", "WINDOW=", "RES=0x00 ", "AE ", "SYN ", "FIN ", "URGP=", "Z", "+01:00", "-0530", "Feb 29",
    "Feb 30", "T", "t", " INCOMPLETE", "2001:0db8:0000:0000:0000:0000:0000:0001", "::1",
    "0000:0000:0000:0000:0000:ffff:0a00:0001", "010.1.2.3", "256.1.1.1",
)  # fmt: skip

HEAD = "Mar  3 04:11:27 gw kernel: [ 8812.004211] "
V4 = (
    "IN=eth0 OUT= MAC=02:00:5e:10:00:01:02:00:5e:10:00:99:08:00 SRC=203.0.113.9 DST=192.0.2.10 "
    "LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=4711 DF "
)
V6 = (
    "IN=eth0 OUT= MAC=02:00:5e:10:00:01:02:00:5e:10:00:99:86:dd "
    "SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:f101:0000:0000:0000:0002 "
    "LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 "
)
TCP = "PROTO=TCP SPT=40123 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 "
UDP = "PROTO=UDP SPT=5353 DPT=53 LEN=40 "
LINE = HEAD + "DROP " + V4 + TCP


def v4(src: str = "203.0.113.9", dst: str = "192.0.2.10") -> str:
    return V4.replace("203.0.113.9", src).replace("192.0.2.10", dst)


def v6(src: str, dst: str = "2001:0db8:0000:f101:0000:0000:0000:0002") -> str:
    return V6.replace("2001:0db8:0000:0000:0000:0000:0000:0001", src).replace(
        "2001:0db8:0000:f101:0000:0000:0000:0002", dst
    )


def tcp(ports: str = "SPT=40123 DPT=22", middle: str = "WINDOW=64240 RES=0x00 SYN ") -> str:
    return f"PROTO=TCP {ports} {middle}URGP=0 "


# Each a line the scanner could read differently from the reference; most make
# events in the reference, the rest are near misses it must pass on or reject alike.
REGRESSIONS: dict[str, str | None] = {
    "plain": LINE,
    "host_dash": "Mar  3 04:11:27 - kernel: DROP " + V4 + TCP,
    "host_ending_in_colon": "Mar  3 04:11:27 gw: kernel: DROP " + V4 + TCP,
    "host_is_tag": "Mar  3 04:11:27 DENY: " + V4 + TCP,
    "no_host": "Mar  3 04:11:27 kernel: DROP " + V4 + TCP,
    "no_host_no_tag": "Mar  3 04:11:27 " + V4 + TCP,
    "host_with_equals": "Mar  3 04:11:27 g=w kernel: DROP " + V4 + TCP,
    "two_spaces_after_host": "Mar  3 04:11:27 gw  kernel: DROP " + V4 + TCP,
    "login_in_prefix": HEAD + "LOGIN=" + V4 + TCP,
    "login_word_in_prefix": HEAD + "LOGIN=x " + V4 + TCP,
    "prefix_with_equals": HEAD + "a=b DROP " + V4 + TCP,
    "in_inside_prefix": HEAD + "DROP IN=fake " + V4 + TCP,
    "in_glued_inside_prefix": HEAD + "xIN=eth9 y " + V4 + TCP,
    "prefix_without_space": HEAD + "[LAN_LOCAL-default-A]" + V4 + TCP,
    "prefix_quoted": HEAD + '"filter_IN_public_REJECT: "' + V4 + TCP,
    "prefix_only_spaces": HEAD + "   " + V4 + TCP,
    "prefix_accept_word": HEAD + "Allowed-ACCEPT " + V4 + TCP,
    "mac_with_tunnel": HEAD + "SIT " + V4.replace(" SRC=", " TUNNEL=198.51.100.1->192.0.2.1 SRC=") + TCP,
    "macsrc": HEAD
    + "D IN=eth0 OUT= MACSRC=02:00:5e:00:53:02 MACDST=02:00:5e:00:53:01 MACPROTO=0800 "
    + "SRC=203.0.113.22 DST=192.0.2.102 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=3 "
    + TCP,
    "macsrc_vlan": HEAD
    + "D IN=eth0 OUT= MACSRC=02:00:5e:00:53:02 MACDST=02:00:5e:00:53:01 VPROTO=8100 VID=42 MACPROTO=0800 "
    + "SRC=203.0.113.22 DST=192.0.2.102 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=3 "
    + TCP,
    "physin_physout": HEAD + "BR " + V4.replace("OUT= ", "OUT=br0 PHYSIN=eth1 PHYSOUT=eth2 ") + TCP,
    "physin_without_out": HEAD + "BR " + V4.replace("OUT= ", "PHYSIN=tap100i0 ") + TCP,
    "physout_before_physin": HEAD + V4.replace("OUT= ", "OUT= PHYSOUT=eth2 PHYSIN=eth1 ") + TCP,
    "missing_out": HEAD + V4.replace("OUT= ", "") + TCP,
    "empty_in": HEAD + V4.replace("IN=eth0", "IN=") + TCP,
    "no_mac": HEAD + V4.replace("MAC=02:00:5e:10:00:01:02:00:5e:10:00:99:08:00 ", "") + TCP,
    "empty_mac": HEAD + V4.replace("MAC=02:00:5e:10:00:01:02:00:5e:10:00:99:08:00", "MAC=") + TCP,
    "ipv6_opt_frag": HEAD
    + v6("2001:0db8:0000:0000:0000:0000:0000:0009")
    + "OPT ( FRAG:2896 ID:0000a1b3 ) PROTO=TCP ",
    "ipv6_frag_first_incomplete": HEAD
    + v6("2001:0db8:0000:0000:0000:0000:0000:0009")
    + "FRAG:0 INCOMPLETE ID:0000a1b2 PROTO=UDP SPT=53 DPT=40500 LEN=2000 ",
    "ipv6_frag_later": HEAD
    + v6("2001:0db8:0000:0000:0000:0000:0000:0009")
    + "FRAG:1448 ID:0000a1b2 PROTO=UDP ",
    "ipv6_frag_ulogd_spacing": "Nov 28 18:03:13 sensor-7 nft-drop "
    + v6("2001:db8::9", "2001:db8::10")
    + "FRAG: 1448 ID: 0000a1b2 PROTO=UDP INCOMPLETE",
    "ipv6_ah": HEAD + v6("2001:0db8:0000:0000:0000:0000:0000:0009") + "OPT ( AH SPI=0x1001 ) PROTO=UDP "
    "SPT=500 DPT=500 LEN=20 ",
    "ipv6_frag_id_uppercase": HEAD
    + v6("2001:0db8:0000:0000:0000:0000:0000:0009")
    + "FRAG:8 ID:0000A1B2 PROTO=UDP ",
    "ipv4_opt": HEAD + V4.replace(" DF ", " DF OPT (94040000) ") + "PROTO=2 ",
    "ipv4_opt_lowercase": HEAD + V4.replace(" DF ", " DF OPT (9404abcd) ") + "PROTO=2 ",
    "ipv4_ce_df_mf_frag": HEAD + V4.replace(" DF ", " CE DF MF FRAG:0 ") + TCP,
    "ipv4_flags_out_of_order": HEAD + V4.replace(" DF ", " MF DF ") + TCP,
    "tos_without_0x": "Nov 28 18:03:09 sensor-7 nft-drop " + V4.replace("TOS=0x00", "TOS=00") + TCP,
    "tos_one_digit": HEAD + V4.replace("TOS=0x00", "TOS=0x0") + TCP,
    "prec_uppercase_hex": HEAD + V4.replace("PREC=0x00", "PREC=0xC0") + TCP,
    "tcp_fragment_without_ports": HEAD + V4.replace(" DF ", " FRAG:185 ") + "PROTO=TCP ",
    "tcp_fragment_zero_without_ports": HEAD + V4.replace(" DF ", " FRAG:000 ") + "PROTO=TCP ",
    "tcp_fragment_padded_without_ports": HEAD + V4.replace(" DF ", " FRAG:007 ") + "PROTO=TCP ",
    "tcp_without_ports_unexcused": HEAD + V4 + "PROTO=TCP ",
    "tcp_without_ports_at_end": HEAD + V4 + "PROTO=TCP",
    "tcp_incomplete": HEAD + V4 + "PROTO=TCP INCOMPLETE [8 bytes] ",
    "port_65535": HEAD + V4 + tcp("SPT=65535 DPT=0"),
    "port_65536": HEAD + V4 + tcp("SPT=65536 DPT=22"),
    "port_999999999": HEAD + V4 + tcp("SPT=1 DPT=999999999"),
    "port_1234567890": HEAD + V4 + tcp("SPT=1234567890 DPT=22"),
    "port_leading_zeros": HEAD + V4 + tcp("SPT=000000080 DPT=00022"),
    "port_empty": HEAD + V4 + tcp("SPT= DPT=22"),
    "port_negative": HEAD + V4 + tcp("SPT=-1 DPT=22"),
    "ports_only_dpt": HEAD + V4 + "PROTO=TCP DPT=22 WINDOW=1 RES=0x00 SYN URGP=0 ",
    "ports_on_icmp": HEAD + V4 + "PROTO=ICMP SPT=1 DPT=2 ",
    "proto_number_6": HEAD + V4 + "PROTO=6 SPT=1 DPT=2 ",
    "proto_number_255": HEAD + V4 + "PROTO=255 ",
    "proto_number_256": HEAD + V4 + "PROTO=256 ",
    "proto_number_0006": HEAD + V4 + "PROTO=0006 ",
    "proto_lowercase_tcp": HEAD + V4 + "PROTO=tcp SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN URGP=0 ",
    "proto_sctp": HEAD + V4 + "PROTO=SCTP SPT=1 DPT=2 ",
    "proto_udplite": HEAD + V4 + "PROTO=UDPLITE SPT=1 DPT=2 LEN=8 ",
    "proto_icmpv6_on_v6": HEAD
    + v6("2001:0db8:0000:0000:0000:0000:0000:0009")
    + "PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1 ",
    "proto_empty": HEAD + V4 + "PROTO= ",
    "flags_all": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x00 CWR ECE URG ACK PSH RST SYN FIN "),
    "flags_out_of_order": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x00 SYN ACK "),
    "flags_none": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x00 "),
    "flags_ae_cwr": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x00 AE CWR "),
    "flags_cwr_ae": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x00 CWR AE "),
    "flags_unknown_word": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x00 SYN XYZ "),
    "flags_lowercase": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x00 syn "),
    "flags_repeated": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x00 SYN SYN "),
    "res_bad_hex": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x0G SYN "),
    "res_uppercase_hex": HEAD + V4 + tcp(middle="WINDOW=1 RES=0x0F SYN "),
    "res_missing": HEAD + V4 + tcp(middle="WINDOW=1 SYN "),
    "seq_without_ack": HEAD + V4 + tcp(middle="SEQ=1 WINDOW=1 RES=0x00 SYN "),
    "seq_and_ack": HEAD + V4 + tcp(middle="SEQ=3409118213 ACK=0 WINDOW=64240 RES=0x00 CWR ECE SYN "),
    "seq_ten_digits": HEAD + V4 + tcp(middle="SEQ=12345678901 ACK=0 WINDOW=1 RES=0x00 SYN "),
    "window_missing": HEAD + V4 + tcp(middle="RES=0x00 SYN "),
    "window_empty": HEAD + V4 + tcp(middle="WINDOW= RES=0x00 SYN "),
    "urgp_missing": HEAD + V4 + "PROTO=TCP SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN ",
    "urgp_then_options": HEAD + V4 + tcp() + "OPT (020405B4) UID=0 GID=0 MARK=0x1 ",
    "window_in_options": HEAD
    + V4
    + tcp(middle="WINDOW=1 RES=0x00 SYN ")
    + "OPT (WINDOW=5 RES=0x00 FIN URGP=0) ",
    "ends_after_dpt": HEAD + V4 + "PROTO=TCP SPT=40123 DPT=22",
    "udp_ends_after_dpt": HEAD + V4 + "PROTO=UDP SPT=40123 DPT=22",
    "dpt_with_letter": HEAD + V4 + "PROTO=TCP SPT=40123 DPT=22X WINDOW=1 RES=0x00 SYN URGP=0 ",
    "dpt_with_letter_at_end": HEAD + V4 + "PROTO=UDP SPT=40123 DPT=22X",
    "tabs_in_header": LINE.replace(" ", "\t", 3),
    "tab_before_in": HEAD + "DROP\t" + V4 + TCP,
    "tabs_in_body": HEAD + "DROP " + V4.replace(" ", "\t") + TCP,
    "tab_after_proto": HEAD + V4 + TCP.replace(" ", "\t", 1),
    "carriage_return_at_end": LINE + "\r",
    "carriage_return_after_dpt": HEAD + V4 + "PROTO=UDP SPT=1 DPT=22\r",
    "newline_inside": HEAD + "DR\nOP " + V4 + TCP,
    "vertical_tab_in_host": "Mar  3 04:11:27 g\x0bw kernel: DROP " + V4 + TCP,
    "vertical_tab_in_interface": HEAD + V4.replace("IN=eth0", "IN=eth\x0b0") + TCP,
    "form_feed_in_interface": HEAD + V4.replace("IN=eth0", "IN=eth\x0c0") + TCP,
    "line_separator_in_interface": HEAD + V4.replace("OUT= ", "OUT=wl\u2028an ") + TCP,
    "nbsp_between_fields": HEAD + V4.replace(" SRC=", "\u00a0SRC=") + TCP,
    "nul_in_prefix": HEAD + "DR\x00OP " + V4 + TCP,
    "fraction_9_digits": "2024-03-08T02:22:57.123456789+02:00 gw kernel: DROP " + V4 + TCP,
    "fraction_10_digits": "2024-03-08T02:22:57.1234567890+02:00 gw kernel: DROP " + V4 + TCP,
    "fraction_comma": "2024-03-08T02:22:57,5Z gw kernel: DROP " + V4 + TCP,
    "fraction_empty": "2024-03-08T02:22:57.Z gw kernel: DROP " + V4 + TCP,
    "fraction_rounds_to_next_second": "2024-03-08T02:22:57.9999999Z gw kernel: DROP " + V4 + TCP,
    "offset_compact": "2024-03-08T02:22:57+0100 gw kernel: DROP " + V4 + TCP,
    "offset_colon": "2024-03-08T02:22:57+01:00 gw kernel: DROP " + V4 + TCP,
    "offset_negative_half_hour": "2024-03-08T02:22:57-05:30 gw kernel: DROP " + V4 + TCP,
    "offset_24_hours": "2024-03-08T02:22:57+24:00 gw kernel: DROP " + V4 + TCP,
    "offset_99_minutes": "2024-03-08T02:22:57+01:99 gw kernel: DROP " + V4 + TCP,
    "offset_hours_only": "2024-03-08T02:22:57+01 gw kernel: DROP " + V4 + TCP,
    "zone_lowercase_z": "2024-03-08t02:22:57.5z gw kernel: DROP " + V4 + TCP,
    "date_time_space": "2024-03-08 02:22:57.5 gw kernel: DROP " + V4 + TCP,
    "rfc3339_no_zone": "2024-03-08T02:22:57 gw kernel: DROP " + V4 + TCP,
    "rfc3339_leap_day": "2024-02-29T12:00:00Z gw kernel: DROP " + V4 + TCP,
    "rfc3339_non_leap_day": "2023-02-29T12:00:00Z gw kernel: DROP " + V4 + TCP,
    "rfc3339_century_non_leap": "2100-02-29T12:00:00Z gw kernel: DROP " + V4 + TCP,
    "rfc3339_month_13": "2024-13-01T12:00:00Z gw kernel: DROP " + V4 + TCP,
    "rfc3339_hour_24": "2024-03-01T24:00:00Z gw kernel: DROP " + V4 + TCP,
    "rfc3339_second_60": "2024-03-01T23:59:60Z gw kernel: DROP " + V4 + TCP,
    "rfc3339_year_zero": "0000-01-01T00:00:00Z gw kernel: DROP " + V4 + TCP,
    "rfc3164_leap_day": "Feb 29 12:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_feb_30": "Feb 30 12:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_apr_31": "Apr 31 12:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_day_zero": "Jan  0 12:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_day_space_padded": "Jan  1 00:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_day_one_digit": "Jan 1 00:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_day_zero_padded": "Jan 01 00:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_day_three_digits": "Jan 001 00:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_month_lowercase": "jan  1 00:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_hour_25": "Jan  1 25:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_minute_60": "Jan  1 23:60:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_one_digit_hour": "Jan  1 1:00:00 gw kernel: DROP " + V4 + TCP,
    # The UTC context's latest moment is 2024-06-16 12:00:00: the year turns on it.
    "rfc3164_at_latest_moment": "Jun 16 12:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_just_after_latest_moment": "Jun 16 12:00:01 gw kernel: DROP " + V4 + TCP,
    "rfc3164_day_after_latest_moment": "Jun 17 00:00:00 gw kernel: DROP " + V4 + TCP,
    "rfc3164_dec_31_late": "Dec 31 23:59:59 gw kernel: DROP " + V4 + TCP,
    "pri_then_rfc3164": "<13>Mar  3 04:11:27 gw kernel: DROP " + V4 + TCP,
    "pri_then_rfc3339": "<4>2024-03-08T02:22:57Z gw kernel: DROP " + V4 + TCP,
    "pri_four_digits": "<1234>Mar  3 04:11:27 gw kernel: DROP " + V4 + TCP,
    "pri_empty": "<>Mar  3 04:11:27 gw kernel: DROP " + V4 + TCP,
    "rfc5424": "<13>1 2024-03-10T14:22:05.123456+01:00 fw-oslo-1 kernel - - - [UFW BLOCK] " + V4 + TCP,
    "rfc5424_nil_host": "<12>1 2024-03-10T13:22:07.5Z - kernel - - - " + V4 + UDP,
    "rfc5424_sd_with_in": '<4>1 2024-03-10T13:22:06Z fw kernel - - [m x="IN=eth1 SRC=1.2.3.4"] ' + V4 + TCP,
    "rfc5424_bom": "<4>1 2024-03-10T13:22:06Z fw kernel - - - \ufeffDROP " + V4 + TCP,
    "tag_with_pid": "Mar  3 04:11:27 gw kernel[123]: DROP " + V4 + TCP,
    "tag_ulogd": "Mar  3 04:11:27 gw ulogd: DROP " + V4 + TCP,
    "tag_ulogd_with_pid": "Mar  3 04:11:27 gw ulogd[99]: DROP " + V4 + TCP,
    "tag_empty_pid": "Mar  3 04:11:27 gw kernel[]: DROP " + V4 + TCP,
    "tag_without_space": "Mar  3 04:11:27 gw kernel:DROP " + V4 + TCP,
    "tag_other_program": "Mar  3 04:11:27 gw iptables: DROP " + V4 + TCP,
    "uptime_unpadded": "Mar  3 04:11:27 gw kernel: [8812.004211] DROP " + V4 + TCP,
    "uptime_no_space_after": "Mar  3 04:11:27 gw kernel: [ 8812.004211]DROP " + V4 + TCP,
    "uptime_two_spaces_after": "Mar  3 04:11:27 gw kernel: [ 8812.004211]  DROP " + V4 + TCP,
    "uptime_without_fraction": "Mar  3 04:11:27 gw kernel: [ 8812] DROP " + V4 + TCP,
    "uptime_empty_fraction": "Mar  3 04:11:27 gw kernel: [ 8812.] DROP " + V4 + TCP,
    "uptime_without_tag": "Mar  3 04:11:27 gw [ 12.5] DROP " + V4 + TCP,
    "caller_cpu": "Mar  3 04:11:27 gw kernel: [ 12.5][C1] DROP " + V4 + TCP,
    "caller_thread_padded": "Mar  3 04:11:27 gw kernel: [17748.074339][    T12] DROP " + V4 + TCP,
    "caller_without_uptime": "Mar  3 04:11:27 gw kernel: [C3] DROP " + V4 + TCP,
    "caller_unknown_letter": "Mar  3 04:11:27 gw kernel: [ 12.5][X1] DROP " + V4 + TCP,
    "caller_then_in": "Mar  3 04:11:27 gw kernel: [ 12.5][C1]" + V4 + TCP,
    "ipv6_two_equal_zero_runs": HEAD + v6("2001:0db8:0000:0000:0001:0000:0000:0001") + TCP,
    "ipv6_longer_zero_run_later": HEAD + v6("0000:0000:0001:0000:0000:0000:0001:0000") + TCP,
    "ipv6_single_zero_groups": HEAD + v6("0001:0000:0001:0000:0001:0000:0001:0000") + TCP,
    "ipv6_zero_run_at_end": HEAD + v6("fe80:0001:0000:0000:0000:0000:0000:0000") + TCP,
    "ipv6_ipv4_compatible": HEAD + v6("0000:0000:0000:0000:0000:0000:c000:0201") + TCP,
    "ipv6_nat64": HEAD + v6("0064:ff9b:0000:0000:0000:0000:c000:0201") + TCP,
    "ipv6_almost_mapped": HEAD + v6("0000:0000:0000:0000:ffff:0000:0a00:0001") + TCP,
    "ipv6_group_of_five": HEAD + v6("2001:0db8:0000:0000:0000:0000:0000:00001") + TCP,
    "ipv6_group_of_three": HEAD + v6("2001:0db8:0000:0000:0000:0000:0000:001") + TCP,
    "ipv6_dots_for_colons": HEAD + v6("2001.0db8.0000.0000.0000.0000.0000.0001") + TCP,
    "ipv4_mapped_ipv6": HEAD
    + v6("0000:0000:0000:0000:0000:ffff:0a00:0001", "0000:0000:0000:0000:0000:ffff:0a00:0002")
    + TCP,
    "ipv4_suffixed_ipv6": HEAD + v6("::ffff:10.0.0.1", "::ffff:10.0.0.2") + TCP,
    "uppercase_ipv6": HEAD + v6("2001:0DB8:0000:0000:0000:0000:0000:00AB") + TCP,
    "compressed_ipv6": HEAD + v6("2001:db8::1", "::1") + TCP,
    "ipv6_all_zero": HEAD + v6("0000:0000:0000:0000:0000:0000:0000:0000", "::") + TCP,
    "ipv6_with_zone": HEAD + v6("fe80::1%eth0") + TCP,
    "ipv6_double_compression": HEAD + v6("2001:db8::1::2") + TCP,
    "ipv4_leading_zero": HEAD + v4("010.1.2.3") + TCP,
    "ipv4_octet_256": HEAD + v4("256.1.1.1") + TCP,
    "ipv4_three_octets": HEAD + v4("1.2.3") + TCP,
    "ipv4_extremes": HEAD + v4("255.255.255.255", "192.0.2.0") + TCP,
    "v4_src_v6_dst": HEAD + v4(dst="2001:0db8:0000:0000:0000:0000:0000:0001") + TCP,
    "v6_src_v4_dst": HEAD + v6("2001:0db8:0000:0000:0000:0000:0000:0001", "192.0.2.10") + TCP,
    "v6_addresses_v4_header": HEAD + v4("2001:db8::1", "2001:db8::2") + TCP,
    "v4_addresses_v6_header": HEAD + v6("203.0.113.9", "192.0.2.10") + TCP,
    "icmp_error_inner_packet": HEAD + V4 + "PROTO=ICMP TYPE=3 CODE=3 [SRC=192.0.2.83 DST=192.0.2.71 LEN=60 "
    "TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=53 DPT=1024 LEN=40 ] ",
    "udp": HEAD + V4 + UDP,
    "empty": "",
    "blank": "  \t",
    "null": None,
    "only_header": "Mar  3 04:11:27 gw kernel: ",
    "no_in": HEAD + "DROP OUT= SRC=1.2.3.4",
    "arp": "Mar 12 10:00:12 fw-1 kernel: ARP-DROP IN=eth0 OUT= MACSRC=02:00:5e:00:53:02 "
    "MACDST=ff:ff:ff:ff:ff:ff MACPROTO=0806 ARP HTYPE=1 PTYPE=0x0800 OPCODE=1",
    "long_line_100k": LINE + "X" * 100_000,
    "long_prefix_100k": HEAD + "A" * 100_000 + " " + V4 + TCP,
    "comma_in_prefix": HEAD + "DROP, logged " + V4 + TCP,
    "percent_in_prefix": HEAD + "%ASA-4-106023: " + V4 + TCP,
    "filterlog_like_prefix": "Mar  3 04:11:27 gw filterlog[1]: 5,,,1000,em0,match,block,in,4 " + V4 + TCP,
    "brace_prefix": HEAD + '{"x": 1} ' + V4 + TCP,
    "non_ascii_prefix": HEAD + "Déni ✓ blocké " + V4 + TCP,
    "non_ascii_interfaces": HEAD + V4.replace("IN=eth0 OUT=", "IN=éth0 OUT=wlän") + TCP,
    "non_ascii_host": "Mar  3 04:11:27 brannmur-ø kernel: DROP " + V4 + TCP,
    "emoji_prefix": HEAD + "\U0001f525 " + V4 + TCP,
}

# Offset-less stamps in and around Oslo's DST gap and overlap, with fractions.
DST_LINES: tuple[str, ...] = tuple(
    f"{stamp} gw kernel: DROP " + V4 + TCP
    for stamp in (
        "2024-03-31T02:30:00.5",
        "2024-03-31T02:00:00",
        "2024-03-31T01:59:59.999999999",
        "2024-03-31t02:59:59,9",
        "2024-03-31 03:00:00.000001",
        "2024-03-31T02:30:00.5+01:00",
        "2024-03-31T02:30:00.5Z",
        "2024-10-27T02:30:00.5",
        "2024-10-27T02:00:00",
        "2024-10-27T01:59:59.9999999",
        "2024-10-27t02:59:59,123456789",
        "2024-10-27 03:00:00",
        "2024-10-27T02:30:00.5+0200",
        "2024-10-27T02:30:00.5+0100",
        "Mar 31 02:30:00",
        "Mar 31 01:59:59",
        "Mar 31 03:00:00",
        "Oct 27 02:30:00",
        "Oct 27 01:59:59",
        "Oct 27 03:00:00",
    )
)


def agree(
    lines: Sequence[str | None], ctx: ParseContext, offsets: Sequence[int] | None = None
) -> ParseResult:
    """Parse ``lines`` both ways, assert the results are the same, and return the reference's."""
    batch = pa.array(lines, pa.string())
    positions = pa.array(byte_offsets(lines) if offsets is None else offsets, pa.int64())
    expected = netfilter.parse_arrow(batch, positions, ctx)
    rv = netfilter.parse(batch, positions, ctx)
    assert outcome(expected) == outcome(rv)
    assert rv.events.schema.equals(expected.events.schema, check_metadata=True)
    assert rv.events.equals(expected.events)
    assert rv.rejects == expected.rejects
    return expected


def byte_offsets(lines: Sequence[str | None]) -> list[int]:
    """Where each line starts in a file of them, so offsets are not line numbers."""
    offsets: list[int] = []
    at = 0
    for line in lines:
        offsets.append(at)
        at += len((line or "").encode()) + 1
    return offsets


@functools.cache
def fixture_lines() -> tuple[str, ...]:
    found: list[str] = []
    for scenario in SCENARIOS:
        found += read_lines(FIXTURES / f"{scenario}.log")[0].to_pylist()
    return tuple(found)


@functools.cache
def bench_lines(seed: int) -> tuple[str, ...]:
    return tuple(generate(200, seed))


def test_native_scanner_is_built_and_used() -> None:
    """The library is built and parse runs on it, so the comparisons below test something."""
    try:
        from pipeline.parsers import netfilter_native
    except ImportError as error:
        pytest.fail(f"pipeline.parsers.netfilter_native cannot be imported: {error}")

    assert netfilter_native.available(), f"native scanner unavailable: {netfilter_native.why_unavailable()}"
    assert netfilter.engine() == "native"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden_fixture_parses_alike(scenario: str) -> None:
    """Each fixture file, as one batch in its own context, gives the reference's events and rejects."""
    lines, offsets = read_lines(FIXTURES / f"{scenario}.log")

    agree(lines.to_pylist(), context(scenario), offsets.to_pylist())


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_all_fixtures_in_one_batch_parse_alike(name: str) -> None:
    """Every fixture line in one batch (lines the scanner claims among lines it passes on) agrees."""
    agree(list(fixture_lines()), CONTEXTS[name])


@pytest.mark.parametrize("line", list(REGRESSIONS.values()), ids=list(REGRESSIONS))
def test_regression_line_parses_alike(line: str | None) -> None:
    """A hand-written edge case, alone in its batch, gives the reference's outcome."""
    agree([line], CONTEXTS["utc"])


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_regression_lines_in_one_batch_parse_alike(name: str) -> None:
    """The edge cases between ordinary lines, in each context, give the reference's outcomes."""
    ordinary = bench_lines(0)
    lines: list[str | None] = []
    for n, line in enumerate(REGRESSIONS.values()):
        lines += [ordinary[n % len(ordinary)], line]

    agree(lines, CONTEXTS[name])


@pytest.mark.parametrize("name", ["oslo_spring", "oslo_autumn", "utc"])
@pytest.mark.parametrize("line", DST_LINES, ids=[line.split(" gw ")[0] for line in DST_LINES])
def test_stamp_near_dst_change_parses_alike(line: str, name: str) -> None:
    """A stamp in or beside a DST gap or overlap lands on the reference's instant."""
    agree([line], CONTEXTS[name])


@pytest.mark.parametrize("name", ["oslo_spring", "oslo_autumn"])
def test_stamps_near_dst_change_in_one_batch_parse_alike(name: str) -> None:
    """All the DST-edge stamps among ordinary lines agree as one batch."""
    lines = [line for pair in zip(DST_LINES, bench_lines(1), strict=False) for line in pair]

    agree(lines, CONTEXTS[name])


@st.composite
def damaged_lines(draw: st.DrawFn) -> str | None:
    """A fixture or benchmark line, left alone or damaged up to three times; now and then a null."""
    if draw(st.integers(0, 30)) == 0:
        return None
    pool = draw(st.sampled_from(["fixture", "bench"]))
    if pool == "fixture":
        line = draw(st.sampled_from(fixture_lines()))
    else:
        line = draw(st.sampled_from(bench_lines(draw(st.integers(0, 3)))))
    for _ in range(draw(st.integers(0, 3))):
        line = draw(mutations(line, PATCHES))
    return line


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(damaged_lines(), min_size=1, max_size=40), st.sampled_from(sorted(CONTEXTS)))
@example([DST_LINES[0], LINE, None, ""], "oslo_spring")
def test_damaged_lines_parse_alike(lines: list[str | None], name: str) -> None:
    """Batches of valid and damaged lines give the reference's events and rejects."""
    agree(lines, CONTEXTS[name])


# Header parts, each in forms the grammar allows and forms just outside it.
_PRIS = st.sampled_from(["", "", "<13>", "<4>", "<191>", "<0>", "<1234>", "<>", "<13> "])
_HOSTS = st.sampled_from(["gw", "fw-oslo-1", "-", "gw:", "", "a.b_c", "brannmur-ø", "g=w", "x:y", "kernel"])
_TAGS = st.sampled_from(
    ["", "kernel: ", "kernel[7]: ", "kernel[123456]: ", "ulogd: ", "ulogd[1]: ", "kernel:", "kernel[]: "]
)
_UPTIMES = st.sampled_from(
    ["", "", "[ 12.5]", "[12345.678901]", "[    0.000000]", "[ 12.]", "[12]", "[ .5]", "[ 1 2.5]"]
)
_CALLERS = st.sampled_from(["", "", "[C1]", "[T12]", "[    C0]", "[ T123]", "[X1]", "[C]", "[c1]"])
_PREFIXES = st.sampled_from(
    [
        "",
        "DROP ",
        "[UFW BLOCK] ",
        '"filter_IN_public_REJECT: "',
        "LOGIN=x ",
        "a=b ",
        "IN=fake ",
        "Déni ",
        "ACCEPT",
    ]
)
_SPECIAL_DATES = st.sampled_from(
    [(2024, 3, 31), (2024, 10, 27), (2024, 2, 29), (2023, 2, 29), (2024, 12, 31), (2025, 1, 1), (2024, 6, 15)]
)


@st.composite
def rfc3164_stamps(draw: st.DrawFn) -> str:
    month = draw(st.sampled_from([*MONTHS, "Foo", "jan"]))
    day = draw(st.integers(0, 32))
    day_text = draw(st.sampled_from([f"{day:>2}", f"{day}", f"{day:02d}", f"{day:03d}"]))
    hour, minute, second = draw(st.integers(0, 25)), draw(st.integers(0, 60)), draw(st.integers(0, 60))
    return f"{month} {day_text} {hour:02d}:{minute:02d}:{second:02d}"


@st.composite
def rfc3339_stamps(draw: st.DrawFn) -> str:
    year, month, day = draw(
        st.one_of(
            _SPECIAL_DATES,
            st.tuples(st.sampled_from([0, 1970, 2023, 2024, 2100]), st.integers(0, 13), st.integers(0, 32)),
        )
    )
    hour = draw(st.one_of(st.integers(0, 4), st.integers(0, 24)))
    minute, second = draw(st.integers(0, 60)), draw(st.integers(0, 60))
    separator = draw(st.sampled_from(["T", "t", " "]))
    fraction = ""
    if draw(st.booleans()):
        digits = draw(st.text("0123456789", min_size=0, max_size=10))
        fraction = draw(st.sampled_from([".", ","])) + digits
    zone = draw(
        st.one_of(
            st.sampled_from(["", "", "Z", "z"]),
            st.builds(
                lambda sign, hh, mm, colon: f"{sign}{hh:02d}{colon}{mm:02d}",
                st.sampled_from("+-"),
                st.integers(0, 24),
                st.integers(0, 60),
                st.sampled_from([":", ""]),
            ),
        )
    )
    return f"{year:04d}-{month:02d}-{day:02d}{separator}{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"


# RFC 5424's fields after the stamp, and structured data, in forms the
# grammar allows and forms just outside it.
_5424_PRIS = st.sampled_from(["<13>1 ", "<4>1 ", "<0>1 ", "<191>1 ", "<1234>1 ", "<13>2 ", "<13>1  ", "1 "])
_5424_WORDS = st.sampled_from(["-", "-", "kernel", "fw", "1234", "a=b", "x:", "IN=", "ø", "a\tb", ""])
_SD_ELEMENTS = st.sampled_from(
    [
        '[m x="1"]',
        '[origin ip="192.0.2.1" software="rsyslogd"]',
        '[m x="IN=eth1 SRC=1.2.3.4"]',
        '[m x="a\\"b\\]c\\\\"]',
        '[m x="]"]',
        "[m]",
        "[12.345]",
        '[m x="\\\n"]',
        '[m x="multi\nline"]',
        '[m x="unterminated]',
        "[m x=1]",
        "[]",
        "[" + "n" * 32 + "]",
        "[" + "n" * 33 + "]",
        "[nø]",
        '[m  x="1"]',
        '[m x="1"',
        '[m x="é"]',
    ]
)


@st.composite
def rfc5424_heads(draw: st.DrawFn) -> str:
    """An RFC 5424 header up to its message, drawn part by part, with tag, uptime and caller id after it."""
    stamp = draw(rfc3339_stamps())
    host, app, procid, msgid = (draw(st.one_of(_HOSTS, _5424_WORDS)) for _ in range(4))
    sd = draw(
        st.one_of(
            st.just("-"),
            st.lists(_SD_ELEMENTS, min_size=1, max_size=3).map("".join),
            st.sampled_from(["", "--", "-x"]),
        )
    )
    bom = draw(st.sampled_from(["", "", "\ufeff", "\ufeff\ufeff"]))
    after = draw(_TAGS) + draw(_UPTIMES) + draw(_CALLERS) + draw(st.sampled_from(["", " ", " ", "  "]))
    return f"{draw(_5424_PRIS)}{stamp} {host} {app} {procid} {msgid} {sd} {bom}" + after


@st.composite
def headed_lines(draw: st.DrawFn) -> str:
    """A body cut at its first IN=, behind a syslog header, tag, uptime and caller id drawn part by part."""
    body = draw(st.sampled_from([line for line in fixture_lines() if "IN=" in line] + list(bench_lines(2))))
    body = body[body.index("IN=") :]
    if draw(st.integers(0, 3)) == 0:
        body = draw(mutations(body, PATCHES))
    if draw(st.integers(0, 3)) == 0:
        return draw(rfc5424_heads()) + draw(_PREFIXES) + body
    stamp = draw(st.one_of(rfc3164_stamps(), rfc3339_stamps()))
    host = draw(_HOSTS)
    after_stamp = draw(st.sampled_from([" ", " ", "  ", "\t"]))
    head = draw(_PRIS) + stamp + after_stamp + (host + " " if host else "")
    gap = draw(st.sampled_from(["", " ", " ", "  "]))
    return head + draw(_TAGS) + draw(_UPTIMES) + draw(_CALLERS) + gap + draw(_PREFIXES) + body


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(headed_lines(), damaged_lines()), min_size=1, max_size=40),
    st.sampled_from(sorted(CONTEXTS)),
)
def test_header_variants_parse_alike(lines: list[str | None], name: str) -> None:
    """Every combination of header form, host, tag, uptime, caller id and prefix agrees with the reference."""
    agree(lines, CONTEXTS[name])


# The kernel prints IPv6 fully expanded and the scanner compresses it itself:
# groups drawn mostly from zeros make every pattern of zero runs likely.
_GROUP = st.sampled_from([0, 0, 0, 1, 0xDB8, 0xFFFF]) | st.integers(0, 0xFFFF)
_KERNEL_IPV6 = st.lists(_GROUP, min_size=8, max_size=8).map(
    lambda groups: ":".join(f"{g:04x}" for g in groups)
)
_IPV4_TEXT = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.lists(st.integers(0, 300), min_size=4, max_size=4).map(lambda octets: ".".join(map(str, octets))),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 3)).map(
        lambda pair: ".".join(
            f"{int(o):03d}" if n == pair[1] else o for n, o in enumerate(str(pair[0]).split("."))
        )
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.tuples(_KERNEL_IPV6, _KERNEL_IPV6).map(lambda pair: HEAD + v6(*pair) + TCP),
            st.tuples(st.ip_addresses(v=6), st.ip_addresses(v=6)).map(
                lambda pair: HEAD + v6(pair[0].exploded, pair[1].exploded) + UDP
            ),
            st.tuples(_IPV4_TEXT, _IPV4_TEXT).map(lambda pair: HEAD + v4(*pair) + TCP),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_addresses_parse_alike(lines: list[str]) -> None:
    """Any IPv6 address in the kernel's spelling, and dotted quads valid or not, read as the reference."""
    agree(lines, CONTEXTS["utc"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(damaged_lines(), min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_offsets_out_of_line_order_parse_alike(lines: list[str | None], rng: random.Random) -> None:
    """Offsets that are not in line order keep each outcome with its own line, as the reference does."""
    offsets = [n * 7 + 3 for n in range(len(lines))]
    rng.shuffle(offsets)

    agree(lines, CONTEXTS["utc"], offsets)


def test_sliced_chunked_and_large_string_arrays_parse_alike() -> None:
    """Lines sliced out of a bigger array, in chunks or as large strings read as the plain lines do."""
    lines = [*fixture_lines(), *bench_lines(3)]
    whole = pa.array(lines, pa.string())
    offsets = pa.array(byte_offsets(lines), pa.int64())
    ctx = CONTEXTS["utc"]
    start, stop = 7, len(lines) - 5
    expected = netfilter.parse_arrow(
        pa.array(lines[start:stop], pa.string()), pa.array(offsets.to_pylist()[start:stop], pa.int64()), ctx
    )
    half = (stop - start) // 2
    layouts = {
        "sliced": (whole.slice(start, stop - start), offsets.slice(start, stop - start)),
        "chunked": (
            pa.chunked_array([whole.slice(start, half), whole.slice(start + half, stop - start - half)]),
            pa.chunked_array([offsets.slice(start, half), offsets.slice(start + half, stop - start - half)]),
        ),
        "large_string": (pa.array(lines[start:stop], pa.large_string()), offsets.slice(start, stop - start)),
    }

    for layout, (batch, positions) in layouts.items():
        rv = netfilter.parse(batch, positions, ctx)
        assert outcome(expected) == outcome(rv), layout
        assert rv.events.equals(expected.events), layout
        assert rv.rejects == expected.rejects, layout


def test_auto_detection_reads_alike_with_and_without_the_scanner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every format's fixtures, detected per line, read the same with or without the scanner first."""
    # winfw carries a source's last #Fields header over to its next batch: one
    # at the top makes both parses start alike.
    lines: list[str | None] = ["#Fields: date time action protocol src-ip dst-ip src-port dst-port path"]
    for log in sorted(FIXTURES.parent.glob("*/*.log")):
        lines += read_lines(log)[0].to_pylist()
    lines += [*REGRESSIONS.values(), *DST_LINES, *bench_lines(0)]
    batch = pa.array(lines, pa.string())
    offsets = pa.array(byte_offsets(lines), pa.int64())
    ctx = CONTEXTS["oslo_autumn"]
    rv = auto.parse(batch, offsets, ctx)

    monkeypatch.setenv("FIREPLOT_NETFILTER_ENGINE", "arrow")
    expected = auto.parse(batch, offsets, ctx)

    assert outcome(expected) == outcome(rv)
    assert rv.events.equals(expected.events)
    assert rv.rejects == expected.rejects


def test_twenty_thousand_bench_lines_parse_alike() -> None:
    """A production-sized batch of benchmark lines: all events, and the reference's."""
    lines = generate(20_000, 7)

    expected = agree(lines, CONTEXTS["utc"])

    assert (expected.events.num_rows, expected.rejects) == (20_000, [])


def test_twenty_thousand_lines_with_fixtures_mixed_in_parse_alike() -> None:
    """Fixture lines (events and rejects) scattered through a big batch stay in place on both paths."""
    lines: list[str | None] = list(generate(20_000, 8))
    fixtures = fixture_lines()
    for n in range(0, len(lines), 97):
        lines[n] = fixtures[(n // 97) % len(fixtures)]

    agree(lines, CONTEXTS["utc"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(rfc5424_heads(), _PREFIXES, st.sampled_from(list(bench_lines(4)))), min_size=1, max_size=40
    ),
    st.sampled_from(sorted(CONTEXTS)),
)
def test_rfc5424_headers_parse_alike(parts: list[tuple[str, str, str]], name: str) -> None:
    """RFC 5424 headers of every shape (structured data, escapes, BOM, nil host) read as the reference."""
    lines = [head + prefix + body[body.index("IN=") :] for head, prefix, body in parts]
    agree(lines, CONTEXTS[name])


STYLE_SAMPLES = (
    "rfc5424-pri",
    "rfc5424-pri-sd",
    "rfc3164-pri",
    "rfc3164-uptime",
    "rsyslog-iso",
    "ulogd-logemu",
)


@pytest.mark.parametrize("style", STYLE_SAMPLES)
def test_every_header_style_is_claimed_and_parses_alike(style: str) -> None:
    """Each header style of the benchmark is read by the scanner itself, line for line as the reference."""
    lines = generate(2_000, 11, style)
    batch = pa.array(lines, pa.string())
    ctx = CONTEXTS["utc"]

    found = netfilter_native.scan(batch, syslog.year_rule(ctx), alone=False)
    expected = agree(lines, ctx)

    assert found is not None and not found.declined
    assert found.claimed == len(lines)
    assert (expected.events.num_rows, expected.rejects) == (len(lines), [])


def test_batch_of_unclaimed_lines_is_declined_and_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose first lines the scanner cannot claim goes whole to the reference: same outcome."""
    unclaimed = REGRESSIONS["rfc5424_nil_host"]
    lines: list[str | None] = [unclaimed] * 64 + list(generate(100, 12, "rfc5424-pri"))
    batch = pa.array(lines, pa.string())
    ctx = CONTEXTS["utc"]
    reads: list[int] = []
    reference = netfilter_arrow.parse_with_positions

    def counting(batch: pa.Array, offsets: pa.Array, ctx: ParseContext) -> tuple[ParseResult, pa.Array]:
        reads.append(len(batch))
        return reference(batch, offsets, ctx)

    found = netfilter_native.scan(batch, syslog.year_rule(ctx), alone=False)
    one_fewer = netfilter_native.scan(pa.array(lines[1:], pa.string()), syslog.year_rule(ctx), alone=False)
    monkeypatch.setattr(netfilter_arrow, "parse_with_positions", counting)
    expected = agree(lines, ctx)

    assert found is not None and found.declined and found.claimed == 0
    assert one_fewer is not None and not one_fewer.declined and one_fewer.claimed == 100
    # The reference read the batch once, for agree()'s parse_arrow, and once for parse: never a copy of it.
    assert reads == [len(lines), len(lines)]
    assert expected.events.num_rows == 164


def test_unclaimed_lines_of_a_claimed_batch_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines the scanner does not claim amid ones it does go to the reference alone, once each."""
    lines: list[str | None] = list(generate(200, 13, "rfc5424-pri"))
    for n in range(0, 200, 10):
        lines[n] = REGRESSIONS["rfc5424_nil_host"]
    reads: list[int] = []
    reference = netfilter_arrow.parse_with_positions

    def counting(batch: pa.Array, offsets: pa.Array, ctx: ParseContext) -> tuple[ParseResult, pa.Array]:
        reads.append(len(batch))
        return reference(batch, offsets, ctx)

    monkeypatch.setattr(netfilter_arrow, "parse_with_positions", counting)
    agree(lines, CONTEXTS["utc"])

    assert reads == [200, 20]
