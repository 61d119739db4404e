"""The multi-day range view read from an object-store URI (moto's real S3 server) against the local store.

``fireplot store sync`` copies closed, compacted hours of events to the bucket, and
their rollups when the local ones are current. Synced from a store never rolled up,
the range view of a bucket bins every hour from its events on the server; synced
after ``fireplot rollup``, it reads the rollups. Either way it must draw exactly
what the local store it was synced from draws, within max_points.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest

from consumers.web.auth import SiteScopedStore
from consumers.web.feeds.filters import Filters
from consumers.web.feeds.range import RangeFeed
from pipeline import rollup
from pipeline.compact import compact
from pipeline.store import Store
from pipeline.upload import Uploader
from tests.support.s3 import OLDER_THAN_S, S3, LocalStore

MAX_POINTS = 2000
HOURS = {"hq": (3, 11, 22), "lab": (5,)}
PER_HOUR = 900


class Synced:
    """A local store of three days, compacted, and its copy in a bucket."""

    def __init__(self, s3: S3, root: Path) -> None:
        now = dt.datetime.now(dt.UTC)
        today = now.date()
        self.days = [today - dt.timedelta(days=d) for d in (3, 2, 1)]
        self.local = LocalStore(root)
        for day in self.days:
            for site, hours in HOURS.items():
                for hour in hours:
                    self.local.add(site, dt.datetime.combine(day, dt.time(hour), dt.UTC), PER_HOUR)
        compact(self.local.store, OLDER_THAN_S, now=now)
        self.uri = s3.bucket_uri()
        report = Uploader(self.local.store, self.uri).sync(OLDER_THAN_S, now=now)
        assert report.hours_uploaded == len(self.days) * sum(len(h) for h in HOURS.values())
        self.remote = Store(self.uri)
        self.start = dt.datetime.combine(self.days[0], dt.time(), dt.UTC)
        self.end = dt.datetime.combine(self.days[-1], dt.time(), dt.UTC) + dt.timedelta(days=1)
        self.events = len(self.days) * sum(len(h) for h in HOURS.values()) * PER_HOUR


@pytest.fixture(scope="module")
def synced(s3: S3, tmp_path_factory: pytest.TempPathFactory) -> Synced:
    return Synced(s3, tmp_path_factory.mktemp("range-uri") / "store")


def loaded(
    store: Store,
    start: dt.datetime,
    end: dt.datetime,
    max_points: int = MAX_POINTS,
    filters: Filters | None = None,
) -> tuple[RangeFeed, dict[str, Any]]:
    feed = RangeFeed(store, start, end, None, max_points, filters)
    return feed, feed.load().data


def assert_same_data(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name


def test_multi_day_range_from_the_bucket_bins_the_events_like_the_local_store(synced: Synced) -> None:
    """No rollups anywhere: the bucket's range is binned server-side, every event counted, the same
    bins as the local store, and no more dots than max_points."""
    local, local_data = loaded(synced.local.store, synced.start, synced.end)
    remote, remote_data = loaded(synced.remote, synced.start, synced.end)

    assert remote.events == local.events == synced.events
    assert remote.aggregated and local.aggregated and remote.bucket == local.bucket
    assert 0 < remote.points == len(remote_data["ts"]) <= MAX_POINTS
    assert int(remote_data["events"].sum()) == synced.events
    assert remote.computed_hours == 12 and remote.read_files == 0
    assert_same_data(remote_data, local_data)
    assert remote.summary() == local.summary()
    assert remote.summary().startswith(f"{synced.events:,} events in 3 days")


def test_bucket_range_equals_the_local_range_served_from_its_rollups(synced: Synced, tmp_path: Path) -> None:
    """Rolled up locally (the worker's maintenance), computed on the fly from the bucket: same bins."""
    rolled = Store(tmp_path / "rolled")
    for path in synced.local.store.events_root.rglob("*.parquet"):
        target = rolled.root / path.relative_to(synced.local.store.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    assert rollup.update(rolled) > 0

    local, local_data = loaded(rolled, synced.start, synced.end)
    remote, remote_data = loaded(synced.remote, synced.start, synced.end)

    assert local.computed_hours == 0 and local.read_files == 12
    assert local.events == remote.events == synced.events
    assert_same_data(remote_data, local_data)


def test_range_cutting_hours_from_the_bucket_counts_only_the_minutes_inside(synced: Synced) -> None:
    """A range starting and ending mid-hour keeps only the minutes inside it, as locally."""
    start = dt.datetime.combine(synced.days[0], dt.time(3, 30), dt.UTC)
    end = dt.datetime.combine(synced.days[2], dt.time(11, 15), dt.UTC)
    everything = synced.local.store.read(start, end, columns=["ts"]).num_rows

    local, local_data = loaded(synced.local.store, start, end)
    remote, remote_data = loaded(synced.remote, start, end)

    assert remote.events == local.events == everything
    assert PER_HOUR * 4 < everything < synced.events
    assert remote.aggregated and len(remote_data["ts"]) <= MAX_POINTS
    assert_same_data(remote_data, local_data)


def test_zoomed_in_range_from_the_bucket_sends_the_raw_events_of_the_local_store(synced: Synced) -> None:
    """Within max_points (one hour in view) the bucket's range draws the same raw events."""
    start = dt.datetime.combine(synced.days[1], dt.time(5), dt.UTC)
    end = start + dt.timedelta(hours=1)

    local, local_data = loaded(synced.local.store, start, end, max_points=PER_HOUR)
    remote, remote_data = loaded(synced.remote, start, end, max_points=PER_HOUR)

    assert not remote.aggregated and remote.events == local.events == PER_HOUR
    order_local, order_remote = (
        np.lexsort((local_data["ts"], local_data["src_ip"])),
        np.lexsort((remote_data["ts"], remote_data["src_ip"])),
    )
    for name in local_data:
        assert np.array_equal(remote_data[name][order_remote], local_data[name][order_local]), name


def test_source_filtered_range_from_the_bucket_matches_the_local_store(synced: Synced) -> None:
    """Source filters need each event (rollups keep no sources): read from the bucket, same bins."""
    filters = Filters(networks=("0.0.0.0/2",))

    local, local_data = loaded(synced.local.store, synced.start, synced.end, filters=filters)
    remote, remote_data = loaded(synced.remote, synced.start, synced.end, filters=filters)

    assert 0 < remote.events == local.events < synced.events
    assert remote.aggregated and len(remote_data["ts"]) <= MAX_POINTS
    assert_same_data(remote_data, local_data)


def test_site_scoped_range_from_the_bucket_leaves_other_sites_out(synced: Synced) -> None:
    """A user limited to one site sees only its hours of the bucket in the range view."""
    scoped = SiteScopedStore(synced.uri, frozenset({"lab"}))

    feed, data = loaded(scoped, synced.start, synced.end, max_points=100)

    assert feed.events == len(synced.days) * PER_HOUR
    assert int(data["events"].sum()) == feed.events and feed.computed_hours == len(synced.days)


def test_hour_whose_object_is_replaced_after_listing_is_read_from_the_new_listing(
    s3: S3, tmp_path: Path
) -> None:
    """Sync replaces an hour's object (re-compacted) between the range's listing and its read:
    the hour is read again through the store's own listing, not lost and not an error."""
    now = dt.datetime.now(dt.UTC)
    hour_start = dt.datetime.combine(now.date() - dt.timedelta(days=2), dt.time(7), dt.UTC)
    local = LocalStore(tmp_path / "store")
    local.add("hq", hour_start, PER_HOUR)
    compact(local.store, OLDER_THAN_S, now=now)
    uri = s3.bucket_uri()
    assert Uploader(local.store, uri).sync(OLDER_THAN_S, now=now).hours_uploaded == 1
    feed = RangeFeed(Store(uri), hour_start, hour_start + dt.timedelta(days=1), None, max_points=10)
    (hour,) = feed.hours()
    assert hour.events is not None and len(hour.events) == 1
    old = hour.events[0]
    s3.fs.copy_file(old, old.rsplit("/", 1)[0] + "/compacted-replacement.parquet")
    s3.fs.delete_file(old)

    minutes, from_rollup = feed._hour_minutes(hour)

    assert not from_rollup and int(pc.sum(minutes.column("events")).as_py()) == PER_HOUR
    assert feed.load() is not None and feed.events == PER_HOUR


def test_bucket_synced_after_rolling_up_reads_its_rollups_and_bins_like_the_local_store(
    s3: S3, tmp_path: Path
) -> None:
    """Rolled up before sync: the bucket's range view reads one rollup object per hour, computes
    none from events, and draws the local store's bins; a range cutting hours, too."""
    now = dt.datetime.now(dt.UTC)
    days = [now.date() - dt.timedelta(days=d) for d in (3, 2, 1)]
    local = LocalStore(tmp_path / "store")
    for day in days:
        for site, hours in HOURS.items():
            for hour in hours:
                local.add(site, dt.datetime.combine(day, dt.time(hour), dt.UTC), PER_HOUR)
    compact(local.store, OLDER_THAN_S, now=now)
    assert rollup.update(local.store, OLDER_THAN_S, now=now) == 12
    uri = s3.bucket_uri()
    report = Uploader(local.store, uri).sync(OLDER_THAN_S, now=now)
    # Every rollup kind of each of the 12 hours (pipeline.rollup.NAMES).
    assert (report.hours_uploaded, report.rollups_uploaded, report.rollups_stale) == (
        12,
        12 * len(rollup.NAMES),
        0,
    )
    start = dt.datetime.combine(days[0], dt.time(), dt.UTC)
    end = dt.datetime.combine(days[-1], dt.time(), dt.UTC) + dt.timedelta(days=1)

    local_feed, local_data = loaded(local.store, start, end)
    remote, remote_data = loaded(Store(uri), start, end)

    assert (remote.computed_hours, remote.read_files) == (0, 12)
    assert (local_feed.computed_hours, local_feed.read_files) == (0, 12)
    assert remote.events == local_feed.events == 12 * PER_HOUR
    assert remote.aggregated and remote.bucket == local_feed.bucket
    assert 0 < len(remote_data["ts"]) <= MAX_POINTS
    assert_same_data(remote_data, local_data)

    cut_start = dt.datetime.combine(days[0], dt.time(3, 30), dt.UTC)
    cut_end = dt.datetime.combine(days[2], dt.time(11, 15), dt.UTC)
    local_cut, local_cut_data = loaded(local.store, cut_start, cut_end)
    remote_cut, remote_cut_data = loaded(Store(uri), cut_start, cut_end)
    assert remote_cut.computed_hours == 0 and remote_cut.read_files == local_cut.read_files > 0
    assert (
        remote_cut.events == local_cut.events == local.store.read(cut_start, cut_end, columns=["ts"]).num_rows
    )
    assert_same_data(remote_cut_data, local_cut_data)
