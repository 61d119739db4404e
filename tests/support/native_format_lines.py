"""Lines of each format for the native scanners' differential tests (tests/test_formats_native.py).

Built from every field shape the format's grammar allows, with the near
misses next to each (a field one step outside what it allows), so a scanner
that reads one of them differently from the pyarrow path shows up.
"""

from __future__ import annotations

from collections.abc import Iterator

# --- MikroTik -----------------------------------------------------------------

V6_SPELLINGS = (
    "2001:db8::7",
    "2001:DB8::7",
    "2001:0db8:0000:0000:0000:0000:0000:0007",
    "2001:db8:0:0:0:0:0:7",
    "::1",
    "::",
    "1::",
    "2001:db8::",
    "fe80::1:0:0:1",
    "1:0:0:2:0:0:0:3",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "0:0:0:0:0:ffff:c000:201",
    "::ffff:192.0.2.1",
    "::192.0.2.1",
    "fe80::1%eth0",
    "1:::2",
    "1::2::3",
    "12345::1",
    "1:2:3:4:5:6:7:8:9",
    ":1::2",
    "1::2:",
    "g::1",
    "2001:db8::1:0:0:0",
    "0:0:1::",
)
V4_SPELLINGS = (
    "198.51.100.7",
    "0.0.0.0",  # noqa: S104
    "255.255.255.255",
    "010.1.2.3",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.5",
    "1..2.3",
)
MIKROTIK_HEADS = (
    "Mar 10 14:22:05 gw firewall,info ",
    "Mar  3 04:11:27 gw firewall,info ",
    "Mar 3 04:11:27 gw firewall,info ",
    "<134>Mar 10 14:22:05 gw firewall,info ",
    "<4>1 2024-03-10T14:22:05Z gw - - - - firewall,info ",
    "Feb 29 14:22:05 gw firewall,info ",
    "Feb 30 14:22:05 gw firewall,info ",
    "Dec 31 23:59:59 gw ",
    "mar/10 14:22:05 firewall,info ",
    "feb/29 14:22:05 firewall,info ",
    "mar/10/2024 14:22:06 firewall,info ",
    "feb/29/2023 00:00:00 ",
    "mar/10 25:22:05 firewall,info ",
    "2024-03-10T14:22:05-04:00 rtr ",
    "2024-03-10T14:22:05.123456789Z rtr firewall,info ",
    "2024-03-10 14:22:05 rtr ",
    "2024-03-10T14:22:05+0530 - ",
    "Mar 10 14:22:05 firewall,info ",
    "Mar 10 14:22:05 gw: firewall,info ",
    "Mar 10 14:22:05 g=w firewall,info ",
    "Mar 10 14:22:05 ",
    "Mar 10 14:22:05 gw\tfirewall,info ",
    "Jun 15 13:00:00 gw firewall,info ",
)
MIKROTIK_BODIES = (
    "input: in:ether1 out:(unknown 0), src-mac 02:00:5e:10:00:01, proto TCP (SYN), {a}->{b}, len 60",
    "DROP-SSH input: in:ether1 out:(unknown 0), proto UDP, {a}->{b}, len 80",
    "forward: in:ether5 out:ether1, src-mac 02:00:5e:10:00:02, proto TCP (ACK,FIN), {a}->{b}, "
    "NAT (192.0.2.9:34923->203.0.113.19:34923)->198.51.100.20:80, len 52",
    "forward: in:bridge1 out:ether1, proto UDP, {a}->{b}, NAT 192.0.2.50:40000->(198.51.100.9:53->x), len 60",
    "accept-icmp input: in:ether1 out:(unknown 0), proto ICMP (type 8, code 0), {a}->{b}, len 84",
    "input: in:ether1 out:(unknown 0), proto 6 (SYN), {a}->{b}, len 60",
    "input: in:ether1 out:(unknown 0), proto 17, {a}->{b}, len 60",
    "input: in:ether1 out:(unknown 0), proto ipv6-icmp, {a}->{b}, len 60",
    "input: in:ether1 out:(unknown 0), proto udp-lite, {a}->{b}, len 60",
    "input: in:ether1 out:(unknown 0), proto 47, {a}->{b}, len 60",
    "input: in:ether1 out:(unknown 0), proto tcp (), {a}->{b}, len 60",
    "input: in:ether1 out:(unknown 0), proto TCP, {a}->{b}, len 60 extra, len 3",
    "Allowed ACCEPT input: in:ether1 out:ether2, proto TCP (SYN), {a}->{b}, len 60",
    "reject: in:a in:b out:c, proto TCP (SYN), {a}->{b}, len 60",
    "x: in:a out:b out:c, proto TCP (SYN), {a}->{b}, len 60",
    "input: in:ether1 out:(unknown 0),proto TCP, {a}->{b}, len 60",
    "input: in:ether1 out:(unknown 0), proto TCP (SYN), {a}->{b}, NAT nothing",
    "input: in:ether1 out:(unknown 0), proto TCP (SYN), {a}->{b}, len x",
)


