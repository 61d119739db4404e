"""`fireplot detect` over a real Parquet store, `fireplot scans` listing the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from pipeline.event import EVENT_SCHEMA
from pipeline.store import OffsetRange, Store
from tests.support.scans import T0, mixed


def test_detect_replay_then_scans_lists_them_by_site_and_kind(tmp_path: Path) -> None:
    rows = mixed().table().to_pylist()
    full = [
        {
            **r,
            "host": "fw",
            "proto": "TCP",
            "ip_version": 4,
            "action": "drop",
            "in_if": None,
            "out_if": None,
            "tcp_flags": "SYN",
            "src_port": 40000,
            "source_id": "t",
            "source_offset": i,
            "schema_version": 1,
        }
        for i, r in enumerate(rows)
    ]
    Store(tmp_path / "store").write_flush(OffsetRange("t", 0, 0, 0), pa.Table.from_pylist(full, EVENT_SCHEMA))
    cfg = tmp_path / "fireplot.toml"
    cfg.write_text(f'[worker]\nstore_dir = "{tmp_path / "store"}"\n')

    def fp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fireplot", "-c", str(cfg), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    det = fp("detect", "--since", T0.isoformat(), "--until", "2025-03-01T14:00:00Z")
    assert det.returncode == 0, det.stderr
    stats = json.loads(det.stderr.strip().splitlines()[-1])
    assert stats["scans"]["vertical"] == 3 and stats["flooded"] == []
    listed = fp("scans", "--since", T0.isoformat())
    assert listed.returncode == 0, listed.stderr
    scans = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(s["kind"] for s in scans) == sorted(
        ["vertical", "vertical", "vertical", "horizontal", "slow", "hammer", "coordinated", "cross_site"]
    )
    since = T0.isoformat()
    only_b = [json.loads(x) for x in fp("scans", "--since", since, "--site", "b").stdout.splitlines()]
    assert sorted(s["kind"] for s in only_b) == ["cross_site", "vertical"]
    hammer = [json.loads(x) for x in fp("scans", "--since", since, "--kind", "hammer").stdout.splitlines()]
    assert [s["sources"] for s in hammer] == [["4.4.4.4"]]
    assert fp("scans", "--since", T0.isoformat(), "--kind", "bogus").returncode == 2
