"""How fast each format parser is, next to a per-line Python parser of the same lines.

    python -m benchmarks.bench_parse_formats [--lines 200000] [--repeat 3] [--seed 1] [--format NAME]
                                             [--batch-lines 16384] [--netfilter] [--fallback]

For every format (and ``auto`` over a mix of all of them) generates realistic
lines from the format's grammar (random scanners in documentation ranges,
TCP/UDP, IPv4 and some IPv6), then times, in the same run and on the same
lines, fireplot's columnar parser and a reference written the way a short
script would: one compiled regex (or ``json.loads``) per line, a dict per
event, then one Arrow table. Both must agree on every event's addresses and
ports, or the numbers mean nothing; the script checks. Prints lines/s and
the ratio per format. Times are CPU time: on a shared machine wall time moves
with the neighbours' load, CPU time much less.

Each parser gets the lines in the shipper's batches (``--batch-lines``). The
``pyarrow`` column is the same parser with every native scanner switched
off (``FIREPLOT_NATIVE=off``, ``FIREPLOT_NETFILTER_ENGINE=arrow``): the
formats with a scanner of their own (all of them now, the JSON forms of
netfilter too: a strict native JSON reader) differ from ours there.
``--fallback`` adds rows of lines a format's scanner leaves to the pyarrow
path (no double work: the ratio to that path alone). ``--netfilter`` adds a
row per syslog header style of netfilter LOG lines
(``bench_parse``'s lines, its per-line reference), so every format and header
style the parsers accept is in one table from one run, each row with its goal
(lines/s per core) and how far it is from it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable

import pyarrow as pa

from benchmarks import bench_parse
from pipeline.parsers import ParseContext, ParseResult, get, netfilter

REFERENCE_TIME = dt.datetime(2024, 6, 15, 12, tzinfo=dt.UTC)


def _scanner(rng: random.Random, v6: bool) -> tuple[str, str]:
    if v6:
        return f"2001:db8:{rng.randrange(1, 65536):x}::{rng.randrange(1, 65536):x}", "2001:db8::10"
    return (
        f"{rng.choice(('198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}",
        f"192.0.2.{rng.randrange(1, 20)}",
    )


def _line(fmt: str, rng: random.Random, n: int) -> str:
    v6 = rng.random() < 0.15
    src, dst = _scanner(rng, v6)
    sport, dport = (
        rng.randrange(1024, 65536),
        rng.choice((22, 23, 80, 443, 445, 3389, rng.randrange(1, 65536))),
    )
    tcp = rng.random() < 0.75
    moment = dt.datetime(2024, 6, 14, tzinfo=dt.UTC) + dt.timedelta(microseconds=n * 150_000)
    bsd = moment.strftime("%b %e %H:%M:%S")
    if fmt == "ulogd_json":
        # Every key ulogd2's JSON plugin writes for a TCP or UDP packet on the NFLOG → BASE →
        # IFINDEX → IP2STR → MAC2STR stack (tests/parsers/ulogd_json/nmap_lab_real.log).
        proto_keys = (
            {"tcp.seq": rng.randrange(1 << 32), "tcp.ackseq": 0, "tcp.window": 1024, "tcp.offset": 0,
             "tcp.reserved": 0, "tcp.urg": 0, "tcp.ack": 0, "tcp.psh": 0, "tcp.rst": 0, "tcp.syn": 1,
             "tcp.fin": 0, "tcp.res1": 0, "tcp.res2": 0, "tcp.csum": rng.randrange(65536)}
            if tcp
            else {"udp.len": 28, "udp.csum": rng.randrange(65536)}
        )  # fmt: skip
        record = {
            "timestamp": moment.replace(tzinfo=None).isoformat(), "dvc": "Netfilter", "raw.pktlen": 44,
            "raw.pktcount": 1, "oob.prefix": "DROP ", "oob.time.sec": int(moment.timestamp()),
            "oob.time.usec": moment.microsecond, "oob.mark": 0, "oob.ifindex_in": 2, "oob.hook": 1,
            "raw.mac_len": 14, "oob.family": 10 if v6 else 2, "oob.protocol": 34525 if v6 else 2048,
            "raw.label": 0, "raw.type": 1, "raw.mac.addrlen": 6, "ip.protocol": 6 if tcp else 17,
            "ip.tos": 0, "ip.ttl": rng.randrange(30, 64), "ip.totlen": 44, "ip.ihl": 5,
            "ip.csum": rng.randrange(65536), "ip.id": n % 65536, "ip.fragoff": 0, "src_port": sport,
            "dest_port": dport, **proto_keys, "oob.in": "eth0", "oob.out": "", "src_ip": src,
            "dest_ip": dst, "mac.saddr.str": "c6:f6:1f:f6:e1:1b", "mac.daddr.str": "4e:fb:86:62:bb:5f",
            "mac.str": "4e:fb:86:62:bb:5f:c6:f6:1f:f6:e1:1b:08:00",
        }  # fmt: skip
        return json.dumps(record)
    if fmt == "journald":
        family = "TC=0 HOPLIMIT=57 FLOWLBL=0" if v6 else f"TOS=0x00 PREC=0x00 TTL=50 ID={n % 65536}"
        src_k = _expand(src) if v6 else src
        dst_k = _expand(dst) if v6 else dst
        tail = (
            f"PROTO=TCP SPT={sport} DPT={dport} WINDOW=1024 RES=0x00 SYN URGP=0 "
            if tcp
            else (f"PROTO=UDP SPT={sport} DPT={dport} LEN=20 ")
        )
        message = f"DROP IN=eth0 OUT= MAC= SRC={src_k} DST={dst_k} LEN=44 {family} {tail}"
        # Every key `journalctl -k -o json` writes for a kernel message (tests/parsers/journald/).
        realtime = int(moment.timestamp() * 1_000_000)
        return json.dumps({
            "__CURSOR": f"s=d8b1db9b444a499496cf0cefcb9a14c2;i={n:x};b=d8b1db9b444a499496cf0cefcb9a14c2;"
                        f"m={n * 150_000:x};t={realtime:x};x={n * 7919:x}",
            "__REALTIME_TIMESTAMP": str(realtime),
            "__MONOTONIC_TIMESTAMP": str(956_932_482_352 + n * 150_000),
            "_BOOT_ID": "d8b1db9b444a499496cf0cefcb9a14c2", "_MACHINE_ID": "5f1c0e6f7b2a4c3d9e8f7a6b5c4d3e2f",
            "_TRANSPORT": "kernel", "SYSLOG_FACILITY": "0", "SYSLOG_IDENTIFIER": "kernel", "PRIORITY": "4",
            "_SOURCE_MONOTONIC_TIMESTAMP": str(956_932_482_127 + n * 150_000), "_HOSTNAME": "fw-oslo-1",
            "MESSAGE": message,
        })  # fmt: skip
    if fmt == "filterlog":
        if v6:
            body = f"6,0x00,0x00000,64,{'TCP,6' if tcp else 'UDP,17'},40,{src},{dst},{sport},{dport},0"
        else:
            body = (
                f"4,0x0,,64,{n % 65536},0,DF,{'6,tcp' if tcp else '17,udp'},60,{src},{dst},{sport},{dport},0"
            )
        return f"<134>{bsd} fw filterlog[72237]: 5,,,1000000103,em0,match,block,in,{body}" + (
            ",S,1,,1024,,mss" if tcp else ""
        )
    if fmt == "pf":
        payload = "S 1:1(0) win 1024" if tcp else "udp 20"
        stamp = f"{bsd}.{moment.microsecond:06d}"
        return f"{stamp} rule 4/(match) block in on em0: {src}.{sport} > {dst}.{dport}: {payload}"
    if fmt == "asa":
        return (
            f"{moment.strftime('%b %d %Y %H:%M:%S')} fw-asa-1 : %ASA-4-106023: "
            f"Deny {'tcp' if tcp else 'udp'} "
            f'src outside:{src}/{sport} dst inside:{dst}/{dport} by access-group "OUTSIDE_IN" [0x0, 0x0]'
        )
    if fmt == "winfw":
        proto = "TCP" if tcp else "UDP"
        stamp = moment.strftime("%Y-%m-%d %H:%M:%S")
        return f"{stamp} DROP {proto} {src} {dst} {sport} {dport} 52 - - - - - - - RECEIVE"
    if fmt == "vpc":
        start = int(moment.timestamp())
        return (
            f"2 123456789010 eni-0a1b2c3d4e5f67890 {src} {dst} {sport} {dport} {6 if tcp else 17} "
            f"{rng.randrange(1, 50)} 4249 {start} {start + 60} REJECT OK"
        )
    if fmt == "mikrotik":
        a, b = (f"[{src}]:{sport}", f"[{dst}]:{dport}") if v6 else (f"{src}:{sport}", f"{dst}:{dport}")
        return (
            f"{bsd} gw firewall,info input: in:ether1 out:(unknown 0), src-mac 02:00:5e:10:00:01, "
            f"proto {'TCP (SYN)' if tcp else 'UDP'}, {a}->{b}, len 60"
        )
    raise ValueError(fmt)


def _expand(address: str) -> str:
    import ipaddress

    return ipaddress.IPv6Address(address).exploded


FORMAT_NAMES = ("ulogd_json", "journald", "filterlog", "pf", "asa", "winfw", "vpc", "mikrotik")


def generate(fmt: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    if fmt == "auto":
        return [_line(rng.choice(FORMAT_NAMES), rng, n) for n in range(count)]
    return [_line(fmt, rng, n) for n in range(count)]


# The reference: per line, a Python regex or json.loads, then a dict per event.
_REFERENCE: dict[str, re.Pattern[str]] = {
    "filterlog": re.compile(
        r"filterlog\[\d+\]: (?:[^,]*,){8}(?:4,(?:[^,]*,){8}|6,(?:[^,]*,){5})[^,]*,"
        r"(?P<src>[^,]+),(?P<dst>[^,]+),"
        r"(?P<spt>\d+),(?P<dpt>\d+)"
    ),
    "pf": re.compile(
        r"rule \S+ \w+ (?:in|out) on \S+: (?P<src>[\d.]+?|[0-9a-f:]+)\.(?P<spt>\d+) > "
        r"(?P<dst>[\d.]+?|[0-9a-f:]+)\.(?P<dpt>\d+): "
    ),
    "asa": re.compile(
        r"%ASA-\d-106023: Deny \w+ src [^:]+:(?P<src>[^/]+)/(?P<spt>\d+) dst [^:]+:(?P<dst>[^/]+)/"
        r"(?P<dpt>\d+) "
    ),
    "winfw": re.compile(r"^\S+ \S+ DROP \w+ (?P<src>\S+) (?P<dst>\S+) (?P<spt>\d+) (?P<dpt>\d+) "),
    "vpc": re.compile(r"^2 \S+ \S+ (?P<src>\S+) (?P<dst>\S+) (?P<spt>\d+) (?P<dpt>\d+) "),
    "mikrotik": re.compile(
        r"proto \w+(?: \([^)]*\))?, \[?(?P<src>[0-9a-f.:]+?)\]?:(?P<spt>\d+)->"
        r"\[?(?P<dst>[0-9a-f.:]+?)\]?:(?P<dpt>\d+), "
    ),
    "journald": re.compile(r"SRC=(?P<src>\S+) DST=(?P<dst>\S+) .*?SPT=(?P<spt>\d+) DPT=(?P<dpt>\d+)"),
}
_REF_SCHEMA = pa.schema([("src_ip", pa.string()), ("dst_ip", pa.string()), ("src_port", pa.int32()),
                         ("dst_port", pa.int32()), ("source_offset", pa.int64())])  # fmt: skip


def _reference_one(fmt: str, line: str) -> dict[str, object] | None:
    import ipaddress

    if fmt == "ulogd_json":
        record = json.loads(line)
        return {
            "src_ip": ipaddress.ip_address(record["src_ip"]).compressed,
            "dst_ip": ipaddress.ip_address(record["dest_ip"]).compressed,
            "src_port": record.get("src_port"),
            "dst_port": record.get("dest_port"),
        }
    if fmt == "journald":
        line = json.loads(line)["MESSAGE"]
    match = _REFERENCE[fmt].search(line)
    if match is None:
        return None
    return {
        "src_ip": ipaddress.ip_address(match["src"]).compressed,
        "dst_ip": ipaddress.ip_address(match["dst"]).compressed,
        "src_port": int(match["spt"]),
        "dst_port": int(match["dpt"]),
    }


def reference(fmt: str) -> Callable[[list[str], pa.Array], pa.Table]:
    def parse(lines: list[str], offsets: pa.Array) -> pa.Table:
        events = []
        for line, offset in zip(lines, offsets.to_pylist(), strict=True):
            name = fmt
            if fmt == "auto":
                name = next(f for f in FORMAT_NAMES if _detect_reference(f, line))
            event = _reference_one(name, line)
            if event is not None:
                event["source_offset"] = offset
                events.append(event)
        return pa.Table.from_pylist(events, schema=_REF_SCHEMA)

    return parse


def _detect_reference(fmt: str, line: str) -> bool:
    markers = {
        "journald": '"__REALTIME_TIMESTAMP"', "ulogd_json": '"oob.', "filterlog": "filterlog[",
        "pf": " rule ",
        "asa": "%ASA-", "winfw": " RECEIVE", "vpc": " REJECT OK", "mikrotik": "firewall,info",
    }  # fmt: skip
    return markers[fmt] in line


# Lines/s per core the issue asks of each (#16).
GOALS: dict[str, float] = {"ulogd_json": 1e6, "journald": 1e6, "netfilter": 1e6}
DEFAULT_GOAL = 0.5e6


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--lines", type=int, default=200_000, help="lines per format (200000)")
    options.add_argument("--repeat", type=int, default=3, help="timed runs of each parser (3)")
    options.add_argument("--seed", type=int, default=1, help="random seed of the generator (1)")
    options.add_argument("--format", action="append", help="only these formats (repeatable)")
    options.add_argument("--batch-lines", type=int, default=16_384, help="lines per call of ours (16384)")
    options.add_argument("--netfilter", action="store_true", help="also every netfilter syslog header style")
    options.add_argument(
        "--fallback", action="store_true", help="also lines the native scanners leave to the pyarrow path"
    )
    args = options.parse_args(argv)

    print(
        f"{args.lines:,} lines a row, best of {args.repeat} runs, batches of {args.batch_lines:,}; "
        "lines/s of CPU time"
    )
    print(
        f"{'format / style':26} {'fireplot':>10} {'pyarrow':>10} {'per line':>10} {'/pyarrow':>9} "
        f"{'/line':>7} {'us/line':>8} {'goal':>6} {'of goal':>8}"
    )
    failed = False
    for fmt in args.format or (*FORMAT_NAMES, "auto"):
        failed |= not _format_row(fmt, args)
    if args.fallback:
        for name in FALLBACK:
            failed |= not _fallback_row(name, args)
    if args.netfilter:
        for style in bench_parse.STYLES:
            failed |= not _netfilter_row(style, args)
    return 1 if failed else 0


def _format_row(fmt: str, args: argparse.Namespace) -> bool:
    ctx = ParseContext(site="bench", source_id="bench", reference_time=REFERENCE_TIME)
    text = generate(fmt, args.lines, args.seed)
    lines = pa.array(text, pa.string())
    offsets = pa.array(range(0, args.lines * 256, 256), pa.int64())
    ours = bench_parse.batched(get(fmt), args.batch_lines)
    arrow = _natives_off(ours)
    theirs = reference(fmt)
    expected = theirs(text, offsets)
    for name, parser in (("fireplot", ours), ("pyarrow", arrow)):
        result = parser(lines, offsets, ctx)
        got = result.events.select(_REF_SCHEMA.names)
        if result.rejects or not got.cast(_REF_SCHEMA).equals(expected):
            reason = result.rejects[0].reason if result.rejects else "events differ"
            print(f"{fmt:26} {name} and the reference disagree ({reason}): no timing", file=sys.stderr)
            return False
    seconds = [
        _best(functools.partial(ours, lines, offsets, ctx), args.repeat),
        _best(functools.partial(arrow, lines, offsets, ctx), args.repeat),
        _best(functools.partial(theirs, text, offsets), args.repeat),
    ]
    _row(fmt, args.lines, seconds, GOALS.get(fmt, DEFAULT_GOAL))
    return True


def _netfilter_row(style: str, args: argparse.Namespace) -> bool:
    ctx = ParseContext(site="bench", source_id="bench", reference_time=REFERENCE_TIME)
    lines = pa.array(bench_parse.generate(args.lines, args.seed, style), pa.string())
    offsets = pa.array(range(0, args.lines * 256, 256), pa.int64())
    ours = bench_parse.batched(netfilter.parse, args.batch_lines)
    parsers: list[Callable[[pa.Array, pa.Array, ParseContext], ParseResult]] = [
        ours,
        bench_parse.arrow_only(ours),
        bench_parse.reference_parse,
    ]
    results = [parser(lines, offsets, ctx) for parser in parsers]
    for result in results:
        if result.rejects or not result.events.equals(results[-1].events):
            print(f"netfilter {style:12} disagrees with the reference: no timing", file=sys.stderr)
            return False
    seconds = [_best(functools.partial(parser, lines, offsets, ctx), args.repeat) for parser in parsers]
    _row(f"netfilter {style}", args.lines, seconds, GOALS["netfilter"])
    return True


def _natives_off(
    parser: Callable[[pa.Array, pa.Array, ParseContext], ParseResult],
) -> Callable[[pa.Array, pa.Array, ParseContext], ParseResult]:
    """``parser`` with every native scanner switched off (FIREPLOT_NATIVE=off): the pyarrow path alone."""
    arrow = bench_parse.arrow_only(parser)

    def run(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
        before = os.environ.get("FIREPLOT_NATIVE")
        os.environ["FIREPLOT_NATIVE"] = "off"
        try:
            return arrow(lines, offsets, ctx)
        finally:
            if before is None:
                del os.environ["FIREPLOT_NATIVE"]
            else:
                os.environ["FIREPLOT_NATIVE"] = before

    return run


# Lines of a shape a format's scanner leaves to the pyarrow path, so a batch
# of them is given up on after 64 lines: the row shows that costs no more
# than the pyarrow path alone (the "pyarrow" column).
FALLBACK: dict[str, tuple[str, Callable[[int], str]]] = {
    "filterlog RFC 5424": (
        "filterlog",
        lambda i: (
            f'<134>1 2024-06-14T10:00:{i % 60:02d}-06:00 OPN filterlog 76404 - [meta sequenceId="{i}"] '
            "124,,,fae55,ixl1,match,block,in,4,0x0,,63,5687,0,DF,6,tcp,60,"
            f"198.51.100.{i % 250 + 1},192.0.2.1,{1024 + i % 60000},80,0,S"
        ),
    ),
    "asa 106015": (
        "asa",
        lambda i: (
            f"Jun 14 2024 10:00:{i % 60:02d} fw : %ASA-6-106015: Deny TCP (no connection) from "
            f"198.51.100.{i % 250 + 1}/{1024 + i % 60000} to 192.0.2.1/80 flags RST  on interface outside"
        ),
    ),
    # No oob.time.* keys: the time is the `timestamp` text read in the source's zone.
    "ulogd2 JSON no epoch": (
        "ulogd_json",
        lambda i: json.dumps(
            {
                "timestamp": f"2024-06-14T10:00:{i % 60:02d}",
                "dvc": "Netfilter",
                "oob.prefix": "DROP ",
                "oob.family": 2,
                "ip.protocol": 6,
                "src_port": 1024 + i % 60000,
                "dest_port": 80,
                "tcp.syn": 1,
                "oob.in": "eth0",
                "oob.out": "",
                "src_ip": f"198.51.100.{i % 250 + 1}",
                "dest_ip": "192.0.2.1",
            }
        ),
    ),
    # MESSAGE as byte values (journald's form for text that is not UTF-8).
    "journald byte MESSAGE": (
        "journald",
        lambda i: json.dumps(
            {
                "__REALTIME_TIMESTAMP": str(1_718_323_200_000_000 + i),
                "_HOSTNAME": "fw-oslo-1",
                "MESSAGE": list(
                    f"DROP IN=eth0 OUT= MAC= SRC=198.51.100.{i % 250 + 1} DST=192.0.2.1 LEN=44 TOS=0x00 "
                    f"PREC=0x00 TTL=50 ID=1 PROTO=TCP SPT={1024 + i % 60000} DPT=80 WINDOW=1024 RES=0x00 SYN "
                    "URGP=0 ".encode()
                ),
            }
        ),
    ),
}


def _fallback_row(name: str, args: argparse.Namespace) -> bool:
    fmt, line = FALLBACK[name]
    ctx = ParseContext(site="bench", source_id="bench", reference_time=REFERENCE_TIME)
    lines = pa.array([line(i) for i in range(args.lines)], pa.string())
    offsets = pa.array(range(0, args.lines * 256, 256), pa.int64())
    ours = bench_parse.batched(get(fmt), args.batch_lines)
    arrow = _natives_off(ours)
    first, second = ours(lines, offsets, ctx), arrow(lines, offsets, ctx)
    if first.rejects or len(first.events) != args.lines or not first.events.equals(second.events):
        print(f"{name:26} the two paths disagree or reject: no timing", file=sys.stderr)
        return False
    seconds = [_best(functools.partial(parser, lines, offsets, ctx), args.repeat) for parser in (ours, arrow)]
    ours_rate, arrow_rate = (args.lines / s for s in seconds)
    print(
        f"{name:26} {ours_rate:>10,.0f} {arrow_rate:>10,.0f} {'':>10} {ours_rate / arrow_rate:>8.2f}x",
        flush=True,
    )
    return True


def _row(name: str, count: int, seconds: list[float], goal: float) -> None:
    ours, arrow, line = (count / s for s in seconds)
    print(
        f"{name:26} {ours:>10,.0f} {arrow:>10,.0f} {line:>10,.0f} {ours / arrow:>8.1f}x {ours / line:>6.1f}x "
        f"{1e6 / ours:>8.2f} {goal / 1e6:>5.1f}M {ours / goal:>7.2f}x",
        flush=True,
    )


def _best(run: Callable[[], object], repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        run()
        seconds.append(time.process_time() - start)
    return min(seconds)


if __name__ == "__main__":
    sys.exit(main())
