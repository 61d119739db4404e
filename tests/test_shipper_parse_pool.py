"""Parsing in child processes (``[shipper] parse_processes``), in a thread (``parse_thread``, the
default) or in line changes nothing the shipper promises.

With the pool on, a file still arrives exactly (every event once, rejects and
filtered lines counted and kept as without it), in order per source; kill -9
of the shipper still loses and duplicates nothing; a parse child killed
mid-file is replaced and no batch is lost or skipped; a child that keeps
dying stops the shipper with an error; a shipper killed alone leaves no parse
child behind; a live stdin pipe is shipped as it comes, not held back; --follow across
rotation loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline import parsers
from pipeline.config import ShipperConfig
from pipeline.filters import EdgeFilter
from pipeline.parsers import ParseContext
from producers.lines import read_batches
from producers.parse_pool import ParsePool, ParsePoolError, ParseThread
from tests.support.kills import kill_shipper_repeatedly
from tests.support.lines import write_mixed, write_probe_lines
from tests.support.shipper import follow_across_rotation
from tests.support.system import System, registry_offsets
from tests.support.topics import check_letters, read_dead_letters, use_own_dead_letter_topic


def parse_children(pid: int) -> list[int]:
    """The parse-pool children of process ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            try:
                cmd = Path(f"/proc/{kid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"producers.parse_pool" in cmd:
                found.append(kid)
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(cond: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def offsets_by_source(events: pa.Table) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for sid in set(events.column("source_id").to_pylist()):
        mask = pc.equal(events.column("source_id"), sid)
        out[sid] = np.asarray(pc.filter(events.column("source_offset"), mask))
    return out


@pytest.mark.parametrize(
    "parsing",
    [{"parse_processes": 2}, {"parse_processes": 0, "parse_thread": True}, {"parse_thread": False}],
    ids=["two_processes", "thread", "in_line"],
)
def test_file_through_parse_pool_delivers_exactly_the_input_in_order_per_source(
    system: System, tmp_path: Path, parsing: dict[str, object]
) -> None:
    """Two files, small batches: events, rejects, filtered and order exactly the input's, however parsed."""
    mixed = write_mixed(tmp_path / "mixed.log", 3000)
    probes = tmp_path / "probes.log"
    probe_offsets = write_probe_lines(probes, 20_000)
    dl_topic = use_own_dead_letter_topic(system)
    system.configure("shipper", batch_lines=700, **parsing)

    proc = system.ship([mixed.path, probes])
    summary = json.loads(proc.stderr.strip().splitlines()[-1])

    assert summary["lines"] == mixed.lines + len(probe_offsets)
    assert summary["events_sent"] == len(mixed.sent) + len(probe_offsets)
    assert summary["rejected"] == len(mixed.rejected)
    assert {k: v for k, v in summary["filtered_by_reason"].items() if v} == mixed.filtered
    events = system.topic_events()
    by_source = offsets_by_source(events)
    assert len(by_source) == 2
    got = sorted(by_source.values(), key=len)
    # Topic order (one partition per site/host key) is input order: offsets rise, none twice.
    assert np.array_equal(got[0], np.asarray(mixed.sent, dtype=np.int64))
    assert np.array_equal(got[1], probe_offsets)
    registry = registry_offsets(system.root / "registry.json")
    assert sorted(registry.values()) == sorted([mixed.path.stat().st_size, probes.stat().st_size])
    mixed_sid = next(s for s, o in by_source.items() if len(o) == len(mixed.sent))
    letters = read_dead_letters(system.bootstrap, dl_topic, len(mixed.rejected))
    check_letters(letters, mixed, mixed_sid)
    kept = [
        json.loads(line) for line in (system.dead_letter_dir / "test.rejects.jsonl").read_text().splitlines()
    ]
    check_letters(kept, mixed, mixed_sid)


@pytest.mark.slow
def test_kill9_with_parse_pool_resumes_and_store_holds_exactly_the_input(
    system: System, tmp_path: Path
) -> None:
    """The kill test's checks (registry never ahead of Kafka; store = input), one kill per phase, pool on."""
    system.configure("shipper", parse_processes=1, batch_lines=4096)
    kills = int(os.environ.get("FIREPLOT_TEST_POOL_KILLS", "4"))
    lines = int(os.environ.get("FIREPLOT_TEST_POOL_KILL_LINES", "50000"))
    seed = int(os.environ.get("FIREPLOT_TEST_SEED", "7"))
    report = kill_shipper_repeatedly(system, tmp_path, kills, lines, grow=5_000, seed=seed)
    assert report.landed == kills, f"only {report.landed} of {kills} kills hit a running shipper"


@pytest.mark.parametrize("style", ["rename_then_gzip", "copytruncate", "truncate_rewrite"])
def test_follow_across_rotation_with_parse_pool_loses_nothing(
    system: System, tmp_path: Path, style: str
) -> None:
    """The rotation test's checks, pool on: each poll's batches are published before the file moves."""
    system.configure("shipper", parse_processes=1)
    follow_across_rotation(system, tmp_path, style)


def test_parse_child_killed_mid_file_is_replaced_and_no_batch_is_lost_or_skipped(
    system: System, tmp_path: Path
) -> None:
    log = tmp_path / "fw.log"
    offsets = write_probe_lines(log, 300_000)
    registry = tmp_path / "registry.json"
    system.configure("shipper", parse_processes=1, batch_lines=2048, registry_path=str(registry))
    proc = system.start("ship", "ship", str(log), "--site", "test")
    wait_for(lambda: parse_children(proc.pid) or proc.poll() is not None, 60, "a parse child")
    # Mid-file: progress is saved, the file is not done.
    wait_for(lambda: registry_offsets(registry) or proc.poll() is not None, 60, "first progress")
    victims = parse_children(proc.pid)
    assert proc.poll() is None and victims, "the shipper finished before its parse child could be killed"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=300) == 0, system.log_of("ship")
    assert "parse process died" in system.log_of("ship")

    events = system.topic_events()
    # One run, no restart: not one duplicate is acceptable, nor a gap.
    assert events.num_rows == len(offsets)
    assert np.array_equal(np.asarray(events.column("source_offset")), offsets)
    assert list(registry_offsets(registry).values()) == [log.stat().st_size]


def test_shipper_killed_alone_leaves_no_parse_child_behind(system: System, tmp_path: Path) -> None:
    log = tmp_path / "fw.log"
    write_probe_lines(log, 300_000)
    system.configure("shipper", parse_processes=1, batch_lines=2048)
    proc = system.start("ship", "ship", str(log), "--site", "test")
    wait_for(lambda: parse_children(proc.pid) or proc.poll() is not None, 60, "a parse child")
    children = parse_children(proc.pid)
    assert children and proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)  # the shipper only, not its process group
    proc.wait(timeout=30)
    wait_for(lambda: not any(running(c) for c in children), 30, "the orphaned parse child to exit")


