"""[kafka]: where the brokers are, the topics, the local broker, and client security.

The security keys are checked here like every other key (``check``);
``pipeline.kafka_security`` turns the checked keys into client settings with
the TLS context built by ``ssl_context``.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field

from pipeline.config.keys import ConfigError, doc


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

    def check(self) -> None:
        """The security keys together: protocol, credentials, TLS files (loaded, so not-PEM fails here)."""
        check_kafka_security(self)


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
