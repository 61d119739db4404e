"""Real nmap scans through the real firewall lab (tests/netlab.py), detected with the right kind.

Each nmap run's own log lines (nftables -> NFLOG -> ulogd2 LOGEMU) are parsed and
run through the detectors alone. Timing templates -T2...-T5, sequential (-r) and
random order, UDP and IPv6 are fast scans; a sequential walk with --scan-delay
emulates -T0/-T1 (whose 5 min / 15 s per probe would not fit a test), and so does
nmap's default random order with ``--scan-delay 1s``, with the slow kind's time
thresholds compressed to match (``SLOW_LAB``): both are slow scans, the first in
ascending order, the second in random order. The
same 200 ports scanned at -T5 in random and in sequential (-r) order are both vertical.

Horizontal sweeps: the firewall namespace carries 30 more addresses per family
(``NetLab(sweep_hosts=30)``); nmap probes port 80 on all of them over IPv4 and over
IPv6, and what ulogd2 wrote goes the whole way - shipper, Kafka, worker, Parquet,
``fireplot detect`` - before the sweeps must show up in ``fireplot scans``.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest

from pipeline.config import DetectConfig
from pipeline.detect.runner import Evaluator, replay, table_source
from pipeline.detect.scanstore import ScanStore
from tests.support import netlab
from tests.support.golden import parse_file
from tests.support.system import System

CASES = [  # name, nmap args, target, expected kind, expected distinct ports
    ("T5-random-syn-v4", ("-sS", "-T5", "-p", "1-200"), netlab.FW_V4, "vertical", 200),
    ("T4-sequential-syn-v4", ("-sS", "-T4", "-r", "-p", "1000-1100"), netlab.FW_V4, "vertical", 101),
    ("T5-sequential-syn-v4", ("-sS", "-T5", "-r", "-p", "1-200"), netlab.FW_V4, "vertical", 200),
    ("T3-random-udp-v4", ("-sU", "-T3", "-p", "2000-2030"), netlab.FW_V4, "vertical", 31),
    ("T2-syn-v4", ("-sS", "-T2", "-p", "3000-3019"), netlab.FW_V4, "vertical", 20),
    ("T5-syn-v6", ("-6", "-sS", "-T5", "-p", "1-120"), netlab.FW_V6, "vertical", 120),
    (
        "slow-sequential-v4",
        ("-sS", "-r", "--min-rate", "0.1", "--max-rate", "1", "-p", "4000-4011"),
        netlab.FW_V4,
        "slow",
        12,
    ),
    # nmap's default random order with --scan-delay: what -T0/-T1 send, 300x/15x faster.
    # (The lab's base arguments carry -T5 --min-rate 5000; these override them, as in the case above.)
    (
        "slow-random-scan-delay-v4",
        (
            "-sS",
            "--scan-delay",
            "1s",
            "--max-scan-delay",
            "1s",
            "--min-rate",
            "0.1",
            "--max-rate",
            "1",
            "-p",
            "5000-5029",
        ),
        netlab.FW_V4,
        "slow",
        30,
    ),
]
ORDER = {"slow-sequential-v4": "ascending", "slow-random-scan-delay-v4": "random"}
# Slow cases run ~300x faster than -T0 (5 min between probes) and ~15x faster than -T1 (15 s):
# their time thresholds are compressed alike - minimum span 5 s, "fast" meaning 15 ports in 5 s,
# a source's session ending after 30 s of silence (3600 s at -T0 speed), tracking every second.
SLOW_LAB = DetectConfig(
    slow_min_span_s=5.0, vertical_window_s=5.0, vertical_step_s=1.0, slow_idle_s=30.0, track_step_s=1.0
)


SWEEP_HOSTS = 30


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, netns: None) -> object:
    try:
        with netlab.NetLab(tmp_path_factory.mktemp("detect-lab"), sweep_hosts=SWEEP_HOSTS) as lab:
            yield lab
    except netlab.LabUnavailable as e:
        pytest.skip(f"netlab: {e}")


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("name", "args", "target", "kind", "ports"), CASES, ids=[c[0] for c in CASES])
def test_real_nmap_run_is_detected_with_its_kind(
    lab: netlab.NetLab, name: str, args: tuple[str, ...], target: str, kind: str, ports: int
) -> None:
    before = netlab._count_lines(lab.logemu_path)
    run = lab.nmap(*args, target=target, timeout_s=120)
    lab.wait_for_lines(before + len(run.probes), timeout_s=15)
    order = [pr.dst_port for pr in run.probes]
    if "-r" in args:
        assert order == sorted(order), "-r probes the ports in sequence"
    elif "-sS" in args and ports > 50:
        assert order != sorted(order), "nmap's default order is random"
    lines = lab.logemu_path.read_bytes().splitlines(keepends=True)[before:]
    with tempfile.TemporaryDirectory() as tmp:
        own = Path(tmp) / f"{name}.log"
        own.write_bytes(b"".join(lines))
        result, _ = parse_file(own, site="lab")
        assert result.rejects == []
        events = result.events
        assert events.num_rows == len(run.probes)
        cfg = SLOW_LAB if kind == "slow" else DetectConfig()
        ev = Evaluator(cfg, table_source(events), ScanStore(Path(tmp) / "scans"))
        first = min(events.column("ts").to_pylist())
        replay(ev, first - dt.timedelta(hours=1), first + dt.timedelta(hours=9))
        scans = ev.scans.read().to_pylist()
    got = [(s["kind"], s["sources"], s["distinct_ports"]) for s in scans]
    src = netlab.SCAN_V6 if target == netlab.FW_V6 else netlab.SCAN_V4
    assert [(kind, [src], ports)] == got, (name, run.elapsed_s, got)
    if kind == "slow":
        # A run near midnight UTC spans two days: the scan's days follow its probes' dates.
        stamps = events.column("ts").to_pylist()
        days = (max(stamps).date() - min(stamps).date()).days + 1
        assert [(s["order"], s["days_spanned"], s["status"]) for s in scans] == [
            (ORDER[name], days, "closed")
        ]


@pytest.mark.timeout(240)
def test_real_nmap_sweep_of_port_80_over_30_hosts_shipped_through_the_pipeline_is_horizontal(
    netns: None, lab: netlab.NetLab, system: System, tmp_path: Path
) -> None:
    # netns first: a machine without the lab skips before the session broker starts.
    before = netlab._count_lines(lab.logemu_path)
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    runs = [
        lab.nmap("-sS", "-p", "80", target=lab.sweep_addresses(4)),
        lab.nmap("-6", "-sS", "-p", "80", target=lab.sweep_addresses(6)),
    ]
    probes = [p for r in runs for p in r.probes]
    assert sorted({(p.ip_version, p.dst_port) for p in probes}) == [(4, 80), (6, 80)]
    assert len(probes) == 2 * SWEEP_HOSTS, "one SYN per host and family"
    lab.wait_for_lines(before + len(probes), timeout_s=15)
    own = tmp_path / "sweep.log"
    own.write_bytes(b"".join(lab.logemu_path.read_bytes().splitlines(keepends=True)[before:]))

    shipped = system.ship([own], site="lab")
    assert shipped.returncode == 0, shipped.stderr
    system.start_worker()
    system.wait_for_rows(len(probes), timeout_s=120)
    since, until = started - dt.timedelta(minutes=10), started + dt.timedelta(minutes=20)
    system.run("detect", "--since", since.isoformat(), "--until", until.isoformat())
    listed = system.run("scans", "--since", since.isoformat()).stdout.splitlines()
    got = sorted(
        (s["kind"], s["sources"], s["site"], s["port_min"], s["port_max"], s["distinct_targets"])
        for s in map(json.loads, listed)
    )
    assert got == sorted(
        [
            ("horizontal", [netlab.SCAN_V4], "lab", 80, 80, SWEEP_HOSTS),
            ("horizontal", [netlab.SCAN_V6], "lab", 80, 80, SWEEP_HOSTS),
        ]
    )
