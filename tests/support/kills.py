"""kill -9 ``fireplot ship`` in every phase of a run, and check nothing is lost or stored twice.

A run of the shipper has four phases a crash can hit, and each leaves
different state behind: start-up (nothing saved yet), a registry write (the
temporary file written, not yet renamed), mid-stream (batches in flight, some
acknowledged, some not) and the final drain (the file read to its end, the
last batches waiting for Kafka). The scenario aims each kill at one phase in
turn and records the phase it really hit, from what the process and the disk
showed at the moment of the kill, so a test can require every phase.

The log grows between runs, as a firewall log does while its shipper is
down, so every run has a start, a middle and an end to hit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from tests.support.lines import write_probe_lines
from tests.support.system import System, distinct_ids, ids_in_store, registry_offsets
from tests.support.topics import TopicReader

PHASES = ("start-up", "registry write", "mid-stream", "final drain")
POLL_S = 0.0005  # fine enough to see the registry's temporary file (its write + fsync take ms)
# Saves every 100 ms instead of 500: more registry writes to hit, and a run need not be long
# for a kill to fall between its first save and its end.
REGISTRY_FLUSH_MS = 100


@dataclass
class KillReport:
    """What the kills hit: landed kills by observed phase, and how many runs finished before a kill."""

    by_phase: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    resent: int = 0  # events on Kafka more than once (re-sent after a kill), for the record

    @property
    def landed(self) -> int:
        return sum(self.by_phase.values())


def _read_position(pid: int, log: Path) -> int | None:
    """Where process ``pid`` has read ``log`` to (its fd's offset); None while it has no fd on it."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        for fd in fds.iterdir():
            try:
                if os.readlink(fd) == str(log):
                    for line in (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text().splitlines():
                        if line.startswith("pos:"):
                            return int(line.split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _registry_state(registry: Path) -> int:
    try:
        return registry.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


class ShipperRun:
    """One ``fireplot ship`` process over the log, watched closely enough to name the phase it is in."""

    def __init__(self, system: System, name: str, log: Path, registry: Path) -> None:
        self.log, self.registry = log, registry
        self.saved_before = _registry_state(registry)
        self.started = time.monotonic()
        self.proc: subprocess.Popen[bytes] = system.start(name, "ship", str(log), "--site", "test")
        # pipeline.durable writes beside the target as .<name>.<random>.tmp; one that appears
        # during this run and is still there is a registry write in progress (or cut by the kill).
        self.temps_before = self._temps()
        self.first_save: float | None = None
        self.read_once = False  # the log's fd was seen open

    def _temps(self) -> set[Path]:
        return set(self.registry.parent.glob(f".{self.registry.name}.*.tmp"))

    def writing(self) -> bool:
        """A registry write of this run is under way: its temp file exists, not yet renamed."""
        return bool(self._temps() - self.temps_before)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def saved(self) -> bool:
        """The run has saved the registry (renamed a new one in) at least once."""
        if self.first_save is None and _registry_state(self.registry) != self.saved_before:
            self.first_save = time.monotonic()
        return self.first_save is not None

    def at_eof(self) -> bool:
        """The whole log is read (its fd is at the end, or was open and is closed again)."""
        pos = _read_position(self.proc.pid, self.log)
        if pos is None:
            return self.read_once
        self.read_once = True
        return pos >= self.log.stat().st_size

    def wait_until(self, cond: str, timeout_s: float = 60) -> bool:
        """Poll until ``cond`` ("saved", "writing", "eof") holds; False if the run ended first."""
        deadline = time.monotonic() + timeout_s
        while self.alive() and time.monotonic() < deadline:
            if cond == "saved" and self.saved():
                return True
            if cond == "writing" and (self.writing() or self.saved()):
                return True
            if cond == "eof" and self.at_eof():
                return True
            time.sleep(POLL_S)
        return False

    def kill(self) -> str | None:
        """kill -9 the run now; the phase it was in, or None if it had already finished."""
        eof = self.at_eof()
        if not self.alive():
            return None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.writing():
            return "registry write"  # written, not renamed: the kill fell inside the atomic write
        if eof:
            return "final drain"
        if not self.read_once and _registry_state(self.registry) == self.saved_before:
            return "start-up"  # the log not even opened yet
        return "mid-stream"


def kill_shipper_repeatedly(
    system: System, tmp_path: Path, kills: int, lines: int, grow: int, seed: int
) -> KillReport:
    """kill -9 ``fireplot ship`` until ``kills`` kills landed, aimed at each phase in turn, then let
    it finish. The log starts with ``lines`` probes and grows by ``grow`` before every run; a run
    aimed mid-stream first tops up the unread part to ``lines``, so it has a middle to hit.

    After each kill every line before the registry's saved position must be on
    Kafka. At the end the store must hold each line exactly once.
    """
    log = tmp_path / "fw.log"
    parts = [write_probe_lines(log, lines)]
    written = lines
    registry = tmp_path / "registry.json"
    system.configure(
        "shipper",
        registry_path=str(registry),
        spool_dir=str(tmp_path / "spool"),
        registry_flush_interval_ms=REGISTRY_FLUSH_MS,
    )
    rng = random.Random(seed)
    report = KillReport()
    topic = TopicReader(system.bootstrap, system.topic)
    seen = np.empty(0, np.int64)
    startup_s: list[float] = []  # spawn to first save, of runs that got that far
    aimed: Counter[str] = Counter()
    try:
        while report.landed < kills and report.runs < 3 * kills:
            # Aim at the phase hit least so far (the one tried least, among equals). The final
            # drains come last: each reads the whole backlog, which later runs would have to refill.
            phases = PHASES if report.landed >= kills - max(1, kills // 4) else PHASES[:-1]
            aim = min(phases, key=lambda p: (report.by_phase[p], aimed[p]))
            aimed[aim] += 1
            report.runs += 1
            before = max(registry_offsets(registry).values(), default=0)
            unread = written - int(np.searchsorted(np.concatenate(parts), before))
            more = max(grow, lines - unread) if aim == "mid-stream" else grow
            parts.append(write_probe_lines(log, more, start=written, append=True))
            written += more
            run = ShipperRun(system, f"ship-{report.runs}", log, registry)
            if aim == "start-up":
                # Anywhere from exec to just before the first save (as measured on earlier runs).
                time.sleep(rng.uniform(0, 0.9 * (min(startup_s) if startup_s else 1.0)))
            elif aim == "registry write":
                run.wait_until("writing")
            elif aim == "mid-stream":
                # Once the saved position passes a random point of what is left (progress, not
                # a guess at the machine's speed), or the reading reaches the end.
                target = before + rng.uniform(0.05, 0.8) * (log.stat().st_size - before)
                deadline = time.monotonic() + 60
                while run.alive() and time.monotonic() < deadline and not run.at_eof():
                    if max(registry_offsets(registry).values(), default=0) >= target:
                        break
                    time.sleep(0.005)
            else:
                if run.wait_until("eof"):
                    time.sleep(rng.uniform(0, 0.05))
            hit = run.kill()
            if run.first_save is not None:
                startup_s.append(run.first_save - run.started)
            if hit is None:
                continue  # finished first: not a kill; the next run aims again
            report.by_phase[hit] += 1
            seen = _check_registry_not_ahead(topic, seen, registry, np.concatenate(parts), report)
    finally:
        topic.close()
    system.ship([log])
    (sid, pos), *others = registry_offsets(registry).items()
    assert not others and pos == log.stat().st_size, registry_offsets(registry)
    _check_store_exact(system, np.concatenate(parts), sid)
    return report


def _check_registry_not_ahead(
    topic: TopicReader, seen: np.ndarray, registry: Path, offsets: np.ndarray, report: KillReport
) -> np.ndarray:
    """Every line before the saved position is on Kafka; returns the offsets seen on Kafka so far."""
    positions = registry_offsets(registry)
    new = topic.read_new()
    got = np.asarray(new.column("source_offset"))
    report.resent += int(np.intersect1d(got, seen).size + got.size - np.unique(got).size)
    seen = np.union1d(seen, got)
    if not positions:
        return seen
    (sid, pos), *others = positions.items()
    assert not others, positions
    assert pc.all(pc.equal(new.column("source_id"), sid)).as_py() in (True, None)
    missing = np.setdiff1d(offsets[offsets < pos], seen)
    assert missing.size == 0, (
        f"kill {report.landed}: registry at {pos} but {missing.size} lines before it are not on Kafka"
    )
    return seen


def _check_store_exact(system: System, offsets: np.ndarray, sid: str) -> None:
    """The store ends with each line's event exactly once: none lost, none twice."""
    system.start_worker()
    deadline = time.monotonic() + 240
    while distinct_ids(ids_in_store(system)).num_rows < len(offsets):
        assert time.monotonic() < deadline, f"store has {distinct_ids(ids_in_store(system)).num_rows}"
        time.sleep(1)
    time.sleep(2)  # anything beyond the input would show now
    table = ids_in_store(system)
    assert set(table.column("source_id").unique().to_pylist()) == {sid}
    problem = once_each(np.asarray(table.column("source_offset")), offsets)
    assert problem is None, problem


def once_each(stored: np.ndarray, expected: np.ndarray) -> str | None:
    """None if ``stored`` holds each of ``expected`` exactly once and nothing else; else what is wrong."""
    stored = np.sort(stored)
    twice = np.unique(stored[1:][stored[1:] == stored[:-1]])
    lost = np.setdiff1d(expected, stored)
    extra = np.setdiff1d(stored, expected)
    if twice.size or lost.size or extra.size:
        return (
            f"{twice.size} lines stored more than once (e.g. {twice[:3].tolist()}), "
            f"{lost.size} lost (e.g. {lost[:3].tolist()}), "
            f"{extra.size} never written (e.g. {extra[:3].tolist()})"
        )
    return None
