"""The scan dataset: ``<scans_dir>/date=<D>/<kind>+<start of D, us>.parquet``.

One file per (kind, day) holds every scan of the kind's epochs that start on that day
(``epoch_start``), one record per scan. An evaluation of some epochs replaces their rows
and keeps the others', writing each (kind, day) file once, whole (``pipeline.durable``), so
writing is idempotent and a reader never sees half a file. Open scans are rewritten until
they close. Datasets written one file per (kind, epoch) (``<kind>+<epoch start us>``, the
fast kinds' hours) are folded into the day's file the first time it is written, and their
files removed after it is durable (a crash in between: the next write folds them again,
by ``scan_id``, with no duplicate).

A tracked scan (slow, distributed) can run for days but has one record, filed under
the day it started. So that a reader of a later day finds it without listing every
older day, each later date it covers holds ``date=<D>/_spans.json``: the names of the
files (relative to the root) holding scans that cover D but started before it. It is
written before the record (a crash in between leaves a pointer to a file that does not
hold the scan yet: readers filter by time anyway).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import durable
from pipeline.detect.records import SCAN_SCHEMA, US, conform

SPANS = "_spans.json"
_SCAN_FILE = re.compile(r"date=\d{4}-\d{2}-\d{2}/[a-z_]+\+\d{20}\.parquet")
_SCAN_NAME = re.compile(r"[a-z_]+\+\d{20}\.parquet")
DAY_US = 86_400 * US


class ScanStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, epoch_us: int) -> Path:
        """The file holding the epoch's scans: its kind's file of the day the epoch starts."""
        day = dt.datetime.fromtimestamp(epoch_us / US, dt.UTC).date()
        day_us = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * US
        return self.root / f"date={day.isoformat()}" / f"{kind}+{day_us:020d}.parquet"

    def _legacy(self, path: Path) -> list[Path]:
        """The same kind's per-epoch files of the day (an older layout), not yet folded in."""
        kind = path.name.rsplit("+", 1)[0]
        return sorted(
            p for p in path.parent.glob(f"{kind}+*.parquet") if p != path and _SCAN_NAME.fullmatch(p.name)
        )

    def _held(self, path: Path) -> pa.Table:
        """Every record the (kind, day) file holds, with those of the day's per-epoch files of
        the older layout it has not absorbed (its own version of a scan wins)."""
        parts = [conform(pq.read_table(p)) for p in [path, *self._legacy(path)] if p.exists()]
        if not parts:
            return SCAN_SCHEMA.empty_table()
        if len(parts) == 1:
            return parts[0]
        table = pa.concat_tables(parts)
        ids = table.column("scan_id").to_pylist()
        first = sorted({sid: i for i, sid in reversed(list(enumerate(ids)))}.values())
        return table.take(pa.array(first, pa.int64()))

    def _old_ids(self, path: Path) -> set[str]:
        if not path.exists() and not self._legacy(path):
            return set()
        return set(self._held(path).column("scan_id").to_pylist())

    def new_in(self, kind: str, epoch_us: int, scans: pa.Table) -> list[dict[str, Any]]:
        """The scans the dataset does not hold yet (what ``replace`` would add)."""
        if scans.num_rows == 0:
            return []
        old_ids = self._old_ids(self.path(kind, epoch_us))
        scans = conform(scans).sort_by([("first_ts", "ascending"), ("scan_id", "ascending")])
        mask = pc.invert(pc.is_in(scans.column("scan_id"), value_set=pa.array(sorted(old_ids), pa.string())))
        new: list[dict[str, Any]] = scans.filter(mask).to_pylist()
        return new

    def changed_in(self, kind: str, epoch_us: int, scans: pa.Table) -> list[dict[str, Any]]:
        """The scans whose record differs from the one the dataset holds (or that it lacks)."""
        if scans.num_rows == 0:
            return []
        path = self.path(kind, epoch_us)
        if not path.exists() and not self._legacy(path):
            lacked: list[dict[str, Any]] = scans.cast(SCAN_SCHEMA).to_pylist()
            return lacked
        ids = pa.array(sorted(set(scans.column("scan_id").to_pylist())), pa.string())
        held = self._held(path)
        held = held.filter(pc.is_in(held.column("scan_id"), value_set=ids))
        old = {r["scan_id"]: r for r in held.to_pylist()}
        return [r for r in scans.cast(SCAN_SCHEMA).to_pylist() if old.get(r["scan_id"]) != r]

    def upsert(self, kind: str, epoch_us: int, scans: pa.Table) -> None:
        """Put these records in the dataset, replacing those with the same scan_id, keeping the rest.

        The tracked kinds (slow, distributed) report only the scans an evaluation changed:
        a scan spanning days keeps its one record, filed under the day it started.
        """
        if scans.num_rows == 0:
            return
        path = self.path(kind, epoch_us)
        self._note_spans(path, scans)
        old = self._held(path)
        keep = pc.invert(pc.is_in(old.column("scan_id"), value_set=scans.column("scan_id")))
        self._write(path, pa.concat_tables([old.filter(keep), scans.cast(SCAN_SCHEMA)]))

    def _note_spans(self, home: Path, scans: pa.Table) -> None:
        """Name ``home`` in the spans file of every later date its scans cover."""
        first = pc.min(scans.column("first_ts")).as_py()
        last = pc.max(scans.column("last_ts")).as_py()
        if first is None or last is None:
            return
        name = home.relative_to(self.root).as_posix()
        day = _as_dt(first).date() + dt.timedelta(days=1)
        while day <= _as_dt(last).date():
            path = self.root / f"date={day.isoformat()}" / SPANS
            names = spanning_names(path)
            if name not in names:
                durable.write_bytes(path, json.dumps(sorted({*names, name})).encode())
            day += dt.timedelta(days=1)

    def replace(self, kind: str, epoch_us: int, scans: pa.Table) -> list[dict[str, Any]]:
        """Make the epoch hold exactly these scans; return those that were not in it."""
        new = self.new_in(kind, epoch_us, scans)
        self.replace_epochs([(kind, epoch_us, scans)])
        return new

    def replace_epochs(self, plans: list[tuple[str, int, pa.Table]]) -> None:
        """Make each (kind, epoch) hold exactly its scans, writing each (kind, day) file once:
        the rows of the epochs named go, the other epochs' rows stay."""
        files: dict[Path, tuple[set[int], list[pa.Table]]] = {}
        for kind, epoch_us, scans in plans:
            epochs, parts = files.setdefault(self.path(kind, epoch_us), (set(), []))
            epochs.add(epoch_us)
            if scans.num_rows:
                parts.append(scans.cast(SCAN_SCHEMA))
        for path, (epochs, parts) in files.items():
            if not parts and not path.exists() and not self._legacy(path):
                continue  # nothing held, nothing to hold
            old = self._held(path)
            gone = pc.is_in(
                pc.cast(old.column("epoch_start"), pa.int64()), value_set=pa.array(sorted(epochs), pa.int64())
            )
            self._write(path, pa.concat_tables([old.filter(pc.invert(gone)), *parts]))

    def _write(self, path: Path, scans: pa.Table) -> None:
        legacy = self._legacy(path)
        if scans.num_rows == 0:
            path.unlink(missing_ok=True)
        else:
            scans = scans.sort_by([("first_ts", "ascending"), ("scan_id", "ascending")])
            with durable.replacing(path) as fh:
                pq.write_table(scans, fh, compression="zstd")
        for p in legacy:  # folded into path (or emptied), which is durable now
            p.unlink(missing_ok=True)

    def read(
        self,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        site: str | None = None,
        kind: str | None = None,
        by: str = "last_ts",
    ) -> pa.Table:
        """Scans with since <= <by> < until, optionally of one site (or listing it) and kind.

        ``by="active"``: the scans active in [since, until) (last_ts >= since, first_ts < until),
        such as a scan of several days seen from any of them.
        """
        active = by == "active"
        if active:
            by = "last_ts"
        files = sorted(p for p in self.root.glob("date=*/*.parquet") if not p.name.startswith("."))
        if kind is not None:
            files = [p for p in files if p.name.startswith(f"{kind}+")]
        if by == "epoch_start":
            # The name says the first epoch it can hold (its day's start, or an older layout's
            # epoch): the live loop's per-tick read touches only its days' files, however many
            # days the dataset holds.
            lo = -(2**63) if since is None else int(since.timestamp() * US)
            hi = 2**63 if until is None else int(until.timestamp() * US)
            files = [p for p in files if lo < _epoch_of(p) + DAY_US and _epoch_of(p) < hi]
        if not files:
            return SCAN_SCHEMA.empty_table()
        table = pa.concat_tables([conform(pq.read_table(p)) for p in files])
        col = table.column(by)
        if since is not None:
            table = table.filter(pc.greater_equal(col, pa.scalar(since, SCAN_SCHEMA.field(by).type)))
            col = table.column(by)
        if until is not None:
            col = table.column("first_ts") if active else col
            table = table.filter(pc.less(col, pa.scalar(until, SCAN_SCHEMA.field(by).type)))
        if site is not None:
            in_sites = (
                pc.greater(pc.list_value_length(pc.list_filter(table.column("sites"), site)), 0)
                if hasattr(pc, "list_filter")
                else None
            )
            if in_sites is None:
                listed = [site in s for s in table.column("sites").to_pylist()]
                table = table.filter(pa.array(listed))
            else:
                table = table.filter(in_sites)
        return table.sort_by([("first_ts", "ascending"), ("scan_id", "ascending")])


def _epoch_of(path: Path) -> int:
    """Epoch start (us) from a file name ``<kind>+<epoch start us>.parquet``."""
    return int(path.stem.rsplit("+", 1)[1])


def spanning_names(path: Path) -> list[str]:
    """The scan files a date's spans file names (none when it has none or it is not ours)."""
    try:
        names = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return []
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and _SCAN_FILE.fullmatch(n)]


def spanning_files(root: Path, first_day: dt.date, last_day: dt.date) -> list[Path]:
    """Files holding scans that started before a date in [first_day, last_day] and cover it."""
    out: set[Path] = set()
    day = first_day
    while day <= last_day:
        out.update(root / n for n in spanning_names(root / f"date={day.isoformat()}" / SPANS))
        day += dt.timedelta(days=1)
    return sorted(out)


def _as_dt(t: dt.datetime | int) -> dt.datetime:
    return t if isinstance(t, dt.datetime) else dt.datetime.fromtimestamp(t / US, dt.UTC)
