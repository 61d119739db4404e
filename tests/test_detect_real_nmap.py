"""Real nmap scans through the real firewall lab (tests/netlab.py), detected with the right kind.

Each nmap run's own log lines (nftables -> NFLOG -> ulogd2 LOGEMU) are parsed and
run through the detectors alone. Timing templates -T2...-T5, sequential (-r) and
random order, UDP and IPv6 are fast scans; a sequential walk with --scan-delay
emulates -T0/-T1 (whose 5 min / 15 s per probe would not fit a test) with the
slow kind's time thresholds compressed to match, so it must be a diagonal.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest

from pipeline.config import DetectConfig
from pipeline.detect.runner import Evaluator, replay, table_source
from pipeline.detect.scanstore import ScanStore
from tests import netlab
from tests.test_real_firewall import parse_file

CASES = [  # name, nmap args, target, expected kind, expected distinct ports
    ("T5-random-syn-v4", ("-sS", "-T5", "-p", "1-200"), netlab.FW_V4, "vertical", 200),
    ("T4-sequential-syn-v4", ("-sS", "-T4", "-r", "-p", "1000-1100"), netlab.FW_V4, "vertical", 101),
    ("T3-random-udp-v4", ("-sU", "-T3", "-p", "2000-2030"), netlab.FW_V4, "vertical", 31),
    ("T2-syn-v4", ("-sS", "-T2", "-p", "3000-3019"), netlab.FW_V4, "vertical", 20),
    ("T5-syn-v6", ("-6", "-sS", "-T5", "-p", "1-120"), netlab.FW_V6, "vertical", 120),
    ("slow-sequential-v4", ("-sS", "-r", "--min-rate", "0.1", "--max-rate", "1", "-p", "4000-4011"),
     netlab.FW_V4, "slow", 12),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> object:
    netlab.skip_unless_available()
    try:
        with netlab.NetLab(tmp_path_factory.mktemp("detect-lab")) as lab:
            yield lab
    except netlab.LabUnavailable as e:
        pytest.skip(f"netlab: {e}")


@pytest.mark.netns
@pytest.mark.timeout(180)
@pytest.mark.parametrize(("name", "args", "target", "kind", "ports"), CASES, ids=[c[0] for c in CASES])
def test_real_nmap_run_is_detected_with_its_kind(lab: netlab.NetLab, name: str, args: tuple[str, ...],
                                                 target: str, kind: str, ports: int) -> None:
    before = netlab._count_lines(lab.logemu_path)
    run = lab.nmap(*args, target=target, timeout_s=120)
    lab.wait_for_lines(before + len(run.probes), timeout_s=15)
    lines = lab.logemu_path.read_bytes().splitlines(keepends=True)[before:]
    with tempfile.TemporaryDirectory() as tmp:
        own = Path(tmp) / f"{name}.log"
        own.write_bytes(b"".join(lines))
        result, _ = parse_file(own, site="lab")
        assert result.rejects == []
        events = result.events
        assert events.num_rows == len(run.probes)
        # The slow case runs ~100x faster than -T1; its thresholds are compressed alike
        # (minimum span 5 s, "fast" meaning 15 ports in 5 s), the port-order test unchanged.
        cfg = DetectConfig(slow_min_span_s=5.0, vertical_window_s=5.0, vertical_step_s=1.0) \
            if kind == "slow" else DetectConfig()
        ev = Evaluator(cfg, table_source(events), ScanStore(Path(tmp) / "scans"))
        first = min(events.column("ts").to_pylist())
        replay(ev, first - dt.timedelta(hours=1), first + dt.timedelta(hours=9))
        scans = ev.scans.read().to_pylist()
    got = [(s["kind"], s["sources"], s["distinct_ports"]) for s in scans]
    src = netlab.SCAN_V6 if target == netlab.FW_V6 else netlab.SCAN_V4
    assert [(kind, [src], ports)] == got, (name, run.elapsed_s, got)