def endpoints() -> Iterator[tuple[str, str]]:
    yield "198.51.100.7:45678", "192.0.2.1:22"
    yield "198.51.100.7", "192.0.2.1"
    yield "198.51.100.7:45678", "192.0.2.1"
    yield "198.51.100.7:0", "192.0.2.1:65535"
    yield "198.51.100.7:65536", "192.0.2.1:22"
    yield "198.51.100.7:0000000022", "192.0.2.1:0022"
    yield "198.51.100.7:45678", "[2001:db8::1]:22"
    for spelling in V6_SPELLINGS:
        yield f"[{spelling}]:5353", "[2001:db8::1]:53"
        yield "[2001:db8::1]", f"[{spelling}]"
    for spelling in V4_SPELLINGS:
        yield f"{spelling}:1", "192.0.2.1:2"


def mikrotik_lines() -> list[str]:
    lines = []
    for head in MIKROTIK_HEADS:
        for body in MIKROTIK_BODIES:
            lines.append(head + body.format(a="198.51.100.7:45678", b="192.0.2.1:22"))
    for a, b in endpoints():
        for body in MIKROTIK_BODIES[:3]:
            lines.append(MIKROTIK_HEADS[0] + body.format(a=a, b=b))
    return lines


MIKROTIK_LINES = mikrotik_lines()
MIKROTIK_PATCHES = (
    ",",
    ", ",
    ":",
    ": ",
    ": in:",
    " in:",
    " out:",
    "(",
    ")",
    "[",
    "]",
    "->",
    ", NAT ",
    ", len ",
    "len 1",
    "proto ",
    "src-mac ",
    "firewall,info ",
    ",info",
    "-",
    "/",
    "(unknown 0)",
    "::",
    "::1",
    ".",
    "0",
    "9",
    "99999",
    " ",
    "  ",
    "\t",
    "\n",
    "\r",
    "\x00",
    "é",
    "\u2028",
    "<13>",
    "mar/",
    "Feb 29",
    "Z",
    "+01:00",
)


# --- Cisco ASA ----------------------------------------------------------------

