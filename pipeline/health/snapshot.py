"""The health snapshot under the store: the worker writes it, readers without Kafka (the web UI) read it."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Final

from pipeline import durable
from pipeline.health.report import HealthReport

SNAPSHOT_PATH: Final = Path("_health") / "sites.json"


def write_snapshot(store_root: str | Path, report: HealthReport) -> Path:
    """The report as JSON under the store, for readers without Kafka (the web UI); atomic replace."""
    path = Path(store_root) / SNAPSHOT_PATH
    data = report.as_dict(report.computed_at)
    data["interval_s"] = report.config.interval_s
    durable.write_text(path, json.dumps(data))
    return path


def read_snapshot(store_root: str | Path) -> dict[str, Any] | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        data = json.loads((Path(store_root) / SNAPSHOT_PATH).read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    return None
