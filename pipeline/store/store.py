"""The Store: a flush committed in three durable steps, and reads by site and time.

One class because both sides share one rule set: the reader's retry on a
vanished file is the answer to the writer's and compaction's directory swaps,
and a store given as an object-store URI is the same Store, read-only. The
protocol is in the package docstring (``pipeline.store``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline import durable
from pipeline.event import EVENT_SCHEMA, FIELD_NAMES
from pipeline.store import layout
from pipeline.store.dedupe import candidate_mask, high_water_of, unique_ids
from pipeline.store.layout import OffsetRange
from pipeline.store.locks import file_lock


def closed_hours(store: Store, older_than_s: float, now: dt.datetime) -> list[tuple[str, dt.date, int]]:
    """Partition-hours whose end lies more than older_than_s before now: the hours compaction,
    rollups and uploads work through."""
    out: list[tuple[str, dt.date, int]] = []
    if not store.events_root.exists():
        return out
    for site_dir in sorted(store.events_root.glob("site=*")):
        for date_dir in sorted(site_dir.glob("date=*")):
            date = dt.date.fromisoformat(date_dir.name.removeprefix("date="))
            for hour_dir in sorted(date_dir.glob("hour=*")):
                hour = int(hour_dir.name.removeprefix("hour="))
                end = dt.datetime.combine(date, dt.time(hour), dt.UTC) + dt.timedelta(hours=1)
                if (now - end).total_seconds() > older_than_s:
                    out.append((site_dir.name.removeprefix("site="), date, hour))
    return out


@dataclass
class PartitionState:
    """What the manifest of one topic-partition says is durably in the store."""

    last_offset: int = -1
    # highest source_offset stored per source_id through this topic-partition
    high_water: dict[str, int] = field(default_factory=dict)


@dataclass
class FlushResult:
    paths: list[Path]
    events_written: int
    bytes_written: int
    duplicates_dropped: int


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fireplot-write")
    return _POOL


# Directories a range read lists one by one before the whole-store listing is cheaper.
_RANGE_LISTING_MAX = 2000


class Store:
    """A fireplot store rooted at a directory."""

    def __init__(self, root: str | Path, check_all_ids: bool = False) -> None:
        # ``location`` rebuilds the same store (``Store(store.location)``), URI or path.
        self.location = str(root)
        self.filesystem: pafs.FileSystem | None = None
        self._fs_root = ""
        if layout.is_uri(root):
            # An object-store URI is read-only here: writes need flock and rename (module doc),
            # so only the read side below goes through the pyarrow filesystem. ``root`` then
            # names no local directory, and what lives only beside a local store (offset
            # manifests, rollups, datasets, health) is found empty.
            self.filesystem, fs_path = pafs.FileSystem.from_uri(str(root))
            self._fs_root = str(fs_path).rstrip("/")
        self.root = Path(root)
        # The per-source high-water marks only know what came through the same
        # Kafka topic-partition. Events arriving through another topic (a
        # replay into the live archive) must each be checked against the
        # stored ids of their hour instead.
        self.check_all_ids = check_all_ids

    @property
    def events_root(self) -> Path:
        return self.root / layout.EVENTS_DIR

    # ---- writing ---------------------------------------------------------

    def manifest_path(self, topic: str, partition: int) -> Path:
        return self.root / layout.SINK_DIR / f"{topic}+{partition}.json"

    def partition_lock(self, topic: str, partition: int) -> contextlib.AbstractContextManager[bool]:
        """Exclusive lock serialising every writer of one topic-partition (see module doc)."""
        return file_lock(self.root / layout.SINK_DIR / f"{topic}+{partition}.lock")

    def partition_state(self, topic: str, partition: int) -> PartitionState:
        try:
            data = json.loads(self.manifest_path(topic, partition).read_text())
        except FileNotFoundError:
            return PartitionState()
        return PartitionState(
            int(data["last_offset"]), {str(k): int(v) for k, v in data.get("high_water", {}).items()}
        )

    def committed_offset(self, topic: str, partition: int) -> int:
        """Last Kafka offset of this topic-partition durably in the store, -1 if none."""
        return self.partition_state(topic, partition).last_offset

    def recover(self, topic: str, partition: int) -> tuple[int, list[Path]]:
        """Remove the leftovers of a flush that did not commit; return the committed offset.

        Call under ``partition_lock``: only then is every file beyond the
        manifest a crashed flush's rather than a live writer's."""
        committed = self.committed_offset(topic, partition)
        removed: list[Path] = []
        prefix = f"{topic}+{partition}+"
        if self.events_root.exists():
            for path in self.events_root.rglob(f"*{prefix}*"):
                if path.name.startswith(".") and path.name.endswith(".tmp"):
                    path.unlink(missing_ok=True)
                    removed.append(path)
                    continue
                rng = layout.parse_file_name(path.name)
                if rng and rng.topic == topic and rng.partition == partition and rng.last > committed:
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return committed, removed

    def stored_ids(self, site: str, date: dt.date, hour: int, candidates: pa.Table) -> pa.Table:
        """Which of the candidate ids a partition-hour already holds (two columns read, pruned)."""
        directory = layout.partition_dir(self.root, site, date, hour)
        for attempt in range(5):
            files = [str(p) for p in directory.glob("*.parquet")] if directory.exists() else []
            if not files:
                return pa.table(
                    {"source_id": pa.array([], pa.string()), "source_offset": pa.array([], pa.int64())}
                )
            offsets = candidates.column("source_offset")
            flt = (
                ds.field("source_id").isin(pc.unique(candidates.column("source_id")))
                & (ds.field("source_offset") >= pc.min(offsets))
                & (ds.field("source_offset") <= pc.max(offsets))
            )
            try:
                return ds.dataset(files, format="parquet", schema=layout.FILE_SCHEMA).to_table(
                    columns=layout.ID_COLUMNS, filter=flt
                )
            except FileNotFoundError:
                # compaction swapped the directory between listing and reading
                time.sleep(0.05 * (attempt + 1))
        raise RuntimeError(f"{directory}: files kept vanishing while reading ids")

    def write_flush(self, rng: OffsetRange, table: pa.Table) -> list[Path]:
        """Write one flush of events from one topic-partition and commit it; the files written."""
        return self.write_events(rng, table).paths

    def write_events(
        self, rng: OffsetRange, table: pa.Table, state: PartitionState | None = None
    ) -> FlushResult:
        """Write one flush of events from one topic-partition, without stored duplicates, and commit it.

        ``state`` is the partition's manifest as read under ``partition_lock``
        (read here when not given)."""
        state = state if state is not None else self.partition_state(rng.topic, rng.partition)
        return self.write_many([(rng, table, state)])[0]

    def write_many(
        self, flushes: Iterable[tuple[OffsetRange, pa.Table, PartitionState]]
    ) -> list[FlushResult]:
        """Write one flush of each of several topic-partitions and commit each; results in order.

        Call holding every one of their ``partition_lock``s, each ``PartitionState``
        read under it (it is updated to what was committed). The files of all
        partitions are encoded at once, so one flush keeps every writer thread
        busy, not only the few partition-hours a single topic-partition spans;
        with a generator for ``flushes``, a topic-partition's files are being
        encoded while the next one is decoded. Each topic-partition still
        commits on its own (its files durable before its manifest), so a crash
        in between leaves what ``recover`` removes."""
        taken: list[tuple[OffsetRange, int, PartitionState, pa.Table]] = []
        pending: list[tuple[int, Future[tuple[Path, Path, int, int] | None]]] = []
        with contextlib.ExitStack() as locks:
            held: set[tuple[str, dt.date, int]] = set()
            try:
                for i, (rng, table, state) in enumerate(flushes):
                    before = table.num_rows
                    table = unique_ids(table)
                    taken.append((rng, before, state, table))
                    if not table.num_rows:
                        continue
                    if self.check_all_ids:
                        maybe = pa.array(np.ones(table.num_rows, dtype=bool))
                    else:
                        maybe = candidate_mask(table, state.high_water)
                    for site, date, hour, part in layout.split_by_partition(
                        table.append_column("_cand", maybe)
                    ):
                        if (site, date, hour) not in held:
                            # Shared, so taken in any order: compaction holds one hour
                            # (exclusively) at a time and waits for nothing else meanwhile.
                            locks.enter_context(
                                file_lock(layout.hour_lock_path(self.root, site, date, hour), shared=True)
                            )
                            held.add((site, date, hour))
                        # Parquet encoding and zstd release the GIL; fsyncs of different files overlap.
                        pending.append((i, _pool().submit(self._stage, rng, site, date, hour, part)))
            finally:
                # Never leave a writer thread behind in a directory whose lock is released.
                wait([f for _, f in pending])
            staged: list[list[tuple[Path, Path, int, int]]] = [[] for _ in taken]
            for i, future in pending:
                done = future.result()
                if done is not None:
                    staged[i].append(done)
            # Not durable.write_bytes per file: every file of the flush is
            # fsynced (in parallel) before any is renamed, and each directory
            # is fsynced once, however many files went into it.
            for tmp, final, _, _ in (x for files in staged for x in files):
                os.replace(tmp, final)
            list(
                _pool().map(durable.fsync_dir, {final.parent for files in staged for _, final, _, _ in files})
            )
            # Every file is durable under its final name: now each manifest (step 3).
            marks = [self._high_water_after(state, table) for _, _, state, table in taken]
            list(_pool().map(self.commit_offsets, [rng for rng, _, _, _ in taken], marks))
        results = []
        for (rng, before, state, _), files, high_water in zip(taken, staged, marks, strict=True):
            state.last_offset, state.high_water = rng.last, high_water
            written = sum(x[2] for x in files)
            results.append(
                FlushResult([x[1] for x in files], written, sum(x[3] for x in files), before - written)
            )
        return results

    @staticmethod
    def _high_water_after(state: PartitionState, table: pa.Table) -> dict[str, int]:
        high_water = dict(state.high_water)
        if table.num_rows:
            for sid, off in high_water_of(table).items():
                if off > high_water.get(sid, -1):
                    high_water[sid] = off
        return high_water

    def _stage(
        self, rng: OffsetRange, site: str, date: dt.date, hour: int, part: pa.Table
    ) -> tuple[Path, Path, int, int] | None:
        """Write one partition-hour's new events to a fsynced temporary file: (tmp, final, rows, bytes)."""
        cand = part.column("_cand")
        part = part.drop_columns(["_cand"])
        if pc.any(cand).as_py():
            stored = self.stored_ids(site, date, hour, part.filter(cand).select(layout.ID_COLUMNS))
            if stored.num_rows:
                part = part.join(stored, keys=layout.ID_COLUMNS, join_type="left anti", use_threads=False)
                part = part.sort_by([("ts", "ascending")])
        if not part.num_rows:
            return None
        final = layout.partition_dir(self.root, site, date, hour) / rng.file_name()
        durable.make_dirs(final.parent)  # a new hour directory must outlive power loss too
        tmp = final.with_name(f".{final.name}.tmp")
        pq.write_table(
            part.drop_columns(["site"]).cast(layout.FILE_SCHEMA), tmp, **layout.PARQUET_WRITE_OPTIONS
        )
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
            size = os.fstat(fh.fileno()).st_size
        return tmp, final, part.num_rows, size

    def commit_offsets(self, rng: OffsetRange, high_water: dict[str, int] | None = None) -> None:
        """Record that every record of the partition up to ``rng.last`` is in the store."""
        if high_water is None:
            high_water = self.partition_state(rng.topic, rng.partition).high_water
        manifest = {
            "topic": rng.topic,
            "partition": rng.partition,
            "last_offset": rng.last,
            "high_water": high_water,
        }
        durable.write_bytes(self.manifest_path(rng.topic, rng.partition), json.dumps(manifest).encode())

    # ---- reading ---------------------------------------------------------

    def dataset(self) -> ds.Dataset | None:
        fs, root = self.listing_root()
        events = f"{root}/{layout.EVENTS_DIR}"
        if fs.get_file_info(events).type == pafs.FileType.NotFound:
            return None
        return self.restrict(
            ds.dataset(
                events,
                filesystem=fs,
                format="parquet",
                partitioning=layout.PARTITIONING,
                schema=layout.DATASET_SCHEMA,
                ignore_prefixes=[".", "_"],
            )
        )

    def restrict(self, dataset: ds.Dataset) -> ds.Dataset:
        """What of ``dataset`` this store may show: all of it here.

        Every listing (:meth:`dataset`, :meth:`range_dataset`) goes through this one hook, so a
        store that may show only some sites (the web's ``SiteScopedStore``) overrides it alone
        and no read can pass around it."""
        return dataset

    def range_dataset(self, first: dt.date, last: dt.date, hours: range | None = None) -> ds.Dataset | None:
        """The dataset of the files under the dates ``first``..``last`` (and ``hours`` of a single day).

        Discovery of the whole store lists every site, day and hour directory: a
        year of four sites is ~35k directories, listed again for each hour a
        replay reads. Here only the directories of the range are listed. Past
        ``_RANGE_LISTING_MAX`` directories the whole listing is cheaper."""
        fs, root = self.listing_root()
        events = f"{root}/{layout.EVENTS_DIR}"
        top = fs.get_file_info(pafs.FileSelector(events, allow_not_found=True))
        sites = [i.path for i in top if i.type == pafs.FileType.Directory and i.base_name.startswith("site=")]
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        leaves = [f"{s}/date={d.isoformat()}" for s in sites for d in days]
        if hours is not None and first == last:
            leaves = [f"{leaf}/hour={h:02d}" for leaf in leaves for h in hours]
        if len(leaves) > _RANGE_LISTING_MAX:
            return self.dataset()
        files: list[str] = []
        for leaf in leaves:
            for info in fs.get_file_info(pafs.FileSelector(leaf, recursive=True, allow_not_found=True)):
                inner = info.path[len(events) + 1 :].split("/")
                # The same files discovery takes: none under a "." or "_" name (temporary
                # files of a write or a compaction in progress).
                if info.type == pafs.FileType.File and not any(c.startswith((".", "_")) for c in inner):
                    files.append(info.path)
        return self.restrict(
            ds.dataset(
                files,
                filesystem=fs,
                format="parquet",
                partitioning=layout.PARTITIONING,
                partition_base_dir=events,
                schema=layout.DATASET_SCHEMA,
            )
        )

    def scan(
        self,
        build: Callable[[ds.Dataset], pa.Table],
        empty: pa.Table,
        listing: Callable[[], ds.Dataset | None] | None = None,
    ) -> pa.Table:
        """Run ``build`` over ``listing`` (else the whole store); the way to read while writers run."""
        # Compaction swaps a partition-hour directory atomically; a scan that
        # listed the old files just before the swap finds them gone and is
        # retried on the new listing rather than returning a partial answer.
        for attempt in range(50):
            dataset = listing() if listing is not None else self.dataset()
            if dataset is None:
                return empty
            try:
                return build(dataset)
            except FileNotFoundError:
                time.sleep(min(0.2, 0.01 * (attempt + 1)))
            except OSError as exc:
                if "No such file" not in str(exc) and not self._vanished(dataset):
                    raise
                time.sleep(min(0.2, 0.01 * (attempt + 1)))
        raise RuntimeError(f"{self.events_root}: files kept vanishing during a scan")

    def read(
        self,
        start: dt.datetime,
        end: dt.datetime,
        sites: Iterable[str] | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Events with start <= ts < end, pruned by the date (within one day, hour) partitions first."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        cols = columns or list(FIELD_NAMES)
        start_utc, end_utc = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        flt = (
            (ds.field("date") >= start_utc.date())
            & (ds.field("date") <= end_utc.date())
            & (ds.field("ts") >= pa.scalar(start_utc, pa.timestamp("us", tz="UTC")))
            & (ds.field("ts") < pa.scalar(end_utc, pa.timestamp("us", tz="UTC")))
        )
        last = end_utc - dt.timedelta(microseconds=1)
        if end_utc <= start_utc:
            return EVENT_SCHEMA.empty_table().select(cols)
        # Within one day only the hour directories in range are listed: otherwise every file
        # of the day is opened to find out from its statistics that it holds nothing in range.
        hours = range(start_utc.hour, last.hour + 1) if start_utc.date() == last.date() else None
        site_list = list(sites) if sites is not None else None
        if site_list is not None:
            flt = flt & ds.field("site").isin(site_list)
        table = self.scan(
            lambda d: d.to_table(columns=cols, filter=flt),
            EVENT_SCHEMA.empty_table().select(cols),
            lambda: self.range_dataset(start_utc.date(), last.date(), hours),
        )
        return table.cast(pa.schema([EVENT_SCHEMA.field(c) for c in cols]))

    def read_all(self) -> pa.Table:
        table = self.scan(lambda d: d.to_table(columns=list(FIELD_NAMES)), EVENT_SCHEMA.empty_table())
        return table.cast(EVENT_SCHEMA)

    def count(self) -> int:
        return int(
            self.scan(lambda d: pa.table({"n": [d.count_rows()]}), pa.table({"n": [0]}))["n"][0].as_py()
        )

    def listing_root(self) -> tuple[pafs.FileSystem, str]:
        """The filesystem and root path to list and open the store's files through, URI or local.

        For readers that open files beside the events dataset (rollups, one hour's
        files) without knowing which kind of store they were given."""
        if self.filesystem is not None:
            return self.filesystem, self._fs_root
        return pafs.LocalFileSystem(), str(self.root.absolute())

    def sites(self) -> list[str]:
        fs, root = self.listing_root()
        listing = fs.get_file_info(pafs.FileSelector(f"{root}/{layout.EVENTS_DIR}", allow_not_found=True))
        names = (info.base_name for info in listing if info.type == pafs.FileType.Directory)
        return sorted(n[len("site=") :] for n in names if n.startswith("site="))

    def _vanished(self, dataset: ds.Dataset) -> bool:
        """Whether an object the scan listed is gone (an upload replaced the hour's file).

        Object stores word a missing key in many ways (S3's NoSuchKey, a GET
        cut short), so ask the store instead of parsing the message."""
        if self.filesystem is None:
            return False
        infos = self.filesystem.get_file_info(list(getattr(dataset, "files", [])))
        return any(info.type == pafs.FileType.NotFound for info in infos)
