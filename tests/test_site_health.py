"""Per-site health (pipeline.health): silence against each site's usual gap, rates, rejects, lag.

Stores are written through the real Store API or by the real worker from the
real broker; nothing here fakes Kafka or Parquet.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from consumers.web.status_strip import SOURCE_NAME, attach, table_data
from pipeline.archive.decoders import Record
from pipeline.archive.sink import ArchiveSink
from pipeline.config import Config, ConfigError, HealthConfig, WebConfig, WorkerConfig, load
from pipeline.health import HealthMonitor, metrics_text, read_snapshot, write_snapshot
from pipeline.store import OffsetRange, Store
from producers.demo import Demo, write_lines
from tests.support.events import row, table
from tests.support.system import System, free_port

NOW = dt.datetime(2026, 11, 28, 12, 0, 30, tzinfo=dt.UTC)


def _events(times: list[dt.datetime], site: str) -> pa.Table:
    return table(
        [
            row(
                t,
                i,
                site=site,
                host="fw",
                src_ip="198.51.100.7",
                dst_ip="203.0.113.1",
                src_port=40000,
                source_id=f"{site}:fw.log:0",
            )
            for i, t in enumerate(times)
        ]
    )


def _every(start: dt.datetime, end: dt.datetime, step: dt.timedelta) -> list[dt.datetime]:
    """From ``end`` back to ``start``, so the last event is exactly ``end``."""
    out, t = [], end
    while t >= start:
        out.append(t)
        t -= step
    return out[::-1]


def _store_with_sites(root: Path) -> Store:
    """Four sites over the last day, written through the real Store API (one flush each)."""
    store = Store(root)
    day_ago = NOW - dt.timedelta(hours=23)
    sites = {
        # an event every minute, the last 30 s ago
        "steady": _every(day_ago, NOW - dt.timedelta(seconds=30), dt.timedelta(minutes=1)),
        # the same rhythm, but nothing for the last two hours
        "gone": _every(day_ago, NOW - dt.timedelta(hours=2), dt.timedelta(minutes=1)),
        # one event every 30 minutes, the last 50 minutes ago: quiet, but that is its habit
        "sparse": _every(day_ago, NOW - dt.timedelta(minutes=50), dt.timedelta(minutes=30)),
        # every 30 minutes too, but silent for 3 hours: beyond 3 x its usual gap
        "sparse-gone": _every(day_ago, NOW - dt.timedelta(hours=3), dt.timedelta(minutes=30)),
    }
    for i, (site, times) in enumerate(sites.items()):
        table = _events(times, site)
        store.write_events(OffsetRange("events", i, 0, 0), table)
    return store


def _cfg(store_dir: Path, **health: float) -> Config:
    return Config(worker=WorkerConfig(store_dir=str(store_dir)), health=HealthConfig(**health))


def test_site_gone_quiet_beyond_its_usual_gap_is_silent_and_steady_site_is_not(tmp_path: Path) -> None:
    """Silence is judged against each site's own rhythm: minutes for a busy site, hours for a sparse one."""
    _store_with_sites(tmp_path / "store")
    report = HealthMonitor(_cfg(tmp_path / "store"), with_kafka=False).refresh(NOW)
    by_site = {s.site: s for s in report.sites}
    assert sorted(by_site) == ["gone", "sparse", "sparse-gone", "steady"]
    assert sorted(report.silent_sites(NOW)) == ["gone", "sparse-gone"]
    # every-minute sites: gaps of 60 s, floored at min_usual_gap_s
    assert by_site["steady"].usual_gap_s == 300.0
    assert by_site["gone"].usual_gap_s == 300.0
    assert by_site["sparse"].usual_gap_s == pytest.approx(1800.0)
    assert by_site["steady"].age_s(NOW) == pytest.approx(30.0)
    assert by_site["gone"].age_s(NOW) == pytest.approx(7200.0, abs=60)
    # 5-minute rate window: five events a minute apart for the steady site, none for the others
    assert by_site["steady"].events_per_min == pytest.approx(1.0, abs=0.21)
    assert by_site["gone"].events_per_min == 0.0
    # the arrival is the flush file's write time (just now), not the event time
    assert by_site["gone"].last_arrival is not None
    assert abs((dt.datetime.now(dt.UTC) - by_site["gone"].last_arrival).total_seconds()) < 120


def test_silent_flag_follows_the_clock_between_refreshes(tmp_path: Path) -> None:
    """A report computed while a site was fine flags it once the clock passes k x its usual gap."""
    _store_with_sites(tmp_path / "store")
    report = HealthMonitor(_cfg(tmp_path / "store"), with_kafka=False).refresh(NOW)
    assert "steady" not in report.silent_sites(NOW)
    later = NOW + dt.timedelta(seconds=3 * 300 + 1)
    assert "steady" in report.silent_sites(later)
    text = metrics_text(report, later)
    assert 'fireplot_site_silent{site="steady"} 1.0\n' in text
    assert 'fireplot_site_last_event_age_seconds{site="steady"} 931.0\n' in text


