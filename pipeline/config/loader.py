"""The whole configuration and how it is loaded: defaults < TOML file < FIREPLOT_* environment < flags.

``Config`` has one field per section; its field names are the section names
(``SECTIONS`` is read from it), so a new section is one module in this
package and one field here. Checks that hold for every section live here
(``_check``: units in key names imply ranges); a section's own checks are its
``__post_init__`` (values alone) or its ``check`` method (called after the
generic ones, for checks that need other modules or files).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from pipeline.config.detect import DetectConfig
from pipeline.config.enrich import EnrichConfig
from pipeline.config.health import HealthConfig
from pipeline.config.kafka import KafkaConfig
from pipeline.config.keys import ConfigError
from pipeline.config.shipper import ShipperConfig
from pipeline.config.web import WebConfig
from pipeline.config.worker import WorkerConfig

ENV_PREFIX = "FIREPLOT_"
DEFAULT_CONFIG_PATHS = (Path("fireplot.toml"), Path("/etc/fireplot/fireplot.toml"))


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


# Section name -> its dataclass, in Config's order (the order `describe` prints).
SECTIONS: dict[str, type[Any]] = {
    f.name: get_type_hints(Config)[f.name] for f in dataclasses.fields(Config) if f.name != "source"
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
    check = getattr(obj, "check", None)
    if check is not None:
        check()


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