ASA_HEADS = (
    "Mar 10 2024 14:22:05 fw-asa-1 : ",
    "Mar 1 2024 14:22:05 fw-asa-1 : ",
    "Mar 10 2024 14:22:05 : ",
    "Mar 10 2024 14:22:05 ",
    "Mar 10 2024 14:22:05: ",
    "<166>Mar 10 14:22:05 fw-asa-1 ",
    "<166>Mar 10 2024 14:22:05 fw ",
    "Mar 10 14:22:05 fw-asa-1 ",
    "Feb 29 2023 14:22:05 fw ",
    "Feb 29 2024 14:22:05 fw ",
    "Feb 29 14:22:05 fw ",
    "Mar 10 0000 14:22:05 fw ",
    "Mar 10 2024 24:00:00 fw ",
    "2024-03-10T14:22:05Z fw ",
    "2024-03-10T14:22:05+02:00 fw : ",
    "2024-03-10T14:22:05.5 fw ",
    "Mar  3 04:11:27 fw ",
    "Mar 10 2024 14:22:05 fw%x ",
    "",
    "fw : ",
    "Mar 10 2024 14:22:05 fw-asa-1 :",
    "<999>Mar 10 2024 14:22:05 fw ",
    "Mar 10 2024 14:22:05 - ",
)
ASA_TAGS = ("%ASA-4-106023: ", "%FTD-4-106023: ", "%ASA-6-106100: ", "%ASA-4-106006: ", "%ASA-4-10602: ")
ASA_106023 = (
    'Deny {p} src outside:{a}/51234 dst inside:{b}/22 by access-group "OUTSIDE_IN" [0x0, 0x0]',
    'Deny {p} src outside:{a}/51234 dst inside:{b}/22 by access-group "OUTSIDE_IN"',
    'Deny {p} src outside:{a} dst inside:{b} (type 8, code 0) by access-group "OUTSIDE_IN" [0x0, 0x0]',
    'Deny protocol {p} src outside:{a}(LOCAL\\user) dst inside:{b}/22(x) by access-group "" [0x0, 0x0]',
    'Deny {p} src outside:{a}/51234 dst inside:{b}/22 by access-group "A B" [0x0, 0x0] junk',
    'Deny {p} src outside:{a}/99999 dst inside:{b}/22 by access-group "X"',
)
ASA_106100 = (
    "access-list OUTSIDE_IN denied {p} outside/{a}(5353) -> inside/{b}(161) hit-cnt 12 300-second interval "
    "[0x1, 0x0]",
    "access-list OUTSIDE_IN permitted {p} outside/{a}(5353)(u) -> inside/{b}(161) hit-cnt 1 first hit "
    "[0x1, 0x0]",
    "access-list A est-allowed {p} outside/{a}(1) -> inside/{b}(2) hit-cnt 2147483647 x",
    "access-list A denied {p} outside/{a}(1) -> inside/{b}(2) hit-cnt 2147483648 x",
    "access-list A denied {p} outside/{a}(1) -> inside/{b}(2) hit-cnt 0 x",
    "access-list A denied {p} outside/{a}(1) -> inside/{b}(2) hit-cnt 5",
)
ASA_PROTOS = ("tcp", "icmp6", "17", "47", "TCP", "sctp")


def asa_lines() -> list[str]:
    lines = []
    pairs = [("198.51.100.7", "192.0.2.10"), ("2001:db8::7", "2001:db8::10"), ("198.51.100.7", "2001:db8::1")]
    pairs += [(spelling, "2001:db8::10") for spelling in V6_SPELLINGS[:12]]
    pairs += [(spelling, "192.0.2.10") for spelling in V4_SPELLINGS]
    for head in ASA_HEADS:
        for tag in ASA_TAGS:
            body = ASA_106100[0] if "106100" in tag else ASA_106023[0]
            lines.append(head + tag + body.format(p="tcp", a="198.51.100.7", b="192.0.2.10"))
    for a, b in pairs:
        for p in ASA_PROTOS:
            for body in ASA_106023:
                lines.append(ASA_HEADS[0] + ASA_TAGS[0] + body.format(p=p, a=a, b=b))
            for body in ASA_106100:
                lines.append(ASA_HEADS[5] + ASA_TAGS[2] + body.format(p=p, a=a, b=b))
    return lines


ASA_LINES = asa_lines()
ASA_PATCHES = (
    " ",
    "  ",
    ":",
    " :",
    "%",
    "%ASA-",
    "%FTD-",
    "-",
    "/",
    "(",
    ")",
    '"',
    "[",
    "]",
    " -> ",
    "hit-cnt ",
    " src ",
    " dst ",
    "protocol ",
    "Deny ",
    "denied ",
    "::",
    "::1",
    ".",
    "0",
    "9",
    "99999",
    "\t",
    "\n",
    "\x00",
    "é",
    "<13>",
    "Feb 29",
    "2024",
    "outside:",
    "outside/",
)


# --- filterlog ----------------------------------------------------------------

