"""Closed hours copied to a real S3 API (moto's server on 127.0.0.1) and read back through the URI.

moto implements the S3 REST API over HTTP; pyarrow's S3FileSystem (the AWS C++
SDK) talks to it exactly as to AWS or MinIO, via ``endpoint_override``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from pipeline import rollup
from pipeline.compact import compact, journal_path
from pipeline.event import FIELD_NAMES
from pipeline.rollup import ROLLUPS_DIR
from pipeline.store import Store, partition_dir
from pipeline.upload import MANIFESTS_DIR, Uploader
from tests.support.s3 import OLDER_THAN_S, REGION, S3, LocalStore


def _sorted(table: pa.Table) -> pa.Table:
    return table.select(list(FIELD_NAMES)).sort_by(
        [("source_id", "ascending"), ("source_offset", "ascending")]
    )


def _hour(now: dt.datetime, back: int) -> dt.datetime:
    return now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=back)


def _run_fireplot(cwd: Path, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fireplot", "--plain-logs", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_sync_of_closed_and_open_hours_uploads_exactly_the_closed_ones(s3: S3, tmp_path: Path) -> None:
    """Closed hours land in the bucket whole and readable through the URI; the open hour never does;
    a second sync sends nothing."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    closed = [(site, _hour(now, back)) for site in ("hq", "lab") for back in (2, 3, 5)]
    for site, start in closed:
        local.add(site, start, 3000)
    open_hour = _hour(now, 0)
    local.add("hq", open_hour, 900)
    compact(local.store, OLDER_THAN_S, now=now)
    assert all(len(local.files(site, start)) == 1 for site, start in closed)
    assert len(local.files("hq", open_hour)) == 3  # the open hour is not compacted either

    uri = s3.bucket_uri()
    report = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (report.hours_closed, report.hours_uploaded, report.hours_present) == (6, 6, 0)
    assert report.bytes_uploaded == sum(p.stat().st_size for s, t in closed for p in local.files(s, t))

    objects = s3.objects(uri, "events")
    expected = {
        str(p.relative_to(local.store.events_root)): p.read_bytes()
        for site, start in closed
        for p in local.files(site, start)
    }
    assert objects == expected  # same hive layout, same names, same bytes; no open-hour object
    manifests = s3.objects(uri, MANIFESTS_DIR)
    assert len(manifests) == 6
    for rel, content in expected.items():
        entry = json.loads(manifests[rel.rsplit("/", 1)[0] + ".json"])["files"][0]
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()

    remote = Store(uri)
    everything = local.store.read_all()
    closed_rows = everything.filter(pc.less(everything["ts"], pa.scalar(open_hour, everything["ts"].type)))
    assert closed_rows.num_rows == 6 * 3000
    assert _sorted(remote.read_all()).equals(_sorted(closed_rows))
    assert remote.count() == closed_rows.num_rows
    assert remote.sites() == ["hq", "lab"]

    again = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (again.hours_uploaded, again.hours_present, again.bytes_uploaded) == (0, 6, 0)
    assert s3.objects(uri, "events") == expected


