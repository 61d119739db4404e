"""Scan detection in event time: vertical, horizontal, slow/diagonal, hammering,
coordinated and cross-site scans, the same live and on replay.

* ``engine``: the detectors, DuckDB SQL over Arrow tables of events (grid points,
  islands, records); thresholds in ``[detect]`` (``pipeline.config.DetectConfig``).
* ``scanstore``: the Parquet scan dataset (one file per kind and epoch, rewritten
  whole, so writing is idempotent).
* ``runner``: replay over a range and the live ``detect --follow`` loop with an
  event-time watermark; alert hooks (command, webhook, scans topic).

Design (why live == replay): detection is evaluated at fixed event-time grid
points and scans never cross epoch boundaries, so each epoch's scans are a pure
function of its events (plus a look-back of the longest window). Live mode only
re-evaluates the current epoch up to ``newest event - lateness_s``.
"""

from pipeline.detect.engine import Detector
from pipeline.detect.records import KINDS, SCAN_SCHEMA, DetectStats
from pipeline.detect.runner import Evaluator, follow, replay
from pipeline.detect.scanstore import ScanStore

__all__ = ["KINDS", "SCAN_SCHEMA", "DetectStats", "Detector", "Evaluator", "ScanStore", "follow", "replay"]
