"""`fireplot receive`: a syslog receiver for appliances that can only send syslog.

UDP (one message per datagram) and TCP (RFC 6587: octet-counted
``LEN SP MSG`` or newline-terminated, detected per message) on 127.0.0.1 by
default. The envelope (RFC 3164 ``<PRI>Mmm dd hh:mm:ss host tag:`` or RFC 5424)
stays on the line: the format parsers read it, exactly as from a file.

Received messages are batched per sender every ``receiver_flush_interval_ms``
and take the shipper's parse/filter/publish path. Identity: source_id =
``<site>:syslog:<sender address>:<session>`` (a session per receiver start),
source_offset = a counter that never repeats, even across restarts: blocks
of offsets are reserved in ``receiver_state_path`` (atomically) before use.
The publisher's disk spool keeps what Kafka has not taken across an outage.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from pipeline import durable
from pipeline.config import Config
from producers.lines import MAX_LINE_BYTES, LineBatch
from producers.shipper import Shipper

log = logging.getLogger("fireplot.receiver")

OFFSET_BLOCK = 1 << 20
MAX_FRAME_BYTES = 256 * 1024  # an octet count beyond this is garbage or an attack
QUEUE_MAX = 200_000  # messages waiting for the shipper; beyond it TCP readers wait (back-pressure)


class OffsetCounter:
    """Monotonic offsets persisted in blocks: a restart resumes past every offset handed out."""

    def __init__(self, path: Path, block: int = OFFSET_BLOCK) -> None:
        self.path = path
        self.block = block
        try:
            data = json.loads(path.read_text())
            start = int(data["next_offset"])
        except FileNotFoundError:
            start = 0
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(
                f"{path}: unreadable receiver state ({exc}); refusing to reuse event ids"
            ) from None
        self._next = start
        self._limit = start
        self._reserve()

    def _reserve(self) -> None:
        self._limit = self._next + self.block
        durable.write_bytes(self.path, json.dumps({"version": 1, "next_offset": self._limit}).encode())

    def take(self, n: int) -> int:
        """The first of ``n`` fresh consecutive offsets."""
        if self._next + n > self._limit:
            self.block = max(self.block, n)
            self._reserve()
        first = self._next
        self._next += n
        return first


def _frames(buf: bytearray) -> list[bytes]:
    """Cut complete messages off the front of ``buf`` (RFC 6587), leaving any partial one."""
    out: list[bytes] = []
    while buf:
        if buf[:1].isdigit():
            sp = buf.find(b" ", 0, 12)
            if sp > 0 and buf[:sp].isdigit():
                n = int(buf[:sp])
                if n > MAX_FRAME_BYTES:
                    raise ValueError(f"octet count {n} too large")
                if len(buf) < sp + 1 + n:
                    break
                out.append(bytes(buf[sp + 1 : sp + 1 + n]))
                del buf[: sp + 1 + n]
                continue
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > MAX_FRAME_BYTES:
                raise ValueError("message without a newline is too long")
            break
        out.append(bytes(buf[:nl]))
        del buf[: nl + 1]
    return out


class Receiver:
    def __init__(
        self,
        cfg: Config,
        shipper: Shipper,
        bind: str = "127.0.0.1",
        udp_port: int | None = None,
        tcp_port: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.shipper = shipper
        self.session = uuid.uuid4().hex[:8]
        self.counter = OffsetCounter(Path(cfg.shipper.receiver_state_path))
        self.queue: queue.Queue[tuple[str, str, bytes]] = queue.Queue(QUEUE_MAX)
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self.udp: socket.socket | None = None
        self.tcp: socket.socket | None = None
        if udp_port is not None:
            self.udp = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            self.udp.bind((bind, udp_port))
            self._sockets.append(self.udp)
        if tcp_port is not None:
            self.tcp = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind((bind, tcp_port))
            self.tcp.listen(64)
            self._sockets.append(self.tcp)
        log.info(
            "receiving syslog",
            extra={"bind": bind, "udp": udp_port, "tcp": tcp_port, "session": self.session},
        )

    def _count(self, transport: str) -> None:
        if self.shipper.metrics:
            self.shipper.metrics.received.labels(transport).inc()

    def _udp_loop(self) -> None:
        assert self.udp is not None
        self.udp.settimeout(0.5)
        while not self._closing.is_set():
            try:
                data, addr = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queue.put((addr[0], "udp", data.rstrip(b"\r\n\0")))
            self._count("udp")

    def _tcp_accept(self) -> None:
        assert self.tcp is not None
        self.tcp.settimeout(0.5)
        while not self._closing.is_set():
            try:
                conn, addr = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn, addr[0]), daemon=True).start()

    def _tcp_conn(self, conn: socket.socket, sender: str) -> None:
        buf = bytearray()
        conn.settimeout(0.5)
        with conn:
            while not self._closing.is_set():
                try:
                    chunk = conn.recv(1 << 16)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                try:
                    frames = _frames(buf)
                except ValueError as exc:
                    log.warning(
                        "bad syslog framing; closing the connection",
                        extra={"sender": sender, "error": str(exc)},
                    )
                    break
                for f in frames:
                    self.queue.put((sender, "tcp", f.rstrip(b"\r\0")))
                    self._count("tcp")
            if buf.strip():
                self.queue.put((sender, "tcp", bytes(buf).rstrip(b"\r\n\0")))  # last message, unterminated
                self._count("tcp")

    def run(self, stop: Callable[[], bool]) -> None:
        threads = []
        if self.udp is not None:
            threads.append(threading.Thread(target=self._udp_loop, daemon=True))
        if self.tcp is not None:
            threads.append(threading.Thread(target=self._tcp_accept, daemon=True))
        for t in threads:
            t.start()
        interval = self.cfg.shipper.receiver_flush_interval_ms / 1000
        max_lines = self.cfg.shipper.batch_lines
        while not stop():
            deadline = time.monotonic() + interval
            items: list[tuple[str, str, bytes]] = []
            while len(items) < max_lines:
                try:
                    items.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            if items:
                self._ship(items)
            else:
                self.shipper.publisher.drain(wait=False)
        # What arrived before the stop is still shipped.
        rest: list[tuple[str, str, bytes]] = []
        while True:
            try:
                rest.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if rest:
            self._ship(rest)

    def _ship(self, items: list[tuple[str, str, bytes]]) -> None:
        by_sender: dict[str, list[str]] = {}
        for sender, _transport, data in items:
            text = data[:MAX_LINE_BYTES].decode("utf-8", errors="replace").replace("\n", " ")
            by_sender.setdefault(sender, []).append(text)
        for sender, texts in by_sender.items():
            first = self.counter.take(len(texts))
            lines = pa.array(texts, pa.string())
            offsets = pa.array(range(first, first + len(texts)), pa.int64())
            sid = f"{self.shipper.site}:syslog:{sender}:{self.session}"
            self.shipper.ship_batch(LineBatch(lines, offsets, first + len(texts)), sid)

    def close(self) -> None:
        self._closing.set()
        for s in self._sockets:
            s.close()