def test_late_events_into_an_uploaded_hour_wait_for_compaction_then_replace_it(
    s3: S3, tmp_path: Path
) -> None:
    """A closed hour that takes late events is not uploaded half-merged; once compacted again, its
    new file replaces the old object and the bucket again equals the local hour."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    start = _hour(now, 4)
    local.add("hq", start, 1500)
    compact(local.store, OLDER_THAN_S, now=now)
    uri = s3.bucket_uri()
    Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    first = s3.objects(uri, "events")

    local.add("hq", start, 600, flushes=1)  # late events: a second committed file in the hour
    waiting = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (waiting.hours_awaiting_compaction, waiting.hours_uploaded) == (1, 0)
    assert s3.objects(uri, "events") == first

    compact(local.store, OLDER_THAN_S, now=now)
    replaced = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (replaced.hours_uploaded, replaced.objects_replaced) == (1, 1)
    (path,) = local.files("hq", start)
    assert s3.objects(uri, "events") == {str(path.relative_to(local.store.events_root)): path.read_bytes()}
    assert Store(uri).count() == 2100


def test_hour_with_an_interrupted_compaction_is_left_alone(s3: S3, tmp_path: Path) -> None:
    """While a compaction journal names an hour (compaction running, or cut short before recovery),
    sync does not upload that hour; after compaction's recovery it does."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    start = _hour(now, 3)
    local.add("hq", start, 1000, flushes=1)
    journal = journal_path(local.store, "hq", start.date(), start.hour)
    journal.parent.mkdir(parents=True)
    directory = partition_dir(local.store.root, "hq", start.date(), start.hour)
    # What compact_hour writes first, before it merges anything.
    journal.write_text(json.dumps({"directory": str(directory), "inputs": [], "output": "x.parquet"}))
    uri = s3.bucket_uri()
    busy = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (busy.hours_compacting, busy.hours_uploaded) == (1, 0)
    assert s3.objects(uri, "events") == {}
    assert compact(local.store, OLDER_THAN_S, now=now).recovered == 1
    done = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert done.hours_uploaded == 1
    assert Store(uri).count() == 1000


def test_sync_killed_midway_then_rerun_ends_complete_with_no_partial_object(s3: S3, tmp_path: Path) -> None:
    """kill -9 of `fireplot store sync` mid-way: every object a reader sees is a whole local file;
    the rerun uploads the rest and the bucket then reads exactly as the local store."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    hours = [_hour(now, back) for back in range(2, 26)]
    for start in hours:
        local.add("hq", start, 45_000, flushes=2)
    compact(local.store, OLDER_THAN_S, now=now)
    uri = s3.bucket_uri()
    manifests_base = uri.removeprefix("s3://").split("?")[0] + "/" + MANIFESTS_DIR
    args = ["store", "sync", "--to", uri, "--store", str(local.store.root), "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fireplot", "--plain-logs", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    seen = 0
    while time.monotonic() < deadline and proc.poll() is None:
        infos = s3.fs.get_file_info(pafs.FileSelector(manifests_base, recursive=True, allow_not_found=True))
        seen = sum(1 for i in infos if i.type == pafs.FileType.File)
        if seen >= 2:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert 2 <= seen < len(hours), f"the kill did not land mid-way ({seen} of {len(hours)} hours)"

    # What readers see after the kill: whole files only, and whole hours. A PUT whose body was
    # sent before the kill still completes on the server (as on S3): look once that has settled.
    visible = s3.objects(uri, "events")
    for _ in range(20):
        time.sleep(0.5)
        again = s3.objects(uri, "events")
        if again.keys() == visible.keys():
            break
        visible = again
    assert 0 < len(visible) < len(hours)
    for rel, content in visible.items():
        assert content == (local.store.events_root / rel).read_bytes(), rel
    remote = Store(uri)
    counts = remote.scan(
        lambda d: (
            d.to_table(columns=["date", "hour"]).group_by(["date", "hour"]).aggregate([([], "count_all")])
        ),
        pa.table({"count_all": pa.array([], pa.int64())}),
    )
    assert counts.num_rows == len(visible)
    assert set(counts["count_all"].to_pylist()) == {45_000}

    rerun = _run_fireplot(tmp_path, *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    assert report["hours_uploaded"] + report["hours_present"] == len(hours)
    assert report["hours_present"] >= seen
    assert _sorted(Store(uri).read_all()).equals(_sorted(local.store.read_all()))
    assert len(s3.objects(uri, MANIFESTS_DIR)) == len(hours)


def test_render_and_read_from_the_s3_uri_count_like_the_local_store(s3: S3, tmp_path: Path) -> None:
    """`fireplot render --store s3://...` draws the same events as from the local directory, and a
    read of one site and date touches only that partition's objects."""
    now = dt.datetime.now(dt.UTC)
    yesterday = (now - dt.timedelta(days=1)).date()
    local = LocalStore(tmp_path / "store")
    for site, hour, n in (("hq", 3, 1200), ("hq", 17, 900), ("lab", 9, 600)):
        local.add(site, dt.datetime.combine(yesterday, dt.time(hour), dt.UTC), n)
    local.add("hq", dt.datetime.combine(yesterday - dt.timedelta(days=1), dt.time(12), dt.UTC), 300)
    compact(local.store, OLDER_THAN_S, now=now)
    uri = s3.bucket_uri("archive/fireplot")
    sync = _run_fireplot(tmp_path, "store", "sync", "--to", uri, "--store", str(local.store.root))
    assert sync.returncode == 0, sync.stderr[-3000:]
    assert json.loads(sync.stdout)["hours_uploaded"] == 4
    assert "100.0%  4 hours uploaded, 0 already there" in sync.stderr  # the progress line

    summaries = []
    for where in (str(local.store.root), uri):
        out = tmp_path / f"day-{len(summaries)}.png"
        done = _run_fireplot(
            tmp_path, "render", "--date", yesterday.isoformat(), "--store", where, "--out", str(out)
        )
        assert done.returncode == 0, done.stderr[-3000:]
        summaries.append(json.loads(done.stderr.strip().splitlines()[-1]))
        assert out.stat().st_size > 0
    assert summaries[0]["events"] == summaries[1]["events"] == 2700

    remote = Store(uri)
    start = dt.datetime.combine(yesterday, dt.time(0), dt.UTC)
    for store in (local.store, remote):
        assert store.read(start, start + dt.timedelta(days=1), sites=["hq"]).num_rows == 2100
    dataset = remote.dataset()
    assert dataset is not None
    pruned = list(dataset.get_fragments(filter=(ds.field("date") == yesterday) & (ds.field("site") == "hq")))
    assert len(pruned) == 2 and all(f"site=hq/date={yesterday.isoformat()}/" in f.path for f in pruned)