FILTERLOG_HEADS = (
    "<134>Jul  3 19:10:30 filterlog[72237]: ",
    "<134>Jun 14 19:10:30 fw filterlog[72237]: ",
    "Jan 1 00:00:05 fw filterlog: ",
    "Jun 14 19:10:30 - filterlog: ",
    "Jun 14 19:10:30 filterlog: ",
    "2024-03-10T14:22:05-06:00 fw filterlog[1]: ",
    "2024-03-10T14:22:05.123Z fw.example.com filterlog: ",
    '<134>1 2024-03-10T14:44:11-06:00 OPN filterlog 76404 - [meta sequenceId="1"] ',
    "Feb 29 00:00:00 fw filterlog: ",
    "Feb 30 00:00:00 fw filterlog: ",
    "Jun 14 19:10:30 fw ",
    "Jun 14 19:10:30 f=w filterlog: ",
    "Jun 14 19:10:30 fw: filterlog: ",
    "Jun 14 19:10:30 f,w filterlog: ",
    "Jun 14 19:10:30 fw filterlog[]: ",
    "Jun 14 19:10:30 fw  filterlog: ",
    "Jun 14 19:10:30 fw\tfilterlog: ",
)
FILTERLOG_BODIES = (
    "146,,,1000000103,igb1.12,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,{a},{b},49724,853,0,S,1891286705,,64240,,mss",
    "6,,,1000000105,igb1.27,match,block,in,6,0x00,0xf6279,1,UDP,17,32,{a},{b},546,547,32",
    "124,,,fae559338f65e11c53669fc3642c93c2,ixl1_vlan70,match,pass,out,4,0x0,,63,5687,0,DF,6,tcp,60,{a},{b},40370,80,0,SA",
    "5,,,1000000103,em0,match,block,in,4,0x0,,64,0,0,DF,1,icmp,84,{a},{b},request,1234,1",
    "5,,,1000000103,em0,match,block,in,4,0x0,,64,0,0,DF,6,tcp,84,{a}",
    "5,,,1000000103,em0,match,block,in,6,0x00,0x00000,255,ICMPv6,58,32,{a},{b},",
    "7,,,1000000103,em0,match,block,in,4,0x0,,64,1,0,none,2,igmp,32,{a},{b},datalength=8",
    "7,,,1535324496a,em0,match,reject,in,6,0x00,0x00000,64,TCP,6,40,{a},{b},40000,22,0,S,1,,1024,,",
    "7,,,1000000103,em0,match,block,in,5,0x0,,64,1,0,none,17,udp,60,{a},{b},5353,53,32",
    "7,,,1000000103,em0,match,block,in,4,0x0,,64,1,0,none,17,udp,60,{a},{b},5353,99999,32",
    "7,,,1000000103,em0,match,allow,in,4,0x0,,64,1,0,none,17,udp,60,{a},{b},5353,53,32",
    "7,,,,em0,match,block,sideways,4,0x0,,64,1,0,none,17,udp,60,{a},{b},,53,32",
    ",,,,em0,match,block,in,4,0x0,,64,1,0,none,17,udp,60,{a},{b},5353,,32",
    "7,,,,em0,match,block,in,4,0x0,,64,1,0,none,006,tcp,60,{a},{b},1,2,0,FPUAREWS",
    "7,,,,em0,match,block,in,4,0x0,,64,1,0,none,6,tcp,60,{a},{b},1,2",
    "7,,,,em0,match,block,in,4,0x0,,64,1,0,none,6,tcp,60,{a},{b},1,2,0,,1",
    "7,,,,em0,match,block,in,4,0x0,,64,1,0,none,1234,x,60,{a},{b}",
    "7 x,,,,em0,match,block,in,4,0x0,,64,1,0,none,17,udp,60,{a},{b},1,2",
    "7,,,,em0,match,block,in,4,0x0,,64,1,0,none,132,sctp,60,{a},{b},1,2,3",
)
FILTERLOG_PAIRS = (
    ("198.51.100.50", "203.0.113.1"),
    ("2001:db8::9", "ff02::1:2"),
    ("198.51.100.50", "2001:db8::1"),
    *((spelling, "2001:db8::1") for spelling in V6_SPELLINGS),
    *((spelling, "192.0.2.1") for spelling in V4_SPELLINGS),
)


def filterlog_lines() -> list[str]:
    lines = [
        head + body.format(a="198.51.100.50", b="203.0.113.1")
        for head in FILTERLOG_HEADS
        for body in FILTERLOG_BODIES
    ]
    for a, b in FILTERLOG_PAIRS:
        lines += [FILTERLOG_HEADS[1] + body.format(a=a, b=b) for body in FILTERLOG_BODIES]
    return lines


