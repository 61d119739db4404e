"""Scraping a process's Prometheus /metrics endpoint, for the tests' checks."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of http://127.0.0.1:PORT/metrics, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_label(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["reason"]: v for (n, labels), v in samples.items() if n == name and v}


def wait_metric(
    port: int, name: str, value: float, timeout_s: float = 60, log: Callable[[], str] | None = None
) -> Samples:
    """The samples once ``name`` (unlabelled) equals ``value``; else fail with the process's log."""
    deadline = time.monotonic() + timeout_s
    have: float | None = None
    while time.monotonic() < deadline:
        try:
            samples = scrape(port)
        except OSError:  # the endpoint is not up yet
            time.sleep(0.3)
            continue
        have = samples.get((name, ()))
        if have == value:
            return samples
        time.sleep(0.3)
    raise AssertionError(f"{name} = {have}, expected {value}\n{log() if log else ''}")
