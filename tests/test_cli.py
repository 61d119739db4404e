"""The fireplot command: help that explains, parse output, --check exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumers.web import auth
from pipeline.config import WebConfig

FIXTURES = Path(__file__).parent / "parsers" / "netfilter"


def fireplot(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fireplot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_every_subcommand_has_help_that_explains_it() -> None:
    top = fireplot("--help")
    assert top.returncode == 0
    for command in ("up", "kafka", "parse", "ship", "worker", "serve", "demo", "tail", "validate"):
        assert command in top.stdout
        sub = fireplot(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert len(sub.stdout.splitlines()) >= 4


def test_parse_prints_one_json_event_per_accepted_line() -> None:
    fixture = FIXTURES / "ipv4_tcp_syn_uptime.log"
    expected = [
        json.loads(line)
        for line in (FIXTURES / "ipv4_tcp_syn_uptime.expected.jsonl").read_text().splitlines()
    ]
    proc = fireplot("parse", str(fixture), "--site", "golden")
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(got) == len(expected) > 0
    assert [(e["dst_port"], e["src_ip"]) for e in got] == [(e["dst_port"], e["src_ip"]) for e in expected]
    assert {e["site"] for e in got} == {"golden"}


def test_parse_check_counts_rejects_by_reason_and_exits_3() -> None:
    proc = fireplot("parse", "--check", str(FIXTURES / "garbage.log"))
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    lines = (FIXTURES / "garbage.log").read_text().count("\n")
    assert report["events"] + report["rejected"] == lines
    assert report["rejected"] > 0 and sum(report["rejected_by_reason"].values()) == report["rejected"]
    clean = fireplot("parse", "--check", str(FIXTURES / "ipv4_tcp_syn_uptime.log"))
    assert clean.returncode == 0
    assert json.loads(clean.stdout)["rejected"] == 0
    # The test command builds the native scanner; the report says it was used.
    assert json.loads(clean.stdout)["netfilter_engine"] == "native"


def test_parse_check_gives_the_same_counts_on_the_pyarrow_path() -> None:
    """FIREPLOT_NETFILTER_ENGINE=arrow is the operator's switch back to the library-only parser."""
    native = fireplot("parse", "--check", str(FIXTURES / "garbage.log"))
    arrow = fireplot(
        "parse", "--check", str(FIXTURES / "garbage.log"), env={"FIREPLOT_NETFILTER_ENGINE": "arrow"}
    )
    assert json.loads(arrow.stdout)["netfilter_engine"] == "arrow"
    assert json.loads(native.stdout)["netfilter_engine"] == "native"
    same = ("events", "rejected", "rejected_by_reason")
    assert {k: json.loads(arrow.stdout)[k] for k in same} == {k: json.loads(native.stdout)[k] for k in same}


def test_without_the_native_library_parsing_falls_back_or_fails_as_asked(tmp_path: Path) -> None:
    """A missing library means the pyarrow path under auto, and a clear error under native."""
    missing = {"FIREPLOT_NATIVE_LIB": str(tmp_path / "libnothing.so")}
    fallback = fireplot(
        "parse",
        "--check",
        str(FIXTURES / "garbage.log"),
        env={**missing, "FIREPLOT_NETFILTER_ENGINE": "auto"},
    )
    assert json.loads(fallback.stdout)["netfilter_engine"] == "arrow"
    native = fireplot("parse", "--check", str(FIXTURES / "garbage.log"))
    same = ("events", "rejected", "rejected_by_reason")
    assert {k: json.loads(fallback.stdout)[k] for k in same} == {
        k: json.loads(native.stdout)[k] for k in same
    }
    strict = fireplot(
        "parse",
        "--check",
        str(FIXTURES / "garbage.log"),
        env={**missing, "FIREPLOT_NETFILTER_ENGINE": "native"},
    )
    assert strict.returncode == 2, strict.stderr
    assert (
        "configuration error: FIREPLOT_NETFILTER_ENGINE=native: libfireplot_netfilter.so not found"
        in strict.stderr
    )


def test_an_unknown_format_is_a_usage_error() -> None:
    proc = fireplot("parse", "--format", "nosuch", str(FIXTURES / "garbage.log"))
    assert proc.returncode == 2
    assert "invalid choice: 'nosuch'" in proc.stderr


def test_demo_writes_parseable_lines(tmp_path: Path) -> None:
    out = tmp_path / "demo.log"
    proc = fireplot("demo", "--out", str(out), "--hours", "1", "--end", "2026-11-27T12:00:00Z")
    assert proc.returncode == 0, proc.stderr
    check = fireplot("parse", "--check", str(out))
    assert check.returncode == 0, check.stdout
    report = json.loads(check.stdout)
    assert report["events"] == out.read_text().count("\n") > 1000


def test_web_credential_user_entry_accepts_its_password_and_no_other() -> None:
    """--user reads the password from stdin; only its hash is printed, and the server accepts it."""
    rv = fireplot("web-credential", "--user", "alice", stdin="eight ch\r\n")

    assert rv.returncode == 0, rv.stderr
    out = json.loads(rv.stdout)
    credentials = auth.Credentials.from_config(WebConfig(users=(out["entry"],)))
    assert (out["name"], "eight ch" in rv.stdout) == ("alice", False)
    assert credentials.check_password("alice", "eight ch")
    assert not credentials.check_password("alice", "eight c")


def test_web_credential_token_entry_knows_the_token_printed_once() -> None:
    """--token prints a random token beside an entry that holds only its hash."""
    rv = fireplot("web-credential", "--token", "ci")

    assert rv.returncode == 0, rv.stderr
    out = json.loads(rv.stdout)
    credentials = auth.Credentials.from_config(WebConfig(tokens=(out["entry"],)))
    assert out["token"] not in out["entry"]
    assert credentials.token_name(out["token"]) == "ci"
    assert credentials.token_name(auth.new_token()) is None


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("--user", "bob"), "seven c\n", "a password needs at least 8 characters"),
        (("--user", "bob"), "", "a password needs at least 8 characters"),
        (("--user", "a:b"), "long enough\n", "a name must be non-empty without ':': 'a:b'"),
        (("--user", " "), "long enough\n", "a name must be non-empty without ':': ' '"),
        (("--token", "ops:x"), "", "a name must be non-empty without ':': 'ops:x'"),
    ],
)
def test_web_credential_bad_name_or_short_password_is_a_usage_error(
    args: tuple[str, ...], stdin: str, message: str
) -> None:
    """Exit 2 with the rule that was broken, and no entry printed."""
    rv = fireplot("web-credential", *args, stdin=stdin)

    assert (rv.returncode, rv.stdout) == (2, "")
    assert rv.stderr == f"fireplot web-credential: {message}\n"
