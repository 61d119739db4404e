"""The scan dataset's layout: one file per (kind, day), epochs replaced inside it, and a dataset
of the older per-epoch layout folded in without a lost or a doubled record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.detect.records import SCAN_SCHEMA, US, records_table
from pipeline.detect.scanstore import ScanStore

DAY = 1_767_225_600 * US  # 2026-01-01 00:00 UTC
HOUR = 3600 * US


def rec(name: str, epoch: int, packets: int = 1) -> dict[str, Any]:
    return {
        "scan_id": name,
        "kind": "vertical",
        "site": "s",
        "sources": ["10.0.0.1"],
        "first_ts": epoch + 10 * US,
        "last_ts": epoch + 70 * US,
        "detected_at": epoch + 70 * US,
        "port_min": 1,
        "port_max": 20,
        "distinct_ports": 20,
        "distinct_targets": 1,
        "packets": packets,
        "sites": ["s"],
        "score": 1.0,
        "lower_bound": False,
        "status": "closed",
        "epoch_start": epoch,
        "order": None,
        "tau": None,
        "days_spanned": 1,
        "distributed": False,
    }


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.glob("date=*/*.parquet"))


def held(store: ScanStore) -> dict[str, int]:
    rows = store.read().to_pylist()
    ids = [r["scan_id"] for r in rows]
    assert len(ids) == len(set(ids)), f"a scan twice: {ids}"
    return {r["scan_id"]: r["packets"] for r in rows}


def test_epochs_of_a_day_share_one_file_and_are_replaced_alone(tmp_path: Path) -> None:
    store = ScanStore(tmp_path)
    plans = [("vertical", DAY + h * HOUR, records_table([rec(f"h{h}", DAY + h * HOUR)])) for h in range(24)]
    store.replace_epochs(
        [*plans, ("vertical", DAY + 24 * HOUR, records_table([rec("next", DAY + 24 * HOUR)]))]
    )
    assert files(tmp_path) == [
        f"date=2026-01-01/vertical+{DAY:020d}.parquet",
        f"date=2026-01-02/vertical+{DAY + 24 * HOUR:020d}.parquet",
    ]
    assert held(store) == {**{f"h{h}": 1 for h in range(24)}, "next": 1}
    # Hour 3 re-evaluated: its scan grows, a new one appears; hour 5 now holds none. The rest stay.
    store.replace_epochs(
        [
            (
                "vertical",
                DAY + 3 * HOUR,
                records_table([rec("h3", DAY + 3 * HOUR, 7), rec("x", DAY + 3 * HOUR)]),
            ),
            ("vertical", DAY + 5 * HOUR, SCAN_SCHEMA.empty_table()),
        ]
    )
    want = {**{f"h{h}": 1 for h in range(24) if h != 5}, "h3": 7, "x": 1, "next": 1}
    assert held(store) == want
    lo = store.read(by="epoch_start", since=_dt(DAY + 3 * HOUR), until=_dt(DAY + 4 * HOUR)).to_pylist()
    assert sorted(r["scan_id"] for r in lo) == ["h3", "x"]
    assert store.new_in("vertical", DAY + 3 * HOUR, records_table([rec("x", DAY + 3 * HOUR)])) == []
    assert [
        r["scan_id"]
        for r in store.changed_in("vertical", DAY + 3 * HOUR, records_table([rec("x", DAY + 3 * HOUR, 2)]))
    ] == ["x"]
    # The day emptied: its file goes.
    store.replace_epochs([("vertical", DAY + h * HOUR, SCAN_SCHEMA.empty_table()) for h in range(24)])
    assert files(tmp_path) == [f"date=2026-01-02/vertical+{DAY + 24 * HOUR:020d}.parquet"]


def test_a_dataset_of_per_epoch_files_is_folded_into_the_day_file(tmp_path: Path) -> None:
    store = ScanStore(tmp_path)
    day_dir = tmp_path / "date=2026-01-01"
    day_dir.mkdir()
    for h in (0, 1, 2):
        pq.write_table(
            records_table([rec(f"h{h}", DAY + h * HOUR)]), day_dir / f"vertical+{DAY + h * HOUR:020d}.parquet"
        )
    pq.write_table(
        records_table([rec("other", DAY)]).set_column(1, "kind", pa.array(["horizontal"])),
        day_dir / f"horizontal+{DAY + HOUR:020d}.parquet",
    )
    # What the older files hold counts as held: not new, not changed.
    assert store.new_in("vertical", DAY + 2 * HOUR, records_table([rec("h2", DAY + 2 * HOUR)])) == []
    assert store.changed_in("vertical", DAY + 2 * HOUR, records_table([rec("h2", DAY + 2 * HOUR)])) == []
    # A crash after the day file was written (it holds h1, newer) and before the older files
    # went (hour 0's file is named as the day's file: it is the day file).
    pq.write_table(
        records_table([rec("h0", DAY), rec("h1", DAY + HOUR, 5)]), day_dir / f"vertical+{DAY:020d}.parquet"
    )
    store.replace_epochs([("vertical", DAY + 2 * HOUR, records_table([rec("h2", DAY + 2 * HOUR, 3)]))])
    assert files(tmp_path) == [
        f"date=2026-01-01/horizontal+{DAY + HOUR:020d}.parquet",  # another kind: untouched
        f"date=2026-01-01/vertical+{DAY:020d}.parquet",
    ]
    # The day file's own h1 wins over the older file's; h2 replaced; h0 kept.
    assert held(store) == {"h0": 1, "h1": 5, "h2": 3, "other": 1}


def _dt(us: int) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(us / US, dt.UTC)
