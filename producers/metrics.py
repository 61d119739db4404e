"""Prometheus metrics of the shipper and the syslog receiver.

Labels are reason classes and filter names only, never addresses or raw
reasons (attacker text would explode cardinality). A private registry keeps
the process's default collectors out of tests that start two shippers.

The one metrics mechanism of fireplot: the worker exposes its counters
through the same library (``pipeline/archive/metrics.py``,
``pipeline/health/``). Here the metric objects are the counters, since the
shipper keeps no other; this module is imported only when metrics are
served, so a one-shot ``fireplot ship`` never pays prometheus_client's import.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class ShipperMetrics:
    """Counters the shipper increments once per batch (not per line)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lines = Counter("fireplot_shipper_lines_read", "lines read from inputs", registry=r)
        self.events = Counter("fireplot_shipper_events_sent", "events queued for Kafka", registry=r)
        self.acked = Counter(
            "fireplot_shipper_batches_acknowledged",
            "batches Kafka acknowledged (positions saved)",
            registry=r,
        )
        self.rejected = Counter(
            "fireplot_shipper_rejected_lines",
            "lines no parser could read, by reason class",
            ["reason"],
            registry=r,
        )
        self.filtered = Counter(
            "fireplot_shipper_filtered_events",
            "events dropped by the edge filter, by rule",
            ["reason"],
            registry=r,
        )
        self.spool_bytes = Gauge(
            "fireplot_shipper_spool_bytes", "bytes waiting in the disk spool", registry=r
        )
        self.reading_paused = Gauge(
            "fireplot_shipper_reading_paused",
            "1 while reading is paused because the disk spool is full (back-pressure)",
            registry=r,
        )
        self.resent = Counter(
            "fireplot_shipper_records_resent", "records Kafka failed to take, sent again", registry=r
        )
        self.received = Counter(
            "fireplot_receiver_messages", "syslog messages received, by transport", ["transport"], registry=r
        )
        self.send_latency = Histogram(
            "fireplot_shipper_send_latency_seconds",
            "time from handing a record to Kafka until it is acknowledged",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose /metrics on ``address:port`` from a daemon thread."""
        start_http_server(port, addr=address, registry=self.registry)