def test_web_day_page_from_the_s3_uri_shows_what_the_local_store_shows(s3: S3, tmp_path: Path) -> None:
    """The web server's page builder and a user's site-scoped store work on a URI store
    (`fireplot serve --store s3://...`)."""
    from bokeh.document import Document

    from consumers.web.auth import SiteScopedStore
    from consumers.web.main import build_document
    from pipeline.config import WebConfig

    now = dt.datetime.now(dt.UTC)
    yesterday = (now - dt.timedelta(days=1)).date()
    local = LocalStore(tmp_path / "store")
    for site, hour, n in (("hq", 4, 900), ("lab", 20, 300)):
        local.add(site, dt.datetime.combine(yesterday, dt.time(hour), dt.UTC), n)
    compact(local.store, OLDER_THAN_S, now=now)
    uri = s3.bucket_uri()
    assert Uploader(local.store, uri).sync(OLDER_THAN_S, now=now).hours_uploaded == 2
    texts = []
    for store in (local.store, Store(uri)):
        doc = Document()
        build_document(doc, store=store, web=WebConfig(), default_date=yesterday)
        # What the Bokeh server does next: run the page's queued load (it reads the store off the
        # document lock and queues showing what it read), and what that queued, until nothing new is.
        done: set[int] = set()
        while pending := [c for c in doc.session_callbacks if id(c) not in done]:
            assert len(done) < 50, "the page keeps queueing callbacks"
            for callback in pending:
                done.add(id(callback))
                ran = inspect.unwrap(callback.callback)()
                if inspect.iscoroutine(ran):
                    asyncio.run(ran)
        summary = doc.get_model_by_name("summary")
        assert summary is not None
        texts.append(summary.text)
    assert texts[0] == texts[1]
    assert texts[0].startswith("1,200 events")
    scoped = SiteScopedStore(Store(uri).location, frozenset({"lab"}))
    assert (scoped.sites(), scoped.count()) == (["lab"], 300)