FILTERLOG_LINES = filterlog_lines()
FILTERLOG_PATCHES = (
    ",",
    ",,",
    " ",
    "  ",
    "\t",
    "\n",
    "\x00",
    "é",
    ":",
    ": ",
    "filterlog",
    "[1]",
    "in",
    "out",
    "pass",
    "block",
    "match",
    "reject",
    "4",
    "6",
    "17",
    "tcp",
    "S",
    "SA",
    "::",
    "::1",
    ".",
    "0",
    "99999",
    "-",
    "<13>",
    "Feb 29",
    "Z",
)


# --- Windows Firewall -----------------------------------------------------------

WINFW_BODIES = (
    "{d} {t} DROP TCP {a} {b} 51234 3389 52 S 1234 0 8192 - - - RECEIVE",
    "{d} {t} DROP UDP {a} {b} 5353 5353 89 - - - - - - - RECEIVE",
    "{d} {t} DROP ICMP {a} {b} - - 60 - - - - 8 0 - RECEIVE",
    "{d} {t} ALLOW TCP {a} {b} 443 51234 40 AP 0 1 512 - - - SEND",
    "{d} {t} DROP TCP {a} {b} 65457 80 0 - 0 0 0 - - - SEND 1360",
    "{d} {t} DROP 6 {a} {b} 1 2 0 FAPRSU 0 0 0 - - - SEND 4",
    "{d} {t} DROP 17 {a} {b} 1 2 0 - 0 0 0 - - - SEND",
    "{d} {t} DROP 47 {a} {b} - - 0 - 0 0 0 - - - SEND",
    "{d} {t} DROP 0047 {a} {b} - - 0 - 0 0 0 - - - SEND",
    "{d} {t} DROP icmpv6 {a} {b} 3 4 0 - 0 0 0 - - - SEND",
    "{d} {t} DROP tcp {a} {b} 0 65535 0  0 0 0 - - - SEND",
    "{d} {t} DROP TCP {a} {b} 0 65536 0 S 0 0 0 - - - SEND",
    "{d} {t} DROP - {a} {b} 1 2 0 - 0 0 0 - - - SEND",
    "{d} {t} BLOCK TCP {a} {b} 1 2 0 - 0 0 0 - - - SEND",
    "{d} {t} INFO-EVENTS-LOST - - - - - - - - - - - - 12 -",
    "{d} {t} DROP TCP {a} {b} 1 2 3",
    "{d} {t} DROP TCP {a} {b} 1 2 0 - 0 0 0 - - - SEND 1 2",
    "{d} {t} DROP TCP {a} {b} 1  2 0 - 0 0 0 - - - SEND",
    "{d} {t} DROP T\u00dfP {a} {b} 1 2 0 - 0 0 0 - - - SEND",
)
WINFW_STAMPS = (
    ("2024-03-10", "14:22:05"),
    ("2024-02-29", "00:00:00"),
    ("2023-02-29", "00:00:00"),
    ("2024-03-31", "02:30:00"),
    ("2024-10-27", "02:30:00"),
    ("0000-01-01", "00:00:00"),
    ("2024-13-01", "00:00:00"),
    ("2024-03-10", "24:00:00"),
    ("2024-03-10", "14:22:05-01:00"),
    ("2024-3-10", "14:22:05"),
    ("2024-03-10", "14:22:5"),
)
WINFW_PAIRS = FILTERLOG_PAIRS


def winfw_lines() -> list[str]:
    lines = [
        body.format(d=d, t=t, a="198.51.100.7", b="192.0.2.10")
        for d, t in WINFW_STAMPS
        for body in WINFW_BODIES
    ]
    for a, b in WINFW_PAIRS:
        lines += [body.format(d="2024-03-10", t="14:22:05", a=a, b=b) for body in WINFW_BODIES[:6]]
    return lines


WINFW_LINES = winfw_lines()
WINFW_PATCHES = (
    " ",
    "  ",
    "-",
    "#Fields: date time",
    "#",
    ":",
    "\t",
    "\n",
    "\x00",
    "é",
    "DROP",
    "ALLOW",
    "TCP",
    "6",
    "S",
    "::",
    "::1",
    ".",
    "0",
    "99999",
    "T",
    "2024-02-29",
)


# --- AWS VPC flow logs ------------------------------------------------------------

