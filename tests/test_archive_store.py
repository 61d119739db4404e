"""The archive sink and store on real Parquet files: dedupe, event-time partitions, raw lines,
compaction under concurrent readers and crashes, retention and rollups."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline import compact, rollup
from pipeline.archive.decoders import RawLines, Record, raw_parser
from pipeline.archive.sink import ArchiveSink
from pipeline.store import Store, parse_file_name, partition_dir
from tests.support.events import RAW_LINE, T0, events, records
from tests.support.system import ids


def sink(tmp_path: Path, **kw: object) -> ArchiveSink:
    return ArchiveSink(Store(tmp_path / "store"), tmp_path / "dead", **kw)  # type: ignore[arg-type]


class TestDedupe:
    def test_resent_batch_under_new_offsets_is_dropped(self, tmp_path: Path) -> None:
        """A shipper re-sending after a crash (same ids, new Kafka offsets) leaves no duplicate."""
        s = sink(tmp_path)
        ev = events(3000)
        s.flush(records(ev, first_offset=0))  # offsets 0..29
        s.flush(records(ev.slice(1000, 1500), first_offset=30))  # re-send of a middle part
        s.flush(records(events(500, first=3000 * 100), first_offset=45))  # new events after
        back = s.store.read_all()
        assert back.num_rows == 3500
        assert len(set(ids(back))) == 3500
        assert s.stats.duplicates_dropped == 1500

    def test_duplicates_inside_one_flush_are_dropped(self, tmp_path: Path) -> None:
        """Two copies of the same events in one flush are written once."""
        s = sink(tmp_path)
        ev = events(400)
        s.flush(records(pa.concat_tables([ev, ev.slice(100, 50)])))
        assert s.store.read_all().num_rows == 400

    def test_out_of_order_source_is_checked_not_dropped(self, tmp_path: Path) -> None:
        """Events below a source's high-water mark that are not stored are kept (exact check)."""
        s = sink(tmp_path)
        ev = events(1000)
        odd = ev.filter(pc.equal(pc.bit_wise_and(pc.divide(ev["source_offset"], 100), 1), 1))
        even = ev.filter(pc.equal(pc.bit_wise_and(pc.divide(ev["source_offset"], 100), 1), 0))
        s.flush(records(odd))
        s.flush(records(even, first_offset=100))
        back = s.store.read_all()
        assert sorted(ids(back)) == sorted(ids(ev))
        assert s.stats.duplicates_dropped == 0

    def test_dedupe_survives_restart_and_compaction(self, tmp_path: Path) -> None:
        """A fresh sink (worker restart) drops a re-send of events already compacted."""
        s = sink(tmp_path)
        ev = events(2000, start=T0 - dt.timedelta(days=1))
        s.flush(records(ev))
        s.flush(records(events(10, first=10**9), first_offset=100))
        compact.compact(s.store, older_than_s=0, now=T0 + dt.timedelta(days=1))
        s2 = sink(tmp_path)
        s2.flush(records(ev, first_offset=200))
        assert s2.store.read_all().num_rows == 2010
        assert s2.stats.duplicates_dropped == 2000


class TestEventTime:
    def test_late_and_future_events_land_in_their_hours_and_future_is_counted(self, tmp_path: Path) -> None:
        """Events 2 days late and 2 hours ahead land in their own partitions; the future ones counted."""
        now = dt.datetime.now(dt.UTC).replace(minute=30, second=0, microsecond=0)
        late = events(10, start=now - dt.timedelta(days=2), span_s=60, first=0)
        future = events(7, start=now + dt.timedelta(hours=2), span_s=60, first=10_000)
        current = events(5, start=now, span_s=60, first=20_000)
        s = sink(tmp_path, future_tolerance_s=3600.0)
        s.flush(records(pa.concat_tables([current, late, future]), per_record=4))
        assert s.stats.future_events == 7
        for t, n in ((now - dt.timedelta(days=2), 10), (now + dt.timedelta(hours=2), 7), (now, 5)):
            d = partition_dir(s.store.root, "a", t.date(), t.hour)
            assert sum(pq.read_metadata(p).num_rows for p in d.glob("*.parquet")) == n


