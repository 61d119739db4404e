"""`fireplot up`: the whole system on one machine, with demo data, until Ctrl-C.

Each service runs as its own process (as it would in production), logging to
``<var_dir>/logs/``: the worker (archiving, with maintenance: compaction,
rollups and retention, and site health), the scan detector following the
store, the web server, and a shipper following the demo log, to which a live
trickle of new packets is appended every second. This is the whole system,
as docker-compose.yml runs it: nothing that exists is left off here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fireplot.stopping import StopFlag
from pipeline import wire
from pipeline.broker import LocalKafka, ensure_topics
from pipeline.config import Config

LIVE_PER_HOUR = 3600.0  # about one demo packet a second keeps the live view moving
DEMO_HOURS = 24  # the demo's history: one day of background traffic and scans


def _wait_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.3)
    return False


def run_all(cfg: Config, demo: bool = True, seed: int = 1, config_path: Path | None = None) -> int:
    from producers.demo import Demo, write_lines

    var = Path(cfg.kafka.var_dir).resolve()
    logs_dir = var / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    broker = None
    if not cfg.kafka.bootstrap:
        broker = LocalKafka(cfg.kafka)
        print("starting Kafka (first run resolves its jars with Maven) ...", flush=True)
        print(f"  {broker.up().describe()}", flush=True)
    bootstrap = cfg.kafka.effective_bootstrap
    ensure_topics(
        bootstrap, {cfg.kafka.events_topic: cfg.kafka.events_partitions}, wire.TOPIC_CONFIGS, cfg.kafka
    )

    env = dict(os.environ)
    base = [sys.executable, "-m", "fireplot"]
    if config_path:
        base += ["-c", str(config_path)]
    env["FIREPLOT_KAFKA__BOOTSTRAP"] = bootstrap
    env["FIREPLOT_WEB__PORT"] = str(cfg.web.port)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, *argv: str) -> subprocess.Popen[bytes]:
        out = open(logs_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [*base, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        out.close()
        procs[name] = proc
        return proc

    stopping = StopFlag(signal.SIGTERM, signal.SIGINT)
    code = 0
    try:
        start("worker", "worker")
        web = start("web", "serve")
        demo_log = var / "demo" / "demo.log"
        gen = Demo(seed)
        now = dt.datetime.now(dt.UTC)
        scans_day = now.date()
        if demo:
            demo_log.parent.mkdir(parents=True, exist_ok=True)
            packets, scans_day = gen.last_day(now)
            n = write_lines(packets, demo_log)
            print(f"demo: {n} log lines for the last {DEMO_HOURS} h in {demo_log}", flush=True)
            start("shipper", "ship", str(demo_log), "--site", "demo", "--follow")
            # The detector's first evaluation reaches back over the demo's whole
            # history, so its scans are listed within a minute of start.
            start(
                "detector",
                "detect",
                "--follow",
                "--since",
                (now - dt.timedelta(hours=DEMO_HOURS)).isoformat(),
            )
        else:
            start("detector", "detect", "--follow")
        if not _wait_port(cfg.web.address, cfg.web.port, 60, web):
            print(f"the web server did not start; see {logs_dir / 'web.log'}", file=sys.stderr)
            return 1
        url = f"http://{cfg.web.address}:{cfg.web.port}/"
        if demo and scans_day != now.date():
            # Early in a UTC day the demo's scans are on yesterday's page: link straight to it.
            url += f"?date={scans_day.isoformat()}"
        print(
            f"\nfireplot is running: {url}\nlogs in {logs_dir}; Ctrl-C stops everything.",
            flush=True,
        )
        last = dt.datetime.now(dt.UTC)
        while not stopping():
            time.sleep(1)
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(
                        f"{name} exited with code {proc.returncode}; see {logs_dir / (name + '.log')}",
                        file=sys.stderr,
                    )
                    stopping.set, code = True, 1
            if demo and not stopping():
                now = dt.datetime.now(dt.UTC)
                write_lines(
                    list(gen.background(last, now, LIVE_PER_HOUR, salt="live")), demo_log, append=True
                )
                last = now
    finally:
        print("stopping ...", flush=True)
        for name in ("shipper", "detector", "web", "worker"):
            child = procs.get(name)
            if child and child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker:
            broker.down()
        print("stopped.", flush=True)
    return code