VPC_BODIES = (
    "2 123456789010 eni-0a1b2c3d4e5f67890 {a} {b} 49761 3389 6 20 4249 1718530010 1718530070 REJECT OK",
    "2 123456789010 eni-0a1b2c3d4e5f67890 {a} {b} 3389 49761 6 18 3700 1718530010 1718530070 ACCEPT OK",
    "2 123456789010 eni-0a1b2c3d4e5f67890 {a} {b} 0 0 58 3 252 1718530010 1718530070 REJECT OK",
    "2 123456789010 eni-0a1b2c3d4e5f67890 {a} {b} 0 0 1 4 336 1718530010 1718530070 REJECT OK",
    "2 - eni-x {a} {b} 5353 53 17 1 72 0 1718530070 REJECT OK",
    "2 123456789010 eni-0a1b2c3d4e5f67890 - - - - - - - 1718530876 1718530934 - NODATA",
    "2 123456789010 eni-0a1b2c3d4e5f67890 - - - - - - - 1718530876 1718530934 - SKIPDATA",
    "2 1 e {a} {b} 49761 70000 6 20 4249 1718530010 1718530070 REJECT OK",
    "2 1 e {a} {b} 49761 22 6 0 0 1718530010 1718530070 REJECT OK",
    "2 1 e {a} {b} 49761 22 6 2147483647 0 253402300799 1 REJECT OK",
    "2 1 e {a} {b} 49761 22 6 2147483648 0 1 1 REJECT OK",
    "2 1 e {a} {b} 49761 22 6 1 0 253402300800 1 REJECT OK",
    "2 1 e {a} {b} 49761 22 6 1 40 1718530010 1718530070 DENY OK",
    "2 1 e {a} {b} - - 6 1 40 1718530010 1718530070 REJECT OK",
    "2 1 e {a} {b} - - 47 1 40 1718530010 1718530070 REJECT OK",
    "2 1 e {a} {b} 1 2 006 1 40 1718530010 1718530070 REJECT OK",
    "2 1 e {a} {b} 1 2 256 1 40 1718530010 1718530070 REJECT OK",
    "2 1 e {a} {b} 1 2 132 01 40 1718530010 1718530070 ACCEPT OK",
    "2 1 e {a} {b} 1 2 6 1 40 1718530010 1718530070 REJECT OK extra",
    "2 1 e {a} {b} 1 2 6 1 40 1718530010 1718530070 REJECT",
    "2 1 \x0be {a} {b} 1 2 6 1 40 1718530010 1718530070 REJECT OK",
    "3 1 e {a} {b} 1 2 6 1 40 1718530010 1718530070 REJECT OK",
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action "
    "log-status",
)


def vpc_lines() -> list[str]:
    lines = [body.format(a="198.51.100.7", b="203.0.113.12") for body in VPC_BODIES]
    for a, b in FILTERLOG_PAIRS:
        lines += [body.format(a=a, b=b) for body in VPC_BODIES[:5]]
    return lines


VPC_LINES = vpc_lines()
VPC_PATCHES = (
    " ",
    "  ",
    "-",
    "\t",
    "\n",
    "\x0b",
    "\x00",
    "é",
    "OK",
    "NODATA",
    "ACCEPT",
    "REJECT",
    "6",
    "17",
    "0",
    "99999",
    "::",
    "::1",
    ".",
    "2 ",
)

# --- OpenBSD pf -------------------------------------------------------------------

