"""`ship --follow` across every rotation style: nothing lost, a compressed rotated file not re-sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.shipper import follow_across_rotation
from tests.support.system import System


@pytest.mark.parametrize(
    "style",
    ["rename", "rename_then_gzip", "gzip_before_read", "gzip_while_down", "copytruncate", "truncate_rewrite"],
)
def test_follow_across_rotation_loses_nothing(system: System, tmp_path: Path, style: str) -> None:
    """Lines written before, during and after a rotation all reach Kafka exactly once per line."""
    follow_across_rotation(system, tmp_path, style)
