"""The archive worker's Prometheus metrics, read from the sinks' own counters at scrape time.

The sinks already count everything in ``SinkStats`` (they must, for their
logs and tests); a custom ``prometheus_client`` collector turns those counts
into metric families when Prometheus asks, so there is one set of counters,
no second bookkeeping on the flush path, and the same library and exposition
as the shipper (``producers/metrics.py``). Counters end in ``_total``, units
are base units, labels are topics, partitions and bounded reason kinds, never
addresses or free text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.archive.decoders import DEAD_LETTER_KINDS
from pipeline.archive.sink import ArchiveSink, SinkStats

PREFIX: Final = "fireplot_worker_"

# (name, kind, help, the SinkStats field it reads), one sample per topic.
_PER_TOPIC: Final = (
    ("records_total", "counter", "Kafka records archived", "records"),
    ("events_written_total", "counter", "events written to Parquet", "events_written"),
    ("bytes_written_total", "counter", "Parquet bytes written", "bytes_written"),
    ("files_written_total", "counter", "Parquet files written", "files_written"),
    ("records_skipped_total", "counter", "redelivered records already in the store", "skipped_records"),
    (
        "duplicate_events_dropped_total",
        "counter",
        "events whose id the store already held",
        "duplicates_dropped",
    ),
    ("future_events_total", "counter", "events dated beyond future_tolerance_s (kept)", "future_events"),
    ("dead_letters_total", "counter", "records or lines sent to dead letters", "dead_letters"),
)
_FLUSHES: Final = (
    ("flushes_total", "counter", "flushes", "flushes"),
    ("flush_seconds_total", "counter", "time spent flushing", "flush_seconds_sum"),
    ("last_flush_seconds", "gauge", "duration of the latest flush", "last_flush_s"),
)

Lag = dict[tuple[str, int], int]


class SinkCollector(Collector):
    """The sinks' ``SinkStats`` per topic, the consumer's lag per partition, and the uptime."""

    def __init__(
        self, sinks: Mapping[str, ArchiveSink], lag: Callable[[], Lag], started: float | None = None
    ) -> None:
        """``sinks`` by topic; ``lag`` is asked at each scrape; ``started``: ``time.monotonic()``."""
        self.sinks = sinks
        self.lag = lag
        self.started = time.monotonic() if started is None else started

    def collect(self) -> Iterator[Metric]:
        stats = {topic: sink.stats for topic, sink in self.sinks.items()}
        yield from _per_topic(stats, _PER_TOPIC)
        by_reason = CounterMetricFamily(
            PREFIX + "dead_letters_by_reason_total",
            "records or lines sent to dead letters, by reason (pipeline.archive.decoders.DEAD_LETTER_KINDS)",
            labels=["topic", "reason"],
        )
        for topic, s in stats.items():
            for kind in DEAD_LETTER_KINDS:
                by_reason.add_metric([topic, kind], s.dead_letters_by_kind.get(kind, 0))
        yield by_reason
        yield from _per_topic(stats, _FLUSHES)
        lag = GaugeMetricFamily(
            PREFIX + "consumer_lag_records",
            "records between the committed offset and the partition end",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(self.lag().items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        yield GaugeMetricFamily(
            PREFIX + "uptime_seconds", "uptime seconds", value=time.monotonic() - self.started
        )


def _per_topic(
    stats: Mapping[str, SinkStats], rows: tuple[tuple[str, str, str, str], ...]
) -> Iterator[Metric]:
    for name, kind, help_, attr in rows:
        family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        family = family_type(PREFIX + name, help_, labels=["topic"])
        for topic, s in stats.items():
            family.add_metric([topic], float(getattr(s, attr)))
        yield family
