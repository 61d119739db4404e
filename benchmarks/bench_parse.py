"""How fast the netfilter parser is, next to a plain per-line Python parser.

    python benchmarks/bench_parse.py [--lines 500000] [--repeat 5] [--seed 1] [--batch-lines 16384]

Generates realistic kernel LOG lines (IPv4 and IPv6; TCP, UDP, ICMP; RFC 3164
and RFC 3339 syslog headers; a few prefixes and hosts) and times, in the same
run and on the same lines:

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


def generate(count: int, seed: int) -> list[str]:
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
        if rng.random() < 0.8:
            header = moment.strftime("%b %e %H:%M:%S")
        else:
            header = moment.isoformat(timespec="microseconds")
        host = rng.choice(HOSTS)
        uptime = f"[{rng.randrange(1, 9_999_999):>5}.{rng.randrange(1_000_000):06d}] "
        head = f"{header} {host} kernel: {uptime}{rng.choice(PREFIXES)}IN=eth0 OUT= "
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
        lines.append(head + ip + tail)
    return lines


_REFERENCE_LINE = re.compile(
    r"^(?P<ts>\w{3} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) (?P<host>\S+) kernel: "
    r"(?:\[\s*\d+\.\d+\] )?(?P<prefix>.*?)IN=(?P<in>\S*) OUT=(?P<out>\S*) (?:MAC=\S* )?"
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
                "host": fields["host"],
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
    args = options.parse_args(argv)

    text = generate(args.lines, args.seed)
    lines = pa.array(text, pa.string())
    offsets = pa.array(range(0, args.lines * 256, 256), pa.int64())
    megabytes = sum(len(line) + 1 for line in text) / 1e6
    print(
        f"{args.lines:,} lines, {megabytes:.0f} MB, {args.repeat} runs each, batches of {args.batch_lines:,}"
    )
    if netfilter.engine() != "native":
        print("the native scanner is not built (scripts/bootstrap builds it)", file=sys.stderr)
        return 1

    ctx = ParseContext(site="bench", source_id="bench", reference_time=REFERENCE_TIME)
    parsers = {
        "fireplot (native)": batched(parse, args.batch_lines),
        "fireplot (arrow only)": arrow_only(batched(parse, args.batch_lines)),
        "reference (per line)": reference_parse,
    }
    results = {name: parser(lines, offsets, ctx) for name, parser in parsers.items()}
    theirs = results["reference (per line)"]
    for name, ours in results.items():
        if ours.rejects or not ours.events.equals(theirs.events):
            print(
                f"{name} disagrees with the reference: fix that before trusting any timing", file=sys.stderr
            )
            return 1

    rates = {}
    for name, parser in parsers.items():
        seconds = timings(parser, lines, offsets, args.repeat)
        best = args.lines / min(seconds)
        median = args.lines / statistics.median(seconds)
        rates[name] = (best, median)
        print(f"{name:22} best {best:>11,.0f} lines/s   median {median:>11,.0f} lines/s  (CPU time)")
    (native_best, native_median), (arrow_best, arrow_median), (ref_best, ref_median) = rates.values()
    print(
        f"{'ratio native/per line':22} best {native_best / ref_best:>11.1f}x         "
        f"median {native_median / ref_median:>11.1f}x"
    )
    print(
        f"{'ratio native/arrow':22} best {native_best / arrow_best:>11.1f}x         "
        f"median {native_median / arrow_median:>11.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
