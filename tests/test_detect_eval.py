"""Detection quality against the labelled corpus of benchmarks/eval_detect.py, at a documented floor.

The corpus comes from a scanner model (nmap timing templates, random and sequential port
order, distributed walks, botnets, near-threshold look-alikes), not from the detector's
thresholds. The benchmark's goal is >= 0.95 precision and recall per kind on its full
corpus (60 h, 1M noise events); this test runs a smaller one (30 h, 40k noise events,
8 scans per kind) and holds every kind to FLOOR, so that a change that breaks a kind
fails here without the benchmark's run time.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from benchmarks.eval_detect import KINDS, T0, build, decoys_detected, score
from pipeline.config import DetectConfig
from pipeline.detect.runner import Evaluator, replay, table_source
from pipeline.detect.scanstore import ScanStore

FLOOR = 0.9


def test_precision_and_recall_per_kind_reach_the_floor(tmp_path: Path) -> None:
    corpus = build(seed=11, hours=30, noise_events=40_000, per_kind=8, botnet_sources=1500, decoys_per_kind=8)
    ev = Evaluator(DetectConfig(), table_source(corpus.table()), ScanStore(tmp_path))
    replay(ev, T0, T0 + dt.timedelta(hours=31))
    scans = ev.scans.read().to_pylist()
    res = score(corpus, scans)
    assert set(res) == set(KINDS)
    got = {k: (tp / n if n else 0.0, found / m) for k, (n, tp, m, found) in res.items()}
    assert all(p >= FLOOR and r >= FLOOR for p, r in got.values()), got
    fooled = decoys_detected(corpus, scans)
    assert sum(hit for _, hit in fooled.values()) <= 2, fooled
