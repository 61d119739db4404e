"""Parse line batches beside the shipper's main thread while it reads and publishes.

Two `BatchParser`s, both answering with a `ParsedBatch`: `ParseThread`
(``[shipper] parse_thread``, the default) parses and edge-filters in one
thread of the same process; `ParsePool` parses in child processes and leaves
the edge filter to the caller, which its answers say (``filtered`` is None).
The rest of this module is `ParsePool`, for which the notes below hold.

Parsing is most of the shipper's own time, and it is pure: lines in, events
and rejects out. A few child processes (``[shipper] parse_processes``) parse
while the main process cuts the next lines and hands the previous events to
Kafka. Results come back strictly in submission order, so everything after
parsing (dead letters, the edge filter, publishing, acknowledgements, the
registry) runs in the main process in input order exactly as without the pool.

Each child is ``python -m producers.parse_pool`` on two pipes of its own
rather than a ``multiprocessing`` pool: nothing of the parent (its Kafka
threads, its ``__main__``) is forked or re-imported, and each side sees the
other end close. A child whose parent died reads end-of-file and exits; a
parent whose child died (killed, out of memory) gets end-of-file, starts a new
child and sends it every batch the dead one had not answered, in order, so no
batch is lost or skipped. A child that keeps dying without answering (a batch
that crashes the parser itself) is an error that stops the shipper: the
registry stays at the last acknowledged batch, and a restart resumes there.

Batches of one source always go to the same child: a parser may remember
things about a source between batches (the Windows Firewall ``#Fields``
header), which it only can in one process.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Protocol

import pyarrow as pa

from pipeline import parsers
from pipeline.filters import EdgeFilter, FilterResult
from pipeline.parsers import ParseContext, ParseResult

log = logging.getLogger("fireplot.shipper.parse_pool")

# Linux's default ceiling for an unprivileged pipe (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20
# Deaths in a row, without any answer in between, before the pool gives up.
MAX_RESTARTS_WITHOUT_PROGRESS = 2


class ParsePoolError(RuntimeError):
    """A parse process kept dying, or could not be started."""


@dataclass(frozen=True)
class ParsedBatch:
    """One submitted batch, parsed: its events and rejects, and the edge filter's outcome if it ran.

    ``filtered`` is None when the parser did not edge-filter (`ParsePool`):
    the caller filters ``parsed.events`` itself."""

    parsed: ParseResult
    filtered: FilterResult | None


class BatchParser(Protocol):
    """Parses submitted batches beside the caller; ``result()`` answers them in submission order."""

    @property
    def pending(self) -> int:
        """Batches submitted and not yet taken by ``result()``."""
        ...

    def start(self) -> None:
        """Start the parser's threads or processes (``submit`` also does, when needed)."""
        ...

    def submit(self, lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> None:
        """Hand over one batch; batches of one source are parsed in the order submitted."""
        ...

    def result(self) -> ParsedBatch:
        """The oldest submission's result; waits for it and raises what parsing raised."""
        ...

    def close(self) -> None:
        """Stop; batches not yet answered are dropped (they were never acknowledged)."""
        ...


@dataclass
class _Request:
    child: int
    lines: pa.Array
    offsets: pa.Array
    ctx: ParseContext


def _compact(arr: pa.Array) -> pa.Array:
    # A batch is often a slice of a 4 MiB chunk; pickling a slice sends the
    # whole parent buffer, so a slice is copied down to its own bytes first.
    if arr.get_total_buffer_size() > 2 * arr.nbytes + 4096:
        return pa.concat_arrays([arr])
    return arr


def _widen(fd: int) -> None:
    # A batch is a few MiB and a 64 KiB pipe takes it in dozens of reads, each
    # of which waits for the reading process's GIL (its parser holds it for up
    # to the 5 ms switch interval): widened, a batch passes in a few.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


class _Child:
    def __init__(self, fmt: str) -> None:
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        for fd in (req_w, res_w):
            _widen(fd)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "producers.parse_pool", fmt, str(req_r), str(res_w)],
                pass_fds=(req_r, res_w),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            for fd in (req_r, req_w, res_r, res_w):
                os.close(fd)
            raise ParsePoolError(f"cannot start a parse process: {exc}") from exc
        # Only the child may hold its ends: then each side sees the other's exit as end-of-file.
        os.close(req_r)
        os.close(res_w)
        self.to_child = Connection(req_w, readable=False)
        self.from_child = Connection(res_r, writable=False)
        self.alive = True
        log.debug("parse process started", extra={"pid": self.proc.pid})

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, req: _Request) -> bool:
        try:
            self.to_child.send((req.lines, req.offsets, req.ctx))
        except OSError:  # BrokenPipeError: it died; found out on the next receive
            self.alive = False
            return False
        return True

    def close(self, kill: bool = False) -> int | None:
        for conn in (self.to_child, self.from_child):
            conn.close()
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class ParsePool:
    """``processes`` parser children; ``result()`` answers submissions in submission order."""

    def __init__(self, fmt: str, processes: int) -> None:
        if processes < 1:
            raise ValueError("a parse pool needs at least one process")
        parsers.get(fmt)  # an unknown format fails here, not in a child
        self.fmt = fmt
        self.processes = processes
        self._children: list[_Child | None] = [None] * processes
        self._pending: deque[_Request] = deque()
        self._deaths_without_progress = 0
        self.restarts = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pids(self) -> list[int]:
        return [c.pid for c in self._children if c is not None]

    def start(self) -> None:
        for i in range(self.processes):
            self._child(i)

    def _child(self, i: int) -> _Child:
        child = self._children[i]
        if child is None:
            child = self._children[i] = _Child(self.fmt)
        return child

    def submit(self, lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> None:
        i = zlib.crc32(ctx.source_id.encode()) % self.processes
        req = _Request(i, _compact(lines), _compact(offsets), ctx)
        self._pending.append(req)
        self._child(i).send(req)

    def result(self) -> ParsedBatch:
        """The oldest submission's result, not edge-filtered; waits for it."""
        if not self._pending:
            raise RuntimeError("no batch submitted")
        req = self._pending[0]
        while True:
            child = self._child(req.child)
            try:
                status, value = child.from_child.recv()
            except (EOFError, OSError):
                self._restart(req.child)
                continue
            self._pending.popleft()
            self._deaths_without_progress = 0
            if status == "ok":
                assert isinstance(value, ParseResult)
                return ParsedBatch(value, filtered=None)
            if isinstance(value, BaseException):
                raise value
            raise RuntimeError(f"parser failed in a parse process:\n{value}")

    def _restart(self, i: int) -> None:
        dead = self._children[i]
        code = dead.close(kill=True) if dead is not None else None
        self._children[i] = None
        self._deaths_without_progress += 1
        unanswered = [r for r in self._pending if r.child == i]
        if self._deaths_without_progress > MAX_RESTARTS_WITHOUT_PROGRESS:
            raise ParsePoolError(
                f"parse process died {self._deaths_without_progress} times in a row (last exit code "
                f"{code}) without answering; {len(unanswered)} batches not parsed, not acknowledged"
            )
        self.restarts += 1
        log.error(
            "parse process died; starting another and sending it the batches it had not answered",
            extra={"exit_code": code, "batches": len(unanswered)},
        )
        child = self._child(i)
        for r in unanswered:
            if not child.send(r):
                break  # dead again: the next receive restarts it

    def close(self) -> None:
        """Stop the children; unanswered batches are dropped (they were never acknowledged)."""
        self._pending.clear()
        for i, child in enumerate(self._children):
            if child is not None:
                child.close(kill=True)
                self._children[i] = None


class ParseThread:
    """One thread that parses and edge-filters while the caller reads and publishes, in order.

    The native cutter and scanner, and pyarrow's kernels and IPC writer,
    release the GIL, so with a second core one batch is parsed and filtered
    here while the caller cuts the next and compresses the previous one
    (py-spy: the filter here balances the two threads best). One thread, not
    more: batches of a source must be parsed in order, as a parser may
    remember things about a source between batches. Nothing is copied,
    unlike `ParsePool`.
    """

    def __init__(self, fmt: str, edge_filter: EdgeFilter) -> None:
        self.parse = parsers.get(fmt)
        self.edge_filter = edge_filter
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[Future[ParsedBatch]] = deque()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="fireplot-parse")

    def _work(self, lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> ParsedBatch:
        result = self.parse(lines, offsets, ctx)
        return ParsedBatch(result, self.edge_filter(result.events))

    def submit(self, lines: pa.Array, offsets: pa.Array, ctx: ParseContext) -> None:
        self.start()
        assert self._executor is not None
        self._pending.append(self._executor.submit(self._work, lines, offsets, ctx))

    def result(self) -> ParsedBatch:
        """The oldest submission's result, edge-filtered; waits, and raises what the parser raised."""
        if not self._pending:
            raise RuntimeError("no batch submitted")
        return self._pending.popleft().result()

    def close(self) -> None:
        """Forget unanswered batches (they were never acknowledged); a parse under way ends on its own."""
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _serve(fmt: str, in_fd: int, out_fd: int) -> None:
    # The parent owns shutdown: a signal for its process group (Ctrl-C,
    # a service stop) must not kill the parser under a shipper still draining.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inbox = Connection(in_fd, writable=False)
    outbox = Connection(out_fd, readable=False)
    parse = parsers.get(fmt)
    # A reader thread keeps taking requests while a result is being written:
    # with both pipes full in opposite directions neither side could proceed.
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def read() -> None:
        try:
            while True:
                # Bytes only: unpickling here would take the GIL from the parser.
                requests.put(inbox.recv_bytes())
        except (EOFError, OSError):
            requests.put(None)  # the parent closed its end or died

    threading.Thread(target=read, daemon=True).start()
    while (req := requests.get()) is not None:
        lines, offsets, ctx = pickle.loads(req)  # noqa: S301 - from our own parent over a private pipe
        answer: tuple[str, object]
        try:
            answer = ("ok", parse(lines, offsets, ctx))
        except Exception as exc:  # re-raised in the parent, which decides
            answer = ("error", exc)
        try:
            try:
                outbox.send(answer)
            except (TypeError, AttributeError, ValueError):  # an exception that does not pickle
                outbox.send(("error", "".join(traceback.format_exception(answer[1]))))  # type: ignore[arg-type]
        except OSError:
            return  # the parent is gone


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
