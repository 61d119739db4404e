"""[worker]: the archive worker: store, flushes, topics, maintenance, upload."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.keys import ConfigError, doc


@dataclass(frozen=True)
class WorkerConfig:
    store_dir: str = doc("root of the Parquet store (hive-partitioned events/)", "var/store")
    app_id: str = doc("faust application id = Kafka consumer group", "fireplot-archive")
    flush_max_records: int = doc(
        "events-topic records (each a batch of up to [shipper] batch_lines events) per Parquet flush; "
        "small enough that a backlog flushes while the next records are fetched",
        32,
    )
    flush_interval_s: float = doc("longest time events wait before a flush", 0.5)
    raw_flush_max_records: int = doc("raw-topic records (usually one line each) per Parquet flush", 20000)
    web_port: int = doc("faust's own web server (/metrics, /ready), on 127.0.0.1", 6066)
    check_all_ids: bool = doc(
        "check every event against the stored ids of its hour (replays into the live archive); "
        "off: only events at or below their source's high-water mark are checked",
        False,
    )
    session_timeout_s: float = doc(
        "consumer-group session timeout: how soon a dead worker's partitions move to another", 10.0
    )
    future_tolerance_s: float = doc(
        "events dated further than this ahead of the worker's clock are kept but counted as future", 3600.0
    )
    raw_enabled: bool = doc("also archive the raw-lines topic ([kafka] raw_topic)", True)
    raw_format: str = doc("parser for raw lines; `auto` when that format exists, else netfilter", "auto")
    raw_default_site: str = doc("site of raw lines whose record key and JSON fields name none", "default")
    topic_discovery_interval_s: float = doc(
        "how often the worker looks for new topics matching [kafka] events_topic_pattern / raw_topic_pattern",
        10.0,
    )
    maintenance_enabled: bool = doc(
        "run compaction, retention and rollups periodically in the worker (off: run `fireplot compact` "
        "and `fireplot rollup` yourself)",
        True,
    )
    maintenance_interval_s: float = doc("how often the worker's maintenance timer runs", 300.0)
    compact_older_than_s: float = doc("an hour is compacted once its end is this far in the past", 900.0)
    retention_days_events: int = doc("days of raw events kept (by event date); 0 keeps them forever", 90)
    upload_uri: str = doc(
        "object-store URI `fireplot store sync` copies closed, compacted hours to "
        "(e.g. s3://bucket/fireplot?region=eu-west-1); empty: none",
        "",
    )
    upload_retention_days: int = doc(
        "after a sync, delete local event dates older than this whose every hour is uploaded; 0 keeps them",
        0,
    )

    def check(self) -> None:
        """upload_uri, when set, must be an object-store URI."""
        if self.upload_uri:
            from pipeline.store import is_uri

            if not is_uri(self.upload_uri):
                raise ConfigError(f"[worker] upload_uri: not a URI (s3://bucket/prefix): {self.upload_uri!r}")
