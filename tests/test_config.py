"""Configuration: file, environment and flags, in that order; every mistake named."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pipeline.config import ConfigError, describe, load, with_overrides


def test_defaults_apply_without_any_file() -> None:
    cfg = load(environ={})
    assert cfg.kafka.effective_bootstrap == "127.0.0.1:9092"
    assert cfg.web.address == "127.0.0.1"
    assert cfg.shipper.drop_late_tcp is True


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text('[kafka]\nbootstrap = "file:9092"\n[shipper]\nsite = "oslo"\n')
    cfg = load(
        path, environ={"FIREPLOT_KAFKA__BOOTSTRAP": "env:9092", "FIREPLOT_SHIPPER__DROP_LATE_TCP": "no"}
    )
    assert cfg.kafka.bootstrap == "env:9092"
    assert cfg.shipper.site == "oslo"
    assert cfg.shipper.drop_late_tcp is False


def test_flags_override_environment() -> None:
    cfg = load(environ={"FIREPLOT_WEB__PORT": "7000"})
    assert with_overrides(cfg, "web", port=7001).web.port == 7001
    assert with_overrides(cfg, "web", port=None).web.port == 7000


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[kafka]\nbootstrp = "x"\n', "unknown key(s) bootstrp"),
        ("[kafak]\n", "unknown section(s) kafak"),
        ("[web]\nport = 70000\n", "not a TCP port"),
        ('[web]\nport = "many"\n', "[web] port"),
        ('[shipper]\nexclude_networks = ["10.0.0.0/33"]\n', "exclude_networks"),
        ('[shipper]\ntimezone = "Mars/Olympus"\n', "unknown time zone"),
        ('[shipper]\nsite = "a/b"\n', "[shipper] site"),
        ("[worker]\nflush_interval_s = 0\n", "must be > 0"),
        ("[shipper]\nparse_processes = -1\n", "[shipper] parse_processes: must be >= 0"),
        ("[worker]\nupload_retention_days = -3\n", "[worker] upload_retention_days: must be >= 0"),
        ('[worker]\nupload_uri = "/mnt/bucket"\n', "[worker] upload_uri: not a URI"),
        ("[kafka\n", "not valid TOML"),
    ],
)
def test_bad_config_is_rejected_with_the_key_named(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load(path, environ={})
    assert message in str(err.value)


def test_unknown_environment_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown section 'kafak'"):
        load(environ={"FIREPLOT_KAFAK__BOOTSTRAP": "x"})


def test_printed_defaults_are_a_valid_config_equal_to_the_defaults(tmp_path: Path) -> None:
    text = describe()
    tomllib.loads(text)
    path = tmp_path / "defaults.toml"
    path.write_text(text)
    assert load(path, environ={}) == load(environ={})


def test_validate_command_exits_2_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[web]\nportt = 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "fireplot", "-c", str(path), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "unknown key(s) portt" in proc.stderr
    good = tmp_path / "good.toml"
    good.write_text("[web]\nport = 5007\n")
    proc = subprocess.run(
        [sys.executable, "-m", "fireplot", "-c", str(good), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"port": 5007' in proc.stdout
