"""Syslog over the network: `fireplot receive` against rsyslog's imtcp/imudp, same lines, same run.

The reference is what most firewall admins already run to take syslog off the
wire: rsyslogd (Debian's package) with imtcp and imudp on 127.0.0.1, writing
each message to a file (``%rawmsg%``), nothing else. fireplot additionally
parses, filters and encodes every line and publishes it to Kafka with
acks=all, so the reference is a floor that does less work.

TCP: the same netfilter lines (RFC 3164 with PRI, as a firewall forwards
them) are sent over one connection as fast as the receiver takes them.
Timed from the first byte sent until every line is accounted for: for
fireplot, all received, all published, and the receiver stopped after Kafka
acknowledged them (its exit waits for that); for rsyslog, every line in its
output file. Both must receive every line: TCP loses nothing at any rate
(fireplot's readers wait when its queue is full, and the sender with them).

UDP: datagrams paced at 50k, 100k and 200k lines/s for a few seconds each;
lines that did not arrive are counted for both (the kernel drops datagrams
when a receiver's socket buffer overflows; UDP has no back-pressure).

    python -m benchmarks.bench_receive [--lines 400000] [--udp-seconds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.harness import broker, free_port, report
from pipeline import wire
from pipeline.broker import ensure_topics
from producers.demo import Demo, format_line

UDP_RATES = (50_000, 100_000, 200_000)
RSYSLOG_CONF = """\
global(workDirectory="{work}")
module(load="imtcp" maxSessions="16")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="out")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="out" rcvbufSize="8m")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="out") {{
  action(type="omfile" file="{out}" template="raw")
}}
"""


def syslog_lines(n: int) -> list[bytes]:
    """``n`` demo netfilter lines as a firewall forwards them: ``<4>`` PRI and a BSD header."""
    now = dt.datetime.now(dt.UTC)
    packets = Demo(seed=5).history(now, hours=1, per_hour=n)
    out: list[bytes] = []
    while len(out) < n:
        for p in packets[: n - len(out)]:
            # The file format's RFC 3339 stamp becomes the BSD one a forwarding kernel host sends.
            rest = format_line(p, p.ts.timestamp() % 10_000_000).split(" ", 1)[1]
            out.append(f"<4>{p.ts:%b %e %H:%M:%S} {rest}".encode())
    return out


def send_tcp(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(payload)


def send_udp_paced(port: int, lines: list[bytes], rate: int) -> float:
    """Send every line as a datagram at ``rate`` lines/s (1 ms bursts); returns the rate reached."""
    burst = max(1, rate // 1000)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        start = time.perf_counter()
        for i in range(0, len(lines), burst):
            for line in lines[i : i + burst]:
                with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                    s.send(line)
            ahead = start + (i + burst) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        return len(lines) / (time.perf_counter() - start)


def udp_run(port: int, received: Callable[[], int], batch: list[bytes], rate: int) -> tuple[int, float]:
    """Lines a server took of ``batch`` sent at ``rate`` (5 s allowed for the last), and the rate reached."""
    reached = send_udp_paced(port, batch, rate)
    with contextlib.suppress(RuntimeError):
        wait_until(lambda: received() >= len(batch), 5, "the last datagrams")
    return received(), reached


def wait_until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def metric(port: int, name: str) -> float:
    """Sum of a metric's samples on a fireplot /metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


class Fireplot:
    """`fireplot receive` on TCP and UDP, publishing to a fresh topic, metrics served."""

    def __init__(self, bootstrap: str, tmp: Path) -> None:
        self.topic = f"bench-recv-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, {self.topic: 4}, wire.TOPIC_CONFIGS)
        self.tcp, self.udp, self.metrics = free_port(), free_port(), free_port()
        env = {
            **os.environ,
            "FIREPLOT_KAFKA__BOOTSTRAP": bootstrap,
            "FIREPLOT_KAFKA__EVENTS_TOPIC": self.topic,
            "FIREPLOT_SHIPPER__RECEIVER_STATE_PATH": str(tmp / f"{self.topic}.state.json"),
            "FIREPLOT_SHIPPER__SPOOL_DIR": str(tmp / f"{self.topic}.spool"),
            "FIREPLOT_SHIPPER__DEAD_LETTER_DIR": str(tmp / f"{self.topic}.dead"),
        }
        argv = ["receive", "--tcp", str(self.tcp), "--udp", str(self.udp), "--site", "bench"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fireplot", "--plain-logs", *argv, "--metrics-port", str(self.metrics)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / f"{self.topic}.log", "wb"),  # noqa: SIM115 - the child's
        )
        wait_until(self._listening, 60, "fireplot receive to listen")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"fireplot receive exited with {self.proc.returncode}")
        with contextlib.suppress(OSError):
            metric(self.metrics, "fireplot_receiver_messages_total")
            with socket.create_connection(("127.0.0.1", self.tcp), timeout=1):
                return True
        return False

    def received(self, transport: str) -> int:
        return int(metric(self.metrics, f'fireplot_receiver_messages_total{{transport="{transport}"}}'))

    def lines_done(self) -> int:
        """Lines published, or dropped by the edge filter (late TCP), or rejected: each accounted for."""
        return int(
            sum(
                metric(self.metrics, name)
                for name in (
                    "fireplot_shipper_events_sent_total",
                    "fireplot_shipper_filtered_events_total",
                    "fireplot_shipper_rejected_lines_total",
                )
            )
        )

    def stop(self) -> None:
        """SIGTERM: the receiver ships what it holds and exits once Kafka acknowledged it."""
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(timeout=120) != 0:
            raise RuntimeError(f"fireplot receive exited with {self.proc.returncode}")