def test_live_stdin_through_parse_pool_is_shipped_before_the_pipe_closes(
    system: System, tmp_path: Path
) -> None:
    log = tmp_path / "fw.log"
    write_probe_lines(log, 400)
    data = log.read_bytes()
    half = data.index(b"\n", len(data) // 2) + 1
    system.configure("shipper", parse_processes=1)
    proc = subprocess.Popen(
        system.command("ship", "-", "--site", "test"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    system.procs.append(proc)
    assert proc.stdin is not None
    proc.stdin.write(data[:half])
    proc.stdin.flush()
    first = data[:half].count(b"\n")
    # The pipe stays open: these lines must not wait in the pool for more input.
    wait_for(lambda: system.topic_events(timeout_s=10).num_rows >= first, 60, "the first half on the topic")
    assert system.topic_events().num_rows == first
    proc.stdin.write(data[half:])
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    assert system.topic_events().num_rows == 400


def _batches(path: Path, max_lines: int) -> list[tuple[pa.Array, pa.Array]]:
    with open(path, "rb") as fh:
        return [(b.lines, b.offsets) for b in read_batches(fh, 0, max_lines=max_lines)]


def test_pool_child_killed_between_submit_and_result_answers_every_batch_in_order(tmp_path: Path) -> None:
    log = tmp_path / "fw.log"
    write_probe_lines(log, 6000)
    ctx = ParseContext(site="test", source_id="test:x")
    batches = _batches(log, 1000)
    parse = parsers.get("auto")
    expected = [parse(lines, offsets, ctx).events for lines, offsets in batches]
    pool = ParsePool("auto", 1)
    try:
        pool.start()
        for lines, offsets in batches:
            pool.submit(lines, offsets, ctx)
        first = pool.result()
        for pid in pool.pids():
            os.kill(pid, signal.SIGKILL)
        answers = [first] + [pool.result() for _ in batches[1:]]
        assert pool.restarts == 1 and pool.pending == 0
    finally:
        pool.close()
    # The pool does not edge-filter: each answer says so, and the shipper filters.
    assert [a.filtered for a in answers] == [None] * len(batches)
    got = [a.parsed.events for a in answers]
    assert [t.column("source_offset").to_pylist() for t in got] == [
        t.column("source_offset").to_pylist() for t in expected
    ]
    assert all(g.equals(e) for g, e in zip(got, expected, strict=True))


def test_pool_whose_child_keeps_dying_fails_loudly(tmp_path: Path) -> None:
    log = tmp_path / "fw.log"
    write_probe_lines(log, 1000)
    ctx = ParseContext(site="test", source_id="test:x")
    pool = ParsePool("auto", 1)
    stop = threading.Event()

    def killer() -> None:
        # Every child dies before it can answer: a batch that crashes the parser itself.
        while not stop.is_set():
            for pid in pool.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    thread = threading.Thread(target=killer, daemon=True)
    try:
        pool.start()
        thread.start()
        for lines, offsets in _batches(log, 500):
            pool.submit(lines, offsets, ctx)
        with pytest.raises(ParsePoolError, match="died 3 times in a row"):
            pool.result()
    finally:
        stop.set()
        thread.join()
        pool.close()


def test_parse_thread_answers_in_order_and_raises_what_the_parser_raised(tmp_path: Path) -> None:
    """Results come back in submission order, filtered; a parser error surfaces at its batch, not before."""
    probes = tmp_path / "probes.log"
    offsets = write_probe_lines(probes, 5000)
    ctx = ParseContext(site="s", source_id="src", host="h")
    thread = ParseThread("netfilter", EdgeFilter(ShipperConfig()))
    with probes.open("rb") as fh:
        batches = list(read_batches(fh, 0, max_lines=600))
    for b in batches:
        thread.submit(b.lines, b.offsets, ctx)
    thread.submit(pa.array(["a", "b"]), pa.array([0]), ctx)  # offsets missing: the parser raises
    got: list[int] = []
    for b in batches:
        answer = thread.result()
        result, filtered = answer.parsed, answer.filtered
        assert filtered is not None  # the thread edge-filters
        assert result.events.column("source_offset").to_pylist() == b.offsets.to_pylist()
        got += filtered.kept.column("source_offset").to_pylist()
    assert np.array_equal(np.asarray(got), offsets)
    with pytest.raises(ValueError, match="2 lines but 1 offsets"):
        thread.result()
    with pytest.raises(RuntimeError, match="no batch submitted"):
        thread.result()
    thread.submit(batches[0].lines, batches[0].offsets, ctx)
    thread.close()
    assert thread.pending == 0