class TestRawLines:
    LINE = RAW_LINE

    def test_plain_json_and_garbage(self, tmp_path: Path) -> None:
        """Plain lines and JSON-wrapped lines become events; garbage goes to dead letters with reasons."""
        plain = "\n".join(self.LINE.format(m=i, i=i, p=22) for i in range(3)) + "\n"
        js = json.dumps({"message": self.LINE.format(m=5, i=9, p=443), "host": "edge-2"})
        recs = [
            Record("raw", 1, 10, plain.encode(), b"site-k"),
            Record("raw", 1, 11, js.encode(), None),
            Record("raw", 1, 12, b"not a firewall line at all", b"site-k"),
            Record("raw", 1, 13, b'{"message": 5}', None),
            Record("raw", 1, 14, b"{broken json", None),
            Record("raw", 1, 15, json.dumps({"message": "x", "site": "../../etc"}).encode(), None),
            Record("raw", 1, 16, b"\xff\xfe<script>", b"site-k"),
        ]
        s = sink(tmp_path, decode=RawLines(raw_parser("auto"), "dflt"))
        s.flush(recs)
        back = s.store.read_all().sort_by("source_offset")
        assert back.num_rows == 4
        assert back["source_id"].to_pylist() == ["raw:1"] * 4
        assert back["source_offset"].to_pylist() == [10 << 16, (10 << 16) + 1, (10 << 16) + 2, 11 << 16]
        assert back["site"].to_pylist() == ["site-k"] * 3 + ["edge-2"]
        assert back["dst_port"].to_pylist() == [22, 22, 22, 443]
        dead = [json.loads(x) for x in (tmp_path / "dead" / "raw.jsonl").read_text().splitlines()]
        assert sorted(d["offset"] for d in dead) == [12, 13, 14, 15, 16]
        assert all(d["reason"] for d in dead)
        assert s.stats.dead_letters == 5
        # redelivery of the same records writes nothing new
        s2 = sink(tmp_path, decode=RawLines(raw_parser("auto"), "dflt"))
        s2.flush(recs)
        assert s2.store.read_all().num_rows == 4

    def test_plain_only_batch(self, tmp_path: Path) -> None:
        """A batch with no JSON line (rsyslog omkafka's plain template) is archived, not dead-lettered."""
        recs = [Record("raw", 0, i, self.LINE.format(m=i, i=i, p=22).encode(), None) for i in range(5)]
        s = sink(tmp_path, decode=RawLines(raw_parser("auto"), "dflt"))
        s.flush(recs)
        back = s.store.read_all()
        assert back.num_rows == 5 and s.stats.dead_letters == 0
        assert set(back["site"].to_pylist()) == {"dflt"}

    def test_json_only_batch(self, tmp_path: Path) -> None:
        """A batch of only JSON lines is archived with their sites and hosts."""
        recs = [
            Record(
                "raw", 0, i, json.dumps({"message": self.LINE.format(m=i, i=i, p=80), "site": "s2"}).encode()
            )
            for i in range(5)
        ]
        s = sink(tmp_path, decode=RawLines(raw_parser("auto"), "dflt"))
        s.flush(recs)
        back = s.store.read_all()
        assert back.num_rows == 5 and s.stats.dead_letters == 0
        assert set(back["site"].to_pylist()) == {"s2"}


def _fill_hour(s: ArchiveSink, hour_start: dt.datetime, files: int, per: int) -> int:
    """Several flushes into one hour, each its own source and Kafka offsets."""
    base = int(hour_start.timestamp())
    for i in range(files):
        ev = events(per, start=hour_start, span_s=3000, source=f"s:{base}:{i}", seed=i)
        s.flush(records(ev, first_offset=base + i * 10))
    return files * per