class Rsyslog:
    """rsyslogd in the foreground, imtcp + imudp on 127.0.0.1, every message to one file."""

    def __init__(self, tmp: Path) -> None:
        exe = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        if not Path(exe).exists():
            raise SystemExit("bench_receive needs rsyslogd (Debian: apt-get install rsyslog)")
        self.dir = tmp / f"rsyslog-{uuid.uuid4().hex[:6]}"
        (self.dir / "work").mkdir(parents=True)
        self.tcp, self.udp = free_port(), free_port()
        self.out = self.dir / "out.log"
        conf = self.dir / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(work=self.dir / "work", tcp=self.tcp, udp=self.udp, out=self.out))
        self.proc = subprocess.Popen(
            [exe, "-n", "-f", str(conf), "-i", str(self.dir / "pid")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "wb"),  # noqa: SIM115 - the child's
        )
        wait_until(self._listening, 30, "rsyslogd to listen")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"rsyslogd exited: {(self.dir / 'stderr.log').read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.tcp), timeout=1):
            return True
        return False

    def lines(self) -> int:
        try:
            with open(self.out, "rb") as fh:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
        except FileNotFoundError:
            return 0

    def reset(self) -> None:
        # rsyslog keeps the file open; truncating it in place keeps its position sane (O_APPEND).
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.out, 0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@contextlib.contextmanager
def running(start: Callable[[], Fireplot | Rsyslog]) -> Iterator[Fireplot | Rsyslog]:
    server = start()
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=400_000, help="lines sent over TCP")
    ap.add_argument("--udp-seconds", type=float, default=2.0, help="seconds of paced UDP per rate")
    args = ap.parse_args()
    lines = syslog_lines(args.lines)
    payload = b"\n".join(lines) + b"\n"
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-recv-") as tmp_name, broker() as bootstrap:
        tmp = Path(tmp_name)

        # ---- TCP: everything, as fast as it is taken --------------------------------
        with running(lambda: Fireplot(bootstrap, tmp)) as fp:
            assert isinstance(fp, Fireplot)
            t = time.perf_counter()
            send_tcp(fp.tcp, payload)
            wait_until(lambda: fp.received("tcp") >= args.lines, 600, "fireplot to receive every line")
            wait_until(lambda: fp.lines_done() >= args.lines, 600, "fireplot to publish every line")
            got = fp.received("tcp")
            fp.stop()
            ours_s = time.perf_counter() - t
        with running(lambda: Rsyslog(tmp)) as rs:
            assert isinstance(rs, Rsyslog)
            t = time.perf_counter()
            send_tcp(rs.tcp, payload)
            wait_until(lambda: rs.lines() >= args.lines, 600, "rsyslog to write every line")
            ref_s = time.perf_counter() - t
            ref_got = rs.lines()
            rs.stop()
        report(
            f"syslog over TCP, {args.lines:,} netfilter lines (fireplot: received, parsed, "
            "published, acknowledged)",
            "lines",
            args.lines,
            ours_s,
            "rsyslog imtcp->file",
            ref_s,
        )
        print(f"  lines lost: fireplot {args.lines - got}, rsyslog {args.lines - ref_got}")

        # ---- UDP: paced, loss counted -----------------------------------------------
        print(
            f"\nsyslog over UDP, {args.udp_seconds:g} s at each rate: lines lost (rate reached by the sender)"
        )
        for rate in UDP_RATES:
            n = int(rate * args.udp_seconds)
            batch = (lines * (1 + n // len(lines)))[:n]
            with running(lambda: Fireplot(bootstrap, tmp)) as fp:
                assert isinstance(fp, Fireplot)
                ours_got, reached = udp_run(fp.udp, functools.partial(fp.received, "udp"), batch, rate)
                fp.stop()
            with running(lambda: Rsyslog(tmp)) as rs:
                assert isinstance(rs, Rsyslog)
                ref_got, ref_reached = udp_run(rs.udp, rs.lines, batch, rate)
                rs.stop()
            print(
                f"  {rate:>7,}/s  fireplot {n - ours_got:>7,} of {n:,} lost ({(n - ours_got) / n:6.2%}, "
                f"sent at {reached:,.0f}/s)   rsyslog {n - ref_got:>7,} lost ({(n - ref_got) / n:6.2%}, "
                f"sent at {ref_reached:,.0f}/s)"
            )


if __name__ == "__main__":
    main()