def test_factor_and_floor_come_from_the_health_section(tmp_path: Path) -> None:
    """[health] keys change the verdict; bad values are configuration errors naming the key."""
    _store_with_sites(tmp_path / "store")
    lenient = HealthMonitor(_cfg(tmp_path / "store", silent_gap_factor=30.0), with_kafka=False).refresh(NOW)
    assert lenient.silent_sites(NOW) == []
    strict = HealthMonitor(_cfg(tmp_path / "store", min_usual_gap_s=60.0), with_kafka=False).refresh(NOW)
    assert strict.silent_sites(NOW + dt.timedelta(seconds=200)) == ["gone", "sparse-gone", "steady"]
    cfg = load(None, {"FIREPLOT_HEALTH__SILENT_GAP_FACTOR": "5", "FIREPLOT_CONFIG": ""})
    assert cfg.health.silent_gap_factor == 5.0
    with pytest.raises(ConfigError, match="silent_gap_factor"):
        load(None, {"FIREPLOT_HEALTH__SILENT_GAP_FACTOR": "0"})
    with pytest.raises(ConfigError, match=r"\[health\] history_s"):
        load(None, {"FIREPLOT_HEALTH__HISTORY_S": "-1"})


def test_unchanged_hours_are_not_read_again(tmp_path: Path) -> None:
    """A refresh re-reads only partition-hours whose files changed: the steady state is cheap."""
    store = _store_with_sites(tmp_path / "store")
    monitor = HealthMonitor(_cfg(tmp_path / "store"), with_kafka=False)
    monitor.refresh(NOW)
    first = monitor.activity.dirs_read
    assert first == len(list((tmp_path / "store" / "events").glob("site=*/date=*/hour=*")))
    monitor.refresh(NOW)
    assert monitor.activity.dirs_read == first
    # a new flush into one hour of one site: that hour, and only it, is read again
    store.write_events(OffsetRange("events", 9, 0, 0), _events([NOW - dt.timedelta(seconds=5)], "gone"))
    report = monitor.refresh(NOW)
    assert monitor.activity.dirs_read == first + 1
    assert "gone" not in report.silent_sites(NOW)


def test_site_without_events_in_the_history_still_shows_its_last_event(tmp_path: Path) -> None:
    """A site last heard of a week ago is listed, silent, with that last event."""
    store = Store(tmp_path / "store")
    week_ago = NOW - dt.timedelta(days=7)
    store.write_events(OffsetRange("events", 0, 0, 0), _events([week_ago], "abandoned"))
    report = HealthMonitor(_cfg(tmp_path / "store"), with_kafka=False).refresh(NOW)
    assert [(s.site, s.last_event, s.events_in_history) for s in report.sites] == [("abandoned", week_ago, 0)]
    assert report.silent_sites(NOW) == ["abandoned"]


def test_worker_dead_letters_are_counted_per_site_and_hostile_sites_stay_unknown(tmp_path: Path) -> None:
    """The real sink's dead letters carry the record key's site; a key that is no site is 'unknown'."""
    store = Store(tmp_path / "store")
    sink = ArchiveSink(store, tmp_path / "store" / "_dead_letters")
    sink.flush(
        [
            Record("events", 0, 0, b"not arrow", b"alpha/fw1"),
            Record("events", 0, 1, b"nor this", b"alpha/fw2"),
            Record("events", 0, 2, b"junk", b'<img src=x onerror="1">/fw'),
        ]
    )
    monitor = HealthMonitor(_cfg(tmp_path / "store"), with_kafka=False)
    report = monitor.refresh(NOW)
    assert [(s.site, s.rejects_worker) for s in report.sites] == [("alpha", 2)]
    assert report.rejects_unknown_site == 1
    # counted incrementally: only appended letters are read the next time
    sink.flush([Record("events", 0, 3, b"more junk", b"alpha/fw1")])
    assert [s.rejects_worker for s in monitor.refresh(NOW).sites] == [3]
    assert "onerror" not in metrics_text(report, NOW)


def test_web_strip_shows_silent_sites_as_inert_text(tmp_path: Path) -> None:
    """The page's table lists each site from the snapshot; silence is re-judged at the page's clock."""
    from bokeh.document import Document

    _store_with_sites(tmp_path / "store")
    report = HealthMonitor(_cfg(tmp_path / "store"), with_kafka=False).refresh(NOW)
    write_snapshot(tmp_path / "store", report)
    snapshot = read_snapshot(tmp_path / "store")
    data, line = table_data(snapshot, NOW)
    assert dict(zip(data["site"], data["status"], strict=True)) == {
        "gone": "SILENT",
        "sparse": "ok",
        "sparse-gone": "SILENT",
        "steady": "ok",
    }
    assert line.startswith("site health: 4 sites, 2 silent")
    later, _ = table_data(snapshot, NOW + dt.timedelta(minutes=20))
    assert later["status"].count("SILENT") == 3  # steady went quiet since the snapshot
    doc = Document()
    attach(doc, Store(tmp_path / "store"), WebConfig())
    source = doc.get_model_by_name(SOURCE_NAME)
    assert source is not None and sorted(source.data["site"]) == ["gone", "sparse", "sparse-gone", "steady"]
    # the DataTable renders cells as text; a Div would be told to render text, never HTML
    status = doc.get_model_by_name("site-health-status")
    assert status is not None and status.render_as_text is True


