"""kill -9 the shipper in every phase of a run: the store ends with exactly the input.

Every line of the input is a valid, unfiltered event, so the expected event
ids are exactly the byte offsets of the lines. The kills are aimed at each
phase of a run in turn (start-up, a registry write, mid-stream, the final
drain; tests/support/kills.py) and the phase each one really hit is recorded.
After each kill the registry is checked against the topic: every line before
the saved position must already be on Kafka (a registry that ran ahead of
acknowledgements fails here, kill by kill). At the end the store must hold
every line exactly once: the re-sends after kills are dropped by the store.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.kills import PHASES, kill_shipper_repeatedly
from tests.support.system import System

KILLS = int(os.environ.get("FIREPLOT_TEST_KILLS", "20"))
LINES = int(
    os.environ.get("FIREPLOT_TEST_KILL_LINES", "300000")
)  # a backlog a quiet machine cannot read in one blink: a mid-stream to hit
GROW = int(os.environ.get("FIREPLOT_TEST_KILL_GROW", "5000"))  # lines the log grows by before each run


@pytest.mark.slow
def test_kill9_in_every_phase_loses_nothing_and_stores_nothing_twice(system: System, tmp_path: Path) -> None:
    """20 kills spread over start-up, registry writes, mid-stream and the final drain: exact store."""
    seed = int(os.environ.get("FIREPLOT_TEST_SEED", "7"))
    report = kill_shipper_repeatedly(system, tmp_path, KILLS, LINES, GROW, seed)
    print(f"{report.landed} kills in {report.runs} runs: {dict(report.by_phase)}; {report.resent} re-sent")
    assert report.landed == KILLS, f"only {report.landed} of {KILLS} kills hit a running shipper"
    if len(PHASES) <= KILLS:
        assert set(report.by_phase) == set(PHASES), f"phases hit: {dict(report.by_phase)}"
