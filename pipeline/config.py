"""fireplot configuration: one TOML file, FIREPLOT_* environment overrides.

Precedence is defaults < file < environment < CLI flag. Every key carries its
unit in its name and a documented default; unknown keys are errors, because a
misspelt key that is silently ignored is how operators lose a night.

Environment overrides name a section and a key with a double underscore:
``FIREPLOT_KAFKA__BOOTSTRAP=broker:9092`` sets ``[kafka] bootstrap``.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "FIREPLOT_"
DEFAULT_CONFIG_PATHS = (Path("fireplot.toml"), Path("/etc/fireplot/fireplot.toml"))


class ConfigError(ValueError):
    """A configuration that cannot be used, with the key that is wrong."""


def doc(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str = doc(
        "Kafka bootstrap servers (host:port,...). Empty: use the local broker that `fireplot kafka up` runs.",
        "",
    )
    local_port: int = doc("client port of the local broker, bound to 127.0.0.1", 9092)
    local_controller_port: int = doc("KRaft controller port of the local broker", 9093)
    local_heap_mb: int = doc("JVM heap of the local broker", 512)
    local_start_timeout_s: float = doc("how long `kafka up` waits for the broker to answer", 90.0)
    var_dir: str = doc("where the local broker keeps jars, data and logs", "var")
    events_topic: str = doc("topic of parsed events (Arrow IPC record batches)", "fireplot.events")
    events_partitions: int = doc("partitions created for the events topic", 4)
    raw_topic: str = doc(
        "topic of raw log lines (plain text, or JSON with a `message` field: rsyslog, Filebeat, Vector)",
        "fireplot.raw",
    )
    raw_partitions: int = doc("partitions created for the raw-lines topic", 4)
    events_topic_pattern: str = doc(
        "regular expression (whole name) of more topics the worker archives as events topics, e.g. "
        r"'[A-Za-z0-9_-]+\.fireplot\.events' for MirrorMaker 2's copies of site topics; "
        "empty: events_topic only",
        "",
    )
    raw_topic_pattern: str = doc(
        "regular expression (whole name) of more raw-lines topics the worker archives; empty: raw_topic only",
        "",
    )
    mirror_heap_mb: int = doc("JVM heap of `fireplot kafka mirror` (MirrorMaker 2)", 256)
    dead_letter_topic: str = doc(
        "topic of rejected lines (JSON: source_id, offset, reason, line); empty: local file only",
        "fireplot.dead-letters",
    )
    # Client security: checked by check_kafka_security, turned into client settings by
    # pipeline.kafka_security.
    security_protocol: str = doc(
        "how clients talk to Kafka: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (TLS + SASL)",
        "PLAINTEXT",
    )
    sasl_mechanism: str = doc("SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN", "SCRAM-SHA-512")
    sasl_username: str = doc("SASL user name (SASL_* protocols)", "")
    sasl_password: str = field(
        default="",
        repr=False,
        metadata={
            "doc": "SASL password; prefer FIREPLOT_KAFKA__SASL_PASSWORD to the file. Never logged or printed"
        },
    )
    ssl_cafile: str = doc(
        "PEM file of the CA(s) that signed the brokers' certificates (SSL, SASL_SSL); empty: system CAs", ""
    )
    ssl_certfile: str = doc("PEM client certificate, only for brokers that require TLS client auth", "")
    ssl_keyfile: str = doc("PEM private key of ssl_certfile (unencrypted)", "")
    ssl_check_hostname: bool = doc("check that the broker's certificate names the host connected to", True)

    @property
    def local_bootstrap(self) -> str:
        return f"127.0.0.1:{self.local_port}"

    @property
    def effective_bootstrap(self) -> str:
        return self.bootstrap or self.local_bootstrap


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


@dataclass(frozen=True)
class WebConfig:
    address: str = doc("address the Bokeh server binds", "127.0.0.1")
    port: int = doc("port of the Bokeh server", 5006)
    allow_websocket_origins: tuple[str, ...] = doc(
        "extra allowed websocket origins (host:port as the browser sees the server); "
        "required when address is not loopback",
        (),
    )
    users: tuple[str, ...] = doc(
        "who may sign in: NAME:pbkdf2_sha256$ITERATIONS$SALT$HASH (`fireplot web-credential --user NAME`); "
        "users or tokens are required when address is not loopback",
        (),
    )
    tokens: tuple[str, ...] = doc(
        "access tokens: NAME:sha256$HEX (`fireplot web-credential --token NAME`), sent as "
        "`Authorization: Bearer TOKEN` or on the sign-in page",
        (),
    )
    user_sites: tuple[str, ...] = doc(
        "NAME:SITE pairs, one per site: a user or token named here sees only those sites; others see all",
        (),
    )
    cookie_secret: str = field(
        default="",
        repr=False,
        metadata={
            "doc": "secret (>= 32 chars) signing login cookies and session tokens; empty: random per start, "
            "so sign-ins end with a restart. Prefer FIREPLOT_WEB__COOKIE_SECRET over the file. Never printed"
        },
    )
    login_max_age_s: float = doc("how long a sign-in lasts", 43_200.0)
    allow_unauthenticated: bool = doc(
        "serve without sign-in on a non-loopback address: only where something else limits who can "
        "connect (a container port published on 127.0.0.1, an authenticating reverse proxy)",
        False,
    )
    max_points: int = doc("raw dots drawn per view before the server aggregates", 150_000)
    refresh_interval_ms: int = doc("how often the page looks for new events of today", 2000)
    palette: str = doc(
        'dot colours: "original" (the original fireplot\'s) or "colourblind" (Okabe-Ito colours and '
        "a marker shape per IP family on the page); also used by `fireplot render`",
        "original",
    )

    def __post_init__(self) -> None:
        if self.palette not in ("original", "colourblind"):
            raise ConfigError(f'[web] palette: "original" or "colourblind", got {self.palette!r}')


@dataclass(frozen=True)
class DetectConfig:
    """Scan detection (pipeline.detect); defaults from /work/shared/reference/scan-detection.md §7."""

    vertical_min_ports: int = doc("fast/vertical scan: distinct dst ports from one src to one dst", 15)
    vertical_window_s: float = doc("fast/vertical scan: sliding window those ports must fit in", 60.0)
    vertical_step_s: float = doc(
        "fast kinds are evaluated at grid points this far apart (bounds live detection delay)", 1.0
    )
    horizontal_min_targets: int = doc("horizontal sweep: distinct dsts on one port from one src", 25)
    horizontal_window_s: float = doc("horizontal sweep: sliding window", 300.0)
    horizontal_step_s: float = doc("horizontal sweep: grid step", 15.0)
    slow_min_ports: int = doc(
        "slow scan: distinct dst ports one src probes in one tracking session (any port order)", 10
    )
    slow_min_targets: int = doc("slow scan: or distinct dsts one src probes in one tracking session", 25)
    slow_idle_s: float = doc(
        "slow scan: a src's tracking session ends after this long without an event (psad SCAN_TIMEOUT); "
        "a session has no length limit, so a scan that keeps probing spans days as one scan",
        3600.0,
    )
    slow_min_abs_tau: float = doc(
        "slow scan: |Kendall tau| of port vs first-hit time at or above which the order is "
        "ascending/descending (else random)",
        0.8,
    )
    slow_min_span_s: float = doc("slow/distributed scan: the session lasts at least this long", 60.0)
    slow_max_points: int = doc("slow/distributed scan: first-hit points per scan used for tau", 512)
    distributed_min_ports: int = doc(
        "distributed slow scan: distinct ports of one dst's port block probed by light sources", 30
    )
    distributed_min_sources: int = doc("distributed slow scan: light sources sharing the walk", 4)
    distributed_block_ports: int = doc(
        "distributed slow scan: ports are tracked per dst in blocks this wide (power of two)", 1024
    )
    distributed_idle_s: float = doc(
        "distributed slow scan: a dst block's session ends after this long without a port new to it", 900.0
    )
    track_step_s: float = doc(
        "slow/distributed tracking consumes events up to the last multiple of this (event time) at or "
        "before each evaluation's end (must divide a day)",
        60.0,
    )
    track_max_rows: int = doc(
        "slow/distributed tracking state: rows kept at most (ports, targets, port memory); beyond, the "
        "sessions with the fewest ports are evicted and counted",
        2_000_000,
    )
    track_max_targets: int = doc(
        "slow scan: distinct dsts remembered per session (more: distinct_targets is a lower bound)", 4096
    )
    track_checkpoints_kept: int = doc("slow tracking: daily state checkpoints kept (restart, replay)", 8)
    hammer_min_hits: int = doc("hammering: packets on one port from one src within the window", 30)
    hammer_window_s: float = doc("hammering: sliding window", 3600.0)
    hammer_step_s: float = doc("hammering: grid step = width of one activity slot", 300.0)
    hammer_min_active_slots: int = doc("hammering: slots of the window with hits (persistence)", 6)
    coordinated_min_sources: int = doc("coordinated scan: sources acting together on one dst", 3)
    coordinated_min_ports: int = doc("coordinated scan: distinct ports of all sources together", 15)
    coordinated_min_ports_per_source: int = doc("coordinated scan: distinct ports each source adds", 3)
    coordinated_min_disjoint: float = doc(
        "coordinated scan: union/sum of the sources' port counts (1.0 = fully disjoint)", 0.8
    )
    coordinated_window_s: float = doc("coordinated scan: sliding window", 60.0)
    cross_site_min_sites: int = doc("cross-site: sites the same source was detected scanning", 2)
    fast_epoch_s: float = doc("fast kinds: a scan never spans an epoch (live re-evaluation unit)", 3600.0)
    slow_epoch_s: float = doc("slow/hammer/cross-site: epoch length (must divide a day)", 86400.0)
    rate_limited_sites: tuple[str, ...] = doc(
        "sites whose logging is rate-limited: counts are lower bounds", ()
    )
    rate_limited_prefixes: tuple[str, ...] = doc(
        "log prefixes (substring, case-insensitive) of rate-limited rules, e.g. UFW's 3/min", ("UFW",)
    )
    max_candidate_keys: int = doc(
        "per kind and run: candidate keys kept under a flood (rest counted)", 100_000
    )
    duckdb_memory_mb: int = doc("DuckDB memory limit for one detection run (spills beyond)", 512)
    duckdb_threads: int = doc("DuckDB threads", 2)
    scans_dir: str = doc("scan dataset; empty: <[worker] store_dir>/scans", "")
    follow_interval_s: float = doc("`detect --follow`: how often the store is re-evaluated", 1.0)
    lateness_s: float = doc(
        "`detect --follow`: watermark = newest event time minus this (> worker flush_interval_s)", 1.0
    )
    kafka_topic: str = doc("topic new scans are published to as JSON (when publish is on)", "fireplot.scans")
    publish: bool = doc("publish new scans to kafka_topic", False)
    alert_command: tuple[str, ...] = doc("argv run per new scan, the scan as JSON on stdin", ())
    alert_webhook: str = doc("URL POSTed per new scan (JSON body); empty: none", "")

    def __post_init__(self) -> None:
        b = self.distributed_block_ports
        if b < 1 or b > 65536 or b & (b - 1):
            raise ConfigError(f"[detect] distributed_block_ports: a power of two in 1..65536, got {b}")
        for key in ("slow_idle_s", "distributed_idle_s", "slow_min_span_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"[detect] {key}: must be > 0, got {getattr(self, key)}")
        for key in (
            "slow_min_ports",
            "slow_min_targets",
            "distributed_min_ports",
            "distributed_min_sources",
            "track_max_rows",
            "track_max_targets",
            "track_checkpoints_kept",
            "slow_max_points",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"[detect] {key}: must be >= 1, got {getattr(self, key)}")
        if not self.track_step_s > 0 or 86400 % self.track_step_s:
            raise ConfigError(f"[detect] track_step_s: must divide a day, got {self.track_step_s}")
        if 86400 % self.slow_epoch_s:
            raise ConfigError(f"[detect] slow_epoch_s: must divide a day, got {self.slow_epoch_s}")


@dataclass(frozen=True)
class EnrichConfig:
    """Read-time enrichment (pipeline.enrich): labels added for display and export, never stored."""

    networks: tuple[str, ...] = doc(
        'named networks as "label=cidr" (IPv4 or IPv6; a label may repeat); the first that holds an '
        "address labels it",
        (),
    )
    databases: tuple[str, ...] = doc(
        "MaxMind-format .mmdb files (GeoLite2 ASN/Country, DB-IP Lite, IPinfo Lite) giving sources their "
        "ASN, organisation and country; each field from the first file that has it; empty: off",
        (),
    )
    scanner_networks_path: str = doc(
        "file of known scanner networks, one 'CIDR LABEL' a line (# comments); empty: none", ""
    )


@dataclass(frozen=True)
class HealthConfig:
    """Per-site health (pipeline.health): when a site counts as silent, what the rate covers."""

    silent_gap_factor: float = doc(
        "a site is silent when the time since its last event exceeds this many times its usual gap", 3.0
    )
    usual_gap_percentile: float = doc(
        "usual gap = this percentile of the site's gaps between active minutes over history_s", 99.0
    )
    min_usual_gap_s: float = doc(
        "floor of the usual gap: a site active every minute is not silent sooner", 300.0
    )
    history_s: float = doc(
        "event-time history the usual gap is learnt from (only these partitions are read)", 86400.0
    )
    rate_window_s: float = doc("event rate = events per minute over this recent window", 300.0)
    interval_s: float = doc("how often the worker recomputes health (metrics, web snapshot)", 5.0)

    def __post_init__(self) -> None:
        if not self.silent_gap_factor > 0:
            raise ConfigError(f"[health] silent_gap_factor: must be > 0, got {self.silent_gap_factor}")
        if not 0 < self.usual_gap_percentile <= 100:
            raise ConfigError(
                f"[health] usual_gap_percentile: must be in (0, 100], got {self.usual_gap_percentile}"
            )


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    shipper: ShipperConfig = field(default_factory=ShipperConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    web: WebConfig = field(default_factory=WebConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    source: str = field(default="defaults", compare=False)


SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaConfig,
    "shipper": ShipperConfig,
    "worker": WorkerConfig,
    "web": WebConfig,
    "detect": DetectConfig,
    "enrich": EnrichConfig,
    "health": HealthConfig,
}


def _coerce(section: str, key: str, hint: Any, value: Any) -> Any:
    where = f"[{section}] {key}"
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
                return True
            if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("expected an integer, got a boolean")
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError(f"expected a string, got {type(value).__name__}")
            return value
        if origin is tuple:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple):
                raise ValueError("expected a list")
            return tuple(str(v) for v in value)
        if origin in (types.UnionType, typing.Union):
            return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(f"{where}: unsupported type {hint!r}")


def _build(section: str, cls: type[Any], values: Mapping[str, Any]) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"[{section}]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    kwargs = {k: _coerce(section, k, hints[k], v) for k, v in values.items()}
    obj = cls(**kwargs)
    _check(section, obj)
    return obj


def _check(section: str, obj: Any) -> None:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, int | float) and not isinstance(v, bool):
            positive = f.name.endswith(("_ms", "_s", "_mb", "_lines", "_records", "_points"))
            off_switch = f.name == "metrics_port" and v == 0  # 0 documented as "off"
            if (positive or f.name.endswith(("port", "partitions", "_bytes"))) and v <= 0 and not off_switch:
                raise ConfigError(f"[{section}] {f.name}: must be > 0, got {v}")
            if f.name.endswith("port") and v > 65535:
                raise ConfigError(f"[{section}] {f.name}: not a TCP port: {v}")
            if f.name.endswith(("_processes", "_days")) and v < 0:
                raise ConfigError(f"[{section}] {f.name}: must be >= 0 (0 = off), got {v}")
    if section == "shipper":
        import ipaddress
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        for net in obj.exclude_networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ConfigError(f"[shipper] exclude_networks: {exc}") from None
        try:
            ZoneInfo(obj.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"[shipper] timezone: unknown time zone {obj.timezone!r}") from None
        if not obj.site or "/" in obj.site or "=" in obj.site:
            raise ConfigError(f"[shipper] site: must be non-empty without '/' or '=': {obj.site!r}")
    if section == "worker" and obj.upload_uri:
        from pipeline.store import is_uri

        if not is_uri(obj.upload_uri):
            raise ConfigError(f"[worker] upload_uri: not a URI (s3://bucket/prefix): {obj.upload_uri!r}")
    if section == "enrich":
        from pipeline.networks import parse_named

        try:
            parse_named(obj.networks)
        except ValueError as exc:
            raise ConfigError(f"[enrich] networks: {exc}") from None
    if section == "kafka":
        check_kafka_security(obj)


# -- [kafka] client security ------------------------------------------------------------------
# Validated here like every other key; pipeline.kafka_security turns the
# checked keys into client settings with the TLS context built below.

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


def uses_tls(cfg: KafkaConfig) -> bool:
    """Whether clients speak TLS to the brokers (SSL, SASL_SSL)."""
    return cfg.security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(cfg: KafkaConfig) -> bool:
    """Whether clients log in with SASL (SASL_PLAINTEXT, SASL_SSL)."""
    return cfg.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def check_kafka_security(cfg: KafkaConfig) -> None:
    """Raise ConfigError naming the key when the [kafka] security settings cannot work."""
    if cfg.security_protocol not in PROTOCOLS:
        raise ConfigError(
            f"[kafka] security_protocol: {cfg.security_protocol!r} is not one of {', '.join(PROTOCOLS)}"
        )
    if cfg.security_protocol != "PLAINTEXT" and not cfg.bootstrap:
        raise ConfigError(
            f"[kafka] security_protocol {cfg.security_protocol} needs [kafka] bootstrap: the local broker of "
            "`fireplot kafka up` speaks PLAINTEXT only"
        )
    if uses_sasl(cfg):
        if cfg.sasl_mechanism not in MECHANISMS:
            raise ConfigError(
                f"[kafka] sasl_mechanism: {cfg.sasl_mechanism!r} is not one of {', '.join(MECHANISMS)}"
            )
        if not cfg.sasl_username:
            raise ConfigError(f"[kafka] sasl_username: required with {cfg.security_protocol}")
        if not cfg.sasl_password:
            raise ConfigError(
                f"[kafka] sasl_password: required with security_protocol {cfg.security_protocol} "
                "(set FIREPLOT_KAFKA__SASL_PASSWORD)"
            )
    elif cfg.sasl_username or cfg.sasl_password:
        raise ConfigError(
            f"[kafka] sasl_username/sasl_password are set but security_protocol is {cfg.security_protocol}, "
            "which sends no credentials: use SASL_SSL"
        )
    tls_keys = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    if not uses_tls(cfg):
        stray = [k for k in tls_keys if getattr(cfg, k)]
        if stray:
            raise ConfigError(
                f"[kafka] {', '.join(stray)}: set but security_protocol is {cfg.security_protocol} (no TLS): "
                "use SSL or SASL_SSL"
            )
        return
    for key in tls_keys:
        path = getattr(cfg, key)
        if path and not os.path.isfile(path):
            raise ConfigError(f"[kafka] {key}: no such file: {path}")
    if bool(cfg.ssl_certfile) != bool(cfg.ssl_keyfile):
        raise ConfigError("[kafka] ssl_certfile and ssl_keyfile: give both (TLS client auth) or neither")
    ssl_context(cfg)  # a CA or key file that is not PEM fails here, at validate time


def ssl_context(cfg: KafkaConfig) -> ssl.SSLContext | None:
    """The TLS context clients use, or None without TLS. Certificates are always verified."""
    if not uses_tls(cfg):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if cfg.ssl_cafile:
            ctx.load_verify_locations(cafile=cfg.ssl_cafile)
        if cfg.ssl_certfile:
            ctx.load_cert_chain(cfg.ssl_certfile, cfg.ssl_keyfile)
    except (ssl.SSLError, OSError) as exc:
        which = "ssl_cafile" if not cfg.ssl_certfile else "ssl_cafile/ssl_certfile/ssl_keyfile"
        raise ConfigError(f"[kafka] {which}: cannot load: {exc}") from None
    ctx.check_hostname = cfg.ssl_check_hostname
    return ctx


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        if section not in SECTIONS:
            raise ConfigError(f"{name}: unknown section {section!r}; known: {', '.join(SECTIONS)}")
        out.setdefault(section, {})[key] = value
    return out


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load the configuration: defaults, then the TOML file, then FIREPLOT_* variables.

    With no path, ``$FIREPLOT_CONFIG``, ``./fireplot.toml`` and
    ``/etc/fireplot/fireplot.toml`` are tried in that order; none is required.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "defaults"
    if path is None and environ.get("FIREPLOT_CONFIG"):
        path = environ["FIREPLOT_CONFIG"]
    if path is None:
        path = next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        source = str(p)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    for section, values in env_overrides(environ).items():
        data.setdefault(section, {}).update(values)
    built = {name: _build(name, cls, data.get(name, {})) for name, cls in SECTIONS.items()}
    return Config(**built, source=source)


def with_overrides(cfg: Config, section: str, **values: Any) -> Config:
    """A copy with some keys of one section replaced (CLI flags), validated again."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return cfg
    current = dataclasses.asdict(getattr(cfg, section))
    current.update(values)
    return dataclasses.replace(cfg, **{section: _build(section, SECTIONS[section], current)})


def describe() -> str:
    """Every key with its default and meaning, as a commented TOML file."""
    lines = ["# fireplot.toml: every key, its default and what it means."]
    for name, cls in SECTIONS.items():
        lines.append(f"\n[{name}]")
        for f in dataclasses.fields(cls):
            lines.append(f"# {f.metadata.get('doc', '')}")
            default = f.default
            if isinstance(default, bool):
                rendered = "true" if default else "false"
            elif isinstance(default, str):
                rendered = f'"{default}"'
            elif isinstance(default, tuple):
                rendered = "[" + ", ".join(f'"{v}"' for v in default) + "]"
            else:
                rendered = str(default)
            lines.append(f"{f.name} = {rendered}")
    return "\n".join(lines) + "\n"
