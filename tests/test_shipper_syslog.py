"""`fireplot receive` fed by a real syslog client (util-linux logger) over UDP and TCP."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.support.system import System, free_port

BODY = (
    "DROP IN=eth0 OUT= MAC=00:16:3e:5e:6c:00:00:16:3e:aa:bb:cc:08:00 SRC=198.18.0.{i} "
    "DST=203.0.113.10 LEN=44 TOS=0x00 PREC=0x00 TTL=241 ID={i} PROTO=TCP SPT=40000 DPT={port} "
    "WINDOW=1024 RES=0x00 SYN URGP=0"
)


def test_receiver_takes_rfc3164_and_5424_over_udp_and_tcp(system: System, tmp_path: Path) -> None:
    """Every framing and envelope logger can send becomes one event, identified per sender."""
    udp, tcp = free_port(), free_port()
    state = tmp_path / "receiver.json"
    system.configure(
        "shipper",
        receiver_state_path=str(state),
        spool_dir=str(tmp_path / "spool"),
        receiver_flush_interval_ms=100,
    )
    proc = system.start("receive", "receive", "--udp", str(udp), "--tcp", str(tcp), "--site", "test")
    deadline = time.monotonic() + 30
    while "receiving syslog" not in system.log_of("receive"):
        assert proc.poll() is None and time.monotonic() < deadline, system.log_of("receive")
        time.sleep(0.2)
    variants = [
        ["--udp", "--port", str(udp), "--rfc3164"],
        ["--udp", "--port", str(udp), "--rfc5424"],
        ["--tcp", "--port", str(tcp), "--rfc3164"],
        ["--tcp", "--port", str(tcp), "--rfc5424"],
        ["--tcp", "--port", str(tcp), "--rfc5424", "--octet-count"],
        ["--tcp", "--port", str(tcp), "--rfc3164", "--octet-count"],
    ]
    sent = {}
    for k, flags in enumerate(variants):
        for j in range(3):
            port = 1000 + 10 * k + j
            sent[port] = flags
            subprocess.run(
                ["logger", "--server", "127.0.0.1", *flags, "-t", "kernel", BODY.format(i=k + 1, port=port)],
                check=True,
                timeout=10,
            )
            time.sleep(0.02)  # UDP on loopback: no reordering or loss at this rate
    deadline = time.monotonic() + 30
    events = system.topic_events()
    while events.num_rows < len(sent) and time.monotonic() < deadline:
        time.sleep(0.5)
        events = system.topic_events()
    ports = sorted(events.column("dst_port").to_pylist())
    missing = {p: sent[p] for p in sent if p not in ports}
    assert not missing, f"not received: {missing}\n{system.log_of('receive')}"
    assert ports == sorted(sent), "an event arrived twice"
    ids = set(
        zip(events.column("source_id").to_pylist(), events.column("source_offset").to_pylist(), strict=True)
    )
    assert len(ids) == len(sent)
    assert all(sid.startswith("test:syslog:127.0.0.1:") for sid, _ in ids)
    proc.terminate()
    proc.wait(timeout=30)
    # A restart reserves offsets past every one handed out: ids are never reused.
    assert json.loads(state.read_text())["next_offset"] > max(off for _, off in ids)