def test_retention_after_upload_deletes_only_fully_uploaded_old_dates(s3: S3, tmp_path: Path) -> None:
    """upload_retention_days deletes a local date only once every hour of it is in the bucket."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    old_done = dt.datetime.combine(now.date() - dt.timedelta(days=10), dt.time(5), dt.UTC)
    old_waiting = dt.datetime.combine(now.date() - dt.timedelta(days=9), dt.time(6), dt.UTC)
    recent = _hour(now, 3)
    for start in (old_done, old_waiting, recent):
        local.add("hq", start, 600)
    compact(local.store, OLDER_THAN_S, now=now)
    local.add("hq", old_waiting, 300, flushes=1)  # late events: that date is not all uploaded
    uri = s3.bucket_uri()
    report = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now, retention_days=7)
    assert report.dates_expired == [f"site=hq/date={old_done.date().isoformat()}"]
    assert not local.files("hq", old_done)
    assert len(local.files("hq", old_waiting)) == 2
    assert local.files("hq", recent)
    # The deleted date lives on in the bucket.
    remote = Store(uri)
    back = remote.read(old_done, old_done + dt.timedelta(hours=1))
    assert back.num_rows == 600


def test_sync_to_a_missing_bucket_fails_loudly_and_records_nothing(s3: S3, tmp_path: Path) -> None:
    """A destination bucket that does not exist is an error (exit 1, named), not a silent no-op."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    local.add("hq", _hour(now, 2), 300, flushes=1)
    uri = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x?endpoint_override={s3.endpoint}&scheme=http&region={REGION}"
    done = _run_fireplot(tmp_path, "store", "sync", "--to", uri, "--store", str(local.store.root))
    assert done.returncode == 1
    assert "no-such-bucket" in done.stderr and done.stdout == ""