def test_day_page_carries_the_strip_limited_to_the_users_sites(tmp_path: Path) -> None:
    """The real page builder adds the strip; a site-scoped store (a user's allow-list) and a
    dataset page both read the live archive's snapshot, the former only for its sites."""
    from bokeh.document import Document

    from consumers.web.auth import SiteScopedStore
    from consumers.web.main import build_document

    root = tmp_path / "store"
    _store_with_sites(root)
    write_snapshot(root, HealthMonitor(_cfg(root), with_kafka=False).refresh(NOW))
    doc = Document()
    build_document(doc, store=Store(root), web=WebConfig(), default_date=NOW.date())
    source = doc.get_model_by_name(SOURCE_NAME)
    assert source is not None and sorted(source.data["site"]) == ["gone", "sparse", "sparse-gone", "steady"]
    scoped = Document()
    attach(scoped, SiteScopedStore(root, frozenset({"steady", "gone"})), WebConfig())
    source = scoped.get_model_by_name(SOURCE_NAME)
    assert source is not None and sorted(source.data["site"]) == ["gone", "steady"]
    replayed = Document()
    attach(replayed, Store(root / "datasets" / "replay1"), WebConfig())
    source = replayed.get_model_by_name(SOURCE_NAME)
    assert source is not None and len(source.data["site"]) == 4


def _metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())
    except OSError:
        return ""


def _health(system: System, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    import subprocess

    proc = subprocess.run(
        system.command("health", "--json", *extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode in (0, 4), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def test_health_against_the_real_broker_and_worker(system: System, tmp_path: Path) -> None:
    """Lag from the real group, shipper rejects from the real dead-letter topic, silence in the
    CLI's exit code and the worker's /metrics, and the web snapshot the worker writes."""
    port = free_port()
    system.configure("kafka", dead_letter_topic=f"{system.topic}.dead-letters")
    system.configure("worker", web_port=port, raw_enabled=False)
    system.configure("health", interval_s=1.0)
    now = dt.datetime.now(dt.UTC)
    fresh, old = tmp_path / "fresh.log", tmp_path / "old.log"
    write_lines(Demo(seed=5).history(now, hours=1, per_hour=240), fresh)
    with open(fresh, "a") as fh:
        fh.write("not a firewall line\n<script>x</script> SRC=nope\n")
    write_lines(Demo(seed=6).history(now - dt.timedelta(hours=3), hours=1, per_hour=240), old)
    sent = 0
    for path, site in ((fresh, "fresh"), (old, "old")):
        summary = json.loads(system.ship([path], site).stderr.strip().splitlines()[-1])
        sent += int(summary["events_sent"])

    # Nothing archived yet: the whole topic is lag, and the shipper's rejects are already visible.
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=system.bootstrap, group_id=None)
    tps = [TopicPartition(system.topic, p) for p in consumer.partitions_for_topic(system.topic) or ()]
    records = sum(consumer.end_offsets(tps).values())
    consumer.close()
    assert records > 0
    code, before = _health(system)
    assert before["consumer_lag_error"] is None and before["rejects_error"] is None, before
    assert before["consumer_lag"] == {system.topic: records}
    rejects = {s["site"]: s["rejects_shipper"] for s in before["sites"]}
    assert rejects == {"fresh": 2}
    assert code == 4  # 'fresh' has rejects but no stored event yet: silent

    system.start_worker()
    system.wait_for_rows(sent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code, after = _health(system)
        if after["consumer_lag"] == {system.topic: 0}:
            break
        time.sleep(1)
    assert after["consumer_lag"] == {system.topic: 0}
    status = {s["site"]: s["silent"] for s in after["sites"]}
    assert status == {"fresh": False, "old": True}
    assert code == 4
    lenient, relaxed = _health(system, env={"FIREPLOT_HEALTH__SILENT_GAP_FACTOR": "1000"})
    assert lenient == 0 and not any(s["silent"] for s in relaxed["sites"])
    table = system.run("health", check=False)
    assert table.returncode == 4 and "SILENT" in table.stdout and "fresh" in table.stdout

    want = [
        'fireplot_site_silent{site="old"} 1',
        'fireplot_site_silent{site="fresh"} 0',
        'fireplot_site_rejects_total{site="fresh",stage="shipper"} 2',
        f'fireplot_topic_consumer_lag_records{{topic="{system.topic}"}} 0',
    ]
    text = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = _metrics(port)
        if all(w in text for w in want):
            break
        time.sleep(0.5)
    assert all(w in text for w in want), text
    assert 'fireplot_site_last_event_age_seconds{site="old"}' in text
    snapshot = read_snapshot(system.store_dir)
    assert snapshot is not None
    data, _ = table_data(snapshot, dt.datetime.now(dt.UTC))
    assert dict(zip(data["site"], data["status"], strict=True)) == {"fresh": "ok", "old": "SILENT"}
