"""What TLS + SASL/SCRAM costs a shipper: `fireplot ship` over SASL_SSL against the same over PLAINTEXT.

One broker with both listeners (certificates generated for the run, SCRAM-SHA-512
user created at format time); the same file is shipped to fresh topics through
each listener, whole processes, start-up and login included. (No kcat here:
Debian's librdkafka 2.0.2 cannot log in with SCRAM to Kafka 4 brokers, fixed in
2.6.1; edenhill/kcat#462.)

    python benchmarks/bench_ship_secure.py [--lines 300000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.harness import REPO, best_of, free_port, report
from pipeline import wire
from pipeline.broker import LocalKafka, SecureListener, ensure_topics
from pipeline.config import KafkaConfig
from producers.demo import Demo, write_lines
from tests.support.tls import KEYSTORE_PASSWORD, PASSWORD, USER, make_pki


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "pki").mkdir()
        pki = make_pki(tmp / "pki")
        listener = SecureListener(free_port(), pki.keystore, KEYSTORE_PASSWORD, {USER: PASSWORD})
        kcfg = KafkaConfig(local_port=free_port(), local_controller_port=free_port(), var_dir=str(tmp))
        kafka = LocalKafka(kcfg, home=tmp / "kafka", lib_root=REPO / "var" / "kafka" / "lib", secure=listener)
        kafka.up()
        try:
            run(tmp, args, kcfg.local_bootstrap, f"127.0.0.1:{listener.port}", pki.ca)
        finally:
            kafka.down()


def run(tmp: Path, args: argparse.Namespace, plain: str, secure: str, ca: Path) -> None:
    log = tmp / "fw.log"
    end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    packets = Demo(5).history(end, hours=24, per_hour=args.lines / 24 * 0.98)[: args.lines]
    write_lines(packets, log)
    n = len(packets)
    secure_keys = f'security_protocol = "SASL_SSL"\nsasl_username = "{USER}"\nssl_cafile = "{ca}"\n'

    def ship(bootstrap: str, extra: str) -> None:
        topic = f"bench-ship-{uuid.uuid4().hex[:8]}"
        ensure_topics(plain, {topic: 4}, wire.TOPIC_CONFIGS)
        cfg = tmp / f"{topic}.toml"
        cfg.write_text(
            f'[kafka]\nbootstrap = "{bootstrap}"\nevents_topic = "{topic}"\n{extra}'
            f'[shipper]\ndead_letter_dir = "{tmp}/dead"\n'
            f'registry_path = "{tmp}/{topic}/registry.json"\nspool_dir = "{tmp}/{topic}/spool"\n'
        )
        cmd = [sys.executable, "-m", "fireplot", "-c", str(cfg), "--log-level", "warning"]
        env = {**os.environ, "FIREPLOT_KAFKA__SASL_PASSWORD": PASSWORD} if extra else None
        subprocess.run([*cmd, "ship", str(log), "--site", "bench"], check=True, capture_output=True, env=env)

    secure_s = best_of(args.repeats, lambda: ship(secure, secure_keys))
    plain_s = best_of(args.repeats, lambda: ship(plain, ""))
    title = f"file -> Kafka over SASL_SSL (SCRAM-SHA-512), {n:,} lines, whole process"
    report(title, "lines", n, secure_s, "PLAINTEXT", plain_s)


if __name__ == "__main__":
    main()
