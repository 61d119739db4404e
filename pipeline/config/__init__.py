"""fireplot configuration: one TOML file, FIREPLOT_* environment overrides.

Precedence is defaults < file < environment < CLI flag. Every key carries its
unit in its name and a documented default; unknown keys are errors, because a
misspelt key that is silently ignored is how operators lose a night.

Environment overrides name a section and a key with a double underscore:
``FIREPLOT_KAFKA__BOOTSTRAP=broker:9092`` sets ``[kafka] bootstrap``.

One module per section (``kafka``, ``shipper``, ``worker``, ``web``,
``detect``, ``enrich``, ``health``) holds its keys, defaults and own checks;
``loader`` composes them into ``Config`` and loads, overrides and describes
it; ``keys`` is how a key is declared. A new section: a module with a frozen
dataclass whose keys use ``doc``, one field of ``Config`` in ``loader``, and
its name exported here.
"""

from __future__ import annotations

from pipeline.config.detect import DetectConfig
from pipeline.config.enrich import EnrichConfig
from pipeline.config.health import HealthConfig
from pipeline.config.kafka import (
    MECHANISMS,
    PROTOCOLS,
    KafkaConfig,
    check_kafka_security,
    ssl_context,
    uses_sasl,
    uses_tls,
)
from pipeline.config.keys import ConfigError, doc
from pipeline.config.loader import (
    DEFAULT_CONFIG_PATHS,
    ENV_PREFIX,
    SECTIONS,
    Config,
    describe,
    env_overrides,
    load,
    with_overrides,
)
from pipeline.config.shipper import ShipperConfig
from pipeline.config.web import WebConfig
from pipeline.config.worker import WorkerConfig

__all__ = [
    "DEFAULT_CONFIG_PATHS",
    "ENV_PREFIX",
    "MECHANISMS",
    "PROTOCOLS",
    "SECTIONS",
    "Config",
    "ConfigError",
    "DetectConfig",
    "EnrichConfig",
    "HealthConfig",
    "KafkaConfig",
    "ShipperConfig",
    "WebConfig",
    "WorkerConfig",
    "check_kafka_security",
    "describe",
    "doc",
    "env_overrides",
    "load",
    "ssl_context",
    "uses_sasl",
    "uses_tls",
    "with_overrides",
]