def test_scan_whose_listed_object_vanishes_retries_on_the_new_listing(s3: S3, tmp_path: Path) -> None:
    """An object deleted between a reader's listing and its read (an hour's old file replaced by
    sync) makes Store.scan list again, not fail and not return a partial answer."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    gone, kept = _hour(now, 3), _hour(now, 2)
    local.add("hq", gone, 500)
    local.add("hq", kept, 600)
    compact(local.store, OLDER_THAN_S, now=now)
    uri = s3.bucket_uri()
    Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    (path,) = local.files("hq", gone)
    bucket_path = (
        uri.removeprefix("s3://").split("?")[0] + "/events/" + str(path.relative_to(local.store.events_root))
    )
    listings: list[int] = []

    def build(dataset: ds.Dataset) -> pa.Table:
        listings.append(len(dataset.files))
        if len(listings) == 1:
            s3.fs.delete_file(bucket_path)  # after this scan listed it, before it reads it
        return dataset.to_table(columns=["source_offset"])

    table = Store(uri).scan(build, pa.table({"source_offset": pa.array([], pa.int64())}))
    assert listings == [2, 1]
    assert table.num_rows == 600


def _local_rollups(store: Store) -> dict[str, bytes]:
    """Every local rollup file, path relative to <root>/rollups -> content (the bucket's layout)."""
    root = store.root / ROLLUPS_DIR
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.parquet")}


def _manifest_rollups(s3: S3, uri: str) -> dict[str, list[str]]:
    """Manifest path -> the rollup names it records."""
    return {
        path: sorted(r["name"] for r in json.loads(content).get("rollups", []))
        for path, content in s3.objects(uri, MANIFESTS_DIR).items()
    }


def test_sync_of_rolled_up_hours_uploads_their_rollups_byte_identical_once(s3: S3, tmp_path: Path) -> None:
    """Current rollups of the closed hours go up with them, same layout and bytes, recorded in the
    manifests; the open hour's do not; a second sync sends nothing."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    closed = [(site, _hour(now, back)) for site in ("hq", "lab") for back in (2, 5)]
    for site, start in closed:
        local.add(site, start, 1200)
    open_hour = _hour(now, 0)
    local.add("hq", open_hour, 300)
    compact(local.store, OLDER_THAN_S, now=now)
    assert rollup.update(local.store, OLDER_THAN_S, now=now) == 4
    assert rollup.rollup_hour(local.store, "hq", open_hour.date(), open_hour.hour)  # the open hour's too
    open_rollups = {
        str(
            rollup.rollup_path(local.store, n, "hq", open_hour.date(), open_hour.hour).relative_to(
                local.store.root / ROLLUPS_DIR
            )
        )
        for n in rollup.NAMES
    }
    everything = _local_rollups(local.store)
    assert open_rollups <= everything.keys()
    expected = {rel: content for rel, content in everything.items() if rel not in open_rollups}
    assert len(expected) == len(rollup.NAMES) * 4

    uri = s3.bucket_uri()
    report = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (report.hours_uploaded, report.rollups_uploaded, report.rollups_stale, report.rollups_missing) == (
        4,
        len(rollup.NAMES) * 4,
        0,
        0,
    )
    assert report.rollup_bytes_uploaded == sum(len(b) for b in expected.values())
    assert s3.objects(uri, ROLLUPS_DIR) == expected
    assert set(map(tuple, _manifest_rollups(s3, uri).values())) == {rollup.NAMES}

    again = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (again.hours_present, again.rollups_present, again.rollups_uploaded, again.bytes_uploaded) == (
        4,
        len(rollup.NAMES) * 4,
        0,
        0,
    )
    assert s3.objects(uri, ROLLUPS_DIR) == expected


def test_stale_and_missing_rollups_are_counted_not_uploaded_then_sent_after_rolling_up(
    s3: S3, tmp_path: Path
) -> None:
    """A rollup of events that changed since (late events, re-compacted) or no rollup at all: the
    hour's events go up, its rollups are counted and stay out; once `fireplot rollup` refreshed
    them, the next sync sends just them and adds them to the hours' manifests."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    changed, unrolled = _hour(now, 3), _hour(now, 6)
    local.add("hq", changed, 900)
    compact(local.store, OLDER_THAN_S, now=now)
    assert rollup.update(local.store, OLDER_THAN_S, now=now) == 1
    local.add("hq", changed, 300, flushes=1)  # late events after the rollup ran
    local.add("hq", unrolled, 600)
    compact(local.store, OLDER_THAN_S, now=now)
    assert len(_local_rollups(local.store)) == len(rollup.NAMES)  # the changed hour's, now stale

    uri = s3.bucket_uri()
    first = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (first.hours_uploaded, first.rollups_uploaded, first.rollups_stale, first.rollups_missing) == (
        2,
        0,
        len(rollup.NAMES),
        len(rollup.NAMES),
    )
    assert s3.objects(uri, ROLLUPS_DIR) == {}
    assert set(map(tuple, _manifest_rollups(s3, uri).values())) == {()}

    assert rollup.update(local.store, OLDER_THAN_S, now=now) == 2
    second = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (second.hours_present, second.bytes_uploaded, second.rollups_uploaded) == (
        2,
        0,
        2 * len(rollup.NAMES),
    )
    assert s3.objects(uri, ROLLUPS_DIR) == _local_rollups(local.store)
    assert set(map(tuple, _manifest_rollups(s3, uri).values())) == {rollup.NAMES}

    third = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (third.rollups_uploaded, third.rollups_present, third.bytes_uploaded) == (
        0,
        2 * len(rollup.NAMES),
        0,
    )


def test_recompacted_hour_replaces_its_rollup_objects_or_removes_them_until_rolled_up(
    s3: S3, tmp_path: Path
) -> None:
    """An uploaded hour re-compacted: with its rollup refreshed, the new rollup objects replace the
    old; without, the old ones (of events no longer in the bucket) are deleted, not left behind."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    start = _hour(now, 4)
    local.add("hq", start, 900)
    compact(local.store, OLDER_THAN_S, now=now)
    rollup.update(local.store, OLDER_THAN_S, now=now)
    uri = s3.bucket_uri()
    assert Uploader(local.store, uri).sync(OLDER_THAN_S, now=now).rollups_uploaded == len(rollup.NAMES)
    before = s3.objects(uri, ROLLUPS_DIR)

    local.add("hq", start, 300, flushes=1)
    compact(local.store, OLDER_THAN_S, now=now)
    assert rollup.update(local.store, OLDER_THAN_S, now=now) == 1
    replaced = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (replaced.hours_uploaded, replaced.objects_replaced, replaced.rollups_uploaded) == (
        1,
        1,
        len(rollup.NAMES),
    )
    after = s3.objects(uri, ROLLUPS_DIR)
    assert after == _local_rollups(local.store) and after.keys() == before.keys() and after != before

    local.add("hq", start, 150, flushes=1)
    compact(local.store, OLDER_THAN_S, now=now)  # not rolled up again
    withdrawn = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (withdrawn.hours_uploaded, withdrawn.rollups_stale, withdrawn.rollups_removed) == (
        1,
        len(rollup.NAMES),
        len(rollup.NAMES),
    )
    assert s3.objects(uri, ROLLUPS_DIR) == {}
    assert Store(uri).count() == 1350


def test_retention_after_upload_sends_the_expiring_dates_rollups(s3: S3, tmp_path: Path) -> None:
    """Retention rolls an expiring date up before deleting its events; those rollups reach the
    bucket in the same sync, since no later sync could compute them."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    old = dt.datetime.combine(now.date() - dt.timedelta(days=10), dt.time(5), dt.UTC)
    local.add("hq", old, 600)
    compact(local.store, OLDER_THAN_S, now=now)
    uri = s3.bucket_uri()
    report = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now, retention_days=7)
    assert report.dates_expired == [f"site=hq/date={old.date().isoformat()}"]
    assert (report.rollups_missing, report.rollups_uploaded) == (
        len(rollup.NAMES),
    ) * 2  # missing at upload, sent at expiry
    assert not local.files("hq", old)
    assert s3.objects(uri, ROLLUPS_DIR) == _local_rollups(local.store) and len(
        _local_rollups(local.store)
    ) == len(rollup.NAMES)
    assert set(map(tuple, _manifest_rollups(s3, uri).values())) == {rollup.NAMES}


def test_unreadable_local_rollup_is_counted_stale_and_the_hour_still_goes_up(s3: S3, tmp_path: Path) -> None:
    """A local rollup file that is not Parquet (disk damage, a stray copy) stays out of the bucket
    and is counted; the hour's events and its other, current rollup are uploaded."""
    now = dt.datetime.now(dt.UTC)
    local = LocalStore(tmp_path / "store")
    start = _hour(now, 3)
    local.add("hq", start, 600)
    compact(local.store, OLDER_THAN_S, now=now)
    rollup.update(local.store, OLDER_THAN_S, now=now)
    rollup.rollup_path(local.store, "port_minute", "hq", start.date(), start.hour).write_bytes(b"not parquet")
    uri = s3.bucket_uri()
    report = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    assert (report.hours_uploaded, report.rollups_stale, report.rollups_uploaded) == (
        1,
        1,
        len(rollup.NAMES) - 1,
    )
    assert sorted(s3.objects(uri, ROLLUPS_DIR)) == [
        f"{name}/site=hq/date={start.date().isoformat()}/{start.hour:02d}.parquet"
        for name in rollup.NAMES
        if name != "port_minute"
    ]
    assert Store(uri).count() == 600
