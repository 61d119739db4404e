"""The demo `up` ships: its planted scans land whole on the one UTC day its URL names, at any hour."""

from __future__ import annotations

import datetime as dt

import pytest

from producers.demo import Demo

FAST, SLOW, HAMMER = "203.0.113.66", "203.0.113.77", "203.0.113.99"


@pytest.mark.parametrize("hhmm", ["00:00", "00:30", "06:00", "11:59", "12:00", "18:00", "23:59"])
def test_every_planted_scan_is_whole_and_on_the_day_returned(hhmm: str) -> None:
    end = dt.datetime.fromisoformat(f"2026-12-08T{hhmm}:00+00:00")
    packets, day = Demo(seed=1).last_day(end, per_hour=100)
    expected_day = end.date() if end.hour >= 12 else end.date() - dt.timedelta(days=1)
    assert day == expected_day
    assert all(end - dt.timedelta(hours=24) <= p.ts < end for p in packets)
    planted = [p for p in packets if p.src in (FAST, SLOW, HAMMER) or p.src.startswith("2001:db8:bad::")]
    assert {p.ts.date() for p in planted} == {day}
    by_src = {src: sum(p.src == src for p in planted) for src in (FAST, SLOW, HAMMER)}
    # Whole: 1,024 + 10 fast probes, 120 slow ones (9000 down by 67 to 1,040), 400 hammer hits.
    assert by_src == {FAST: 1034, SLOW: 120, HAMMER: 400}
