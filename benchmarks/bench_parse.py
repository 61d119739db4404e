"""How fast the netfilter parser is, next to a plain per-line Python parser.

    python benchmarks/bench_parse.py [--lines 500000] [--repeat 5] [--seed 1] [--batch-lines 16384]
                                     [--style all | --style rfc5424-pri ...]

Generates realistic kernel LOG lines (IPv4 and IPv6; TCP, UDP, ICMP; a few
prefixes and hosts) behind one syslog header style at a time (``--style``:
RFC 3164 with and without PRI and the kernel's uptime stamp, rsyslog's
ISO-8601 file format, RFC 5424 with PRI, with and without structured data,
ulogd2's LOGEMU; ``mixed`` is RFC 3164 and ISO-8601 as before) and times, in
the same run and on the same lines:

- ``pipeline.parsers.netfilter.parse`` with its native scanner (what the
  shipper and the raw-lines topic run);
- the same parser on its pyarrow path alone (``FIREPLOT_NETFILTER_ENGINE=arrow``);
- a reference parser written the way the original Perl script worked: one
  compiled regex per line, a dict per match, then one Arrow table.

Ours get the lines in batches of ``--batch-lines``, as the shipper reads
them. All three must produce the same events, or the numbers mean nothing;
the script checks. Reports lines per second of CPU time (best and median of
the repetitions): on a shared machine wall time moves with the neighbours'
load, CPU time much less.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import ipaddress
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable

import pyarrow as pa

from pipeline.event import EVENT_SCHEMA, SCHEMA_VERSION
from pipeline.parsers import ParseContext, ParseResult, netfilter
from pipeline.parsers.netfilter import parse

REFERENCE_TIME = dt.datetime(2024, 6, 15, 12, tzinfo=dt.UTC)
HOSTS = ("fw-oslo-1", "fw-bergen", "edge-gw1", "sensor-7")
PREFIXES = ("[UFW BLOCK] ", "DROP ", "INPUT-DROP: ", "", "filter_IN_public_REJECT: ")
MAC = "02:00:5e:10:00:01:02:00:5e:10:00:99:08:00"
MAC6 = "02:00:5e:10:00:01:02:00:5e:10:00:99:86:dd"
SCANNERS = [f"203.0.113.{n}" for n in range(1, 255)] + [f"198.51.100.{n}" for n in range(1, 255)]
TARGETS = [f"192.0.2.{n}" for n in range(1, 20)]


# The syslog header styles the netfilter parser accepts, each as a writer of
# (time, host, uptime stamp) -> the line up to the log prefix. "mixed" is
# 80% RFC 3164 and 20% rsyslog's ISO-8601 file format, as before.
STYLES: dict[str, Callable[[dt.datetime, str, str], str]] = {
    "rfc3164": lambda t, host, up: f"{t:%b %e %H:%M:%S} {host} kernel: ",
    "rfc3164-uptime": lambda t, host, up: f"{t:%b %e %H:%M:%S} {host} kernel: {up}",
    "rfc3164-pri": lambda t, host, up: f"<4>{t:%b %e %H:%M:%S} {host} kernel: {up}",
    "rsyslog-iso": lambda t, host, up: f"{t.isoformat(timespec='microseconds')} {host} kernel: ",
    "rfc5424-pri": lambda t, host, up: f"<4>1 {t.isoformat(timespec='microseconds')} {host} kernel - - - ",
    "rfc5424-no-pri": lambda t, host, up: f"1 {t.isoformat(timespec='microseconds')} {host} kernel - - - ",
    "rfc5424-pri-sd": lambda t, host, up: (
        f'<4>1 {t.isoformat(timespec="microseconds")} {host} kernel - - [origin ip="192.0.2.1"] {up}'
    ),
    "ulogd-logemu": lambda t, host, up: f"{t:%b %e %H:%M:%S} {host} ",
    # A sender that does not know its name: the scanner leaves such lines to
    # the pyarrow path, so this style measures what an unclaimed line costs.
    "rfc5424-nil-host": lambda t, host, up: f"<4>1 {t.isoformat(timespec='microseconds')} - kernel - - - ",
}


def generate(count: int, seed: int, style: str = "mixed") -> list[str]:
    """Kernel LOG lines as syslog writes them, in time order, deterministic for a seed."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 6, 14, tzinfo=dt.UTC)
    scanners6 = [
        ipaddress.IPv6Address(f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}")
        for _ in range(500)
    ]
    targets6 = [ipaddress.IPv6Address(f"2001:db8:0:f101::{n:x}") for n in range(1, 10)]
    lines = []
    for n in range(count):
        moment = start + dt.timedelta(microseconds=n * 150_000 + rng.randrange(150_000))
        mixed = rng.random() < 0.8
        host = rng.choice(HOSTS)
        uptime = f"[{rng.randrange(1, 9_999_999):>5}.{rng.randrange(1_000_000):06d}] "
        if style == "mixed":
            header = moment.strftime("%b %e %H:%M:%S") if mixed else moment.isoformat(timespec="microseconds")
            header = f"{header} {host} kernel: {uptime}"
        else:
            header = STYLES[style](moment, host, uptime)
        head = f"{header}{rng.choice(PREFIXES)}IN=eth0 OUT= "
        kind = rng.random()
        ident = rng.randrange(65536)
        sport = rng.randrange(1024, 65536)
        dport = rng.choice((22, 23, 80, 443, 445, 3389, rng.randrange(1, 65536)))
        if kind < 0.8:
            ip = (
                f"MAC={MAC} SRC={rng.choice(SCANNERS)} DST={rng.choice(TARGETS)} LEN=44 "
                f"TOS=0x00 PREC=0x00 TTL={rng.randrange(30, 250)} ID={ident} "
            )
            if kind < 0.55:
                tail = f"PROTO=TCP SPT={sport} DPT={dport} WINDOW=1024 RES=0x00 SYN URGP=0 "
            elif kind < 0.75:
                tail = f"PROTO=UDP SPT={sport} DPT={dport} LEN=24 "
            else:
                tail = f"PROTO=ICMP TYPE=8 CODE=0 ID={ident} SEQ={rng.randrange(65536)} "
        else:
            ip = (
                f"MAC={MAC6} SRC={rng.choice(scanners6).exploded} "
                f"DST={rng.choice(targets6).exploded} LEN=80 TC=0 HOPLIMIT=57 FLOWLBL=0 "
            )
            if kind < 0.95:
                tail = f"PROTO=TCP SPT={sport} DPT={dport} WINDOW=5760 RES=0x00 SYN URGP=0 "
            else:
                tail = f"PROTO=ICMPv6 TYPE=128 CODE=0 ID={ident} SEQ=1 "
        if style == "ulogd-logemu":
            # ulogd2's printpkt.c: TOS without "0x", an empty MAC= for a packet without one.
            ip = ip.replace("TOS=0x", "TOS=").replace(f"MAC={MAC6} ", "MAC= ").replace(f"MAC={MAC} ", "MAC= ")
        lines.append(head + ip + tail)
    return lines


