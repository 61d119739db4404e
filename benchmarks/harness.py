"""What every benchmark here shares: a throwaway local broker and side-by-side reporting.

Absolute times drift on shared machines; the ratio of ours to the reference,
measured in the same run on the same broker, is the number that means something.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.broker import LocalKafka
from pipeline.config import KafkaConfig

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def broker() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fireplot-bench-") as tmp:
        cfg = KafkaConfig(local_port=free_port(), local_controller_port=free_port(), var_dir=tmp)
        kafka = LocalKafka(cfg, home=Path(tmp) / "kafka", lib_root=REPO / "var" / "kafka" / "lib")
        kafka.up()
        try:
            yield cfg.local_bootstrap
        finally:
            kafka.down()


def best_of(repeats: int, fn: Callable[[], None]) -> float:
    """Fastest of several runs: the run least disturbed by the rest of the machine."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def report(title: str, unit: str, n: int, ours_s: float, ref_name: str, ref_s: float) -> dict[str, float]:
    ours_rate, ref_rate = n / ours_s, n / ref_s
    print(f"\n{title}")
    print(f"  fireplot   {ours_rate:>14,.0f} {unit}/s  ({ours_s:.3f} s for {n:,})")
    print(f"  {ref_name:<10} {ref_rate:>14,.0f} {unit}/s  ({ref_s:.3f} s)")
    print(f"  ratio      {ours_rate / ref_rate:>14.2f}x  (fireplot / {ref_name})")
    return {"ours_per_s": ours_rate, "ref_per_s": ref_rate, "ratio": ours_rate / ref_rate}
