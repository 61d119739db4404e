"""kill -9 the shipper at random moments: the store ends with exactly the input.

Every line of the input is a valid, unfiltered event, so the expected event
ids are exactly the byte offsets of the lines. After each kill the registry is
checked against the topic: every line before the saved position must already
be on Kafka (a registry that ran ahead of acknowledgements fails here, kill by
kill). Until the store drops re-sent events itself, the final check counts
distinct ``(source_id, source_offset)``; the re-sends are reported.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.shipper import kill_shipper_repeatedly
from tests.support.system import System

KILLS = int(os.environ.get("FIREPLOT_TEST_KILLS", "20"))
LINES = int(os.environ.get("FIREPLOT_TEST_KILL_LINES", "1000000"))


@pytest.mark.slow
def test_kill9_at_random_points_loses_nothing(system: System, tmp_path: Path) -> None:
    """Killed ~20 times mid-run, the shipper resumes from its registry and the store gets every line."""
    kill_shipper_repeatedly(
        system, tmp_path, KILLS, LINES, seed=int(os.environ.get("FIREPLOT_TEST_SEED", "7"))
    )
