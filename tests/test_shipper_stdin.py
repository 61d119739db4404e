"""`cat FILE | fireplot ship -`: exactly the lines, and a rerun of the same stream adds nothing to the store.

Semantics of stdin, pinned here: a stream cannot be resumed, so it has no
read position in the registry and a rerun sends every line again. It sends
them under the same identities — source id ``<site>:stdin:<hash of the first
line>``, offsets counted from the start of the stream — so the archive
recognises them as events it already holds and keeps one copy.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from tests.support.lines import write_probe_lines
from tests.support.system import System

N = 30_000


def ship_stdin(system: System, data: bytes) -> dict[str, object]:
    proc = subprocess.run(
        system.command("ship", "-", "--site", "test"),
        input=data,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    summary: dict[str, object] = json.loads(proc.stderr.decode().strip().splitlines()[-1])
    return summary


def test_stdin_delivers_exactly_its_lines_and_a_rerun_leaves_one_copy_in_the_store(
    system: System, tmp_path: Path
) -> None:
    """Every line once on the topic per run, the last one without its newline too; the store ends with N."""
    log = tmp_path / "fw.log"
    offsets = write_probe_lines(log, N)
    data = log.read_bytes()[:-1]  # a producer that died mid-write leaves no final newline

    first = ship_stdin(system, data)

    assert (first["lines"], first["events_sent"], first["rejected"]) == (N, N, 0)
    events = system.topic_events()
    assert np.array_equal(np.sort(np.asarray(events.column("source_offset"))), offsets)
    source_ids = set(events.column("source_id").to_pylist())
    assert len(source_ids) == 1 and next(iter(source_ids)).startswith("test:stdin:")
    assert (
        not (tmp_path / "registry.json").exists() or "stdin" not in (tmp_path / "registry.json").read_text()
    )

    second = ship_stdin(system, data)

    assert (second["lines"], second["events_sent"]) == (N, N)
    again = system.topic_events()
    assert again.num_rows == 2 * N  # at-least-once: the rerun is sent...
    ids = set(
        zip(again.column("source_id").to_pylist(), again.column("source_offset").to_pylist(), strict=True)
    )
    assert len(ids) == N  # ...under the identities of the first run
    system.start_worker()
    stored = system.wait_for_rows(N, timeout_s=180)
    assert np.array_equal(np.sort(np.asarray(stored.column("source_offset"))), offsets)
