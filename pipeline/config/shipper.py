"""[shipper]: what the edge reads, how it parses, batches, filters, spools and resumes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.config.keys import ConfigError, doc


@dataclass(frozen=True)
class ShipperConfig:
    site: str = doc("site name stamped on every event; the Kafka key's first part", "default")
    host: str = doc("sensor name used when a log line carries no host name", "")
    timezone: str = doc("time zone of log timestamps that carry no offset (RFC 3164)", "UTC")
    batch_lines: int = doc(
        "most lines parsed and published as one Arrow record batch (one events-topic record); a batch "
        "also ends with each 4 MiB read, about 16k netfilter lines",
        16384,
    )
    parse_processes: int = doc(
        "processes that parse file and stdin lines beside the main one, which reads and publishes "
        "meanwhile (results are used in input order); 0 = none (parse_thread decides). Each costs "
        "a process start and ~0.5 us/line of copying: the parse thread is faster on 2 cores",
        0,
    )
    parse_thread: bool = doc(
        "parse file and stdin lines in one thread beside the one that reads and publishes (the "
        "native scanner and pyarrow release the GIL, so this uses a second core); ignored when "
        "parse_processes > 0",
        True,
    )
    linger_ms: int = doc("kafka-python producer linger", 20)
    send_timeout_s: float = doc("how long to wait for Kafka to acknowledge a batch", 120.0)
    follow_poll_interval_ms: int = doc("how often --follow looks for new lines", 200)
    dead_letter_dir: str = doc("where rejected lines are kept with their reasons", "var/dead-letters")
    exclude_networks: tuple[str, ...] = doc(
        "sources inside these networks are not shipped (counted as filtered)", ()
    )
    drop_late_tcp: bool = doc(
        "drop late TCP packets of closed connections (ACK+FIN, RST), as the original did", True
    )
    drop_port_zero: bool = doc("drop events whose destination port is 0", True)
    registry_path: str = doc(
        "read-position registry (JSON): where `ship` resumes each file after a restart",
        "var/shipper/registry.json",
    )
    registry_flush_interval_ms: int = doc("longest time an acknowledged position waits to be saved", 500)
    spool_dir: str = doc(
        "on-disk spool for batches Kafka has not taken yet (outage buffer)", "var/shipper/spool"
    )
    spool_max_bytes: int = doc(
        "spool size at which reading stops until Kafka drains it (back-pressure)", 1 << 30
    )
    in_flight_max_bytes: int = doc(
        "encoded bytes handed to kafka-python before new batches go to the spool", 24 << 20
    )
    metrics_port: int = doc("Prometheus metrics on 127.0.0.1:PORT; 0 = off", 0)
    receiver_state_path: str = doc(
        "`fireplot receive` offset counter, persisted so a restart never reuses an event id",
        "var/shipper/receiver.json",
    )
    receiver_flush_interval_ms: int = doc(
        "longest time a received syslog line waits before it is parsed", 200
    )

    def check(self) -> None:
        """The keys whose values other libraries must understand: networks, time zone, site."""
        for net in self.exclude_networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ConfigError(f"[shipper] exclude_networks: {exc}") from None
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"[shipper] timezone: unknown time zone {self.timezone!r}") from None
        if not self.site or "/" in self.site or "=" in self.site:
            raise ConfigError(f"[shipper] site: must be non-empty without '/' or '=': {self.site!r}")