class TestCompaction:
    def test_hour_is_merged_into_one_file_without_changing_rows(self, tmp_path: Path) -> None:
        """A closed hour's flush files become one sorted file; rows and ids unchanged."""
        s = sink(tmp_path)
        n = _fill_hour(s, T0, files=6, per=200)
        before = s.store.read_all()
        report = compact.compact(s.store, older_than_s=60, now=T0 + dt.timedelta(hours=3))
        assert report.hours_compacted == 1 and report.files_merged == 6
        files = list(partition_dir(s.store.root, "a", T0.date(), T0.hour).glob("*.parquet"))
        assert len(files) == 1 and files[0].name.startswith("compacted-")
        after = s.store.read_all()
        assert after.num_rows == n and sorted(ids(after)) == sorted(ids(before))
        assert compact.compact(s.store, older_than_s=60, now=T0 + dt.timedelta(hours=3)).hours_compacted == 0

    def test_open_hours_and_uncommitted_files_are_left_alone(self, tmp_path: Path) -> None:
        """The current hour is not compacted and a file beyond the manifest is carried over, not merged."""
        s = sink(tmp_path)
        _fill_hour(s, T0, files=3, per=50)
        d = partition_dir(s.store.root, "a", T0.date(), T0.hour)
        leftover = d / "ev+0+00000000099999999900+00000000099999999901.parquet"
        shutil.copy(next(d.glob("*.parquet")), leftover)  # as if kill -9 hit between rename and commit
        assert (
            compact.compact(s.store, older_than_s=60, now=T0 + dt.timedelta(minutes=59)).hours_compacted == 0
        )
        compact.compact(s.store, older_than_s=60, now=T0 + dt.timedelta(hours=2))
        names = sorted(p.name for p in d.glob("*.parquet"))
        assert len(names) == 2 and leftover.name in names
        # the worker's recovery removes the leftover and never the compacted file
        s.store.recover("ev", 0)
        assert next(p.name for p in d.glob("*.parquet")).startswith("compacted-")
        assert s.store.read_all().num_rows == 150

    def test_readers_never_see_duplicates_or_gaps_while_compaction_runs(self, tmp_path: Path) -> None:
        """Store.read and DuckDB scan in a loop while hours are compacted and late files arrive:
        no scan sees an event twice or misses one committed before it started."""
        s = sink(tmp_path)
        for h in range(4):
            _fill_hour(s, T0 + dt.timedelta(hours=h), files=8, per=300)
        committed: list[tuple[str, int]] = ids(s.store.read_all())
        stop = threading.Event()
        scans: list[int] = []
        errors: list[str] = []
        glob = str(s.store.events_root / "site=*" / "date=*" / "hour=*" / "*.parquet")

        def scan() -> None:
            con = duckdb.connect()
            while not stop.is_set():
                base = set(committed[: len(committed)])
                got = ids(s.store.read(T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=6)))
                if len(got) != len(set(got)):
                    errors.append(f"Store.read saw {len(got) - len(set(got))} duplicates")
                if not base <= set(got):
                    errors.append(f"Store.read missed {len(base - set(got))} events")
                for attempt in range(50):
                    try:
                        row = con.execute(
                            f"select count(*), count(distinct (source_id, source_offset)) "
                            f"from read_parquet('{glob}', hive_partitioning=true)"
                        ).fetchone()
                        break
                    except duckdb.IOException:
                        # a file vanished under the listing: DuckDB readers retry too
                        time.sleep(0.01 * attempt)
                else:
                    errors.append("duckdb kept failing")
                    return
                assert row is not None
                if row[0] != row[1] or row[0] < len(base):
                    errors.append(f"duckdb saw {row} with {len(base)} committed")
                scans.append(1)

        threads = [threading.Thread(target=scan) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for round_ in range(4):  # compact, then add late files and compact again
                compact.compact(s.store, older_than_s=0, now=T0 + dt.timedelta(days=1))
                for h in range(4):
                    first = 10**9 + round_ * 10**6 + h * 10**4
                    extra = events(20, start=T0 + dt.timedelta(hours=h), span_s=60, first=first)
                    s.flush(records(extra, first_offset=10**12 + round_ * 10 + h))
                    committed.extend(ids(extra))
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[:5]
        assert len(scans) > 3
        final = ids(s.store.read_all())
        assert sorted(final) == sorted(committed)

    def test_crash_mid_compaction_is_recovered(self, tmp_path: Path) -> None:
        """kill -9 of a compaction at its staging step leaves the data intact; the next run finishes."""
        s = sink(tmp_path)
        n = _fill_hour(s, T0, files=5, per=100)
        d = partition_dir(s.store.root, "a", T0.date(), T0.hour)
        script = (
            "import os, datetime as dt, pipeline.compact as c, pipeline.store as st\n"
            "real = c.exchange\n"
            "def die(a, b):\n    os._exit(9)\n"
            "c.exchange = die\n"
            f"c.compact(st.Store({str(s.store.root)!r}), 0, now=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))\n"
        )
        proc = subprocess.run([sys.executable, "-c", script], check=False)
        assert proc.returncode == 9
        assert (d.parent / ".compacting-hour=10").exists()
        assert s.store.read_all().num_rows == n
        report = compact.compact(s.store, 0, now=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
        assert report.recovered == 1 and report.hours_compacted == 1
        assert not (d.parent / ".compacting-hour=10").exists()
        assert s.store.read_all().num_rows == n

    def test_retention_removes_old_event_dates_but_keeps_rollups(self, tmp_path: Path) -> None:
        """Dates older than the retention go; rollups of them stay."""
        s = sink(tmp_path)
        _fill_hour(s, T0 - dt.timedelta(days=40), files=1, per=30)
        _fill_hour(s, T0, files=1, per=30)
        assert rollup.update(s.store, now=T0 + dt.timedelta(days=1)) == 2
        report = compact.compact(s.store, 0, retention_days=30, now=T0 + dt.timedelta(days=1))
        assert report.dates_expired == [f"site=a/date={(T0 - dt.timedelta(days=40)).date()}"]
        assert s.store.read_all().num_rows == 30
        assert rollup.read(s.store, "port_minute")["events"].to_pylist().count(None) == 0
        assert set(rollup.read(s.store, "source_hour")["date"].to_pylist()) == {
            (T0 - dt.timedelta(days=40)).date(),
            T0.date(),
        }


class TestRollups:
    def test_rollups_match_the_events_and_are_idempotent(self, tmp_path: Path) -> None:
        """Both rollups equal a DuckDB group-by; re-running rewrites nothing; late events update."""
        s = sink(tmp_path)
        _fill_hour(s, T0, files=3, per=500)
        _fill_hour(s, T0 + dt.timedelta(hours=1), files=2, per=300)
        now = T0 + dt.timedelta(hours=5)
        assert rollup.update(s.store, now=now) == 2
        assert rollup.update(s.store, now=now) == 0
        ev = s.store.read_all()
        con = duckdb.connect()
        con.register("ev", ev)
        want = con.execute(
            "select date_trunc('minute', ts) m, dst_port, sum(count), count(distinct src_ip) "
            "from ev group by all order by all"
        ).fetchall()
        got_t = rollup.read(s.store, "port_minute")
        con.register("got", got_t)
        got = con.execute("select minute, dst_port, events, sources from got order by all").fetchall()
        assert [(r[1], r[2], r[3]) for r in got] == [(r[1], r[2], r[3]) for r in want]
        want_h = con.execute(
            "select src_ip, sum(count), count(distinct dst_port), count(distinct dst_ip) from ev "
            "group by date_trunc('hour', ts), src_ip order by all"
        ).fetchall()
        con.register("goth", rollup.read(s.store, "source_hour"))
        got_h = con.execute("select src_ip, events, ports, destinations from goth order by all").fetchall()
        assert got_h == want_h
        first = rollup.rollup_path(s.store, "port_minute", "a", T0.date(), T0.hour).read_bytes()
        # a late event changes its hour only; compaction changes names but not rows
        s.flush(records(events(1, start=T0, span_s=1, first=10**9), first_offset=10**12))
        assert rollup.update(s.store, now=now) == 1
        compact.compact(s.store, 0, now=now)
        assert rollup.update(s.store, now=now) == 2
        again = rollup.rollup_path(s.store, "port_minute", "a", T0.date(), T0.hour)
        assert pq.read_table(again).num_rows >= pq.read_table(pa.BufferReader(first)).num_rows
        assert os.path.exists(again)


def test_flush_file_names_are_offset_ranges(tmp_path: Path) -> None:
    """Each flush file names its topic, partition and offset range (what recovery relies on)."""
    s = sink(tmp_path)
    s.flush(records(events(100), first_offset=7))
    names = [parse_file_name(p.name) for p in s.store.events_root.rglob("*.parquet")]
    assert all(n is not None and n.first == 7 and n.topic == "ev" for n in names)


@pytest.fixture(autouse=True)
def _no_leaks(tmp_path: Path) -> None:
    """Every test works inside its own tmp_path."""
    assert tmp_path.exists()


def test_worker_maintenance_round_compacts_expires_and_rolls_up(tmp_path: Path) -> None:
    """The worker's periodic round (compact.maintain) runs compaction, retention and rollups."""
    import dataclasses

    from pipeline.config import Config, WorkerConfig

    s = sink(tmp_path)
    old = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=5)
    _fill_hour(s, old - dt.timedelta(days=400), files=1, per=10)  # lower Kafka offsets first
    n = _fill_hour(s, old, files=4, per=100)
    cfg = dataclasses.replace(
        Config(),
        worker=WorkerConfig(store_dir=str(s.store.root), compact_older_than_s=60, retention_days_events=365),
    )
    compact.maintain(cfg)
    d = partition_dir(s.store.root, "a", old.date(), old.hour)
    assert [p.name[:10] for p in d.glob("*.parquet")] == ["compacted-"]
    assert s.store.read_all().num_rows == n
    assert rollup.rollup_path(s.store, "source_hour", "a", old.date(), old.hour).exists()
    old_rollup = old - dt.timedelta(days=400)
    assert rollup.rollup_path(s.store, "port_minute", "a", old_rollup.date(), old_rollup.hour).exists()


def test_a_record_that_breaks_the_decoder_is_isolated_into_dead_letters(tmp_path: Path) -> None:
    """A decoder exception costs only the record that caused it, kept with the reason; the rest is stored."""
    from pipeline.archive.decoders import DeadLetter, decode_event_batches

    def fragile(recs: Sequence[Record]) -> tuple[pa.Table, list[DeadLetter]]:
        if any(r.offset == 5 for r in recs):
            raise RuntimeError("parser bug")
        return decode_event_batches(recs)

    s = sink(tmp_path, decode=fragile)
    s.flush(records(events(1000)))  # offsets 0..9
    assert s.store.read_all().num_rows == 900
    dead = [json.loads(x) for x in (tmp_path / "dead" / "ev.jsonl").read_text().splitlines()]
    assert [(d["offset"], d["reason"]) for d in dead] == [(5, "decoder failed: RuntimeError('parser bug')")]
    assert s.store.committed_offset("ev", 0) == 9