_REFERENCE_LINE = re.compile(
    r"^(?:<\d+>)?(?:1 )?(?P<ts>\w{3} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) (?P<host>\S+) "
    r"(?:kernel: |kernel - - (?:-|\[[^]]*\]) )?(?:\[\s*\d+\.\d+\] )?"
    r"(?P<prefix>.*?)IN=(?P<in>\S*) OUT=(?P<out>\S*) (?:MAC=\S* )?"
    r"SRC=(?P<src>\S+) DST=(?P<dst>\S+) .*? PROTO=(?P<proto>\S+)"
    r"(?: SPT=(?P<spt>\d+) DPT=(?P<dpt>\d+))?(?P<rest>.*)$"
)
_REFERENCE_FLAGS = re.compile(r" RES=0x[0-9a-f]{2} (?P<flags>(?:[A-Z]{3} )*)URGP=")
_REFERENCE_ACTIONS = {
    "drop": "drop", "reject": "reject", "accept": "accept",
    "allow": "accept", "block": "drop", "deny": "drop",
}  # fmt: skip


def reference_parse(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
    """Line by line, the way a short script would do it."""
    latest = ctx.reference_time + dt.timedelta(days=1)
    events = []
    for line, offset in zip(lines.to_pylist(), offsets.to_pylist(), strict=True):
        match = _REFERENCE_LINE.match(line)
        if match is None:
            continue
        fields = match.groupdict()
        stamp = fields["ts"]
        if stamp[0].isdigit():
            ts = dt.datetime.fromisoformat(stamp).astimezone(dt.UTC)
        else:
            local = dt.datetime.strptime(f"{latest.year} {stamp}", "%Y %b %d %H:%M:%S").replace(tzinfo=ctx.tz)
            ts = local.astimezone(dt.UTC)
            if ts > latest:
                ts = ts.replace(year=ts.year - 1)
        prefix = fields["prefix"].strip().strip('"').strip() or None
        action = "drop"
        if prefix:
            lowered = prefix.lower()
            found = [(lowered.find(w), a) for w, a in _REFERENCE_ACTIONS.items() if w in lowered]
            action = min(found)[1] if found else "drop"
        flags = None
        if fields["proto"] == "TCP" and fields["spt"]:
            flag_match = _REFERENCE_FLAGS.search(fields["rest"])
            flags = flag_match["flags"].strip() if flag_match else None
        events.append(
            {
                "ts": ts,
                "site": ctx.site,
                "host": fields["host"] if fields["host"] != "-" else (ctx.host or "unknown"),
                "src_ip": ipaddress.ip_address(fields["src"]).compressed,
                "dst_ip": ipaddress.ip_address(fields["dst"]).compressed,
                "src_port": int(fields["spt"]) if fields["spt"] else None,
                "dst_port": int(fields["dpt"]) if fields["dpt"] else None,
                "proto": fields["proto"],
                "ip_version": 6 if ":" in fields["src"] else 4,
                "action": action,
                "in_if": fields["in"] or None,
                "out_if": fields["out"] or None,
                "tcp_flags": flags,
                "prefix": prefix,
                "count": 1,
                "source_id": ctx.source_id,
                "source_offset": offset,
                "schema_version": SCHEMA_VERSION,
            }
        )
    return ParseResult(pa.Table.from_pylist(events, schema=EVENT_SCHEMA), [])


Parser = Callable[[pa.Array, pa.Array, ParseContext], ParseResult]


def batched(parser: Parser, batch_lines: int) -> Parser:
    """``parser`` over the lines in batches of ``batch_lines``, as the shipper calls it."""

    def run(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
        results = [
            parser(lines.slice(start, batch_lines), offsets.slice(start, batch_lines), ctx)
            for start in range(0, len(lines), batch_lines)
        ]
        return ParseResult(
            pa.concat_tables([r.events for r in results]), [x for r in results for x in r.rejects]
        )

    return run


def arrow_only(parser: Parser) -> Parser:
    """``parser`` with the native scanner switched off, as FIREPLOT_NETFILTER_ENGINE=arrow does."""

    def run(lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParseResult:
        os.environ["FIREPLOT_NETFILTER_ENGINE"] = "arrow"
        try:
            return parser(lines, offsets, ctx)
        finally:
            del os.environ["FIREPLOT_NETFILTER_ENGINE"]

    return run


def timings(parser: Parser, lines: pa.Array, offsets: pa.Array, repeat: int) -> list[float]:
    """CPU seconds of each run."""
    ctx = ParseContext(site="bench", source_id="bench", reference_time=REFERENCE_TIME)
    seconds = []
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        parser(lines, offsets, ctx)
        seconds.append(time.process_time() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--lines", type=int, default=500_000, help="lines to parse (500000)")
    options.add_argument("--repeat", type=int, default=5, help="timed runs of each parser (5)")
    options.add_argument("--seed", type=int, default=1, help="random seed of the generator (1)")
    options.add_argument("--batch-lines", type=int, default=16_384, help="lines per call of ours (16384)")
    options.add_argument(
        "--style",
        action="append",
        choices=("mixed", "all", *STYLES),
        help="syslog header style of the lines (repeatable; 'all': every style; default mixed)",
    )
    args = options.parse_args(argv)
    if netfilter.engine() != "native":
        print("the native scanner is not built (scripts/bootstrap builds it)", file=sys.stderr)
        return 1
    styles = args.style or ["mixed"]
    if "all" in styles:
        styles = ["mixed", *STYLES]
    print(f"{args.lines:,} lines a style, {args.repeat} runs each, batches of {args.batch_lines:,}; CPU time")
    print(
        f"{'style':15} {'native best':>12} {'median':>10} {'arrow best':>11} {'median':>10} "
        f"{'per line':>9} {'nat/arrow':>9} {'nat/line':>9}"
    )
    failed = False
    for style in styles:
        failed |= not run_style(style, args)
    return 1 if failed else 0


def run_style(style: str, args: argparse.Namespace) -> bool:
    """Time the three parsers on one style's lines; False when they disagree."""
    text = generate(args.lines, args.seed, style)
    lines = pa.array(text, pa.string())
    offsets = pa.array(range(0, args.lines * 256, 256), pa.int64())
    ctx = ParseContext(site="bench", source_id="bench", reference_time=REFERENCE_TIME)
    parsers = {
        "native": batched(parse, args.batch_lines),
        "arrow": arrow_only(batched(parse, args.batch_lines)),
        "line": reference_parse,
    }
    results = {name: parser(lines, offsets, ctx) for name, parser in parsers.items()}
    theirs = results["line"]
    for name, ours in results.items():
        if ours.rejects or not ours.events.equals(theirs.events):
            print(f"{style:15} {name} disagrees with the reference: no timing", file=sys.stderr)
            return False
    rates = {}
    for name, parser in parsers.items():
        seconds = timings(parser, lines, offsets, args.repeat)
        rates[name] = (args.lines / min(seconds), args.lines / statistics.median(seconds))
    (native, native_median), (arrow, arrow_median), (line, _) = rates.values()
    print(
        f"{style:15} {native:>12,.0f} {native_median:>10,.0f} {arrow:>11,.0f} {arrow_median:>10,.0f} "
        f"{line:>9,.0f} {native / arrow:>8.1f}x {native / line:>8.1f}x",
        flush=True,
    )
    return True


if __name__ == "__main__":
    sys.exit(main())
