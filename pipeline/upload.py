"""Copy the closed hours of the local store to an object store (``fireplot store sync``).

The live worker writes to a local directory, and must: its exactly-once flush
relies on ``flock`` fencing, ``fsync`` and atomic ``rename`` (``pipeline.store``),
and compaction on ``renameat2`` exchange; object stores offer none of these.
What goes to object storage is a copy, made afterwards, of hours that no
longer change: any URI ``pyarrow.fs.FileSystem.from_uri`` understands, e.g.
``s3://bucket/fireplot?region=eu-west-1`` or, for MinIO and other S3 APIs,
``s3://bucket/fireplot?endpoint_override=host:9000&scheme=http``. Credentials
come from the usual places (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``~/.aws``), never from the URI. The copy is a store ``Store(uri)`` reads::

    <uri>/events/site=S/date=D/hour=HH/<the local file name>
    <uri>/rollups/<name>/site=S/date=D/HH.parquet the hour's rollups (pipeline.rollup), when current
    <uri>/_uploaded/site=S/date=D/hour=HH.json   what that hour's upload holds, written last

Per closed hour (its end more than ``older_than_s`` ago, the same rule as compaction):

1. Under the hour's shared lock (flushes hold it too; compaction's directory
   swap takes it exclusively) and only if no compaction journal names the hour,
   its committed files are listed and opened. An open file keeps reading the
   same bytes even if compaction swaps the directory afterwards.
2. An hour of more than one committed file waits for compaction: readers of the
   bucket could see some of its objects and not others, while one object
   appears whole or not at all (a PUT, or a multipart upload completed).
3. The hour is skipped when the bucket holds exactly its file, same name and
   size, and its ``_uploaded`` manifest exists (its rollups still get step 5).
   The manifest is written only after the object is complete, so an upload cut
   short (kill -9) is redone.
4. Otherwise the file is uploaded (sha256 on the way, kept in the manifest),
   its size checked, the manifest written, then the hour's other objects (an
   earlier compaction's file) deleted. Between those last two steps (or until
   the next sync if it dies right there) a reader sees a re-compacted hour
   twice: only hours that took late events after their upload are affected.
5. Rollups go with their hour, before its manifest: each of ``rollup.NAMES``,
   opened under the same shared lock as the events, is uploaded only when its
   input digest is that of the uploaded file name (what ``RangeFeed`` will
   compute from the bucket's listing); a stale or missing one is counted and
   left for a later sync, after ``fireplot rollup`` has refreshed it. When an
   hour's events are replaced, its rollup objects are replaced too, or deleted
   if the local rollup is not current yet, so a rollup object in the bucket is
   always that of the hour's events there. A later sync that finds the hour
   present uploads just the rollups the bucket lacks (listing only: no object
   is read back) and adds them to the manifest.

Retention after upload (``upload_retention_days``) deletes a local event date
only when every one of its hours is in the bucket after this sync; it rolls the
date's hours up first and uploads those rollups, as they cannot be made from the
local store afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.compact import committed_inputs, expire, journal_path
from pipeline.rollup import DIGEST_KEY, NAMES, ROLLUPS_DIR, names_digest, rollup_path
from pipeline.store import EVENTS_DIR, Store, closed_hours, file_lock, hour_lock_path, is_uri, partition_dir

log = logging.getLogger("fireplot.upload")

MANIFESTS_DIR = "_uploaded"
CHUNK_BYTES = 8 << 20
PARALLEL_HOURS = 4

Hour = tuple[str, dt.date, int]


@dataclass
class UploadReport:
    hours_closed: int = 0
    hours_uploaded: int = 0
    hours_present: int = 0  # already in the bucket, nothing sent
    hours_compacting: int = 0  # a compaction journal names them: next time
    hours_awaiting_compaction: int = 0  # several committed files: after compaction
    files_uploaded: int = 0
    bytes_uploaded: int = 0
    objects_replaced: int = 0  # an earlier compaction's objects deleted
    rollups_uploaded: int = 0
    rollups_present: int = 0  # the bucket holds the hour's rollup already
    rollups_stale: int = 0  # local rollup not of the uploaded file: after `fireplot rollup`
    rollups_missing: int = 0  # no local rollup file yet: after `fireplot rollup`
    rollups_removed: int = 0  # the replaced events' rollup objects deleted, no current one yet
    rollup_bytes_uploaded: int = 0
    dates_expired: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _hour_key(site: str, date: dt.date, hour: int) -> str:
    return f"site={site}/date={date.isoformat()}/hour={hour:02d}"


def _rollup_digest(source: BinaryIO) -> str | None:
    try:
        value = (pq.read_schema(source).metadata or {}).get(DIGEST_KEY)
    except pa.ArrowInvalid as err:
        # Not a Parquet file: counted as stale and kept out of the bucket; the hour's events still go.
        log.warning("unreadable rollup", extra={"path": source.name, "error": str(err)})
        return None
    finally:
        source.seek(0)
    return value.decode() if value else None


def _open_if_there(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


# The rollups of one hour opened for upload: name -> open file, None when not written.
Rollups = dict[str, BinaryIO | None]


class Uploader:
    """Sync of one local store to one filesystem URI; ``sync()`` may be called again and again."""

    def __init__(self, store: Store, uri: str) -> None:
        if store.filesystem is not None:
            raise ValueError(f"the store to upload from must be a local directory, not {store.location}")
        if not is_uri(uri):
            raise ValueError(f"{uri!r}: not a URI (e.g. s3://bucket/prefix?region=eu-west-1)")
        self.store = store
        self.uri = uri
        self.fs, path = pafs.FileSystem.from_uri(uri)
        self.base = str(path).rstrip("/")

    def _events_path(self, key: str) -> str:
        return f"{self.base}/{EVENTS_DIR}/{key}"

    def _manifest_path(self, key: str) -> str:
        return f"{self.base}/{MANIFESTS_DIR}/{key}.json"

    def _rollup_object(self, name: str, site: str, date: dt.date, hour: int) -> str:
        # The local layout (rollup.rollup_path), which RangeFeed lists on a URI store too.
        return f"{self.base}/{ROLLUPS_DIR}/{name}/site={site}/date={date.isoformat()}/{hour:02d}.parquet"

    def _listing(self, sub: str) -> dict[str, int]:
        """Every object under ``<uri>/<sub>`` (path -> size): one paged LIST, not a HEAD per hour."""
        infos = self.fs.get_file_info(
            pafs.FileSelector(f"{self.base}/{sub}", recursive=True, allow_not_found=True)
        )
        return {i.path: int(i.size) for i in infos if i.type == pafs.FileType.File}

    def _open_committed(self, site: str, date: dt.date, hour: int) -> tuple[str, list[BinaryIO], Rollups]:
        """('ok' | 'compacting', open committed files and rollups) of one hour, consistent with compaction."""
        if journal_path(self.store, site, date, hour).exists():
            return "compacting", [], {}
        directory = partition_dir(self.store.root, site, date, hour)
        with file_lock(hour_lock_path(self.store.root, site, date, hour), shared=True):
            if journal_path(self.store, site, date, hour).exists():
                return "compacting", [], {}
            return (
                "ok",
                [open(p, "rb") for p in committed_inputs(self.store, directory)],
                self._open_rollups(site, date, hour),
            )

    def _open_rollups(self, site: str, date: dt.date, hour: int) -> Rollups:
        """The hour's rollup files, opened: each keeps its bytes if a rollup run replaces it later
        (it writes a new file and renames it over), so the digest read is that of the bytes sent."""
        return {name: _open_if_there(rollup_path(self.store, name, site, date, hour)) for name in NAMES}

    def _sync_rollups(
        self, hour: Hour, events_name: str, opened: Rollups, remote: dict[str, int], replacing: bool
    ) -> tuple[Counter[str], list[dict[str, object]]]:
        """Bring one hour's rollup objects in line with its events object ``events_name``.

        ``replacing``: the events object is new in the bucket, so any rollup object
        there is of earlier events. Returns the report counts and the manifest
        entries of the rollups sent."""
        counts: Counter[str] = Counter()
        sent: list[dict[str, object]] = []
        # The digest RangeFeed computes for the bucket's hour, which holds just this object.
        wanted = names_digest([events_name])
        for name, source in opened.items():
            dest = self._rollup_object(name, *hour)
            there = remote.get(dest)
            size = os.fstat(source.fileno()).st_size if source is not None else None
            current = source is not None and _rollup_digest(source) == wanted
            if there is not None and not replacing and (there == size or not current):
                # Outside a replacement, a rollup object is of the events there (see step 5).
                counts["rollups_present"] += 1
            elif current and source is not None:
                nbytes, sha256 = self._put(source, dest, lambda _: None)
                counts["rollups_uploaded"] += 1
                counts["rollup_bytes_uploaded"] += nbytes
                sent.append({"name": name, "size": nbytes, "sha256": sha256, "digest": wanted})
            else:
                counts["rollups_missing" if source is None else "rollups_stale"] += 1
                if there is not None:
                    # Of the replaced events: no reader could use it, and a later sync must not
                    # take it for the new events' rollup.
                    self.fs.delete_file(dest)
                    counts["rollups_removed"] += 1
        return counts, sent

    def _add_to_manifest(self, key: str, rollups: list[dict[str, object]]) -> None:
        """Record rollups sent after their hour's manifest was written (a later sync)."""
        path = self._manifest_path(key)
        with self.fs.open_input_stream(path) as fh:
            manifest = json.loads(fh.read())
        names = {r["name"] for r in rollups}
        kept = [r for r in manifest.get("rollups", []) if r.get("name") not in names]
        manifest["rollups"] = kept + rollups
        with self.fs.open_output_stream(path) as out:
            out.write(json.dumps(manifest).encode())

    def _put(self, source: BinaryIO, dest: str, progress: Callable[[int], None]) -> tuple[int, str]:
        """Upload one open file; (bytes, sha256). The object exists only once complete."""
        digest = hashlib.sha256()
        size = 0
        expected = os.fstat(source.fileno()).st_size
        try:
            with self.fs.open_output_stream(dest) as out:
                while chunk := source.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    progress(len(chunk))
        except BaseException:
            # Closing a stream after a failed write may still complete the upload with what it
            # had: remove such a short object (a kill -9, by contrast, completes nothing).
            with contextlib.suppress(OSError):
                left = self.fs.get_file_info(dest)
                if left.type == pafs.FileType.File and left.size != expected:
                    self.fs.delete_file(dest)
            raise
        info = self.fs.get_file_info(dest)
        if info.type != pafs.FileType.File or info.size != size:
            # Never leave a short object where readers look for whole hours.
            self.fs.delete_file(dest)
            raise OSError(f"{self.uri}: {dest} has {info.size} bytes after upload, expected {size}")
        return size, digest.hexdigest()

    def sync(
        self,
        older_than_s: float,
        now: dt.datetime | None = None,
        retention_days: int = 0,
        progress: Callable[[float, UploadReport], None] | None = None,
    ) -> UploadReport:
        """Upload every closed hour the bucket lacks; optionally expire local dates that are all uploaded."""
        now = now or dt.datetime.now(dt.UTC)
        report = UploadReport()
        hours = closed_hours(self.store, older_than_s, now)
        report.hours_closed = len(hours)
        remote: dict[str, dict[str, int]] = {}
        for path, size in self._listing(EVENTS_DIR).items():
            hour_dir, _, name = path.rpartition("/")
            remote.setdefault(hour_dir, {})[name] = size
        manifests = set(self._listing(MANIFESTS_DIR))
        remote_rollups = self._listing(ROLLUPS_DIR)
        # Progress is by bytes of the closed hours' committed files, the part that takes time.
        total = sum(
            p.stat().st_size
            for s, d, h in hours
            for p in committed_inputs(self.store, partition_dir(self.store.root, s, d, h))
        )
        done = 0
        lock = threading.Lock()

        def advance(n: int) -> None:
            nonlocal done
            with lock:
                done += n
                if progress is not None:
                    progress(min(done / total, 1.0) if total else 1.0, report)

        def one(hour: Hour) -> tuple[Hour, str, int, int, str, Counter[str]]:
            return (hour, *self._sync_hour(hour, remote, manifests, remote_rollups, advance))

        in_bucket: dict[Hour, str] = {}  # hour -> the name of its events object
        # Hours go up side by side: one stream waits on round trips, not on bandwidth.
        with ThreadPoolExecutor(max_workers=PARALLEL_HOURS, thread_name_prefix="fireplot-upload") as pool:
            for hour, outcome, sent, replaced, name, rollups in pool.map(one, hours):
                with lock:
                    self._count_rollups(report, rollups)
                    if outcome == "uploaded":
                        report.hours_uploaded += 1
                        report.files_uploaded += 1
                        report.bytes_uploaded += sent
                        report.objects_replaced += replaced
                    elif outcome == "present":
                        report.hours_present += 1
                    elif outcome == "compacting":
                        report.hours_compacting += 1
                    elif outcome == "awaiting_compaction":
                        report.hours_awaiting_compaction += 1
                if outcome in ("uploaded", "present"):
                    in_bucket[hour] = name
        if progress is not None:
            progress(1.0, report)
        if retention_days > 0:
            report.dates_expired = self._expire(retention_days, now, in_bucket, remote_rollups, report)
        log.info("upload", extra={"uri": self.uri, "report": report.as_dict()})
        return report

    @staticmethod
    def _count_rollups(report: UploadReport, counts: Counter[str]) -> None:
        for field_name, n in counts.items():
            setattr(report, field_name, getattr(report, field_name) + n)

    def _sync_hour(
        self,
        hour: Hour,
        remote: dict[str, dict[str, int]],
        manifests: set[str],
        remote_rollups: dict[str, int],
        advance: Callable[[int], None],
    ) -> tuple[str, int, int, str, Counter[str]]:
        """Bring one hour's copy up to date: (outcome, bytes sent, stale objects deleted,
        events object name, rollup counts)."""
        key = _hour_key(*hour)
        state, files, rollups = self._open_committed(*hour)
        if state == "compacting":
            return "compacting", 0, 0, "", Counter()
        try:
            if not files:
                return "empty", 0, 0, "", Counter()  # only a cut-short flush's leftovers: nothing committed
            if len(files) > 1:
                advance(sum(os.fstat(f.fileno()).st_size for f in files))
                return "awaiting_compaction", 0, 0, "", Counter()
            local = files[0]
            name = Path(local.name).name
            size = os.fstat(local.fileno()).st_size
            there = remote.get(self._events_path(key), {})
            if there == {name: size} and self._manifest_path(key) in manifests:
                advance(size)
                counts, added = self._sync_rollups(hour, name, rollups, remote_rollups, replacing=False)
                if added:
                    self._add_to_manifest(key, added)
                return "present", 0, 0, name, counts
            rows = pq.ParquetFile(local).metadata.num_rows
            local.seek(0)
            sent, sha256 = self._put(local, f"{self._events_path(key)}/{name}", advance)
            # Before the manifest: a manifest still means the hour is complete, rollups included.
            counts, sent_rollups = self._sync_rollups(hour, name, rollups, remote_rollups, replacing=True)
            manifest = {
                "files": [{"name": name, "size": sent, "sha256": sha256, "rows": rows}],
                "rollups": sent_rollups,
                "uploaded_at": dt.datetime.now(dt.UTC).isoformat(),
            }
            with self.fs.open_output_stream(self._manifest_path(key)) as out:
                out.write(json.dumps(manifest).encode())
            stale = sorted(set(there) - {name})
            for old in stale:
                self.fs.delete_file(f"{self._events_path(key)}/{old}")
            return "uploaded", sent, len(stale), name, counts
        finally:
            for f in [*files, *rollups.values()]:
                if f is not None:
                    f.close()

    def _expire(
        self,
        retention_days: int,
        now: dt.datetime,
        in_bucket: dict[Hour, str],
        remote_rollups: dict[str, int],
        report: UploadReport,
    ) -> list[str]:
        """Delete local event dates older than the retention whose every hour is in the bucket."""

        def ready(site: str, date: dt.date, hours: list[int]) -> bool:
            return all((site, date, h) in in_bucket for h in hours)

        def rolled_up(site: str, date: dt.date, hour: int) -> None:
            # The last chance to send them: without the events they cannot be computed here.
            hour_of = (site, date, hour)
            self._sync_expiring_rollups(hour_of, in_bucket[hour_of], remote_rollups, report)

        return expire(self.store, retention_days, now, ready=ready, rolled_up=rolled_up)

    def _sync_expiring_rollups(
        self, hour: Hour, events_name: str, remote_rollups: dict[str, int], report: UploadReport
    ) -> None:
        with file_lock(hour_lock_path(self.store.root, *hour), shared=True):
            opened = self._open_rollups(*hour)
        try:
            counts, added = self._sync_rollups(hour, events_name, opened, remote_rollups, replacing=False)
            if added:
                self._add_to_manifest(_hour_key(*hour), added)
            self._count_rollups(report, counts)
        finally:
            for f in opened.values():
                if f is not None:
                    f.close()