PF_HEADS = (
    "Mar 10 14:22:05.184835 ",
    "Mar 10 14:22:05 ",
    "Mar  3 04:11:27.2 ",
    "Mar 10 14:22:05.1234567 ",
    "2024-03-10 14:22:07.000004 ",
    "2024-03-10 14:22:07 ",
    "2024-03-10T14:22:07.5 ",
    "2024-03-31 02:30:00.5 ",
    "Mar 31 02:30:00.750000 ",
    "Oct 27 02:30:00.25 ",
    "Feb 29 00:00:00.000001 ",
    "Feb 30 00:00:00 ",
    "Feb 16 16:43:20 firewall pf: ",
    "Feb 16 16:43:20 pf: ",
    "<134>Feb 16 16:43:20 fw pf[123]: ",
    "2024-03-10T14:22:05Z fw pf: ",
    "2024-03-10T14:22:05.5+01:00 fw pf: ",
    "Feb 16 16:43:20 fw: pf: ",
    "Feb 16 16:43:20 - pf: ",
    "Feb 16 16:43:20 fw  pf: ",
    "Feb 16 16:43:20 rule pf: ",
)
PF_BODIES = (
    "rule 4/(match) block in on em0: {a}.53614 > {b}.1435: S 786092310:786092310(0) win 3072 <mss 1460>",
    "rule 4/(match) [uid 0, pid 10758] block in on em0: {a}.53614 > {b}.1435: S [tcp sum ok] 1:1(0) win 3",
    "rule 0/(match) block in on ep0: {a}.2559 > {b}.139: [|tcp] (DF)",
    "rule 2/(match) block in on em0: {a}.443 > {b}.22: Flags [S.], seq 1, win 1024, length 0",
    "rule 2/(match) block in on em0: {a}.443 > {b}.22: Flags [FPUEW], seq 1",
    "rule 2/(match) block in on em0: {a}.443 > {b}.22: Flags [S",
    "rule 5/(match) block out on em1: {a}.40000 > {b}.80: P 1:5(4) ack 1 win 512",
    "rule 5/(match) block out on em1: {a}.40000 > {b}.80: . ack 1 win 512",
    "rule 3/(match) pass out on em0: {a}.53 > {b}.33000: 12345+ A? example.com. (30)",
    "rule 3/(match) match in on em0: {a} > {b}: icmp: echo request",
    "rule 1.anchor.2/(match) block in on em0: {a} > {b}: icmp6: echo request",
    "rule 1/(match) block in on em0: {a} > {b}: ESP(spi=0x1,seq=0x2)",
    "rule 1/(match) block in on em0: {a} > {b}: igmp query",
    "rule 1/(match) block in on em0: {a} > {b}: gre",
    "rule 3/(match) block in on em0: {a} > {b}: mystery",
    "rule 9/(match) block in on em0: {a}.40000 > {b}.22: R 0:0(0) win 0",
    "rule 5/(match) rdr in on em1: {a}.40000 > {b}.80: S 1:1(0) win 512",
    "rule 5/(match) block in on em1: {a}.40000 > {b}.99999: S 1:1(0) win 512",
    "rule 5/(match) block in on em1: {a}.40000 > {b}: S",
    "rule 5/(match): block in on em1: {a}.1 > {b}.2: S",
    "rule 5/(a)(b) block in on em1: {a}.1 > {b}.2: S",
    "rule (x)/(match) block in on em1: {a}.1 > {b}.2: S",
    "rule 5/(match) block in on em1:x: {a}.1 > {b}.2: S",
    "rule 5/(match) block sideways on em1: {a}.1 > {b}.2: S",
    "block in on em1: {a}.40000 > {b}.80: S 1:1(0) win 512",
    "rule 5/(match) block in on em1: {a}.40000 {b}.80",
)


def pf_lines() -> list[str]:
    lines = [head + body.format(a="198.51.100.7", b="192.0.2.10") for head in PF_HEADS for body in PF_BODIES]
    for a, b in FILTERLOG_PAIRS:
        lines += [PF_HEADS[0] + body.format(a=a, b=b) for body in PF_BODIES[:4] + PF_BODIES[9:11]]
    return lines


PF_LINES = pf_lines()
PF_PATCHES = (
    " ",
    "  ",
    ":",
    ": ",
    ".",
    "..",
    " > ",
    "(",
    ")",
    "[",
    "]",
    "rule ",
    "pf: ",
    "block ",
    "pass ",
    " in on ",
    " out on ",
    "Flags [",
    "[|tcp]",
    " ack ",
    "S",
    ".",
    "icmp",
    "0",
    "99999",
    "::",
    "::1",
    "\t",
    "\n",
    "\x00",
    "é",
    "<13>",
    "Feb 29",
    ".123456",
    "Z",
)

LINES = {
    "pf": PF_LINES,
    "vpc": VPC_LINES,
    "mikrotik": MIKROTIK_LINES,
    "asa": ASA_LINES,
    "filterlog": FILTERLOG_LINES,
    "winfw": WINFW_LINES,
}
PATCHES = {
    "pf": PF_PATCHES,
    "vpc": VPC_PATCHES,
    "mikrotik": MIKROTIK_PATCHES,
    "asa": ASA_PATCHES,
    "filterlog": FILTERLOG_PATCHES,
    "winfw": WINFW_PATCHES,
}
