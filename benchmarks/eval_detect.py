"""Scan detection quality: a labelled corpus, precision and recall per kind.

The labels come from a scanner model, not from the detector's thresholds: nmap timing
templates (-T5..-T2 and masscan rates for fast scans; -T1 = 15 s and -T0 = 5 min between
probes, and --scan-delay 30 s..15 min, for slow ones), nmap's default random port order
or -r's sequential one, top-port lists or ranges, and distributed scans in which 15-100
sources share one slow walk over a target's ports, each probing a few. The corpus spans
several days (default 60 h), so slow scans cross midnights and last up to days.

The corpus is Internet background noise (many sources, a few packets each,
popular ports weighted as honeypots see them, a steady rate over every site's
addresses), popular-port hammering by a botnet of many sources (each spraying
one port over fewer targets than a sweep, or knocking on one port too seldom or
too briefly to be hammering), near-threshold look-alikes of every kind that are
not scans (14 ports in a minute, 24 targets in 5 min, 9 ports walked over hours,
bursts, overlapping port sets of several sources, ...), and scans of each kind
injected at many speeds and in both port orders. A detection matches an injected
scan of the same kind when they share a source and a site (cross-site: the
source) and overlap in time. Precision is matched detections / detections;
recall is detected injections / injections; detections of a look-alike are
counted per kind as well.

    python benchmarks/eval_detect.py [--seed N] [--hours H] [--noise-events N] [--per-kind N]
        [--botnet-sources N] [--decoys-per-kind N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipeline.config import DetectConfig
from pipeline.detect.runner import Evaluator, replay, table_source
from pipeline.detect.scanstore import ScanStore

KINDS = ("vertical", "horizontal", "slow", "distributed", "hammer", "coordinated", "cross_site")
# nmap's inter-probe delays: -T1 15 s, -T0 5 min, and --scan-delay values operators use.
SLOW_DELAYS_S = (15.0, 30.0, 60.0, 120.0, 300.0, 300.0, 600.0, 900.0)
TOP_PORTS = [
    80,
    23,
    443,
    21,
    22,
    25,
    3389,
    110,
    445,
    139,
    143,
    53,
    135,
    3306,
    8080,
    1723,
    111,
    995,
    993,
    5900,
    1025,
    587,
    8888,
    199,
    1720,
    465,
    548,
    113,
    81,
    6001,
    10000,
    514,
    5060,
    179,
    1026,
    2000,
    8443,
    8000,
    32768,
    554,
    26,
    1433,
    49152,
    2001,
    515,
    8008,
    49154,
    1027,
    5666,
    646,
]
POPULAR = [23, 22, 80, 443, 445, 3389, 8080, 5900, 1433, 3306, 8443, 2323, 81, 6379, 5060, 123, 53, 161]
SITES = ("ams", "fra", "nyc")
T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


@dataclass
class Injected:
    kind: str
    sources: set[str]
    sites: set[str]
    start: float
    end: float
    found: bool = False
    decoy: bool = False  # a near-threshold look-alike of `kind` that must not be detected


@dataclass
class Corpus:
    rng: random.Random
    hours: float
    cols: dict[str, list[Any]] = field(
        default_factory=lambda: {
            k: [] for k in ("ts", "site", "src_ip", "dst_ip", "dst_port", "prefix", "count")
        }
    )
    labels: list[Injected] = field(default_factory=list)
    any_time: bool = False  # cross-site campaigns anywhere in time, across midnight too
    _next_src: int = 0

    def src(self) -> str:
        self._next_src += 1
        n = self._next_src
        return f"203.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    def dst(self, site: str) -> str:
        return f"10.{SITES.index(site)}.0.{self.rng.randrange(1, 255)}"

    def add(self, t: float, site: str, src: str, dst: str, port: int) -> None:
        c = self.cols
        c["ts"].append(int(t * 1_000_000))
        c["site"].append(site)
        c["src_ip"].append(src)
        c["dst_ip"].append(dst)
        c["dst_port"].append(port)
        c["prefix"].append("DROP ")
        c["count"].append(1)

    def span(self) -> float:
        return self.hours * 3600

    def noise(self, events: int) -> None:
        """Background radiation: sources of 1-4 packets to random addresses of one site."""
        r = self.rng
        made = 0
        while made < events:
            s, site = f"198.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(256)}", r.choice(SITES)
            t = r.uniform(0, self.span())
            for _ in range(min(events - made, r.choice((1, 1, 1, 2, 2, 3, 4)))):
                port = r.choice(POPULAR) if r.random() < 0.7 else r.randrange(1, 65536)
                self.add(t, site, s, self.dst(site), port)
                t += r.expovariate(1 / 20)
                made += 1

    def botnet(self, sources: int) -> None:
        """Popular-port hammering by many sources, each one below every threshold alone."""
        r = self.rng
        ports, weights = [23, 22, 445, 3389, 2323, 80, 8080, 5555], [8, 6, 5, 4, 3, 3, 2, 1]
        for _ in range(sources):
            site, src = r.choice(SITES), self.src()
            port = r.choices(ports, weights)[0]
            mode = r.random()
            if mode < 0.5:  # spray: up to 24 targets on the port within 30 s..5 min
                hosts, duration = r.sample(range(1, 255), r.randint(1, 24)), r.uniform(30, 300)
                t = self.when(duration)
                for h in hosts:
                    self.add(t, site, src, f"10.{SITES.index(site)}.0.{h}", port)
                    t += duration / len(hosts)
            elif mode < 0.8:  # knock: one target, persistent but fewer than 30 hits an hour
                dst, duration = self.dst(site), r.uniform(3600, 4 * 3600)
                t = self.when(duration)
                end = t + duration
                while t < end:
                    self.add(t, site, src, dst, port)
                    t += r.uniform(150, 400)
            else:  # burst: up to 80 hits within 8 minutes, then gone (not persistent)
                dst, t = self.dst(site), self.when(480)
                for _ in range(r.randint(30, 80)):
                    self.add(t, site, src, dst, port)
                    t += r.uniform(1, 6)

    def decoys(self) -> list[Injected]:
        """One look-alike per kind, each just short of its kind's threshold."""
        r = self.rng
        out: list[Injected] = []
        # vertical: 10-14 ports to one target within a minute.
        site, src = r.choice(SITES), self.src()
        dst, t0 = self.dst(site), self.when(60)
        for i, p in enumerate(r.sample(POPULAR + list(range(8000, 8100)), r.randint(10, 14))):
            self.add(t0 + i * r.uniform(0.5, 4), site, src, dst, p)
        out.append(Injected("vertical", {src}, {site}, t0, t0 + 60, decoy=True))
        # horizontal: one port over 15-24 targets within 5 minutes.
        site, src, port = r.choice(SITES), self.src(), r.choice(POPULAR)
        t0 = self.when(300)
        hosts = r.sample(range(1, 255), r.randint(15, 24))
        for i, h in enumerate(hosts):
            self.add(t0 + i * 290 / len(hosts), site, src, f"10.{SITES.index(site)}.0.{h}", port)
        out.append(Injected("horizontal", {src}, {site}, t0, t0 + 300, decoy=True))
        # slow: a client retrying a handful of services (6-9 ports) for hours, in any order.
        site, src = r.choice(SITES), self.src()
        dst = self.dst(site)
        ports = r.sample(POPULAR, r.randint(6, 9))
        t0 = t = self.when(len(ports) * 4 * 900)
        for _ in range(4):
            for p in ports:
                self.add(t, site, src, dst, p)
                t += r.uniform(60, 900)
        out.append(Injected("slow", {src}, {site}, t0, t, decoy=True))
        # distributed: a botnet of 20-60 sources each trying the same 2-4 popular ports of one
        # target over hours (shared ports, not a shared walk).
        site = r.choice(SITES)
        dst = self.dst(site)
        shared = r.sample(POPULAR, r.randint(2, 4))
        srcs = [self.src() for _ in range(r.randint(20, 60))]
        t0 = self.when(6 * 3600)
        for s_ in srcs:
            t = t0 + r.uniform(0, 6 * 3600)
            for p in shared:
                self.add(t, site, s_, dst, p)
                t += r.uniform(1, 30)
        out.append(Injected("distributed", set(srcs), {site}, t0, t0 + 6 * 3600, decoy=True))
        # hammer: 20-28 hits an hour for 3 h on one port (too few), or 100 hits in 20 minutes.
        site, src, port = r.choice(SITES), self.src(), r.choice((23, 22, 445))
        dst = self.dst(site)
        t0 = t = self.when(3 * 3600)
        if r.random() < 0.5:
            while t < t0 + 3 * 3600:
                self.add(t, site, src, dst, port)
                t += 3600 / r.randint(20, 28)
        else:
            for _ in range(100):
                self.add(t, site, src, dst, port)
                t += 12
        out.append(Injected("hammer", {src}, {site}, t0, t, decoy=True))
        # coordinated: 4-8 sources hitting the same few ports of one target together.
        site, k = r.choice(SITES), r.randint(4, 8)
        dst, shared = self.dst(site), r.sample(POPULAR, r.randint(4, 6))
        srcs = [self.src() for _ in range(k)]
        t0 = self.when(60)
        for i, s_ in enumerate(srcs):
            for j, p in enumerate(shared):
                self.add(t0 + j * 2 + i * 0.3, site, s_, dst, p)
        out.append(Injected("coordinated", set(srcs), {site}, t0, t0 + 60, decoy=True))
        return out

    def _ports(self, n: int) -> list[int]:
        r = self.rng
        base = r.randrange(1, 60000)
        ports = list(range(base, base + n)) if r.random() < 0.5 else r.sample(range(1, 65536), n)
        if r.random() < 0.5:
            r.shuffle(ports)
        return ports

    def when(self, duration: float) -> float:
        return self.rng.uniform(0, max(1.0, self.span() - duration - 60))

    def vertical(
        self, site: str | None = None, src: str | None = None, near: float | None = None
    ) -> Injected:
        r = self.rng
        n = r.choice((18, 25, 50, 200, 1000))
        rate = r.choice((0.4, 1, 5, 50, 1000))  # ports per second: -T1-ish to masscan
        site, src = site or r.choice(SITES), src or self.src()
        dst, t = self.dst(site), self.when(n / rate)
        if near is not None:
            t = min(near + r.uniform(0, 4 * 3600), self.span() - n / rate - 60)
        t0 = t
        for p in self._ports(n):
            self.add(t, site, src, dst, p)
            t += 1 / rate
        return Injected("vertical", {src}, {site}, t0, t)

    def horizontal(self) -> Injected:
        r = self.rng
        n, duration = r.choice((30, 60, 254)), r.choice((2, 30, 120, 240))
        site, src, port = r.choice(SITES), self.src(), r.choice(POPULAR)
        t0 = t = self.when(duration)
        hosts = r.sample(range(1, 255), min(n, 254))
        for h in hosts:
            self.add(t, site, src, f"10.{SITES.index(site)}.0.{h}", port)
            t += duration / len(hosts)
        return Injected("horizontal", {src}, {site}, t0, t)

    def slow(self) -> Injected:
        """nmap -T1/-T0/--scan-delay: 20-300 ports (top ports or a range), random order unless -r."""
        r = self.rng
        n, gap = r.choice((20, 40, 100, 300)), r.choice(SLOW_DELAYS_S)
        site, src = r.choice(SITES), self.src()
        dst = self.dst(site)
        if r.random() < 0.5:
            ports = TOP_PORTS[:n] if n <= len(TOP_PORTS) else TOP_PORTS + r.sample(range(1024, 65536), n - 50)
        else:
            base = r.randrange(1, 65536 - n)
            ports = list(range(base, base + n))
        ports = sorted(ports) if r.random() < 0.3 else r.sample(ports, len(ports))  # -r, else random
        if r.random() < 0.1:
            ports.reverse()
        duration = min(n * gap, self.span() - 120)
        t0 = t = self.when(duration)
        for p in ports:
            if t > self.span():
                break
            self.add(t, site, src, dst, p)
            t += gap * r.uniform(0.8, 1.2)  # nmap's delays are near-constant
        return Injected("slow", {src}, {site}, t0, t)

    def distributed(self) -> Injected:
        """15-100 sources share one walk over a target's ports, each taking 1-6 ports in turn."""
        r = self.rng
        k = r.choice((15, 30, 60, 100))
        n = min(k * r.randint(1, 6), 1000)
        n = max(n, 60)
        site = r.choice(SITES)
        dst = self.dst(site)
        lo = 1 if r.random() < 0.5 else r.randrange(1024, 60000)
        ports = list(range(lo, lo + n))
        if r.random() < 0.7:
            r.shuffle(ports)
        srcs = [self.src() for _ in range(k)]
        gap = r.choice((20.0, 60.0, 180.0, 300.0))
        duration = min(n * gap, self.span() - 120)
        t0 = t = self.when(duration)
        used: set[str] = set()
        for i, p in enumerate(ports):
            if t > self.span():
                break
            self.add(t, site, srcs[i % k], dst, p)
            used.add(srcs[i % k])
            t += gap * r.uniform(0.5, 1.5)
        return Injected("distributed", used, {site}, t0, t)

    def hammer(self) -> Injected:
        r = self.rng
        duration, mean_gap = r.choice((2400, 5400, 10800)), r.choice((20, 40, 60))
        site, src, port = r.choice(SITES), self.src(), r.choice((23, 22, 445, 3389, 1433))
        dsts = [self.dst(site) for _ in range(r.choice((1, 1, 3)))]
        t0 = t = self.when(duration)
        while t < t0 + duration:
            self.add(t, site, src, r.choice(dsts), port)
            t += r.expovariate(1 / mean_gap)
        return Injected("hammer", {src}, {site}, t0, t)

    def coordinated(self) -> Injected:
        r = self.rng
        k, per = r.choice((4, 6, 10)), r.choice((4, 6, 10))
        site = r.choice(SITES)
        dst, base = self.dst(site), r.randrange(1, 60000)
        srcs = [self.src() for _ in range(k)]
        t0 = self.when(60)
        step = r.choice((0.2, 1.0, 3.0))
        for i, s in enumerate(srcs):
            for j in range(per):
                self.add(t0 + j * step + i * 0.01, site, s, dst, base + i * per + j)
        return Injected("coordinated", set(srcs), {site}, t0, t0 + per * step)

    def cross_site(self) -> list[Injected]:
        """One source's campaign: fast scans of 2-3 sites within 4 hours of each other, in one UTC day
        (the detector's definition: a source at >= 2 sites in one day), or, with ``any_time``,
        anywhere (a campaign across midnight, outside that definition: measures what it misses)."""
        src = self.src()
        sites = self.rng.sample(SITES, self.rng.choice((2, 3)))
        day = self.rng.randrange(max(1, int(self.span() // 86400)))
        near = day * 86400 + self.rng.uniform(0, max(0.0, min(86400, self.span() - day * 86400) - 5 * 3600))
        if self.any_time:
            near = self.rng.uniform(0, max(0.0, self.span() - 5 * 3600))
        parts = [self.vertical(site, src, near) for site in sites]
        whole = Injected(
            "cross_site", {src}, set(sites), min(p.start for p in parts), max(p.end for p in parts)
        )
        return [*parts, whole]

    def table(self) -> pa.Table:
        c = self.cols
        t = pa.table(
            {
                "ts": pa.array(c["ts"], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "site": pa.array(c["site"], pa.string()),
                "src_ip": pa.array(c["src_ip"], pa.string()),
                "dst_ip": pa.array(c["dst_ip"], pa.string()),
                "dst_port": pa.array(c["dst_port"], pa.int32()),
                "prefix": pa.array(c["prefix"], pa.string()),
                "count": pa.array(c["count"], pa.int32()),
            }
        )
        base = int(T0.timestamp() * 1_000_000)
        shifted = pa.array([v + base for v in c["ts"]], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        return t.set_column(0, "ts", shifted).sort_by("ts")


def build(
    seed: int,
    hours: float,
    noise_events: int,
    per_kind: int,
    botnet_sources: int = 0,
    decoys_per_kind: int = 0,
    any_time: bool = False,
) -> Corpus:
    c = Corpus(random.Random(seed), hours, any_time=any_time)
    c.noise(noise_events)
    c.botnet(botnet_sources)
    for _ in range(decoys_per_kind):
        c.labels += c.decoys()
    for _ in range(per_kind):
        c.labels += [
            c.vertical(),
            c.horizontal(),
            c.slow(),
            c.distributed(),
            c.hammer(),
            c.coordinated(),
            *c.cross_site(),
        ]
    return c


def score(corpus: Corpus, scans: list[dict[str, Any]]) -> dict[str, tuple[int, int, int, int]]:
    """kind -> (detections, true detections, injections, injections found)."""
    out: dict[str, tuple[int, int, int, int]] = {}
    t0 = T0.timestamp()
    for kind in KINDS:
        labels = [lab for lab in corpus.labels if lab.kind == kind and not lab.decoy]
        dets = [s for s in scans if s["kind"] == kind]
        true = 0
        for d in dets:
            start, end = d["first_ts"].timestamp() - t0, d["last_ts"].timestamp() - t0
            srcs, sites = set(d["sources"]), set(d["sites"])
            hit = [
                lab
                for lab in labels
                if lab.sources & srcs and lab.sites & sites and start <= lab.end + 1 and end >= lab.start - 1
            ]
            true += bool(hit)
            for lab in hit:
                lab.found = True
        out[kind] = (len(dets), true, len(labels), sum(lab.found for lab in labels))
    return out


def decoys_detected(corpus: Corpus, scans: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """kind -> (look-alikes, look-alikes some detection of any kind names as a source)."""
    named = {src for s in scans for src in s["sources"]}
    out: dict[str, tuple[int, int]] = {}
    for lab in corpus.labels:
        if lab.decoy:
            n, hit = out.get(lab.kind, (0, 0))
            out[lab.kind] = (n + 1, hit + bool(lab.sources & named))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--hours", type=float, default=60.0)
    ap.add_argument("--noise-events", type=int, default=1_000_000)
    ap.add_argument("--per-kind", type=int, default=40)
    ap.add_argument(
        "--botnet-sources",
        type=int,
        default=20_000,
        help="sources hammering popular ports, each below every threshold",
    )
    ap.add_argument("--decoys-per-kind", type=int, default=100, help="near-threshold look-alikes per kind")
    ap.add_argument(
        "--cross-site-any-time",
        action="store_true",
        help="cross-site campaigns anywhere in time, across midnight too (default: one UTC day)",
    )
    args = ap.parse_args(argv)
    corpus = build(
        args.seed,
        args.hours,
        args.noise_events,
        args.per_kind,
        args.botnet_sources,
        args.decoys_per_kind,
        args.cross_site_any_time,
    )
    events = corpus.table()
    with tempfile.TemporaryDirectory(prefix="fp-eval-") as tmp:
        ev = Evaluator(DetectConfig(), table_source(events), ScanStore(tmp))
        t = time.perf_counter()
        replay(ev, T0, T0 + dt.timedelta(hours=args.hours + 1))
        elapsed = time.perf_counter() - t
        scans = ev.scans.read().to_pylist()
    res = score(corpus, scans)
    fooled = decoys_detected(corpus, scans)
    injected = sum(not lab.decoy for lab in corpus.labels)
    print(
        f"corpus: {events.num_rows:,} events ({args.noise_events:,} noise, {args.botnet_sources:,} "
        f"botnet sources, {len(corpus.labels) - injected} look-alikes), {injected} injected scans, "
        f"{args.hours} h, {len(SITES)} sites; seed {args.seed}"
    )
    print(
        f"detection: {elapsed:.2f} s ({events.num_rows / elapsed:,.0f} events/s), stats {ev.stats.as_dict()}"
    )
    print(
        f"\n{'kind':<12} {'detected':>9} {'true':>6} {'injected':>9} {'found':>6} "
        f"{'precision':>10} {'recall':>7} {'look-alikes detected':>21}"
    )
    worst = 1.0
    for kind, (n, tp, m, found) in res.items():
        p = tp / n if n else 1.0
        rc = found / m if m else 1.0
        worst = min(worst, p, rc)
        d_n, d_hit = fooled.get(kind, (0, 0))
        print(f"{kind:<12} {n:>9} {tp:>6} {m:>9} {found:>6} {p:>10.3f} {rc:>7.3f} {d_hit:>13} of {d_n:<5}")
    goal = 0.95
    print(f"\ngoal >= {goal} precision and recall per kind: {'met' if worst >= goal else 'NOT met'}")
    return 0 if worst >= goal else 1


if __name__ == "__main__":
    sys.exit(main())
